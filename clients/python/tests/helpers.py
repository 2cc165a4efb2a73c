"""Keys and token minting for the offline unit tests."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Dict, Optional, Tuple

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "tessera-test"


def b64(data: Any) -> str:
    if not isinstance(data, (bytes, str)):
        data = json.dumps(data, separators=(",", ":"))
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    """A private key with its kid, JOSE algorithm and public JWK."""

    def __init__(self, alg: str = "EdDSA", kid: Optional[str] = None) -> None:
        self.alg = alg
        if alg == "EdDSA":
            self.private: Any = ed25519.Ed25519PrivateKey.generate()
            self.algorithm: Any = OKPAlgorithm()
        elif alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.algorithm = ECAlgorithm(ECAlgorithm.SHA256)
        elif alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.algorithm = RSAAlgorithm(RSAAlgorithm.SHA256)
        else:
            raise ValueError(alg)
        jwk = json.loads(self.algorithm.to_jwk(self.private.public_key()))
        self.kid = kid or f"kid-{alg}-{id(self) % 100000}"
        jwk.update(kid=self.kid, alg=alg, use="sig")
        self.jwk: Dict[str, Any] = jwk

    def sign_raw(self, header: str, payload: str) -> str:
        message = f"{b64(header)}.{b64(payload)}"
        sig = self.algorithm.sign(message.encode(), self.private)
        return f"{message}.{b64(sig)}"

    def header(self, **extra: Any) -> Dict[str, Any]:
        h = {"alg": self.alg, "typ": "at+jwt", "kid": self.kid}
        h.update(extra)
        return h

    def mint(self, payload: Dict[str, Any], header: Optional[Dict[str, Any]] = None) -> str:
        return self.sign_raw(json.dumps(header or self.header()), json.dumps(payload))


def jwks(*keys: Key) -> str:
    return json.dumps({"keys": [k.jwk for k in keys]})


def now() -> int:
    return int(time.time())


def payload(n: Optional[int] = None, **over: Any) -> Dict[str, Any]:
    n = now() if n is None else n
    p: Dict[str, Any] = {
        "iss": ISSUER, "sub": "mallory", "aud": ["api"], "exp": n + 600, "nbf": n - 10,
        "iat": n - 10, "jti": "hostile-jti", "sid": "hostile-sid", "tid": "acme",
        "scope": "admin",
    }
    p.update(over)
    return p


def hmac_sign(header: Dict[str, Any], body: str, secret: bytes) -> str:
    import hashlib
    import hmac

    message = f"{b64(header)}.{b64(body)}"
    return f"{message}.{b64(hmac.new(secret, message.encode(), hashlib.sha256).digest())}"


def hostile_cases(key: Key, jku_url: str = "http://127.0.0.1:1/jwks") -> list[Tuple[str, str, str]]:
    """A port of crates/tessera-test-support/src/hostile_cases.rs:
    (name, token, reason)."""
    n = now()
    kid, alg = key.kid, key.alg
    good_payload = json.dumps(payload(n))
    good = key.sign_raw(json.dumps(key.header()), good_payload)
    parts = good.split(".")
    attacker = Key("EdDSA", kid="attacker")
    cases: list[Tuple[str, str, str]] = []
    for none in ["none", "None", "NONE", "nOnE"]:
        h = b64({"alg": none, "typ": "at+jwt", "kid": kid})
        cases.append(("alg none, no signature", f"{h}.{parts[1]}.", "TOKEN_SIGNATURE_INVALID"))
        cases.append(("alg none, with signature", f"{h}.{parts[1]}.{parts[2]}",
                      "TOKEN_SIGNATURE_INVALID"))
    for secret in [jwks(key).encode(), b"-----BEGIN PUBLIC KEY-----"]:
        cases.append(("HS256 with the public key as secret",
                      hmac_sign({"alg": "HS256", "typ": "at+jwt", "kid": kid}, good_payload, secret),
                      "TOKEN_SIGNATURE_INVALID"))
    for bad_kid in ["unknown-kid", "../../../../dev/null", "' OR '1'='1' --", "", "kid\u0000null"]:
        cases.append(("unknown or injected kid",
                      key.sign_raw(json.dumps(key.header(kid=bad_kid)), good_payload),
                      "TOKEN_SIGNATURE_INVALID"))
    cases.append(("no kid", key.sign_raw(json.dumps({"alg": alg, "typ": "at+jwt"}), good_payload),
                  "TOKEN_SIGNATURE_INVALID"))
    for field, value in [("jku", jku_url), ("x5u", jku_url), ("jwk", attacker.jwk),
                         ("x5c", ["MIIBszCCAVmgAwIBAgIUQ2F0Y2htZWlmeW91Y2Fu"])]:
        h = attacker.header(**{field: value})
        cases.append(("key from the header (attacker kid)",
                      attacker.sign_raw(json.dumps(h), good_payload), "TOKEN_SIGNATURE_INVALID"))
        h = key.header(**{field: value})
        cases.append(("key from the header (server kid)",
                      attacker.sign_raw(json.dumps(h), good_payload), "TOKEN_SIGNATURE_INVALID"))
    cases.append(("unknown crit", key.sign_raw(json.dumps(key.header(crit=["exp"])), good_payload),
                  "TOKEN_MALFORMED"))
    cases.append(("b64: false", key.sign_raw(json.dumps(key.header(b64=False)), good_payload),
                  "TOKEN_MALFORMED"))
    cases.append(("typ JWT", key.sign_raw(json.dumps(key.header(typ="JWT")), good_payload),
                  "TOKEN_MALFORMED"))
    swapped = payload(n, sub="admin")
    cases.append(("payload swapped", f"{parts[0]}.{b64(swapped)}.{parts[2]}",
                  "TOKEN_SIGNATURE_INVALID"))
    cases.append(("signature stripped", f"{parts[0]}.{parts[1]}.", "TOKEN_SIGNATURE_INVALID"))
    cases.append(("truncated signature", good[:-10], "TOKEN_SIGNATURE_INVALID"))
    cases.append(("two parts", f"{parts[0]}.{parts[1]}", "TOKEN_MALFORMED"))
    cases.append(("four parts", f"{good}.{parts[2]}", "TOKEN_MALFORMED"))
    cases.append(("non-base64url characters",
                  f"{parts[0]}.{parts[1].replace('A', '+')}.{parts[2]}".replace("e", "/", 1),
                  "TOKEN_MALFORMED"))
    cases.append(("padded base64", f"{parts[0]}==.{parts[1]}.{parts[2]}", "TOKEN_MALFORMED"))
    cases.append(("header not JSON", f"{b64('{not json')}.{parts[1]}.{parts[2]}",
                  "TOKEN_MALFORMED"))
    dup = good_payload.replace("{", '{"sub":"admin",', 1)
    cases.append(("duplicate JSON keys", key.sign_raw(json.dumps(key.header()), dup),
                  "TOKEN_MALFORMED"))
    for field, raw, reason in [
        ("exp", '"9999999999"', "TOKEN_MALFORMED"),
        ("exp", f"{n + 600}.5", "TOKEN_MALFORMED"),
        ("exp", "-1", "TOKEN_EXPIRED"),
        ("exp", "18446744073709551615", "TOKEN_MALFORMED"),
        ("exp", "1e300", "TOKEN_MALFORMED"),
        ("nbf", '"0"', "TOKEN_MALFORMED"),
        ("nbf", "1.5", "TOKEN_MALFORMED"),
        ("nbf", str(n + 86_400), "TOKEN_NOT_YET_VALID"),
        ("nbf", "9007199254740993", "TOKEN_MALFORMED"),
        ("iat", str(n + 86_400), "TOKEN_NOT_YET_VALID"),
        ("aud", "5", "TOKEN_MALFORMED"),
        ("iss", "7", "TOKEN_MALFORMED"),
        ("iss", '"https://evil.example"', "ISSUER_MISMATCH"),
        ("sub", "null", "TOKEN_MALFORMED"),
    ]:
        p = payload(n)
        p[field] = "@@"
        body = json.dumps(p).replace('"@@"', raw)
        cases.append((f"{field}={raw}", key.sign_raw(json.dumps(key.header()), body), reason))
    p = payload(n)
    del p["exp"]
    cases.append(("exp missing", key.mint(p), "TOKEN_MALFORMED"))
    return cases
