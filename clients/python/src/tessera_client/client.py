"""``TesseraClient`` (blocking, ``grpcio``) and ``AsyncTesseraClient``
(``grpc.aio``): typed calls over the generated stubs, with the API key
(``x-tessera-key``) and TLS/mTLS, raising :class:`TokenError` whose
``reason`` is the server's ``ErrorInfo.reason``."""

from __future__ import annotations

from typing import (
    Any,
    AsyncIterator,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    Tuple,
)

import grpc
import grpc.aio
from google.protobuf import duration_pb2, struct_pb2

from .errors import TokenError, from_rpc_error
from .pb import tessera_pb2 as pb
from .pb import tessera_pb2_grpc as pb_grpc

API_KEY_HEADER = "x-tessera-key"
NEW_TOKEN_HEADER = "x-new-token"

#: Channel options: keepalive pings detect a dead server on an idle stream
#: (the revocation feed) within ~15 s even when no RST arrives. grpcio
#: 1.85 times a keepalive ping out after ``grpc.http2.ping_timeout_ms``
#: (default 60 s), not only ``keepalive_timeout_ms``: both are set
#: (tests/test_live.py::test_silent_server_is_caught_by_keepalive).
DEFAULT_CHANNEL_OPTIONS: Tuple[Tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
)


def _credentials(
    tls: bool,
    root_certificates: Optional[bytes],
    private_key: Optional[bytes],
    certificate_chain: Optional[bytes],
) -> Optional[grpc.ChannelCredentials]:
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("mTLS needs both private_key and certificate_chain")
    if not (tls or root_certificates or private_key):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )


def _options(server_name: Optional[str], options: Iterable[Tuple[str, Any]]) -> list:
    opts = dict(DEFAULT_CHANNEL_OPTIONS)
    opts.update(dict(options))
    if server_name:
        opts["grpc.ssl_target_name_override"] = server_name
    return list(opts.items())


def _duration(seconds: Optional[float]) -> Optional[duration_pb2.Duration]:
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


def _struct(claims: Optional[Mapping[str, Any]]) -> Optional[struct_pb2.Struct]:
    if not claims:
        return None
    s = struct_pb2.Struct()
    s.update(dict(claims))
    return s


def _issue_request(subject: str, **kw: Any) -> pb.IssueRequest:
    kw["access_ttl"] = _duration(kw.pop("access_ttl", None))
    kw["refresh_ttl"] = _duration(kw.pop("refresh_ttl", None))
    kw["claims"] = _struct(kw.pop("claims", None))
    for name in ("audience", "roles", "scopes"):
        v = kw.get(name)
        if isinstance(v, str):
            kw[name] = [v]
    return pb.IssueRequest(subject=subject, **{k: v for k, v in kw.items() if v is not None})


def _revoke_request(
    token: Optional[str],
    session_id: Optional[str],
    subject: Optional[str],
    tenant: str,
    reason: str,
    keep_session_id: str,
) -> pb.RevokeRequest:
    targets = [t for t in (token, session_id, subject) if t is not None]
    if len(targets) != 1:
        raise ValueError("revoke exactly one of token=, session_id=, subject=")
    if token is not None:
        return pb.RevokeRequest(token=token, reason=reason)
    if session_id is not None:
        return pb.RevokeRequest(session_id=session_id, reason=reason)
    return pb.RevokeRequest(
        subject=pb.SubjectRef(tenant=tenant, subject=subject or ""),
        reason=reason,
        keep_session_id=keep_session_id,
    )


def _verify_request(access_token: str, **kw: Any) -> pb.VerifyRequest:
    strong = kw.pop("strong", False)
    scopes = kw.pop("required_scopes", ())
    return pb.VerifyRequest(
        access_token=access_token,
        required_scopes=list(scopes),
        consistency=pb.CONSISTENCY_STRONG if strong else pb.CONSISTENCY_UNSPECIFIED,
        **kw,
    )


class TesseraClient:
    """A blocking client of ``tessera.v1.TokenAuthority``.

    >>> client = TesseraClient("127.0.0.1:50051", api_key="...")  # doctest: +SKIP
    >>> pair = client.issue("alice", audience=["api"], scopes=["read"])  # doctest: +SKIP

    TLS: ``tls=True`` (system roots) or ``root_certificates=`` (PEM bytes);
    mTLS: also ``private_key=`` and ``certificate_chain=``. Every failed call
    raises :class:`TokenError` with the server's reason (``UNKNOWN`` when
    the failure carried none, e.g. no connection).
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: Optional[str] = None,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        server_name: Optional[str] = None,
        options: Iterable[Tuple[str, Any]] = (),
        timeout: Optional[float] = 10.0,
    ) -> None:
        creds = _credentials(tls, root_certificates, private_key, certificate_chain)
        opts = _options(server_name, options)
        self.target = target
        self.channel: grpc.Channel = (
            grpc.secure_channel(target, creds, options=opts)
            if creds is not None
            else grpc.insecure_channel(target, options=opts)
        )
        self.stub = pb_grpc.TokenAuthorityStub(self.channel)
        self.timeout = timeout
        self._metadata: Tuple[Tuple[str, str], ...] = (
            ((API_KEY_HEADER, api_key),) if api_key else ()
        )

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """The call metadata (the API key), for calls on :attr:`stub`."""
        return self._metadata

    def _call(self, method: Any, request: Any, timeout: Optional[float] = None) -> Any:
        try:
            return method(
                request,
                metadata=self._metadata,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def issue(self, subject: str, **kw: Any) -> pb.TokenPair:
        """Mint a session; keywords are ``IssueRequest`` fields
        (``access_ttl``/``refresh_ttl`` in seconds, ``claims`` a dict)."""
        return self._call(self.stub.Issue, _issue_request(subject, **kw)).tokens

    def refresh(self, refresh_token: str, **kw: Any) -> pb.TokenPair:
        return self._call(
            self.stub.Refresh, pb.RefreshRequest(refresh_token=refresh_token, **kw)
        ).tokens

    def verify(self, access_token: str, **kw: Any) -> pb.VerifyResponse:
        """The server's ``Verify`` (``strong=True`` for CONSISTENCY_STRONG)."""
        return self._call(self.stub.Verify, _verify_request(access_token, **kw))

    def exchange(self, subject_token: str, **kw: Any) -> pb.ExchangeResponse:
        """RFC 8693 ``Exchange``: a narrower token for ``audience`` (a list)
        naming the subject token's user and this caller (or ``actor_token``'s
        subject) as the actor; keywords are ``ExchangeRequest`` fields."""
        req = pb.ExchangeRequest(subject_token=subject_token, **kw)
        return self._call(self.stub.Exchange, req)

    def revoke(
        self,
        *,
        token: Optional[str] = None,
        session_id: Optional[str] = None,
        subject: Optional[str] = None,
        tenant: str = "",
        reason: str = "",
        keep_session_id: str = "",
    ) -> str:
        """Revoke one token, one session, or every session of a subject;
        returns the event's cursor."""
        req = _revoke_request(token, session_id, subject, tenant, reason, keep_session_id)
        return self._call(self.stub.Revoke, req).cursor

    def jwks(self, timeout: Optional[float] = None) -> str:
        """The JWK set JSON."""
        return self.jwks_of("", timeout)[0]

    def jwks_of(self, tenant: str, timeout: Optional[float] = None) -> Tuple[str, str]:
        """``tenant``'s keys (its own under the server's ``--tenants``,
        else the default ones) as JWK set JSON, and the issuer of the
        tokens they sign."""
        r = self._call(self.stub.GetJwks, pb.GetJwksRequest(tenant=tenant), timeout)
        return r.jwks_json, r.issuer

    def list_sessions(self, subject: str, **kw: Any) -> pb.ListSessionsResponse:
        return self._call(self.stub.ListSessions, pb.ListSessionsRequest(subject=subject, **kw))

    def watch_revocations(
        self,
        after_cursor: str = "",
        *,
        include_snapshot: bool = False,
        mark_caught_up: bool = False,
    ) -> Iterator[pb.RevocationEvent]:
        """The revocation feed (no deadline); errors raise :class:`TokenError`."""
        call = self.stub.WatchRevocations(
            pb.WatchRevocationsRequest(
                after_cursor=after_cursor,
                include_snapshot=include_snapshot,
                mark_caught_up=mark_caught_up,
            ),
            metadata=self._metadata,
        )
        try:
            yield from call
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "TesseraClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncTesseraClient:
    """:class:`TesseraClient` on ``grpc.aio``: the same methods, awaited."""

    def __init__(
        self,
        target: str,
        *,
        api_key: Optional[str] = None,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        server_name: Optional[str] = None,
        options: Iterable[Tuple[str, Any]] = (),
        timeout: Optional[float] = 10.0,
    ) -> None:
        creds = _credentials(tls, root_certificates, private_key, certificate_chain)
        opts = _options(server_name, options)
        self.target = target
        self.channel: grpc.aio.Channel = (
            grpc.aio.secure_channel(target, creds, options=opts)
            if creds is not None
            else grpc.aio.insecure_channel(target, options=opts)
        )
        self.stub = pb_grpc.TokenAuthorityStub(self.channel)
        self.timeout = timeout
        self._metadata: Tuple[Tuple[str, str], ...] = (
            ((API_KEY_HEADER, api_key),) if api_key else ()
        )

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        return self._metadata

    async def _call(self, method: Any, request: Any, timeout: Optional[float] = None) -> Any:
        try:
            return await method(
                request,
                metadata=self._metadata,
                timeout=timeout if timeout is not None else self.timeout,
            )
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def issue(self, subject: str, **kw: Any) -> pb.TokenPair:
        return (await self._call(self.stub.Issue, _issue_request(subject, **kw))).tokens

    async def refresh(self, refresh_token: str, **kw: Any) -> pb.TokenPair:
        req = pb.RefreshRequest(refresh_token=refresh_token, **kw)
        return (await self._call(self.stub.Refresh, req)).tokens

    async def verify(self, access_token: str, **kw: Any) -> pb.VerifyResponse:
        return await self._call(self.stub.Verify, _verify_request(access_token, **kw))

    async def exchange(self, subject_token: str, **kw: Any) -> pb.ExchangeResponse:
        req = pb.ExchangeRequest(subject_token=subject_token, **kw)
        return await self._call(self.stub.Exchange, req)

    async def revoke(
        self,
        *,
        token: Optional[str] = None,
        session_id: Optional[str] = None,
        subject: Optional[str] = None,
        tenant: str = "",
        reason: str = "",
        keep_session_id: str = "",
    ) -> str:
        req = _revoke_request(token, session_id, subject, tenant, reason, keep_session_id)
        return (await self._call(self.stub.Revoke, req)).cursor

    async def jwks(self, timeout: Optional[float] = None) -> str:
        return (await self.jwks_of("", timeout))[0]

    async def jwks_of(self, tenant: str, timeout: Optional[float] = None) -> Tuple[str, str]:
        r = await self._call(self.stub.GetJwks, pb.GetJwksRequest(tenant=tenant), timeout)
        return r.jwks_json, r.issuer

    async def list_sessions(self, subject: str, **kw: Any) -> pb.ListSessionsResponse:
        req = pb.ListSessionsRequest(subject=subject, **kw)
        return await self._call(self.stub.ListSessions, req)

    async def watch_revocations(
        self,
        after_cursor: str = "",
        *,
        include_snapshot: bool = False,
        mark_caught_up: bool = False,
    ) -> AsyncIterator[pb.RevocationEvent]:
        call = self.stub.WatchRevocations(
            pb.WatchRevocationsRequest(
                after_cursor=after_cursor,
                include_snapshot=include_snapshot,
                mark_caught_up=mark_caught_up,
            ),
            metadata=self._metadata,
        )
        try:
            async for ev in call:
                yield ev
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncTesseraClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__: Sequence[str] = ("TesseraClient", "AsyncTesseraClient", "API_KEY_HEADER")
