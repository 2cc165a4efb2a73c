"""Plain ASGI middleware (works with Starlette, FastAPI and any ASGI app):
verifies the ``Authorization: Bearer`` token with a local verifier and puts
the :class:`~tessera_client.Claims` on the request.

- Success: ``scope["state"]["tessera_claims"]`` (Starlette/FastAPI:
  ``request.state.tessera_claims``) and ``scope["tessera.claims"]``.
- No token: ``401`` with ``WWW-Authenticate: Bearer realm="..."`` (RFC 6750
  §3.1: no error code when the request carried no credentials).
- A refused token: ``401`` with ``WWW-Authenticate: Bearer
  error="invalid_token", error_description="<REASON>"``.
- ``SCOPE_MISSING``: ``403`` with ``error="insufficient_scope"``.
- ``STORE_UNAVAILABLE`` (the verifier is out of sync with the revocation
  feed, so it fails closed): ``503`` with ``Retry-After: 1`` -- the token may
  well be good; the service cannot tell right now.

Bodies are small JSON objects ``{"error": ..., "reason": ...}``; the token
is never echoed or logged. WebSocket connections that fail are closed with
code 1008 before being accepted.
"""

from __future__ import annotations

import inspect
import json
from typing import Any, Awaitable, Callable, Iterable, MutableMapping, Optional, Sequence

from .errors import SCOPE_MISSING, STORE_UNAVAILABLE, TokenError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CLAIMS_KEY = "tessera_claims"


def bearer_token(authorization: Optional[str]) -> Optional[str]:
    """The token of an ``Authorization: Bearer <token>`` value (scheme
    case-insensitive), or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


def _quote(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


class TesseraMiddleware:
    """``TesseraMiddleware(app, verifier, *, audience=None,
    required_scopes=(), realm="api", exclude_paths=())``.

    ``verifier`` is a :class:`~tessera_client.LocalVerifier` (its verify is
    called inline: fast, but a JWK refetch on an unknown ``kid`` blocks the
    loop for at most a few seconds) or an
    :class:`~tessera_client.AsyncLocalVerifier` (awaited). ``audience``
    overrides the verifier's; ``exclude_paths`` (exact paths) pass through
    unauthenticated (health checks).
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: Any,
        *,
        audience: Optional[str] = None,
        required_scopes: Sequence[str] = (),
        realm: str = "api",
        exclude_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.audience = audience
        self.required_scopes = tuple(required_scopes)
        self.realm = realm
        self.exclude_paths = frozenset(exclude_paths)
        self._async = inspect.iscoroutinefunction(getattr(verifier, "verify", None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") in self.exclude_paths:
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        token = bearer_token(authorization)
        if token is None:
            await self._deny(scope, send, 401, f'Bearer realm="{_quote(self.realm)}"', None)
            return
        try:
            if self._async:
                claims = await self.verifier.verify(
                    token, audience=self.audience, required_scopes=self.required_scopes
                )
            else:
                claims = self.verifier.verify(
                    token, audience=self.audience, required_scopes=self.required_scopes
                )
        except TokenError as e:
            await self._refuse(scope, send, e.reason)
            return
        scope.setdefault("state", {})[CLAIMS_KEY] = claims
        scope["tessera.claims"] = claims
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, reason: str) -> None:
        realm = _quote(self.realm)
        if reason == STORE_UNAVAILABLE:
            await self._deny(scope, send, 503, None, reason, retry_after=True)
        elif reason == SCOPE_MISSING:
            scope_attr = " ".join(self.required_scopes)
            challenge = (
                f'Bearer realm="{realm}", error="insufficient_scope", '
                f'error_description="{reason}", scope="{_quote(scope_attr)}"'
            )
            await self._deny(scope, send, 403, challenge, reason)
        else:
            challenge = (
                f'Bearer realm="{realm}", error="invalid_token", error_description="{reason}"'
            )
            await self._deny(scope, send, 401, challenge, reason)

    async def _deny(
        self,
        scope: Scope,
        send: Send,
        status: int,
        challenge: Optional[str],
        reason: Optional[str],
        retry_after: bool = False,
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        error = {401: "invalid_token", 403: "insufficient_scope", 503: "temporarily_unavailable"}
        body_obj: dict = {"error": error[status] if reason else "unauthorized"}
        if reason:
            body_obj["reason"] = reason
        body = json.dumps(body_obj).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
        ]
        if challenge:
            headers.append((b"www-authenticate", challenge.encode("latin-1")))
        if retry_after:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def claims_of(scope_or_request: Any) -> Any:
    """The claims the middleware attached (a scope dict or a Starlette request)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    return scope.get("tessera.claims")
