"""Differential test: tokens crafted here and signed with the server's own
key (headers and payloads of odd shapes, types, duplicates, nesting,
escapes), each checked by the LocalVerifier and by the server's Verify:
the reasons must be identical."""

from __future__ import annotations

import json
import time

import pytest

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from conftest import Stack
from helpers import b64
from tessera_client import LocalVerifier, TesseraClient, TokenError, fingerprint_hash


def _reason(fn, *a, **kw) -> str:
    try:
        fn(*a, **kw)
    except TokenError as e:
        return e.reason
    return "OK"


def _show(tok: str) -> str:
    import base64

    def dec(part: str) -> str:
        try:
            return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001
            return part[:40]

    parts = tok.split(".")
    return " . ".join(dec(p)[:300] for p in parts[:2]) + f" [{len(parts)} parts]"


@pytest.mark.parametrize("key_alg", ["eddsa", "es256", "rs256"])
def test_local_and_server_agree_on_crafted_tokens(stack: Stack, key_alg: str):
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    key_path = stack.key("signing.pem", alg=key_alg)
    t = stack.tessera(key=key_path)
    client = TesseraClient(t.target)
    jwk = json.loads(client.jwks())["keys"][0]
    kid, alg = jwk["kid"], jwk["alg"]
    private = load_pem_private_key(key_path.read_bytes(), None)
    signer = {"EdDSA": OKPAlgorithm(), "ES256": ECAlgorithm(ECAlgorithm.SHA256),
              "RS256": RSAAlgorithm(RSAAlgorithm.SHA256)}[alg]

    def sign(header: "str | bytes", body: "str | bytes") -> str:
        msg = f"{b64(header)}.{b64(body)}"
        return f"{msg}.{b64(signer.sign(msg.encode(), private))}"

    n = int(time.time())
    base = {"iss": "tessera-test", "sub": "s", "aud": ["api"], "exp": n + 600, "nbf": n - 5,
            "iat": n - 5, "jti": "j", "sid": "sid", "tid": "t", "scope": "a b"}
    hdr = {"alg": alg, "typ": "at+jwt", "kid": kid}
    H = json.dumps(hdr)
    B = json.dumps(base)

    def with_claim(name: str, raw: str) -> str:
        p = dict(base)
        p[name] = "@@"
        return json.dumps(p).replace('"@@"', raw)

    def with_header(name: str, raw: str) -> str:
        h = dict(hdr)
        h[name] = "@@"
        return json.dumps(h).replace('"@@"', raw)

    bodies = [B, "{}", "[]", "null", "1", '"x"', B + " ", " " + B, B[:-1] + ',"x":1,"x":2}']
    for name in ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "tid", "roles",
                 "scope", "cnf", "act"]:
        for raw in ["null", "1", "1.0", "-1", "1e3", '"1"', "true", "[]", '["a"]', "{}",
                    '[1]', "9007199254740992", "9007199254740993", "-9007199254740992",
                    str(n + 600), '""']:
            bodies.append(with_claim(name, raw))
        bodies.append(B[:-1] + f', "{name}": {json.dumps(base.get(name, "x"))}}}')  # duplicate
        p = dict(base)
        p.pop(name, None)
        bodies.append(json.dumps(p))
    for cnf in ['{"jkt": "x"}', '{"x5t#S256": "x"}', '{"jkt": null}', '{"dfp#S256": 5}', '{"x5t#S256": null, "other": 1}',
                '{"jkt": "x", "jkt": "y"}', f'{{"dfp#S256": "{fingerprint_hash("d")}"}}']:
        bodies.append(with_claim("cnf", cnf))
    # The act chain of an exchanged token, as the core's Actor.
    for act in ['{"sub": "b"}', '{"sub": "b", "x": [1]}', '{"sub": 5}', '{"sub": "b", "act": {"sub": "a"}}',
                '{"sub": "b", "act": 5}', '{"sub": "b", "act": {}}', '{"sub": "b", "act": null}',
                '{"sub": "a", "sub": "b"}', '{"sub": "a", "x": 1, "x": 2}', '["b", ["a"]]', '["b", null, null]',
                '[5]', '{"sub": "b", "act": {"sub": "a", "act": {"act": null}}}']:
        bodies.append(with_claim("act", act))
    bodies += [
        with_claim("cnf", '[null, null, null]'), with_claim("cnf", '[null, null, null, null]'),
        with_claim("cnf", '["a"]'), with_claim("cnf", '[1]'),
        with_claim("x", "1" * 25), with_claim("x", "1" * 400), with_claim("x", "-" + "9" * 30),
        with_claim("x", "1e308"), with_claim("x", "1e309"), with_claim("x", "-1e309"),
        with_claim("exp", "-0"), with_claim("exp", "18446744073709551616"),
        with_claim("x", "[" * 126 + "]" * 126), with_claim("x", "[" * 127 + "]" * 127),
        with_claim("x", '"\\ud800"'), with_claim("x", '"\\ud83d\\ude00"'),
        with_claim("sub", '"\\u0000"'), with_claim("x", "NaN"), with_claim("x", "1E400"),
        with_claim("x", "-0"), with_claim("x", "0.0"), with_claim("exp", "-0"),
        with_claim("iss", '"tessera-test\\u0000"'), with_claim("aud", '"api"'),
    ]
    other_alg = "ES256" if alg == "EdDSA" else "EdDSA"
    headers = [H, "{}", "[]", "null", json.dumps({"alg": alg, "kid": kid}),
               with_header("alg", f'"{other_alg}"'), with_header("alg", '"none"'),
               with_header("alg", '"HS256"'), with_header("alg", f'"{alg.lower()}"')]
    for name in ["alg", "typ", "kid", "crit", "b64", "jku", "x5c", "jwk", "cty", "enc", "zip",
                 "x5t#S256", "url", "nonce", "foo"]:
        for raw in ["null", "1", '"x"', "[]", '["x"]', "{}", "false", "true"]:
            headers.append(with_header(name, raw))
        headers.append(H[:-1] + f', "{name}": {json.dumps(hdr.get(name, "x"))}}}')
    headers += [with_header("typ", '"AT+JWT"'), with_header("typ", '"application/at+jwt"'),
                with_header("typ", '"at+jwt "'), with_header("foo", "[" * 127 + "]" * 127),
                with_header("foo", "[" * 126 + "]" * 126), H + " ", "\ufeff" + H,
                with_header("foo", "1e999"), with_header("kid", "1e999"),
                with_header("crit", "[" * 126 + "]" * 126), with_header("foo", "-0"),
                with_header("jwk", '{"kty": 5}'), with_header("jwk", '{"use": 5}'),
                with_header("jwk", '{"use": "sig", "key_ops": ["verify"], "alg": "XYZ"}'),
                with_header("jwk", '{"key_ops": "sign"}'), with_header("jwk", '{"alg": 5}'),
                with_header("jwk", '{"kid": null, "x5c": null}'), with_header("jwk", '{"x5c": [1]}'),
                with_header("jwk", '{"kid": "a", "kid": "b"}'), with_header("jwk", '{"n": 1, "n": 2}'),
                with_header("jwk", '{"kty": "EC", "crv": "P-999", "x": 1}'),
                with_header("jwk", '{"x5t#S256": 1}'),
                json.dumps([alg, kid, "at+jwt"]), json.dumps([alg, "nokid", "at+jwt"]),
                json.dumps([alg, kid, "at+jwt", None, None]),
                json.dumps([alg, kid, "at+jwt", None, None, None]), json.dumps([alg]),
                json.dumps([alg, kid, "at+jwt", ["x"]]),
                json.dumps({"alg": alg, "typ": "at+jwt", "kid": kid, "foo": 1, "foo": 2})]

    Hb = H.encode()
    raw_headers = [
        Hb[:-1] + b', "foo": "\xff"}', Hb[:-1] + b', "foo": ["\xed\xa0\x80"]}',
        Hb[:-1] + b', "\xff": 1}', Hb[:-1] + b', "foo": {"\xff": 1}}',
        json.dumps({"alg": alg, "typ": "at+jwt", "kid": "nokid", "foo": "@"}).encode()
        .replace(b"@", b"\xff"),
        json.dumps({"alg": alg, "typ": "at+jwt", "kid": "nokid", "foo": "@"}).encode()
        .replace(b"@", b"\\ud800"),
        json.dumps({"alg": alg, "typ": "at+jwt", "kid": "nokid", "foo": {"@": 1}}).encode()
        .replace(b"@", b"\\ud800"),
        json.dumps({"alg": alg, "typ": "at+jwt", "kid": "nokid", "@": 1}).encode()
        .replace(b"@", b"\\ud800"),
        json.dumps({"alg": alg, "typ": "at+jwt", "kid": "@"}).encode()
        .replace(b"@", b"\\ud800"),
        json.dumps({"alg": alg, "typ": "at+jwt\xff", "kid": kid}).encode(),
        Hb.replace(b"at+jwt", b"at+jwt\xff"),
        json.dumps({"alg": alg, "typ": "at+jwt", "kid": "nokid", "foo": "@"}).encode()
        .replace(b"@", b"\\ud83d\\ude00"),
    ]
    Bb = B.encode()
    raw_bodies = [
        Bb[:-1] + b', "x": "\xff"}', Bb[:-1] + b', "x": {"\xc3\x28": 1}}',
        Bb.replace(b'"sub": "s"', b'"sub": "s\xff"'), b"\xef\xbb\xbf" + Bb,
        Bb[:-1] + b', "s\\u0075b": "t"}', Bb[:-1] + b', "x": "\\udc00\\ud800"}',
    ]
    tokens = [sign(H, b) for b in bodies] + [sign(h, B) for h in headers]
    tokens += [sign(h, B) for h in raw_headers] + [sign(H, b) for b in raw_bodies]
    good = sign(H, B)
    h64, p64, s64 = good.split(".")
    tokens += [f"{h64}.{p64}.{s64}=", f"{h64}.{p64}.{s64[:-1]}", f"{h64}.{p64}.{s64}A",
               f"{h64}.{p64}.", f"{h64}..{s64}", f".{p64}.{s64}", "..", "a", "a.b",
               f"{h64}.{p64}.{s64}.", f" {good}", good.replace(".", "..", 1),
               f"{h64}.{p64}.{s64[:-2]}A" + s64[-1]]
    # Verify with the response kept as bytes: a custom claim nested deeper
    # than protobuf-python's decoding limit (100) must not count as a refusal.
    from tessera_client.errors import from_rpc_error
    from tessera_client.pb import tessera_pb2 as pb

    import grpc

    raw_call = client.channel.unary_unary(
        "/tessera.v1.TokenAuthority/Verify",
        request_serializer=pb.VerifyRequest.SerializeToString,
        response_deserializer=lambda b: b,
    )

    def raw_verify(tok: str) -> str:
        try:
            raw_call(pb.VerifyRequest(access_token=tok, audience="api", device_fingerprint="d"),
                     timeout=10)
        except grpc.RpcError as e:
            return from_rpc_error(e).reason
        return "OK"

    disagree = []
    seen: dict = {}
    with LocalVerifier(t.target, issuer="tessera-test", audience="api") as v:
        # a crafted token revoked through the server: both must say TOKEN_REVOKED
        revoked = sign(H, with_claim("jti", '"revoked-jti"'))
        client.revoke(token=revoked)
        deadline = time.monotonic() + 2
        while _reason(v.verify, revoked, fingerprint="d") != "TOKEN_REVOKED":
            assert time.monotonic() < deadline, "revocation of a crafted token not seen"
            time.sleep(0.01)
        tokens.append(revoked)
        for tok in tokens:
            for _ in range(2):  # a clock second may tick between the two answers
                local = _reason(v.verify, tok, fingerprint="d")
                remote = raw_verify(tok)
                if local == remote:
                    break
            if local != remote:
                disagree.append((local, remote, _show(tok)))
            seen[remote] = seen.get(remote, 0) + 1
    client.close()
    print(f"{len(tokens)} tokens; server reasons: {seen}")
    assert len(tokens) > 300
    # the crafted set reaches every stage of the checks
    for r in ["OK", "TOKEN_MALFORMED", "TOKEN_SIGNATURE_INVALID", "ISSUER_MISMATCH",
              "TOKEN_EXPIRED", "TOKEN_NOT_YET_VALID", "AUDIENCE_MISMATCH",
              "FINGERPRINT_MISMATCH", "TOKEN_BINDING_MISMATCH", "TOKEN_REVOKED"]:
        assert seen.get(r), r
    assert not disagree, "\n".join(map(str, disagree[:20])) + f"\n({len(disagree)} in all)"


def test_signature_shapes_per_algorithm(stack: Stack):
    """ES256 with a DER (not raw r||s) or high-s signature, RS256 with a
    short signature: local and server agree."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key_path = stack.key("es.pem", alg="es256")
    t = stack.tessera(key=key_path)
    client = TesseraClient(t.target)
    kid = json.loads(client.jwks())["keys"][0]["kid"]
    private = load_pem_private_key(key_path.read_bytes(), None)
    n = int(time.time())
    h = b64(json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": kid}))
    p = b64(json.dumps({"iss": "tessera-test", "sub": "s", "aud": "api", "exp": n + 600,
                        "nbf": n, "iat": n, "jti": "j", "sid": "s"}))
    msg = f"{h}.{p}".encode()
    der = private.sign(msg, ec.ECDSA(hashes.SHA256()))
    r, s_ = decode_dss_signature(der)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    raw = r.to_bytes(32, "big") + s_.to_bytes(32, "big")
    high_s = r.to_bytes(32, "big") + (order - s_).to_bytes(32, "big")
    tokens = [f"{h}.{p}.{b64(sig)}" for sig in (raw, high_s, der, raw[:63], raw + b"\0")]
    with LocalVerifier(t.target, issuer="tessera-test", audience="api") as v:
        got = [(_reason(v.verify, tok), _reason(client.verify, tok, audience="api"))
               for tok in tokens]
    client.close()
    assert got[0] == ("OK", "OK")
    assert all(local == remote for local, remote in got), got
