"""``TokenError`` and the reason codes of the wire contract (DESIGN.md §3, §9)."""

from __future__ import annotations

from typing import Any, Optional

import grpc

TOKEN_MALFORMED = "TOKEN_MALFORMED"
TOKEN_SIGNATURE_INVALID = "TOKEN_SIGNATURE_INVALID"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_NOT_YET_VALID = "TOKEN_NOT_YET_VALID"
TOKEN_REVOKED = "TOKEN_REVOKED"
ISSUER_MISMATCH = "ISSUER_MISMATCH"
AUDIENCE_MISMATCH = "AUDIENCE_MISMATCH"
FINGERPRINT_MISMATCH = "FINGERPRINT_MISMATCH"
TOKEN_BINDING_MISMATCH = "TOKEN_BINDING_MISMATCH"
DPOP_PROOF_INVALID = "DPOP_PROOF_INVALID"
DPOP_PROOF_REPLAYED = "DPOP_PROOF_REPLAYED"
REFRESH_TOKEN_INVALID = "REFRESH_TOKEN_INVALID"
REFRESH_TOKEN_REUSED = "REFRESH_TOKEN_REUSED"
CALLER_UNAUTHENTICATED = "CALLER_UNAUTHENTICATED"
SCOPE_MISSING = "SCOPE_MISSING"
CALLER_NOT_ALLOWED = "CALLER_NOT_ALLOWED"
FIELD_INVALID = "FIELD_INVALID"
CURSOR_INVALID = "CURSOR_INVALID"
RATE_LIMITED = "RATE_LIMITED"
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
#: Not from the server: the call failed without a Tessera reason (no
#: connection, deadline, a proxy's error...).
UNKNOWN = "UNKNOWN"

ERROR_DOMAIN = "tessera"

#: The gRPC status code the server gives with each reason.
_CODES = {
    SCOPE_MISSING: grpc.StatusCode.PERMISSION_DENIED,
    CALLER_NOT_ALLOWED: grpc.StatusCode.PERMISSION_DENIED,
    "TENANT_NOT_ALLOWED": grpc.StatusCode.PERMISSION_DENIED,
    FIELD_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    CURSOR_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    "SESSION_LIMIT": grpc.StatusCode.RESOURCE_EXHAUSTED,
    STORE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def status_code_for(reason: str) -> grpc.StatusCode:
    """The gRPC code the server pairs with ``reason`` (UNAUTHENTICATED for
    the token reasons)."""
    return _CODES.get(reason, grpc.StatusCode.UNAUTHENTICATED)


_MESSAGES = {
    TOKEN_MALFORMED: "token is malformed",
    TOKEN_SIGNATURE_INVALID: "token signature is invalid",
    TOKEN_EXPIRED: "token has expired",
    TOKEN_NOT_YET_VALID: "token is not yet valid",
    TOKEN_REVOKED: "token has been revoked",
    ISSUER_MISMATCH: "token issuer does not match",
    AUDIENCE_MISMATCH: "token audience does not match",
    FINGERPRINT_MISMATCH: "device fingerprint does not match",
    TOKEN_BINDING_MISMATCH: "token is bound to another key or certificate",
    SCOPE_MISSING: "token lacks a required scope",
    FIELD_INVALID: "invalid argument",
    STORE_UNAVAILABLE: "local verifier is not in sync with the revocation feed",
}


class TokenError(Exception):
    """A refusal, with the server's ``ErrorInfo.reason`` in :attr:`reason`.

    Raised by :class:`~tessera_client.LocalVerifier` (local decisions, same
    reasons as the server's ``Verify``) and by
    :class:`~tessera_client.TesseraClient` (decoded from the
    ``google.rpc.ErrorInfo`` of ``grpc-status-details-bin``). Its message
    never contains the token.
    """

    def __init__(
        self,
        reason: str,
        message: Optional[str] = None,
        *,
        code: Optional[grpc.StatusCode] = None,
        metadata: Optional[dict[str, str]] = None,
    ) -> None:
        self.reason = reason
        self.code = code if code is not None else status_code_for(reason)
        self.message = message or _MESSAGES.get(reason, reason)
        #: ``ErrorInfo.metadata`` when the error came from the server.
        self.metadata = dict(metadata or {})
        super().__init__(f"{self.reason}: {self.message}")

    def __repr__(self) -> str:
        return f"TokenError({self.reason!r})"


def error_info_of(trailing_metadata: Any) -> Optional[Any]:
    """The ``google.rpc.ErrorInfo`` in a call's ``grpc-status-details-bin``
    trailer, if any."""
    from google.rpc import error_details_pb2, status_pb2

    for key, value in trailing_metadata or ():
        if key != "grpc-status-details-bin":
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: BLE001 - a garbled trailer is no reason
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info
    return None


def from_rpc_error(err: grpc.RpcError) -> TokenError:
    """A :class:`TokenError` for a failed call (sync or ``grpc.aio``)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else None
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    info = error_info_of(trailers)
    if info is not None and info.reason:
        return TokenError(info.reason, details or None, code=code, metadata=dict(info.metadata))
    return TokenError(UNKNOWN, details or str(code), code=code)


def status_details_bin(reason: str, message: str) -> bytes:
    """A serialized ``google.rpc.Status`` carrying ``ErrorInfo(reason)``, as
    the server sends it (for interceptors that answer on its behalf)."""
    from google.rpc import error_details_pb2, status_pb2

    code = status_code_for(reason)
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    return status.SerializeToString()
