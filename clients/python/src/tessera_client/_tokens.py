"""Strict access-token checks, matching the Rust core (``tessera-core``
``tokens.rs``/``checks.rs``) case by case and reason by reason.

JOSE libraries accept things Tessera refuses (duplicate JSON keys, ``crit``,
``b64: false``, float ``exp``, claims of the wrong JSON type...), so the
header and payload are parsed here, strictly, and the JOSE library (PyJWT,
on ``cryptography``) only checks the signature, with the algorithm of the
key named by ``kid`` -- never the token's choice, never ``none``.

The order of the checks is the server's, because the first failing check
decides the reason:

1. size and shape (three parts), header base64url and JSON, no ``crit`` or
   ``b64``, ``typ`` ``at+jwt``: ``TOKEN_MALFORMED``;
2. ``kid`` names a known key and ``alg`` is that key's algorithm:
   ``TOKEN_SIGNATURE_INVALID``;
3. the rest of the header has the types a JOSE header has, and the
   signature is base64url: ``TOKEN_MALFORMED``;
4. the signature: ``TOKEN_SIGNATURE_INVALID``;
5. the payload's base64url, JSON and claim types: ``TOKEN_MALFORMED``;
6. ``iss``: ``ISSUER_MISMATCH``; empty ``sub``/``jti``/``sid``:
   ``TOKEN_MALFORMED``; the validity window: ``TOKEN_EXPIRED`` /
   ``TOKEN_NOT_YET_VALID``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import (
    AUDIENCE_MISMATCH,
    FINGERPRINT_MISMATCH,
    ISSUER_MISMATCH,
    SCOPE_MISSING,
    TOKEN_BINDING_MISMATCH,
    TOKEN_EXPIRED,
    TOKEN_MALFORMED,
    TOKEN_NOT_YET_VALID,
    TOKEN_SIGNATURE_INVALID,
    TokenError,
)

#: Longest token accepted anywhere (the server's ``MAX_TOKEN_BYTES``).
MAX_TOKEN_BYTES = 8 * 1024
#: The JOSE ``typ`` of access tokens (RFC 9068).
ACCESS_TOKEN_TYP = "at+jwt"
_NUMERIC_DATE_LIMIT = 9_007_199_254_740_992  # 2**53

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class _Malformed(Exception):
    """Internal: a part of the token is not what Tessera mints."""


def b64url_decode(s: str) -> bytes:
    """Strict unpadded base64url (the Rust ``URL_SAFE_NO_PAD`` engine): no
    padding, no other alphabet, no stray trailing bits."""
    if not _B64URL.fullmatch(s) or len(s) % 4 == 1:
        raise _Malformed("base64url")
    try:
        raw = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError) as e:  # pragma: no cover - guarded above
        raise _Malformed("base64url") from e
    # Non-canonical trailing bits decode to the same bytes: refuse them.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != s:
        raise _Malformed("base64url")
    return raw


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sha256_b64(data: bytes) -> str:
    """base64url SHA-256, as the server stores fingerprints and thumbprints."""
    return b64url_encode(hashlib.sha256(data).digest())


def fingerprint_hash(fingerprint: str) -> Optional[str]:
    """The hash of a device fingerprint as embedded in ``cnf``."""
    if not fingerprint:
        return None
    return sha256_b64(b"tessera-dfp\0" + fingerprint.encode("utf-8"))


def cert_thumbprint(der: bytes) -> str:
    """RFC 8705 ``x5t#S256`` of a certificate: base64url SHA-256 of its DER."""
    return sha256_b64(der)


def constant_time_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


# --------------------------------------------------------------------------
# Strict JSON: what serde_json accepts, with duplicate keys recorded.


class _Obj(dict):  # type: ignore[type-arg]
    """A JSON object that remembers which keys appeared more than once."""

    __slots__ = ("dups",)

    def __init__(self, pairs: List[Tuple[str, Any]]):
        super().__init__()
        dups = set()
        for k, v in pairs:
            if k in self:
                dups.add(k)
            self[k] = v
        self.dups = dups


class _Float:
    """A JSON number serde_json reads as an f64 (a fraction or exponent, an
    integer beyond the 64-bit range, or ``-0``): never a NumericDate.
    ``bad`` when it overflows an f64, which serde_json refuses -- but only
    where it deserializes the value, so the check is deferred."""

    __slots__ = ("text", "bad")

    def __init__(self, text: str):
        self.text = text
        try:
            self.bad = math.isinf(float(text))
        except (ValueError, OverflowError):
            self.bad = True


def _parse_int(text: str) -> Any:
    if text == "-0":
        return _Float(text)  # serde_json keeps the sign: an f64
    if len(text) < 19:
        return int(text)
    v = int(text)  # ValueError beyond Python's digit limit: malformed
    if -(2**63) <= v < 2**64:
        return v
    return _Float(text)


def _no_constant(name: str) -> Any:
    raise _Malformed("NaN/Infinity")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_Obj, parse_float=_Float, parse_int=_parse_int, parse_constant=_no_constant
)
# Only these can make an f64 overflow: an exponent, or a long run of digits.
_NUMBER_RISK = re.compile(r"\d[eE][+-]?\d|\d{300}")


def _has_bad_number(v: Any) -> bool:
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, _Float):
            if x.bad:
                return True
        elif isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


def _value_depth(v: Any) -> int:
    """Nesting of arrays/objects of a parsed value (0 for a scalar)."""
    best = 0
    stack = [(v, 1)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, dict):
            best = max(best, d)
            stack.extend((y, d + 1) for y in x.values())
        elif isinstance(x, list):
            best = max(best, d)
            stack.extend((y, d + 1) for y in x)
    return best


def _deserialized_ok(text: str, value: Any, risky: bool) -> None:
    """What serde_json refuses in a value it deserializes (not ignores):
    nesting of 128 levels, numbers beyond the f64 range, lone surrogates and
    invalid UTF-8 in strings."""
    if risky and _has_lone_surrogate(value):
        raise _Malformed("string")
    if _too_deep(text):
        raise _Malformed("nesting")
    if _NUMBER_RISK.search(text) and _has_bad_number(value):
        raise _Malformed("number out of range")


def _has_lone_surrogate(v: Any) -> bool:
    """A lone surrogate (from an escape, or an invalid UTF-8 byte kept by
    ``surrogateescape``) in any string or key of ``v``."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


#: serde_json refuses nesting of 128 levels or more (its recursion limit).
_MAX_DEPTH = 127


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON text (strings skipped)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best = depth
        elif ch in "]}":
            depth -= 1
    return best


def _too_deep(text: str) -> bool:
    return text.count("[") + text.count("{") > _MAX_DEPTH and json_depth(text) > _MAX_DEPTH


def strict_json(raw: bytes) -> Tuple[Any, str, bool]:
    """Parse JSON as serde_json does: no NaN/Infinity; objects are
    :class:`_Obj` (duplicates recorded), numbers serde reads as f64 are
    :class:`_Float`. Returns the value, the text, and whether a string may
    hold a lone surrogate or invalid UTF-8 -- serde_json refuses those only
    in what it deserializes, not in what it skips, so the caller checks
    them where the server would (:func:`_deserialized_ok`)."""
    try:
        text = raw.decode("utf-8")
        risky = False
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "surrogateescape")
        risky = True
    try:
        value = _DECODER.decode(text)
    except (ValueError, RecursionError) as e:
        raise _Malformed("json") from e
    risky = risky or bool(_SURROGATE_ESCAPE.search(text))
    return value, text, risky


def _check_fields(obj: _Obj, known: Tuple[str, ...]) -> None:
    """serde's derived ``Deserialize`` refuses a duplicated known field."""
    if obj.dups and any(k in obj.dups for k in known):
        raise _Malformed("duplicate field")


def _opt_str(obj: Mapping[str, Any], name: str) -> Optional[str]:
    v = obj.get(name)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _Malformed(name)
    return v


def _req_str(obj: Mapping[str, Any], name: str) -> str:
    if name not in obj:
        raise _Malformed(name)
    v = obj[name]
    if not isinstance(v, str):
        raise _Malformed(name)
    return v


def _str_default(obj: Mapping[str, Any], name: str) -> str:
    if name not in obj:
        return ""
    v = obj[name]
    if not isinstance(v, str):  # null included: serde's default only covers absence
        raise _Malformed(name)
    return v


def _str_list(v: Any) -> List[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Malformed("list of strings")
    return list(v)


def _numeric_date(obj: Mapping[str, Any], name: str) -> int:
    if name not in obj:
        raise _Malformed(name)
    v = obj[name]
    # bool is an int in Python, not in JSON.
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Malformed(name)
    if not -_NUMERIC_DATE_LIMIT <= v <= _NUMERIC_DATE_LIMIT:
        raise _Malformed(name)
    return v


# --------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    alg: str
    algorithm: Any  # a PyJWT algorithm object
    key: Any  # a cryptography public key


class PublicKeys:
    """The public keys of a JWK set (what ``GetJwks`` returns), by ``kid``,
    each with exactly one algorithm. Keys without ``kid`` or with an
    unsupported ``alg`` are skipped; a key whose ``kty``/``crv`` do not fit
    its ``alg`` is skipped too (the Rust core does the same)."""

    _generations = itertools.count(1)

    def __init__(self, keys: Dict[str, VerifyingKey]):
        self.keys = keys
        self.generation = next(PublicKeys._generations)
        #: With a tenant, the set is that tenant's (``GetJwks`` with
        #: ``tenant``): its keys vouch only for tokens with this ``tid`` and
        #: this ``iss``.
        self.tenant = ""
        self.issuer = ""

    def for_tenant(self, tenant: str, issuer: str) -> "PublicKeys":
        """These keys as one tenant's (the server's ``--tenants``)."""
        self.tenant = tenant
        self.issuer = issuer
        self.generation = next(PublicKeys._generations)
        return self

    @classmethod
    def from_jwks_json(cls, text: str) -> "PublicKeys":
        from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ValueError("JWK set is not JSON") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ValueError("JWK set has no keys array")
        keys: Dict[str, VerifyingKey] = {}
        for jwk in doc["keys"]:
            if not isinstance(jwk, dict):
                continue
            kid, alg = jwk.get("kid"), jwk.get("alg")
            if not isinstance(kid, str) or not isinstance(alg, str):
                continue
            kty, crv = jwk.get("kty"), jwk.get("crv")
            if alg == "EdDSA" and kty == "OKP" and crv == "Ed25519":
                algorithm: Any = OKPAlgorithm()
            elif alg == "ES256" and kty == "EC" and crv == "P-256":
                algorithm = ECAlgorithm(ECAlgorithm.SHA256)
            elif alg == "RS256" and kty == "RSA":
                algorithm = RSAAlgorithm(RSAAlgorithm.SHA256)
            else:
                continue
            try:
                public = algorithm.from_jwk(dict(jwk))
            except Exception as e:  # noqa: BLE001 - PyJWT raises several kinds
                raise ValueError(f"JWK {kid!r} is invalid") from e
            if hasattr(public, "public_key") and not hasattr(public, "verify"):
                public = public.public_key()
            keys[kid] = VerifyingKey(kid=kid, alg=alg, algorithm=algorithm, key=public)
        return cls(keys)

    def get(self, kid: str) -> Optional[VerifyingKey]:
        return self.keys.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys

    def __len__(self) -> int:
        return len(self.keys)


# --------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class AccessClaims:
    """The claims of a token that passed :func:`verify_token` (internal)."""

    iss: str
    sub: str
    aud: Tuple[str, ...]
    exp: int
    nbf: int
    iat: int
    jti: str
    sid: str
    tid: str
    roles: Tuple[str, ...]
    scope: str
    dfp: Optional[str] = None
    x5t: Optional[str] = None
    jkt: Optional[str] = None
    #: The ``act`` chain of an exchanged token, current actor first.
    actors: Tuple[str, ...] = ()
    custom: Dict[str, Any] = field(default_factory=dict)

    @property
    def scopes(self) -> Tuple[str, ...]:
        return tuple(s for s in self.scope.split(" ") if s)


_RAW_HEADER_FIELDS = ("alg", "kid", "typ", "crit", "b64")
# jsonwebtoken's `Header`, parsed (after the kid/alg checks) before the signature.
_JOSE_HEADER_FIELDS = (
    "typ", "alg", "cty", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256",
    "crit", "enc", "zip", "url", "nonce",
)
_JOSE_HEADER_STRINGS = ("cty", "jku", "kid", "x5u", "x5t", "x5t#S256", "url", "nonce", "enc", "zip")
_JWK_FIELDS = ("use", "key_ops", "alg", "kid", "x5u", "x5c", "x5t", "x5t#S256")
_JWK_STRINGS = ("use", "alg", "kid", "x5u", "x5t", "x5t#S256")
_CLAIM_FIELDS = (
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "tid", "roles", "scope", "cnf", "act",
)
_CNF_FIELDS = ("dfp#S256", "x5t#S256", "jkt")
_ACTOR_FIELDS = ("sub", "act")


def _check_jose_header(h: _Obj) -> None:
    """What deserializing jsonwebtoken's ``Header`` refuses."""
    _check_fields(h, _JOSE_HEADER_FIELDS)
    for name in _JOSE_HEADER_STRINGS:
        _opt_str(h, name)
    x5c = h.get("x5c")
    if x5c is not None:
        _str_list(x5c)
    jwk = h.get("jwk")
    if jwk is not None:
        # jsonwebtoken's Jwk: typed common parameters; any other members
        # fit its catch-all key parameters.
        if not isinstance(jwk, _Obj):
            raise _Malformed("jwk")
        _check_fields(jwk, _JWK_FIELDS)
        for name in _JWK_STRINGS:
            _opt_str(jwk, name)
        for name in ("key_ops", "x5c"):
            if jwk.get(name) is not None:
                _str_list(jwk[name])


def header_kid(token: str) -> Optional[str]:
    """The ``kid`` of a token's header, unverified (to decide on a refetch)."""
    try:
        h = strict_json(b64url_decode(token.split(".", 1)[0]))[0]
    except _Malformed:
        return None
    kid = h.get("kid") if isinstance(h, dict) else None
    return kid if isinstance(kid, str) else None


def verify_token(
    keys: PublicKeys, token: str, now: int, issuer: str, leeway: int
) -> Tuple[AccessClaims, str]:
    """Signature, type, issuer and validity window of ``token`` at ``now``
    (Unix seconds). Returns the claims and the ``kid`` that verified them;
    raises :class:`TokenError` with the server's reason."""
    try:
        return _verify(keys, token, now, issuer, leeway)
    except _Malformed:
        raise TokenError(TOKEN_MALFORMED) from None


def _verify(
    keys: PublicKeys, token: str, now: int, issuer: str, leeway: int
) -> Tuple[AccessClaims, str]:
    if len(token.encode("utf-8")) > MAX_TOKEN_BYTES:
        raise _Malformed("too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise _Malformed("shape")
    header_b64, payload_b64, sig_b64 = parts
    header_raw = b64url_decode(header_b64)
    header, header_text, header_risky = strict_json(header_raw)
    # Tessera's RawHeader (alg, kid, typ, crit, b64), as serde reads it: an
    # object, or -- serde derives that too -- an array of those in order.
    if isinstance(header, _Obj):
        _check_fields(header, _RAW_HEADER_FIELDS)
        # serde reads every key (to match field names), skips other values
        if header_risky and _has_lone_surrogate(list(header.keys())):
            raise _Malformed("header key")
        raw: Mapping[str, Any] = header
    elif isinstance(header, list) and 1 <= len(header) <= len(_RAW_HEADER_FIELDS):
        raw = dict(zip(_RAW_HEADER_FIELDS, header))
    else:
        raise _Malformed("header")
    if "alg" not in raw:
        raise _Malformed("alg")
    for name in _RAW_HEADER_FIELDS:
        v = raw.get(name)
        if isinstance(v, (dict, list)) and (
            _value_depth(v) > _MAX_DEPTH - 1 or _has_bad_number(v)
        ):
            raise _Malformed(name)
        if isinstance(v, _Float) and v.bad:
            raise _Malformed(name)
        if header_risky and _has_lone_surrogate(v):
            raise _Malformed(name)
    # RFC 7515 §4.1.11: no `crit` is understood; RFC 7797 `b64` changes
    # what is signed. (A JSON null counts as absent, as in serde.)
    if raw.get("crit") is not None or raw.get("b64") is not None:
        raise _Malformed("crit/b64")
    typ = raw.get("typ")
    if not isinstance(typ, str) or typ.lower() not in (ACCESS_TOKEN_TYP, "application/at+jwt"):
        raise _Malformed("typ")
    kid = raw.get("kid")
    if not isinstance(kid, str):
        raise TokenError(TOKEN_SIGNATURE_INVALID)
    key = keys.get(kid)
    if key is None:
        raise TokenError(TOKEN_SIGNATURE_INVALID)
    # Algorithm pinning: the key decides, the token only has to agree.
    alg = raw["alg"]
    if not isinstance(alg, str) or alg != key.alg:
        raise TokenError(TOKEN_SIGNATURE_INVALID)
    # Then jsonwebtoken's own Header: an object only, JOSE fields typed,
    # and every other field kept as a JSON value (depth and range checked).
    if not isinstance(header, _Obj):
        raise _Malformed("header")
    _check_jose_header(header)
    _deserialized_ok(header_text, header, header_risky)
    signature = b64url_decode(sig_b64)
    message = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
    try:
        ok = key.algorithm.verify(message, key.key, signature)
    except Exception:  # noqa: BLE001 - any failure of the check is a bad signature
        ok = False
    if not ok:
        raise TokenError(TOKEN_SIGNATURE_INVALID)

    payload_raw = b64url_decode(payload_b64)
    payload, payload_text, payload_risky = strict_json(payload_raw)
    _deserialized_ok(payload_text, payload, payload_risky)
    claims = _claims(payload)
    if keys.tenant:
        # One tenant's keys vouch for its tokens only: another tid is as if
        # signed by an unknown key (the server's rule).
        if claims.tid != keys.tenant:
            raise TokenError(TOKEN_SIGNATURE_INVALID)
        issuer = keys.issuer
    if claims.iss != issuer:
        raise TokenError(ISSUER_MISMATCH)
    if not claims.sub or not claims.jti or not claims.sid:
        raise _Malformed("empty sub/jti/sid")
    check_window(claims, now, leeway)
    return claims, kid


def _claims(p: Any) -> AccessClaims:
    if not isinstance(p, _Obj):
        raise _Malformed("payload")
    _check_fields(p, _CLAIM_FIELDS)
    iss = _req_str(p, "iss")
    sub = _req_str(p, "sub")
    if "aud" in p:
        aud_v = p["aud"]
        aud: Tuple[str, ...] = (aud_v,) if isinstance(aud_v, str) else tuple(_str_list(aud_v))
    else:
        aud = ()
    exp = _numeric_date(p, "exp")
    nbf = _numeric_date(p, "nbf")
    iat = _numeric_date(p, "iat")
    jti = _req_str(p, "jti")
    sid = _req_str(p, "sid")
    tid = _str_default(p, "tid")
    roles = tuple(_str_list(p["roles"])) if "roles" in p else ()
    scope = _str_default(p, "scope")
    dfp = x5t = jkt = None
    cnf = p.get("cnf")
    if cnf is not None:
        if isinstance(cnf, list):
            # serde derives the sequence form of a struct too: members in
            # order, missing ones default, no extra ones.
            if len(cnf) > len(_CNF_FIELDS):
                raise _Malformed("cnf")
            cnf = dict(zip(_CNF_FIELDS, cnf))
        elif isinstance(cnf, _Obj):
            _check_fields(cnf, _CNF_FIELDS)
        else:
            raise _Malformed("cnf")
        dfp = _opt_str(cnf, "dfp#S256")
        x5t = _opt_str(cnf, "x5t#S256")
        jkt = _opt_str(cnf, "jkt")
    actors = _actors(p.get("act"))
    custom = {k: _plain(v) for k, v in p.items() if k not in _CLAIM_FIELDS}
    return AccessClaims(
        iss=iss, sub=sub, aud=aud, exp=exp, nbf=nbf, iat=iat, jti=jti, sid=sid, tid=tid,
        roles=roles, scope=scope, dfp=dfp, x5t=x5t, jkt=jkt, actors=actors, custom=custom,
    )


def _actors(act: Any) -> Tuple[str, ...]:
    """``act`` as serde reads the core's ``Actor``: None, an object with a
    string ``sub`` and an optional nested ``act`` of the same shape (each at
    most once, other members ignored), or that as a sequence [sub, act?]."""
    chain = []
    while act is not None:
        if isinstance(act, list):
            if not 1 <= len(act) <= len(_ACTOR_FIELDS):
                raise _Malformed("act")
            act = dict(zip(_ACTOR_FIELDS, act))
        elif isinstance(act, _Obj):
            _check_fields(act, _ACTOR_FIELDS)
        else:
            raise _Malformed("act")
        chain.append(_req_str(act, "sub"))
        act = act.get("act")
    return tuple(chain)


def _plain(v: Any) -> Any:
    """Custom claim values as plain Python (floats back to float)."""
    if isinstance(v, _Float):
        return float(v.text)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def check_window(claims: AccessClaims, now: int, leeway: int) -> None:
    """``exp``/``nbf``/``iat`` at ``now`` with ``leeway`` (whole seconds)."""
    if now > claims.exp + leeway:
        raise TokenError(TOKEN_EXPIRED)
    if claims.nbf > now + leeway or claims.iat > now + leeway:
        raise TokenError(TOKEN_NOT_YET_VALID)


def check_audience_and_binding(claims: AccessClaims, audience: str, fingerprint: str) -> None:
    if audience and audience not in claims.aud:
        raise TokenError(AUDIENCE_MISMATCH)
    if claims.dfp is not None:
        presented = fingerprint_hash(fingerprint) or ""
        if not constant_time_eq(presented, claims.dfp):
            raise TokenError(FINGERPRINT_MISMATCH)


def check_certificate_binding(claims: AccessClaims, thumbprint: str) -> None:
    if claims.x5t is not None and not constant_time_eq(thumbprint, claims.x5t):
        raise TokenError(TOKEN_BINDING_MISMATCH)


def check_scopes(claims: AccessClaims, required: Sequence[str]) -> None:
    if required:
        have = claims.scopes
        if not all(r in have for r in required):
            raise TokenError(SCOPE_MISSING)
