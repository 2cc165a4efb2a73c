"""The language-neutral conformance vectors (TESSERA_VECTORS, written by the
Rust harness). Tessera on Redis signs with the vectors' key, and a
LocalVerifier (audience "api") follows it. Two strict checks:

1. at the vectors' generation time (``generated_at``; the verifier's clock
   is set there, so some cases -- "expired within the leeway" is valid for
   only ~10 s after generation -- do not depend on how old the file is):
   every case gives exactly its ``reason`` and every valid token exactly
   its ``claims`` (twice: the second answer comes from the cache);
2. now, on the real clock: for every token the LocalVerifier gives exactly
   what the server's own ``Verify`` gives (and when the file is fresh, that
   is the vector's reason too).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import TESSERA_VECTORS, Stack
from tessera_client import LocalVerifier, TesseraClient, TokenError

FIELDS = ("subject", "tenant", "session_id", "token_id", "roles", "scopes", "expires_at")


@pytest.fixture(scope="module")
def vectors() -> dict:
    path = Path(TESSERA_VECTORS) / "vectors.json"
    if not path.is_file():
        raise AssertionError(f"no conformance vectors at {path} (set TESSERA_VECTORS)")
    return json.loads(path.read_text())


def _outcome(fn, *a, **kw):
    try:
        got = fn(*a, **kw)
    except TokenError as e:
        return e.reason
    return got


def _reason(fn, *a, **kw) -> str:
    got = _outcome(fn, *a, **kw)
    return got if isinstance(got, str) else "OK"


def test_conformance_vectors(stack: Stack, vectors: dict):
    key = Path(TESSERA_VECTORS) / "signing-key.pem"
    tenants = Path(TESSERA_VECTORS) / "tenants.toml"
    server = stack.tessera(key=key, issuer=vectors["issuer"],
                           extra=["--leeway", f"{vectors['leeway']}s", "--tenants", str(tenants)])
    client = TesseraClient(server.target)
    audience = vectors["audience"]
    cases, valid = vectors["cases"], vectors["valid"]
    assert len(cases) >= 50 and len(valid) >= 4
    generated_ns = (vectors["generated_at"] + 1) * 1_000_000_000
    failures = []
    with LocalVerifier(server.target, issuer=vectors["issuer"], audience=audience,
                       leeway=vectors["leeway"]) as v:
        assert v.in_sync
        # 1. at generation time: exactly the vectors
        v._core.time_ns = lambda: generated_ns
        for case in cases:
            got = _reason(v.verify, case["token"])
            if got != case["reason"]:
                failures.append(f"{case['name']}: vector {case['reason']}, local {got}")
        for case in valid:
            for _ in range(2):
                got = _outcome(v.verify, case["token"], audience=case.get("audience", audience))
                if isinstance(got, str):
                    failures.append(f"valid {case['name']}: local {got}")
                    break
                claims = {f: getattr(got, f) for f in FIELDS}
                if claims != case["claims"]:
                    failures.append(f"valid {case['name']}: {claims} != {case['claims']}")
        if not failures:
            assert v.cache_stats()["hits"] >= len(valid)

        # 2. now: exactly the server's Verify
        v._core.time_ns = time.time_ns
        fresh = time.time() - vectors["generated_at"] < 8
        for case in cases + valid:
            aud = case.get("audience", audience)
            for attempt in range(2):  # a validity boundary may pass between the two calls
                local = _reason(v.verify, case["token"], audience=aud)
                remote = _reason(client.verify, case["token"], audience=aud)
                if local == remote:
                    break
                time.sleep(1.1)
            if local != remote:
                failures.append(f"now, {case['name']}: local {local}, server {remote}")
            elif fresh and local != case.get("reason", "OK"):
                failures.append(f"fresh, {case['name']}: vector {case.get('reason', 'OK')}, "
                                f"both {local}")

    # 3. tenant keys: a verifier of one tenant, and the server, at generation time
    tenant = vectors["tenant"]
    assert len(tenant["cases"]) >= 6
    with LocalVerifier(server.target, issuer=vectors["issuer"], audience=audience,
                       leeway=vectors["leeway"], tenant=tenant["name"]) as v:
        v._core.time_ns = lambda: generated_ns
        fresh = time.time() - vectors["generated_at"] < 500  # the tokens live 600 s
        for case in tenant["cases"]:
            want = case["reason"] or "OK"
            local = _reason(v.verify, case["token"])
            if local != want:
                failures.append(f"tenant, {case['name']}: vector {want}, local {local}")
            remote = _reason(client.verify, case["token"], audience=audience)
            if fresh and remote != want:
                failures.append(f"tenant, {case['name']}: vector {want}, server {remote}")
    client.close()
    assert not failures, "\n".join(failures)
