"""The ASGI middleware (Starlette TestClient and httpx's ASGI transport) and
the gRPC server interceptors (sync and grpc.aio), against a live Tessera."""

from __future__ import annotations

import asyncio
import time
from concurrent import futures

import grpc
import grpc.aio
import httpx
import pytest
from google.protobuf import empty_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tessera_client import AsyncLocalVerifier, LocalVerifier, TesseraClient, TokenError
from tessera_client.asgi import TesseraMiddleware, bearer_token, claims_of
from tessera_client.errors import error_info_of
from tessera_client.grpc_interceptor import (
    AsyncTesseraServerInterceptor,
    TesseraServerInterceptor,
    current_claims,
)

ISSUER = "tessera-test"


async def whoami(request: Request) -> JSONResponse:
    c = request.state.tessera_claims
    assert claims_of(request) is c
    return JSONResponse({"subject": c.subject, "scopes": c.scopes})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def app(verifier, **kw) -> Starlette:
    a = Starlette(routes=[Route("/me", whoami), Route("/healthz", health)])
    a.add_middleware(TesseraMiddleware, verifier=verifier, exclude_paths=["/healthz"], **kw)
    return a


def test_bearer_parsing():
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in [None, "", "Basic abc", "Bearer", "Bearer   "]:
        assert bearer_token(bad) is None


def test_asgi_middleware_with_starlette(shared):
    c = TesseraClient(shared.target)
    pair = c.issue("alice", audience=["api"], scopes=["read"])
    with LocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
        web = TestClient(app(v))
        r = web.get("/me", headers={"Authorization": f"Bearer {pair.access_token}"})
        assert r.status_code == 200 and r.json() == {"subject": "alice", "scopes": ["read"]}
        assert web.get("/healthz").status_code == 200
        r = web.get("/me")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer realm="api"'
        r = web.get("/me", headers={"Authorization": "Bearer not.a.token"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == (
            'Bearer realm="api", error="invalid_token", error_description="TOKEN_MALFORMED"')
        assert r.json() == {"error": "invalid_token", "reason": "TOKEN_MALFORMED"}
        assert "not.a.token" not in r.text
        # scopes
        web2 = TestClient(app(v, required_scopes=["write"]))
        r = web2.get("/me", headers={"Authorization": f"Bearer {pair.access_token}"})
        assert r.status_code == 403
        assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
        assert 'scope="write"' in r.headers["www-authenticate"]
        # revoked
        c.revoke(token=pair.access_token)
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            r = web.get("/me", headers={"Authorization": f"Bearer {pair.access_token}"})
            if r.status_code == 401:
                break
            time.sleep(0.01)
        assert 'error_description="TOKEN_REVOKED"' in r.headers["www-authenticate"]
    # closed verifier: out of sync -> 503, fail closed
    fresh = c.issue("bob", audience=["api"])
    r = web.get("/me", headers={"Authorization": f"Bearer {fresh.access_token}"})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["reason"] == "STORE_UNAVAILABLE"
    c.close()


def test_asgi_middleware_with_async_verifier_over_httpx(shared):
    async def main() -> None:
        c = TesseraClient(shared.target)
        pair = c.issue("carol", audience=["api"])
        async with AsyncLocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
            transport = httpx.ASGITransport(app=app(v))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as web:
                r = await web.get("/me", headers={"Authorization": f"Bearer {pair.access_token}"})
                assert r.status_code == 200 and r.json()["subject"] == "carol"
                r = await web.get("/me", headers={"Authorization": "Bearer x.y.z"})
                assert r.status_code == 401
        c.close()

    asyncio.run(main())


# --- gRPC interceptors -----------------------------------------------------
# A tiny service built from generic handlers: /demo.Demo/WhoAmI (unary) and
# /demo.Demo/Stream (server streaming), Empty in, Empty out; the subject is
# returned in the trailing metadata.


def _sync_server(interceptor) -> tuple[grpc.Server, int]:
    def whoami(request, context):
        c = current_claims()
        context.set_trailing_metadata((("subject", c.subject),))
        return empty_pb2.Empty()

    def stream(request, context):
        for _ in range(2):
            yield empty_pb2.Empty()
        context.set_trailing_metadata((("subject", current_claims().subject),))

    handler = grpc.method_handlers_generic_handler("demo.Demo", {
        "WhoAmI": grpc.unary_unary_rpc_method_handler(
            whoami, empty_pb2.Empty.FromString, empty_pb2.Empty.SerializeToString),
        "Stream": grpc.unary_stream_rpc_method_handler(
            stream, empty_pb2.Empty.FromString, empty_pb2.Empty.SerializeToString),
    })
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[interceptor])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _call(port: int, token: str | None, method: str = "WhoAmI"):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        md = (("authorization", f"Bearer {token}"),) if token else ()
        if method == "WhoAmI":
            fn = ch.unary_unary("/demo.Demo/WhoAmI", empty_pb2.Empty.SerializeToString,
                                empty_pb2.Empty.FromString)
            _, call = fn.with_call(empty_pb2.Empty(), metadata=md, timeout=5)
            return dict(call.trailing_metadata())["subject"]
        fn = ch.unary_stream("/demo.Demo/Stream", empty_pb2.Empty.SerializeToString,
                             empty_pb2.Empty.FromString)
        call = fn(empty_pb2.Empty(), metadata=md, timeout=5)
        assert len(list(call)) == 2
        return dict(call.trailing_metadata())["subject"]


def _refusal(port: int, token: str | None, method: str = "WhoAmI") -> tuple:
    with pytest.raises(grpc.RpcError) as e:
        _call(port, token, method)
    info = error_info_of(e.value.trailing_metadata())
    return e.value.code(), info.reason if info else None, info.domain if info else None


def test_sync_grpc_interceptor(shared):
    c = TesseraClient(shared.target)
    pair = c.issue("dave", audience=["api"], scopes=["read"])
    with LocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
        server, port = _sync_server(TesseraServerInterceptor(v))
        try:
            assert _call(port, pair.access_token) == "dave"
            assert _call(port, pair.access_token, "Stream") == "dave"
            assert _refusal(port, None) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MALFORMED",
                                            "tessera")
            assert _refusal(port, "a.b.c", "Stream")[:2] == (grpc.StatusCode.UNAUTHENTICATED,
                                                             "TOKEN_MALFORMED")
        finally:
            server.stop(None)
        server, port = _sync_server(TesseraServerInterceptor(v, required_scopes=["write"]))
        try:
            assert _refusal(port, pair.access_token)[:2] == (
                grpc.StatusCode.PERMISSION_DENIED, "SCOPE_MISSING")
        finally:
            server.stop(None)
    c.close()


def test_async_grpc_interceptor(shared):
    async def main() -> None:
        c = TesseraClient(shared.target)
        pair = c.issue("erin", audience=["api"])

        async def whoami(request, context):
            context.set_trailing_metadata((("subject", current_claims().subject),))
            return empty_pb2.Empty()

        async def stream(request, context):
            for _ in range(2):
                yield empty_pb2.Empty()
            context.set_trailing_metadata((("subject", current_claims().subject),))

        handler = grpc.method_handlers_generic_handler("demo.Demo", {
            "WhoAmI": grpc.unary_unary_rpc_method_handler(
                whoami, empty_pb2.Empty.FromString, empty_pb2.Empty.SerializeToString),
            "Stream": grpc.unary_stream_rpc_method_handler(
                stream, empty_pb2.Empty.FromString, empty_pb2.Empty.SerializeToString),
        })
        async with AsyncLocalVerifier(shared.target, issuer=ISSUER, audience="api") as v:
            server = grpc.aio.server(interceptors=[AsyncTesseraServerInterceptor(v)])
            server.add_generic_rpc_handlers((handler,))
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                    md = (("authorization", f"Bearer {pair.access_token}"),)
                    fn = ch.unary_unary("/demo.Demo/WhoAmI", empty_pb2.Empty.SerializeToString,
                                        empty_pb2.Empty.FromString)
                    call = fn(empty_pb2.Empty(), metadata=md, timeout=5)
                    await call
                    assert dict(await call.trailing_metadata())["subject"] == "erin"
                    sfn = ch.unary_stream("/demo.Demo/Stream", empty_pb2.Empty.SerializeToString,
                                          empty_pb2.Empty.FromString)
                    scall = sfn(empty_pb2.Empty(), metadata=md, timeout=5)
                    assert len([m async for m in scall]) == 2
                    assert dict(await scall.trailing_metadata())["subject"] == "erin"
                    for f in (fn, sfn):
                        bad = f(empty_pb2.Empty(), metadata=(("authorization", "Bearer x.y.z"),),
                                timeout=5)
                        with pytest.raises(grpc.aio.AioRpcError) as e:
                            if f is fn:
                                await bad
                            else:
                                [m async for m in bad]
                        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
                        info = error_info_of(e.value.trailing_metadata())
                        assert info is not None and info.reason == "TOKEN_MALFORMED"
            finally:
                await server.stop(None)
        c.close()

    asyncio.run(main())


def test_token_error_shape():
    e = TokenError("TOKEN_EXPIRED")
    assert e.reason == "TOKEN_EXPIRED" and e.code == grpc.StatusCode.UNAUTHENTICATED
    assert TokenError("STORE_UNAVAILABLE").code == grpc.StatusCode.UNAVAILABLE
    assert TokenError("SCOPE_MISSING").code == grpc.StatusCode.PERMISSION_DENIED
    assert repr(e) == "TokenError('TOKEN_EXPIRED')"
