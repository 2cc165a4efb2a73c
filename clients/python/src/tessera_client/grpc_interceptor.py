"""gRPC server interceptors that verify the caller's ``authorization:
Bearer`` metadata with a local verifier.

- :class:`TesseraServerInterceptor` for ``grpc.server`` (sync), and
  :class:`AsyncTesseraServerInterceptor` for ``grpc.aio.server``.
- On success the handler runs with the claims available through
  :func:`current_claims` (a context variable).
- On refusal the call ends with the server's status code for the reason
  (``UNAUTHENTICATED``; ``PERMISSION_DENIED`` for ``SCOPE_MISSING``;
  ``UNAVAILABLE`` for ``STORE_UNAVAILABLE``) and a ``google.rpc.Status``
  carrying ``ErrorInfo(reason, domain="tessera")`` in
  ``grpc-status-details-bin``, exactly as Tessera itself answers, so
  :class:`~tessera_client.TesseraClient`-style clients read ``.reason``.
- Methods in ``skip_methods`` (default: gRPC health and reflection) pass.
"""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Callable, Iterable, Optional, Sequence

import grpc
import grpc.aio

from .errors import TOKEN_MALFORMED, TokenError, status_code_for, status_details_bin

_claims: contextvars.ContextVar[Any] = contextvars.ContextVar("tessera_claims", default=None)

DEFAULT_SKIP = (
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


def current_claims() -> Any:
    """The :class:`~tessera_client.Claims` of the call being handled (None
    outside an intercepted call)."""
    return _claims.get()


def _token(metadata: Iterable[Any]) -> Optional[str]:
    for key, value in metadata or ():
        if key == "authorization":
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _kind(handler: Any) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "stream_stream"
    if handler.request_streaming:
        return "stream_unary"
    if handler.response_streaming:
        return "unary_stream"
    return "unary_unary"


def _rebuild(handler: Any, kind: str, behavior: Callable[..., Any]) -> Any:
    make = getattr(grpc, f"{kind}_rpc_method_handler")
    return make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class TesseraServerInterceptor(grpc.ServerInterceptor):
    """``TesseraServerInterceptor(verifier, *, audience=None,
    required_scopes=(), skip_methods=DEFAULT_SKIP)`` for a sync server; the
    verifier is a :class:`~tessera_client.LocalVerifier`."""

    def __init__(
        self,
        verifier: Any,
        *,
        audience: Optional[str] = None,
        required_scopes: Sequence[str] = (),
        skip_methods: Iterable[str] = DEFAULT_SKIP,
    ) -> None:
        self.verifier = verifier
        self.audience = audience
        self.required_scopes = tuple(required_scopes)
        self.skip = frozenset(skip_methods)

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = continuation(details)
        if handler is None or details.method in self.skip:
            return handler
        kind = _kind(handler)
        token = _token(details.invocation_metadata)
        try:
            if token is None:
                raise TokenError(TOKEN_MALFORMED, "missing bearer token")
            claims = self.verifier.verify(
                token, audience=self.audience, required_scopes=self.required_scopes
            )
        except TokenError as e:
            return _rebuild(handler, kind, _deny(e))
        inner = getattr(handler, kind)

        def streaming(request: Any, context: Any) -> Any:
            reset = _claims.set(claims)
            try:
                yield from inner(request, context)
            finally:
                _claims.reset(reset)

        def unary(request: Any, context: Any) -> Any:
            reset = _claims.set(claims)
            try:
                return inner(request, context)
            finally:
                _claims.reset(reset)

        behavior = streaming if handler.response_streaming else unary
        return _rebuild(handler, kind, behavior)


def _deny(err: TokenError) -> Callable[[Any, Any], Any]:
    code = status_code_for(err.reason)
    trailer = (("grpc-status-details-bin", status_details_bin(err.reason, err.message)),)

    def behavior(request: Any, context: Any) -> Any:
        context.set_trailing_metadata(trailer)
        context.abort(code, err.message)

    return behavior


class AsyncTesseraServerInterceptor(grpc.aio.ServerInterceptor):
    """The same for ``grpc.aio.server``; the verifier is an
    :class:`~tessera_client.AsyncLocalVerifier` (awaited) or a
    :class:`~tessera_client.LocalVerifier`."""

    def __init__(
        self,
        verifier: Any,
        *,
        audience: Optional[str] = None,
        required_scopes: Sequence[str] = (),
        skip_methods: Iterable[str] = DEFAULT_SKIP,
    ) -> None:
        self.verifier = verifier
        self.audience = audience
        self.required_scopes = tuple(required_scopes)
        self.skip = frozenset(skip_methods)
        self._async = inspect.iscoroutinefunction(getattr(verifier, "verify", None))

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method in self.skip:
            return handler
        kind = _kind(handler)
        token = _token(details.invocation_metadata)
        try:
            if token is None:
                raise TokenError(TOKEN_MALFORMED, "missing bearer token")
            kw = dict(audience=self.audience, required_scopes=self.required_scopes)
            if self._async:
                claims = await self.verifier.verify(token, **kw)
            else:
                claims = self.verifier.verify(token, **kw)
        except TokenError as e:
            return _rebuild(handler, kind, _deny_async(e, handler.response_streaming))
        inner = getattr(handler, kind)

        async def streaming(request: Any, context: Any) -> Any:
            _claims.set(claims)  # the call runs in its own task (own context)
            result = inner(request, context)
            if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
                async for item in result:
                    yield item
            else:  # a coroutine writing with context.write()
                await result

        async def unary(request: Any, context: Any) -> Any:
            _claims.set(claims)
            return await inner(request, context)

        behavior: Any = streaming if handler.response_streaming else unary
        return _rebuild(handler, kind, behavior)


def _deny_async(err: TokenError, streaming: bool) -> Callable[[Any, Any], Any]:
    code = status_code_for(err.reason)
    trailer = (("grpc-status-details-bin", status_details_bin(err.reason, err.message)),)

    async def behavior(request: Any, context: Any) -> Any:
        await context.abort(code, err.message, trailing_metadata=trailer)

    if not streaming:
        return behavior

    async def stream_behavior(request: Any, context: Any) -> Any:
        await context.abort(code, err.message, trailing_metadata=trailer)
        yield  # pragma: no cover - makes this an async generator

    return stream_behavior
