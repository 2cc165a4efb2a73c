"""Offline unit tests of the strict token checks, the revocation cache and
the verified-token cache (no server)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from helpers import ISSUER, Key, b64, hostile_cases, jwks, now, payload
from tessera_client import TokenError, cert_thumbprint, fingerprint_hash
from tessera_client._state import RevocationCache, VerifiedCache, subject_key
from tessera_client._tokens import PublicKeys, b64url_decode, _Malformed
from tessera_client.verifier import _Core, _check_size


def core(*keys: Key, in_sync: bool = True, cache: bool = True, audience: str = "api") -> _Core:
    c = _Core(ISSUER, audience, 30, 30.0, "", 1000 if cache else 0, 1 << 20)
    c.set_keys(jwks(*keys))
    c.feed.in_sync = in_sync
    return c


def check(c: _Core, token: str, at: int | None = None, **kw):
    t = now() if at is None else at
    kw.setdefault("audience", None)
    kw.setdefault("fingerprint", "")
    kw.setdefault("cert_thumbprint", "")
    kw.setdefault("required_scopes", ())
    claims = c.token_claims(token, t)
    return c.finish(claims, t * 1000, kw["audience"], kw["fingerprint"], kw["cert_thumbprint"],
                    kw["required_scopes"])


def reason(c: _Core, token: str, **kw) -> str:
    with pytest.raises(TokenError) as e:
        check(c, token, **kw)
    return e.value.reason


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256"])
def test_round_trip_every_algorithm(alg):
    k = Key(alg)
    c = core(k)
    claims = check(c, k.mint(payload(roles=["admin"], scope="read write", custom={"a": 1.5})))
    assert (claims.subject, claims.tenant, claims.session_id, claims.token_id) == (
        "mallory", "acme", "hostile-sid", "hostile-jti")
    assert claims.roles == ["admin"] and claims.scopes == ["read", "write"]
    assert claims.custom == {"custom": {"a": 1.5}}


_KEY = Key("EdDSA")
_ES_KEY = Key("ES256")


@pytest.mark.parametrize("key", [_KEY, _ES_KEY], ids=["EdDSA", "ES256"])
def test_hostile_cases_give_the_servers_reasons(key):
    c = core(key, cache=False)
    cases = hostile_cases(key)
    assert len(cases) >= 50
    for name, token, want in cases:
        assert reason(c, token) == want, name
    # and again through the cache (failures are never cached)
    c = core(key)
    for name, token, want in cases:
        assert reason(c, token) == want, name
    assert c.cache is not None and c.cache.stats()["entries"] == 0


def test_algorithm_comes_from_the_key_not_the_token():
    ed, es = Key("EdDSA", kid="a"), Key("ES256", kid="b")
    c = core(ed, es)
    # an ES256 signature under the EdDSA key's kid, with alg ES256
    token = es.sign_raw(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "a"}),
                        json.dumps(payload()))
    assert reason(c, token) == "TOKEN_SIGNATURE_INVALID"


def test_leeway_boundaries():
    k = Key()
    c = core(k)
    n = 1_800_000_000
    t = k.mint(payload(n, exp=n + 900, nbf=n, iat=n))
    assert check(c, t, at=n + 900 + 30).subject == "mallory"
    assert reason(c, t, at=n + 900 + 31) == "TOKEN_EXPIRED"
    assert check(c, t, at=n - 30).subject == "mallory"
    assert reason(c, t, at=n - 31) == "TOKEN_NOT_YET_VALID"


def test_expired_entry_leaves_the_cache():
    k = Key()
    c = core(k)
    n = 1_800_000_000
    t = k.mint(payload(n, exp=n + 10, nbf=n, iat=n))
    check(c, t, at=n)
    assert c.cache.stats()["entries"] == 1
    assert reason(c, t, at=n + 41) == "TOKEN_EXPIRED"
    assert c.cache.stats()["entries"] == 0


def test_typ_variants_and_header_types():
    k = Key()
    c = core(k)
    p = payload()
    for typ in ["AT+JWT", "application/at+jwt"]:
        assert check(c, k.mint(p, k.header(typ=typ))).subject == "mallory"
    for typ in [None, 5, "jwt"]:
        h = k.header(typ=typ)
        assert reason(c, k.mint(p, h)) == "TOKEN_MALFORMED"
    # null crit/b64 count as absent (as serde's Option does)
    assert check(c, k.mint(p, k.header(crit=None, b64=None))).subject == "mallory"
    assert reason(c, k.mint(p, k.header(b64=True))) == "TOKEN_MALFORMED"
    # jsonwebtoken's Header refuses JOSE fields of the wrong type
    assert reason(c, k.mint(p, k.header(jku=5))) == "TOKEN_MALFORMED"
    assert reason(c, k.mint(p, k.header(x5c="x"))) == "TOKEN_MALFORMED"
    # ... but only once kid and alg are known good
    assert reason(c, k.mint(p, k.header(jku=5, kid="nope"))) == "TOKEN_SIGNATURE_INVALID"
    # unknown header fields are fine
    assert check(c, k.mint(p, k.header(foo={"bar": 1}))).subject == "mallory"
    # duplicate known header field
    hdr = json.dumps(k.header()).replace("{", '{"kid":"x",', 1)
    assert reason(c, k.sign_raw(hdr, json.dumps(p))) == "TOKEN_MALFORMED"


def test_claim_types():
    k = Key()
    c = core(k)
    ok = [("aud", "api"), ("aud", ["api", "other"]), ("roles", []), ("cnf", None)]
    for field, value in ok:
        assert check(c, k.mint(payload(**{field: value}))).subject == "mallory", field
    bad = [("tid", None), ("roles", None), ("roles", [1]), ("scope", None), ("aud", None),
           ("aud", ["api", 5]), ("jti", 5), ("sid", None), ("cnf", "x"), ("cnf", {"jkt": 5}),
           ("exp", True), ("iat", "1"), ("sub", ""), ("jti", ""), ("sid", "")]
    for field, value in bad:
        assert reason(c, k.mint(payload(**{field: value}))) == "TOKEN_MALFORMED", (field, value)
    for missing in ["iss", "sub", "exp", "nbf", "iat", "jti", "sid"]:
        p = payload()
        del p[missing]
        assert reason(c, k.mint(p)) == "TOKEN_MALFORMED", missing
    for opt in ["aud", "tid", "roles", "scope"]:
        p = payload()
        p.pop(opt, None)
        claims = check(c, k.mint(p), audience="")
        assert claims.subject == "mallory"
    # no audience claim while one is expected
    p = payload()
    del p["aud"]
    assert reason(c, k.mint(p)) == "AUDIENCE_MISMATCH"


def test_act_chains_are_read_not_custom():
    k = Key()
    c = core(k)
    claims = check(c, k.mint(payload(act={"sub": "b", "act": {"sub": "a"}})))
    assert claims.actors == ["b", "a"] and "act" not in claims.custom
    assert check(c, k.mint(payload(act=["b", ["a", None]]))).actors == ["b", "a"]
    assert check(c, k.mint(payload())).actors == []
    for bad in [5, "b", [], [5], ["b", None, None], {}, {"sub": 5}, {"sub": "b", "act": 5},
                {"sub": "b", "act": {}}]:
        assert reason(c, k.mint(payload(act=bad))) == "TOKEN_MALFORMED", bad


def test_json_strictness():
    k = Key()
    c = core(k)
    body = json.dumps(payload())
    h = json.dumps(k.header())
    for evil in [
        body.replace('"exp": ', '"exp": NaN, "x": ', 1),
        body.replace('"sub": "mallory"', '"sub": "\\ud800"'),
        body[:-1] + ', "exp": 1}',  # duplicate known claim
        "[1, 2]",
        body + " x",
    ]:
        assert reason(c, k.sign_raw(h, evil)) == "TOKEN_MALFORMED", evil
    # invalid UTF-8 in the payload
    good = k.sign_raw(h, body)
    bad_bytes = b"\xff" + body.encode()
    message = f"{b64(h)}.{b64(bad_bytes)}"
    token = f"{message}.{b64(k.algorithm.sign(message.encode(), k.private))}"
    assert reason(c, token) == "TOKEN_MALFORMED"
    # duplicated custom claims: last wins, as serde_json's map
    dup_custom = body[:-1] + ', "x": 1, "x": 2}'
    assert check(c, k.sign_raw(h, dup_custom)).custom == {"x": 2}
    assert check(c, good).subject == "mallory"


def test_b64url_is_strict():
    assert b64url_decode("YWJj") == b"abc"
    assert b64url_decode("YQ") == b"a"
    for bad in ["YQ==", "YR", "Y", "YW+j", "YW/j", "YW j"]:
        with pytest.raises(_Malformed):
            b64url_decode(bad)


def test_audience_binding_scopes():
    k = Key()
    c = core(k)
    t = k.mint(payload())
    assert reason(c, t, audience="other") == "AUDIENCE_MISMATCH"
    assert check(c, t, audience="").subject == "mallory"
    assert check(c, t, required_scopes=["admin"]).subject == "mallory"
    assert reason(c, t, required_scopes=["admin", "write"]) == "SCOPE_MISSING"
    dfp = k.mint(payload(cnf={"dfp#S256": fingerprint_hash("device-1")}))
    assert check(c, dfp, fingerprint="device-1").subject == "mallory"
    assert reason(c, dfp) == "FINGERPRINT_MISMATCH"
    assert reason(c, dfp, fingerprint="device-2") == "FINGERPRINT_MISMATCH"
    thumb = cert_thumbprint(b"certificate DER")
    bound = k.mint(payload(cnf={"x5t#S256": thumb}))
    assert check(c, bound, cert_thumbprint=thumb).subject == "mallory"
    for other in ["", "x", cert_thumbprint(b"other")]:
        assert reason(c, bound, cert_thumbprint=other) == "TOKEN_BINDING_MISMATCH"
    # an unbound token ignores a thumbprint
    assert check(c, t, cert_thumbprint=thumb).subject == "mallory"
    dpop = k.mint(payload(cnf={"jkt": "A" * 43}))
    assert reason(c, dpop) == "TOKEN_BINDING_MISMATCH"
    # binding is checked before revocation and before the sync state
    c.feed.in_sync = False
    assert reason(c, dpop) == "TOKEN_BINDING_MISMATCH"
    assert reason(c, t) == "STORE_UNAVAILABLE"


def test_size_limits():
    for bad in ["", "a" * 8193, "é" * 4097]:
        with pytest.raises(TokenError) as e:
            _check_size(bad)
        assert e.value.reason == "FIELD_INVALID"
    _check_size("a" * 8192)


def ts(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def ev(kind: int, **kw):
    base = dict(cursor="c", token_id="", session_id="", tenant="", subject="", subject_key="",
                revoked_at=ts(0), issued_before=ts(0), expires_at=ts(0))
    base.update(kw)
    return SimpleNamespace(kind=kind, **base)


def test_revocation_cache_horizons():
    k = Key()
    c = core(k)
    n = now()
    t_ms = n * 1000
    far = ts(t_ms + 600_000)
    a = k.mint(payload(n, jti="j1", sid="s1", sub="alice", tid="acme", iat=n - 5, nbf=n - 5))
    assert check(c, a, at=n).subject == "alice"
    c.on_event(ev(1, token_id="j1", expires_at=far))
    assert reason(c, a, at=n) == "TOKEN_REVOKED"
    c2 = core(k)
    c2.on_event(ev(2, session_id="s1", expires_at=far))
    assert reason(c2, a, at=n) == "TOKEN_REVOKED"
    # subject: tokens issued before the cut-off (and in its second) die
    c3 = core(k)
    c3.on_event(ev(3, tenant="acme", subject="alice", issued_before=ts((n - 5) * 1000 + 1),
                   expires_at=far))
    assert reason(c3, a, at=n) == "TOKEN_REVOKED"
    later = k.mint(payload(n, jti="j2", sid="s2", sub="alice", tid="acme", iat=n - 4))
    assert check(c3, later, at=n).token_id == "j2"
    other_tenant = k.mint(payload(n, jti="j3", sid="s3", sub="alice", tid="other", iat=n - 5))
    assert check(c3, other_tenant, at=n).token_id == "j3"
    # a subject event with the server's key and no raw subject
    c3.on_event(ev(3, tenant="acme", subject_key=subject_key("acme", "dave"),
                   issued_before=ts((n - 5) * 1000 + 1), expires_at=far))
    dave = k.mint(payload(n, jti="j4", sid="s4", sub="dave", tid="acme", iat=n - 5))
    assert reason(c3, dave, at=n) == "TOKEN_REVOKED"
    # the server's key, byte for byte (crates/tessera-core revocation.rs has the same case)
    assert subject_key("acme", "dave") == "d_0dg3l8kfzk32ilysEoUq"
    # an entry past its expiry no longer counts, and expire() drops it
    c4 = core(k)
    c4.on_event(ev(1, token_id="j1", expires_at=ts(t_ms - 1)))
    assert check(c4, a, at=n).subject == "alice"
    c4.feed.expire(t_ms)
    assert len(c4.feed) == 0
    # the marker puts the cache in sync; it carries no revocation
    c5 = core(k, in_sync=False)
    assert reason(c5, a, at=n) == "STORE_UNAVAILABLE"
    assert c5.on_event(ev(0)) is True
    assert check(c5, a, at=n).subject == "alice"


def test_subject_cutoffs_only_grow():
    rc = RevocationCache()
    rc.apply(ev(3, tenant="t", subject="s", issued_before=ts(5000), expires_at=ts(9000)))
    rc.apply(ev(3, tenant="t", subject="s", issued_before=ts(3000), expires_at=ts(7000)))
    assert rc.subjects[subject_key("t", "s")] == [5000, 9000]


def test_verified_cache_is_bounded_and_follows_the_key_set():
    k = Key()
    c = core(k)
    tokens = [k.mint(payload(jti=f"j{i}")) for i in range(1100)]
    for t in tokens:
        check(c, t)
    s = c.cache.stats()
    assert s["entries"] == 1000 and s["evictions"] == 100
    check(c, tokens[-1])
    assert c.cache.stats()["hits"] == 1
    # a new key set: the cache is cleared, the old kid no longer verifies
    k2 = Key()
    c.set_keys(jwks(k2))
    assert reason(c, tokens[-1]) == "TOKEN_SIGNATURE_INVALID"
    assert c.cache.stats()["entries"] == 0
    # byte bound
    vc = VerifiedCache(1000, 10_000)
    claims = object()
    for i in range(100):
        vc.insert("x" * 100 + str(i), claims, "k", 0)  # type: ignore[arg-type]
    assert vc.stats()["bytes"] <= 10_000


def test_cache_hit_still_runs_every_check():
    k = Key()
    c = core(k)
    t = k.mint(payload(jti="j9"))
    check(c, t)
    check(c, t)
    assert c.cache.stats()["hits"] == 1
    assert reason(c, t, audience="other") == "AUDIENCE_MISMATCH"
    assert reason(c, t, required_scopes=["x"]) == "SCOPE_MISSING"
    c.on_event(ev(1, token_id="j9", expires_at=ts(now() * 1000 + 60_000)))
    assert reason(c, t) == "TOKEN_REVOKED"


def test_jwks_parsing():
    ed, es, rs = Key("EdDSA"), Key("ES256"), Key("RS256")
    extra = [{"kid": "nokty", "alg": "EdDSA"}, {"alg": "EdDSA", "kty": "OKP"},
             {"kid": "hs", "alg": "HS256", "kty": "oct", "k": "c2VjcmV0"},
             {"kid": "mismatch", "alg": "ES256", "kty": "OKP", "crv": "Ed25519", "x": "AA"}]
    keys = PublicKeys.from_jwks_json(json.dumps({"keys": [ed.jwk, es.jwk, rs.jwk] + extra}))
    assert sorted(keys.keys) == sorted([ed.kid, es.kid, rs.kid])
    for bad in ["nope", "{}", '{"keys": 5}']:
        with pytest.raises(ValueError):
            PublicKeys.from_jwks_json(bad)


def test_nesting_limit_of_serde_json():
    k = Key()
    c = core(k)
    ok = k.mint(payload(x=json.loads("[" * 126 + "]" * 126)))
    assert check(c, ok).subject == "mallory"
    deep = k.mint(payload(x=json.loads("[" * 127 + "]" * 127)))
    assert reason(c, deep) == "TOKEN_MALFORMED"
    # in the header: refused, but only after kid and alg
    h = k.header(x=json.loads("[" * 127 + "]" * 127))
    assert reason(c, k.mint(payload(), h)) == "TOKEN_MALFORMED"
    h = k.header(x=json.loads("[" * 127 + "]" * 127), kid="unknown")
    assert reason(c, k.mint(payload(), h)) == "TOKEN_SIGNATURE_INVALID"
    # brackets inside strings do not count
    assert check(c, k.mint(payload(x="[" * 300))).subject == "mallory"


def test_backoff_is_full_jitter_and_capped():
    from tessera_client.verifier import _backoff

    for attempt in range(40):
        for _ in range(20):
            d = _backoff(attempt, 0.1, 3.0)
            assert 0 <= d <= min(3.0, 0.1 * 2 ** attempt)
    assert max(_backoff(30, 0.1, 3.0) for _ in range(200)) > 1.5  # spread up to the cap


def test_cache_under_concurrent_threads():
    import threading

    k = Key()
    c = _Core(ISSUER, "api", 30, 30.0, "", 50, 1 << 20)
    c.set_keys(jwks(k))
    c.feed.in_sync = True
    tokens = [k.mint(payload(jti=f"j{i}")) for i in range(120)]
    errors = []

    def work(seed: int) -> None:
        try:
            for i in range(1500):
                t = tokens[(i * 7 + seed) % len(tokens)]
                assert check(c, t).token_id.startswith("j")
                if i % 50 == 0:
                    c.cache._next_sweep = 0  # force sweeps while others read
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert c.cache.stats()["entries"] <= 50
