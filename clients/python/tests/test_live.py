"""Live scenarios against real Tessera servers on real Redis (see the
shared brief): revocation propagation, foreign cursors, fail-closed on a
killed server, key rotation, sender-constrained tokens; plus the client's
error decoding and the asyncio verifier."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import grpc
import pytest

from conftest import Stack, keygen, wait_until
from tessera_client import (
    AsyncLocalVerifier,
    AsyncTesseraClient,
    LocalVerifier,
    TesseraClient,
    TokenError,
    cert_thumbprint,
)
from tessera_client._tokens import sha256_b64

ISSUER = "tessera-test"


def reason_of(fn, *a, **kw) -> str:
    try:
        fn(*a, **kw)
    except TokenError as e:
        return e.reason
    return "OK"


def denied_within(v: LocalVerifier, token: str, want: str, bound: float) -> float:
    """Poll v.verify until it gives `want`; the time it took (asserted <= bound)."""
    t0 = time.monotonic()
    deadline = t0 + bound + 2  # poll a little past the bound to report the real figure
    while time.monotonic() < deadline:
        got = reason_of(v.verify, token)
        if got == want:
            took = time.monotonic() - t0
            assert took <= bound, f"{want} after {took:.3f}s (bound {bound}s)"
            return took
        assert got == "OK", got
        time.sleep(0.005)
    raise AssertionError(f"not {want} within {bound}s")


def test_client_errors_carry_the_servers_reason(shared):
    with TesseraClient(shared.target) as c:
        with pytest.raises(TokenError) as e:
            c.verify("not-a-token")
        assert e.value.reason == "TOKEN_MALFORMED"
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(TokenError) as e:
            c.verify("")
        assert e.value.reason == "FIELD_INVALID"
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        pair = c.issue("alice", audience=["api"], scopes=["read"])
        with pytest.raises(TokenError) as e:
            c.verify(pair.access_token, required_scopes=["write"])
        assert (e.value.reason, e.value.code) == ("SCOPE_MISSING", grpc.StatusCode.PERMISSION_DENIED)
        assert c.verify(pair.access_token, audience="api").claims.subject == "alice"
        new = c.refresh(pair.refresh_token)
        assert new.access_token and new.refresh_token != pair.refresh_token
        assert c.list_sessions("alice").sessions
        assert '"keys"' in c.jwks()
    with TesseraClient("127.0.0.1:1", timeout=2) as dead:
        with pytest.raises(TokenError) as e:
            dead.jwks()
        assert e.value.reason == "UNKNOWN" and e.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("target", ["token", "session", "subject"])
def test_revocation_reaches_the_verifier_within_a_second(shared, target):
    c = TesseraClient(shared.target)
    sub = f"user-{target}-{time.monotonic_ns()}"
    pair = c.issue(sub, tenant="acme", audience=["api"], scopes=["read"])
    other = c.issue(f"{sub}-other", tenant="acme", audience=["api"])
    with LocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
        assert v.in_sync
        claims = v.verify(pair.access_token)
        assert (claims.subject, claims.tenant, claims.scopes) == (sub, "acme", ["read"])
        if target == "token":
            c.revoke(token=pair.access_token)
        elif target == "session":
            c.revoke(session_id=pair.session_id)
        else:
            c.revoke(subject=sub, tenant="acme")
        denied_within(v, pair.access_token, "TOKEN_REVOKED", 1.0)
        assert reason_of(c.verify, pair.access_token) == "TOKEN_REVOKED"
        assert v.verify(other.access_token).subject == f"{sub}-other"
    c.close()


def test_exchanged_tokens_die_with_their_parent_session(shared):
    """RFC 8693 Exchange (issue #29): a derived token is an access token of
    its parent's session, so this verifier accepts it for its own audience
    and refuses it, like the parent, once the session's revocation arrives
    through the feed."""
    c = TesseraClient(shared.target)
    sub = f"user-exchange-{time.monotonic_ns()}"
    pair = c.issue(sub, tenant="acme", audience=["api"], scopes=["read", "write"])
    derived = c.exchange(pair.access_token, audience=["billing"], scopes=["read"])
    assert derived.issued_token_type == "urn:ietf:params:oauth:token-type:access_token"
    with LocalVerifier(shared.target, issuer=ISSUER, audience="billing") as v:
        claims = v.verify(derived.access_token)
        assert (claims.subject, claims.session_id, claims.scopes) == (
            sub,
            pair.session_id,
            ["read"],
        )
        assert reason_of(v.verify, pair.access_token) == "AUDIENCE_MISMATCH"
        c.revoke(session_id=pair.session_id)
        denied_within(v, derived.access_token, "TOKEN_REVOKED", 1.0)
    c.close()


def test_foreign_cursor_is_dropped_and_resynced(stack: Stack):
    a = stack.tessera(redis=stack.redis())
    b = stack.tessera(redis=stack.redis())
    with TesseraClient(a.target) as ca, TesseraClient(b.target) as cb:
        pa = ca.issue("alice", audience=["api"])
        foreign = ca.revoke(token=pa.access_token)
        assert foreign
        # B knows a revocation made before the verifier starts: the snapshot brings it
        before = cb.issue("bob", audience=["api"])
        cb.revoke(token=before.access_token)
        with LocalVerifier(b.target, issuer=ISSUER, audience="api", resume_cursor=foreign) as v:
            wait_until(lambda: v.in_sync, 10, "resync from a snapshot")
            assert v.resyncs == 1
            assert reason_of(v.verify, before.access_token) == "TOKEN_REVOKED"
            pb_ = cb.issue("bob", audience=["api"])
            assert v.verify(pb_.access_token).subject == "bob"
            cb.revoke(token=pb_.access_token)
            denied_within(v, pb_.access_token, "TOKEN_REVOKED", 1.0)
            assert v.cursor and v.cursor != foreign


def test_killed_server_fails_closed_then_recovers(stack: Stack):
    t = stack.tessera()
    c = TesseraClient(t.target)
    pair = c.issue("alice", audience=["api"])
    with LocalVerifier(t.target, issuer=ISSUER, audience="api", backoff_cap=1.0) as v:
        assert v.verify(pair.access_token).subject == "alice"
        t.kill()
        # Staleness bound: a broken stream (RST/EOF) makes the verifier
        # fail closed at once; we allow 2 s. (A silently dead peer is caught
        # by keepalive within ~15 s.)
        t0 = time.monotonic()
        wait_until(lambda: reason_of(v.verify, pair.access_token) == "STORE_UNAVAILABLE", 2.0,
                   "STORE_UNAVAILABLE after SIGKILL", step=0.005)
        print(f"fail closed {time.monotonic() - t0:.3f}s after SIGKILL")
        # a bad token still gets its own reason
        assert reason_of(v.verify, "a.b.c") == "TOKEN_MALFORMED"
        # back up on the same port: reconnect (backoff), resume, in sync again
        t.start()
        wait_until(lambda: v.in_sync, 10, "verifier back in sync")
        assert v.verify(pair.access_token).subject == "alice"
        c2 = TesseraClient(t.target)
        c2.revoke(token=pair.access_token)
        denied_within(v, pair.access_token, "TOKEN_REVOKED", 1.0)
        c2.close()
    c.close()


def test_key_rotation(stack: Stack):
    key_path = stack.key("signing.pem")
    t = stack.tessera(key=key_path)
    c = TesseraClient(t.target)
    old = c.issue("alice", audience=["api"])
    old_kids = {k["kid"] for k in json.loads(c.jwks())["keys"]}
    with LocalVerifier(t.target, issuer=ISSUER, audience="api", min_refetch=1.0) as v:
        assert v.verify(old.access_token).subject == "alice"
        # key B signs, key A dropped: rewrite the key file and SIGHUP
        keygen(stack.workdir / "b.pem")
        key_path.write_bytes((stack.workdir / "b.pem").read_bytes())
        t.sighup()
        wait_until(lambda: not ({k["kid"] for k in json.loads(c.jwks())["keys"]}
                               & old_kids), 10, "the server to publish key B only")
        new = c.issue("bob", audience=["api"])
        time.sleep(1.05)  # past the refetch cooldown (min_refetch) of the start-up fetch
        assert v.verify(new.access_token).subject == "bob"  # unknown kid -> refetch
        assert reason_of(v.verify, old.access_token) == "TOKEN_SIGNATURE_INVALID"
        assert reason_of(c.verify, old.access_token) == "TOKEN_SIGNATURE_INVALID"
        assert v.verify(new.access_token).subject == "bob"
    c.close()


def test_unknown_kid_refetch_is_rate_limited(stack: Stack):
    key_path = stack.key("signing.pem")
    t = stack.tessera(key=key_path)
    c = TesseraClient(t.target)
    kids = lambda: {k["kid"] for k in json.loads(c.jwks())["keys"]}  # noqa: E731
    old_kids = kids()
    with LocalVerifier(t.target, issuer=ISSUER, audience="api") as v:  # default 30 s cooldown
        keygen(stack.workdir / "b.pem")
        key_path.write_bytes((stack.workdir / "b.pem").read_bytes())
        t.sighup()
        wait_until(lambda: not (kids() & old_kids), 10, "the server to publish key B only")
        new = c.issue("bob", audience=["api"])
        # within the cooldown of the start-up fetch: no refetch, refused
        assert reason_of(v.verify, new.access_token) == "TOKEN_SIGNATURE_INVALID"
    c.close()


def test_sender_constrained_tokens(shared):
    c = TesseraClient(shared.target)
    jkt = sha256_b64(b"some DPoP public key")
    thumb = cert_thumbprint(b"client certificate DER")
    dpop = c.issue("alice", audience=["api"], dpop_jkt=jkt)
    bound = c.issue("alice", audience=["api"], cert_thumbprint=thumb)
    with LocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
        server = reason_of(c.verify, dpop.access_token, audience="api")
        assert server == "TOKEN_BINDING_MISMATCH"
        assert reason_of(v.verify, dpop.access_token) == server
        server = reason_of(c.verify, bound.access_token, audience="api")
        assert server == "TOKEN_BINDING_MISMATCH"
        assert reason_of(v.verify, bound.access_token) == server
        other = cert_thumbprint(b"another certificate")
        assert reason_of(v.verify, bound.access_token, cert_thumbprint=other) == server
        assert c.verify(bound.access_token, cert_thumbprint=thumb).claims.subject == "alice"
        assert v.verify(bound.access_token, cert_thumbprint=thumb).subject == "alice"
        fp = c.issue("carol", audience=["api"], device_fingerprint="device-1")
        assert reason_of(v.verify, fp.access_token) == reason_of(c.verify, fp.access_token)
        assert v.verify(fp.access_token, fingerprint="device-1").subject == "carol"
    c.close()


def test_async_verifier_and_client(shared):
    async def main() -> None:
        async with AsyncTesseraClient(shared.target) as c:
            pair = await c.issue("alice", audience=["api"], roles=["admin"])
            async with AsyncLocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
                assert v.in_sync
                claims = await v.verify(pair.access_token)
                assert claims.roles == ["admin"]
                assert v.verify_nowait(pair.access_token).subject == "alice"
                with pytest.raises(TokenError) as e:
                    await c.verify("x.y.z")
                assert e.value.reason == "TOKEN_MALFORMED"
                await c.revoke(session_id=pair.session_id)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 1.0:
                    try:
                        await v.verify(pair.access_token)
                    except TokenError as err:
                        assert err.reason == "TOKEN_REVOKED"
                        break
                    await asyncio.sleep(0.005)
                else:
                    raise AssertionError("not revoked within 1 s")

    asyncio.run(main())


def test_async_verifier_fails_closed_when_the_server_dies(stack: Stack):
    t = stack.tessera()
    c = TesseraClient(t.target)
    pair = c.issue("alice", audience=["api"])
    c.close()

    async def main() -> None:
        async with AsyncLocalVerifier(t.target, issuer=ISSUER, audience="api",
                                      backoff_cap=0.5) as v:
            assert (await v.verify(pair.access_token)).subject == "alice"
            t.kill()
            t0 = time.monotonic()
            while True:
                try:
                    await v.verify(pair.access_token)
                except TokenError as e:
                    assert e.reason == "STORE_UNAVAILABLE"
                    break
                assert time.monotonic() - t0 < 2.0, "still accepting 2 s after SIGKILL"
                await asyncio.sleep(0.005)
            t.start()
            assert await v.wait_in_sync(10)
            assert (await v.verify(pair.access_token)).subject == "alice"

    asyncio.run(main())


def test_periodic_jwks_refresh(stack: Stack):
    key_path = stack.key("signing.pem")
    t = stack.tessera(key=key_path)
    c = TesseraClient(t.target)
    old = c.issue("alice", audience=["api"])
    with LocalVerifier(t.target, issuer=ISSUER, audience="api", jwks_max_age=1.0) as v:
        v.verify(old.access_token)
        time.sleep(2.5)  # two refreshes of an unchanged set: the cache survives
        v.verify(old.access_token)
        stats = v.cache_stats()
        assert stats["key_changes"] == 0 and stats["hits"] >= 1
        keygen(stack.workdir / "b.pem")
        key_path.write_bytes((stack.workdir / "b.pem").read_bytes())
        t.sighup()
        # key A dropped: the next refresh (no unknown kid needed) refuses A's token
        wait_until(lambda: reason_of(v.verify, old.access_token) == "TOKEN_SIGNATURE_INVALID",
                   5, "the refreshed key set to refuse key A")
    c.close()


def test_a_failing_feed_handler_fails_closed_and_retries(shared):
    c = TesseraClient(shared.target)
    pair = c.issue("frank", audience=["api"])
    with LocalVerifier(shared.target, issuer=ISSUER, audience="api", backoff_cap=0.2) as v:
        assert v.verify(pair.access_token).subject == "frank"
        core = v._core
        original = core.on_event
        calls = {"n": 0}

        def broken(ev):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("boom")
            return original(ev)

        core.on_event = broken  # type: ignore[method-assign]
        c.revoke(token=c.issue("other", audience=["api"]).access_token)
        wait_until(lambda: calls["n"] >= 1, 5, "the broken handler to run")
        # the stream was dropped and resumed: back in sync, revocations still
        # seen. (A second call of the handler comes from the resumed stream:
        # in_sync alone could still be the state from before the failure.)
        wait_until(lambda: calls["n"] >= 2 and v.in_sync, 10, "resync after the handler failure")
        c.revoke(token=pair.access_token)
        denied_within(v, pair.access_token, "TOKEN_REVOKED", 1.0)
    c.close()


def test_client_watch_revocations(shared):
    with TesseraClient(shared.target) as c:
        pair = c.issue("gina", audience=["api"])
        cursor = c.revoke(session_id=pair.session_id)
        kinds = []
        for ev in c.watch_revocations(include_snapshot=True, mark_caught_up=True):
            kinds.append(ev.kind)
            if ev.kind == 0:  # caught-up marker
                break
        assert 2 in kinds  # our session revocation is in the snapshot
        with pytest.raises(TokenError) as e:
            next(iter(c.watch_revocations("not-a-cursor")))
        assert e.value.reason == "CURSOR_INVALID"
        assert cursor


def test_silent_server_is_caught_by_keepalive(stack: Stack):
    """SIGSTOP: no RST, no EOF -- the channel's keepalive (here 1 s + 1 s
    timeout; default 10 s + 5 s) ends the feed and verify fails closed.
    The ping timeout is ``grpc.http2.ping_timeout_ms`` in grpcio 1.85."""
    t = stack.tessera()
    c = TesseraClient(t.target)
    pair = c.issue("hank", audience=["api"])
    c.close()
    fast = (("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.http2.ping_timeout_ms", 1000))
    with LocalVerifier(t.target, issuer=ISSUER, audience="api", backoff_cap=0.5,
                       options=fast) as v:
        assert v.verify(pair.access_token).subject == "hank"
        os.kill(t.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_until(lambda: reason_of(v.verify, pair.access_token) == "STORE_UNAVAILABLE",
                       5, "STORE_UNAVAILABLE while the server is stopped")
            print(f"fail closed {time.monotonic() - t0:.2f}s after SIGSTOP")
        finally:
            os.kill(t.proc.pid, signal.SIGCONT)
        wait_until(lambda: v.in_sync, 15, "back in sync after SIGCONT")
        assert v.verify(pair.access_token).subject == "hank"


def test_verifier_of_one_tenant(stack: Stack):
    """A verifier of one tenant fetches that tenant's keys and issuer and
    refuses every other tenant's token, as the server does (issue #28)."""
    lines = []
    for name in ("acme", "globex"):
        key = stack.key(f"{name}.pem")
        lines.append(f'[[tenant]]\nname = "{name}"\n'
                     f'issuer = "https://auth.example.com/t/{name}"\nsigning_key = "{key}"\n')
    tenants = stack.workdir / "tenants.toml"
    tenants.write_text("\n".join(lines))
    t = stack.tessera(extra=["--tenants", str(tenants)])
    c = TesseraClient(t.target)
    acme = c.issue("alice", tenant="acme", audience=["api"]).access_token
    globex = c.issue("bob", tenant="globex", audience=["api"]).access_token
    initech = c.issue("carol", tenant="initech", audience=["api"]).access_token
    with LocalVerifier(t.target, issuer=ISSUER, audience="api", tenant="acme") as v:
        claims = v.verify(acme)
        assert (claims.tenant, claims.issuer) == ("acme", "https://auth.example.com/t/acme")
        for other in (globex, initech):
            assert reason_of(v.verify, other) == "TOKEN_SIGNATURE_INVALID"
    with LocalVerifier(t.target, issuer=ISSUER, audience="api", tenant="initech") as v:
        assert v.verify(initech).issuer == ISSUER
        assert reason_of(v.verify, acme) == "TOKEN_SIGNATURE_INVALID"
    with LocalVerifier(t.target, issuer=ISSUER, audience="api") as v:
        assert v.verify(initech).tenant == "initech"
        assert reason_of(v.verify, acme) == "TOKEN_SIGNATURE_INVALID"
    c.close()
