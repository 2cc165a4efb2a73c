"""``LocalVerifier`` / ``AsyncLocalVerifier``: verify access tokens in
process, deciding exactly as the server's ``Verify`` at default consistency
(the Rust SDK's ``LocalVerifier`` is the reference), from the JWK set
(``GetJwks``) and the revocation feed (``WatchRevocations``).

- Keys: fetched at start; a token whose ``kid`` is unknown refetches the
  set at most once per ``min_refetch`` (30 s) and retries once; the set is
  also refreshed every ``jwks_max_age`` seconds in the background.
- Revocations: a snapshot of everything in force, then the live feed, with
  the caught-up marker; after a break, resume from the last cursor (a
  refused cursor, ``CURSOR_INVALID``, is dropped: resync from a snapshot).
  Reconnects back off exponentially with full jitter (capped at
  ``backoff_cap`` seconds).
- Out of sync (not yet caught up, stream broken, server gone): ``verify``
  fails closed with ``STORE_UNAVAILABLE`` -- ask the server instead.
- A bounded cache of verified tokens skips parsing and the signature of a
  token seen before; every other check (window, audience, binding,
  revocation, scopes) runs on every call.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import grpc

from . import _tokens
from ._state import KIND_UNSPECIFIED, RevocationCache, VerifiedCache, _ms
from ._tokens import AccessClaims, PublicKeys
from .client import AsyncTesseraClient, TesseraClient
from .errors import (
    CURSOR_INVALID,
    FIELD_INVALID,
    STORE_UNAVAILABLE,
    TOKEN_BINDING_MISMATCH,
    TOKEN_EXPIRED,
    TOKEN_REVOKED,
    TOKEN_SIGNATURE_INVALID,
    TokenError,
    from_rpc_error,
)
from .pb import tessera_pb2 as pb

log = logging.getLogger("tessera_client")

DEFAULT_CACHE_ENTRIES = 65_536
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


@dataclass
class Claims:
    """The claims of a verified access token."""

    subject: str
    tenant: str
    session_id: str
    token_id: str
    roles: List[str]
    scopes: List[str]
    #: ``exp``, Unix seconds.
    expires_at: int
    audience: List[str] = field(default_factory=list)
    #: ``iat``, Unix seconds.
    issued_at: int = 0
    #: ``nbf``, Unix seconds.
    not_before: int = 0
    issuer: str = ""
    #: Custom claims given at Issue.
    custom: Dict[str, Any] = field(default_factory=dict)
    #: The ``act`` chain of an exchanged token, current actor first; empty
    #: when the token was not exchanged.
    actors: List[str] = field(default_factory=list)

    @classmethod
    def _of(cls, c: AccessClaims) -> "Claims":
        return cls(
            subject=c.sub,
            tenant=c.tid,
            session_id=c.sid,
            token_id=c.jti,
            roles=list(c.roles),
            scopes=list(c.scopes),
            expires_at=c.exp,
            audience=list(c.aud),
            issued_at=c.iat,
            not_before=c.nbf,
            issuer=c.iss,
            custom=dict(c.custom),
            actors=list(c.actors),
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Core:
    """What both verifiers share: keys, caches and the checks."""

    def __init__(
        self,
        issuer: str,
        audience: Optional[str],
        leeway: int,
        min_refetch: float,
        resume_cursor: str,
        cache_size: int,
        cache_bytes: int,
        tenant: str = "",
    ) -> None:
        self.issuer = issuer
        self.tenant = tenant
        self.audience = audience or ""
        self.leeway = int(leeway)
        self.min_refetch = min_refetch
        self.keys = PublicKeys({})
        self.jwks_json = ""
        self.last_fetch = 0.0
        self.fetch_lock = threading.Lock()
        self.feed = RevocationCache()
        self.cursor = resume_cursor
        self.last_event: Optional[tuple] = None  # (revoked_at ms, monotonic)
        self.cache = (
            VerifiedCache(cache_size, cache_bytes) if cache_size > 0 and cache_bytes > 0 else None
        )
        self.resyncs = 0
        self.breaks = 0
        #: The wall clock (ns); tests replay vectors at their generation time.
        self.time_ns = time.time_ns

    def set_keys(self, jwks_json: str, issuer: str = "") -> None:
        """Put in force a JWK set and the issuer the server names for it
        (``jwks_of``): with a tenant, the keys vouch only for its ``tid`` and
        that issuer (this verifier's ``issuer`` when the server names none)."""
        if self.tenant:
            issuer = issuer or self.issuer
            jwks_json_key = f"{issuer}\n{jwks_json}"
        else:
            jwks_json_key = jwks_json
        # The same set again (periodic refresh): keep it, and the cache with it.
        if jwks_json_key == self.jwks_json:
            return
        keys = PublicKeys.from_jwks_json(jwks_json)
        self.keys = keys.for_tenant(self.tenant, issuer) if self.tenant else keys
        self.jwks_json = jwks_json_key

    def token_claims(self, token: str, now: int) -> AccessClaims:
        """Signature, type, issuer, window -- through the cache."""
        keys = self.keys
        cache = self.cache
        if cache is None:
            return _tokens.verify_token(keys, token, now, self.issuer, self.leeway)[0]
        generation = keys.generation
        cache.maintain(generation, now, self.leeway)
        claims = cache.get(token, generation, keys.keys)
        if claims is not None:
            try:
                _tokens.check_window(claims, now, self.leeway)
            except TokenError as e:
                if e.reason == TOKEN_EXPIRED:
                    cache.remove_expired(token)
                raise
            return claims
        claims, kid = _tokens.verify_token(keys, token, now, self.issuer, self.leeway)
        cache.insert(token, claims, kid, generation)
        return claims

    def should_refetch(self, token: str) -> bool:
        """An unknown ``kid``, and the cooldown has passed (claims it)."""
        kid = _tokens.header_kid(token)
        if kid is None or kid in self.keys:
            return False
        with self.fetch_lock:
            if time.monotonic() - self.last_fetch < self.min_refetch:
                return False
            self.last_fetch = time.monotonic()
        return True

    def finish(
        self,
        claims: AccessClaims,
        now_ms: int,
        audience: Optional[str],
        fingerprint: str,
        cert_thumbprint: str,
        required_scopes: Sequence[str],
    ) -> Claims:
        _tokens.check_audience_and_binding(
            claims, self.audience if audience is None else audience, fingerprint
        )
        _tokens.check_certificate_binding(claims, cert_thumbprint)
        if claims.jkt is not None:
            # DPoP-bound (RFC 9449): the replay set of its proofs lives in the
            # store, across replicas; a local verifier cannot keep it.
            raise TokenError(TOKEN_BINDING_MISMATCH)
        revoked = self.feed.check(claims, now_ms)
        if revoked is None:
            raise TokenError(STORE_UNAVAILABLE)
        if revoked:
            raise TokenError(TOKEN_REVOKED)
        _tokens.check_scopes(claims, required_scopes)
        return Claims._of(claims)

    def on_event(self, ev: Any) -> bool:
        """Apply a feed message; True for the caught-up marker."""
        if ev.kind == KIND_UNSPECIFIED:
            self.feed.in_sync = True
            return True
        self.feed.apply(ev)
        self.last_event = (_ms(ev.revoked_at), time.monotonic())
        self.cursor = ev.cursor
        return False

    def request(self) -> pb.WatchRevocationsRequest:
        return pb.WatchRevocationsRequest(
            after_cursor=self.cursor,
            include_snapshot=not self.cursor,
            mark_caught_up=True,
        )

    def on_break(self, err: Optional[TokenError]) -> bool:
        """The stream ended; True when the cursor was refused (resync now)."""
        self.feed.in_sync = False
        self.breaks += 1
        if err is not None and err.reason == CURSOR_INVALID:
            log.warning("revocation feed refused our cursor; resynchronising from a snapshot")
            self.cursor = ""
            self.resyncs += 1
            return True
        log.warning(
            "revocation feed unavailable (%s); failing closed until back in sync",
            err.reason if err is not None else "stream ended",
        )
        return False


def _check_size(token: str) -> None:
    if not token or (len(token) > 2048 and len(token.encode("utf-8")) > _tokens.MAX_TOKEN_BYTES):
        raise TokenError(FIELD_INVALID, "access_token must be 1 to 8192 bytes")


@dataclass(frozen=True)
class _Options:
    jwks_max_age: float
    sync_timeout: float
    backoff_base: float
    backoff_cap: float


def _backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 16))))


class LocalVerifier:
    """Verifies access tokens in process (blocking API; the feed runs on a
    background thread).

    ``LocalVerifier(target, *, api_key=None, issuer="tessera",
    audience=None, leeway=30)``; use it as a context manager or call
    :meth:`start`/:meth:`close`. :meth:`verify` returns :class:`Claims` or
    raises :class:`TokenError` with the server's reason.

    ``tenant``: verify only that tenant's tokens (the server's
    ``--tenants``): the verifier fetches its keys (``GetJwks`` with
    ``tenant``: its own, else the default ones) and expects the issuer the
    server names for them (``issuer`` only when it names none); another
    tenant's token is ``TOKEN_SIGNATURE_INVALID``.

    Other keywords: ``min_refetch`` (s, unknown-kid refetch cooldown),
    ``jwks_max_age`` (s, background refresh of the key set),
    ``resume_cursor`` (start from a saved cursor), ``cache_size`` /
    ``cache_bytes`` (verified-token cache bounds, 0 = off), ``sync_timeout``
    (how long :meth:`start` waits for the feed to catch up), ``backoff_base``
    / ``backoff_cap`` (s), and the TLS options of :class:`TesseraClient`
    (``tls``, ``root_certificates``, ``private_key``, ``certificate_chain``,
    ``server_name``).
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: Optional[str] = None,
        issuer: str = "tessera",
        audience: Optional[str] = None,
        leeway: int = 30,
        tenant: str = "",
        min_refetch: float = 30.0,
        jwks_max_age: float = 300.0,
        resume_cursor: str = "",
        cache_size: int = DEFAULT_CACHE_ENTRIES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        sync_timeout: float = 10.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 3.0,
        **client_options: Any,
    ) -> None:
        self._core = _Core(issuer, audience, leeway, min_refetch, resume_cursor,
                           cache_size, cache_bytes, tenant)
        self._target = target
        self._api_key = api_key
        self._client_options = client_options
        self._opt = _Options(
            jwks_max_age=jwks_max_age,
            sync_timeout=sync_timeout,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
        )
        self._client: Optional[TesseraClient] = None
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._call: Any = None

    # -- lifecycle --------------------------------------------------------

    def start(self) -> "LocalVerifier":
        """Fetch the JWK set (raises :class:`TokenError` if the server
        cannot be reached), start following the feed, and wait up to
        ``sync_timeout`` for it to catch up (verify fails closed until then)."""
        if self._client is not None:
            return self
        self._client = TesseraClient(self._target, api_key=self._api_key, **self._client_options)
        try:
            self._core.set_keys(*self._client.jwks_of(self._core.tenant))
        except BaseException:
            self._client.close()
            self._client = None
            raise
        self._core.last_fetch = time.monotonic()
        self._stop.clear()
        for fn, name in ((self._follow, "feed"), (self._maintain, "maintenance")):
            t = threading.Thread(target=fn, name=f"tessera-verifier-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.wait_in_sync(self._opt.sync_timeout)
        return self

    def close(self) -> None:
        """Stop following the feed and close the channel."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._core.feed.in_sync = False

    def __enter__(self) -> "LocalVerifier":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state ------------------------------------------------------------

    @property
    def in_sync(self) -> bool:
        """Is the revocation cache complete (stream up and caught up)?"""
        return self._core.feed.in_sync

    @property
    def cursor(self) -> str:
        """The last applied event's cursor (save it to resume later)."""
        return self._core.cursor

    @property
    def resyncs(self) -> int:
        """How many times a refused cursor made us resync from a snapshot."""
        return self._core.resyncs

    def lag(self) -> Optional[float]:
        """Age (s) of the last revocation when it arrived here."""
        last = self._core.last_event
        return None if last is None else max(0, _now_ms() - last[0]) / 1000

    def cache_stats(self) -> Optional[Dict[str, int]]:
        c = self._core.cache
        return None if c is None else c.stats()

    def wait_in_sync(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.in_sync:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # -- verify -----------------------------------------------------------

    def verify(
        self,
        token: str,
        *,
        audience: Optional[str] = None,
        fingerprint: str = "",
        cert_thumbprint: str = "",
        required_scopes: Sequence[str] = (),
    ) -> Claims:
        """Verify ``token`` with the server's checks and reason codes.

        ``audience`` overrides the verifier's (``""`` = no audience check);
        ``fingerprint`` is the device fingerprint of a device-bound token;
        ``cert_thumbprint`` the ``x5t#S256`` of the presenter's client
        certificate (see :func:`tessera_client.cert_thumbprint`). DPoP-bound
        tokens always fail with ``TOKEN_BINDING_MISMATCH`` here: verify them
        with the server. Raises :class:`TokenError`."""
        _check_size(token)
        core = self._core
        now_ms = core.time_ns() // 1_000_000
        try:
            claims = core.token_claims(token, now_ms // 1000)
        except TokenError as e:
            if e.reason != TOKEN_SIGNATURE_INVALID or not self._refetch_for(token):
                raise
            claims = core.token_claims(token, now_ms // 1000)
        return core.finish(claims, now_ms, audience, fingerprint, cert_thumbprint, required_scopes)

    def _refetch_for(self, token: str) -> bool:
        if self._client is None or not self._core.should_refetch(token):
            return False
        try:
            self._core.set_keys(*self._client.jwks_of(self._core.tenant, timeout=5.0))
        except (TokenError, ValueError) as e:
            log.warning("JWK set refetch failed: %s", getattr(e, "reason", "invalid JWK set"))
            return False
        return True

    # -- background -------------------------------------------------------

    def _follow(self) -> None:
        core = self._core
        attempt = 0
        while not self._stop.is_set():
            client = self._client
            if client is None:
                return
            err: Optional[TokenError] = None
            call = client.stub.WatchRevocations(core.request(), metadata=client.metadata)
            self._call = call
            try:
                for ev in call:
                    if core.on_event(ev):
                        attempt = 0
            except grpc.RpcError as e:
                if self._stop.is_set():
                    return
                err = from_rpc_error(e)
            except Exception:  # noqa: BLE001 - never die in sync: fail closed, retry
                log.exception("revocation feed handler failed")
                call.cancel()
            finally:
                self._call = None
                core.feed.in_sync = False
            if self._stop.is_set():
                return
            if core.on_break(err) and attempt == 0:
                attempt = 1
                continue  # a refused cursor: resync from a snapshot at once
            self._stop.wait(_backoff(attempt, self._opt.backoff_base, self._opt.backoff_cap))
            attempt += 1

    def _maintain(self) -> None:
        next_jwks = time.monotonic() + self._opt.jwks_max_age
        while not self._stop.wait(1.0):
            self._core.feed.expire(_now_ms())
            if time.monotonic() >= next_jwks and self._client is not None:
                next_jwks = time.monotonic() + self._opt.jwks_max_age
                try:
                    self._core.set_keys(*self._client.jwks_of(self._core.tenant, timeout=5.0))
                except (TokenError, ValueError):
                    log.warning("periodic JWK set refresh failed; keeping the current set")


class AsyncLocalVerifier:
    """:class:`LocalVerifier` for asyncio (``grpc.aio``): ``async with``,
    or ``await start()`` / ``await close()``; ``await verify(token)``.

    :meth:`verify_nowait` is the same check without awaiting (it never
    refetches keys), for hot paths that cannot await."""

    def __init__(
        self,
        target: str,
        *,
        api_key: Optional[str] = None,
        issuer: str = "tessera",
        audience: Optional[str] = None,
        leeway: int = 30,
        tenant: str = "",
        min_refetch: float = 30.0,
        jwks_max_age: float = 300.0,
        resume_cursor: str = "",
        cache_size: int = DEFAULT_CACHE_ENTRIES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        sync_timeout: float = 10.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 3.0,
        **client_options: Any,
    ) -> None:
        self._core = _Core(issuer, audience, leeway, min_refetch, resume_cursor,
                           cache_size, cache_bytes, tenant)
        self._target = target
        self._api_key = api_key
        self._client_options = client_options
        self._opt = _Options(
            jwks_max_age=jwks_max_age,
            sync_timeout=sync_timeout,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
        )
        self._client: Optional[AsyncTesseraClient] = None
        self._tasks: List["asyncio.Task[None]"] = []

    async def start(self) -> "AsyncLocalVerifier":
        if self._client is not None:
            return self
        self._client = AsyncTesseraClient(
            self._target, api_key=self._api_key, **self._client_options
        )
        try:
            self._core.set_keys(*await self._client.jwks_of(self._core.tenant))
        except BaseException:
            await self._client.close()
            self._client = None
            raise
        self._core.last_fetch = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._follow(), name="tessera-verifier-feed"),
            asyncio.create_task(self._maintain(), name="tessera-verifier-maintenance"),
        ]
        await self.wait_in_sync(self._opt.sync_timeout)
        return self

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        self._tasks = []
        if self._client is not None:
            await self._client.close()
            self._client = None
        self._core.feed.in_sync = False

    async def __aenter__(self) -> "AsyncLocalVerifier":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def in_sync(self) -> bool:
        return self._core.feed.in_sync

    @property
    def cursor(self) -> str:
        return self._core.cursor

    @property
    def resyncs(self) -> int:
        return self._core.resyncs

    def cache_stats(self) -> Optional[Dict[str, int]]:
        c = self._core.cache
        return None if c is None else c.stats()

    async def wait_in_sync(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.in_sync:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def verify_nowait(
        self,
        token: str,
        *,
        audience: Optional[str] = None,
        fingerprint: str = "",
        cert_thumbprint: str = "",
        required_scopes: Sequence[str] = (),
    ) -> Claims:
        _check_size(token)
        now_ms = self._core.time_ns() // 1_000_000
        claims = self._core.token_claims(token, now_ms // 1000)
        return self._core.finish(
            claims, now_ms, audience, fingerprint, cert_thumbprint, required_scopes
        )

    async def verify(
        self,
        token: str,
        *,
        audience: Optional[str] = None,
        fingerprint: str = "",
        cert_thumbprint: str = "",
        required_scopes: Sequence[str] = (),
    ) -> Claims:
        """As :meth:`LocalVerifier.verify`."""
        _check_size(token)
        core = self._core
        now_ms = core.time_ns() // 1_000_000
        try:
            claims = core.token_claims(token, now_ms // 1000)
        except TokenError as e:
            if e.reason != TOKEN_SIGNATURE_INVALID or not await self._refetch_for(token):
                raise
            claims = core.token_claims(token, now_ms // 1000)
        return core.finish(claims, now_ms, audience, fingerprint, cert_thumbprint, required_scopes)

    async def _refetch_for(self, token: str) -> bool:
        if self._client is None or not self._core.should_refetch(token):
            return False
        try:
            self._core.set_keys(*await self._client.jwks_of(self._core.tenant, timeout=5.0))
        except (TokenError, ValueError) as e:
            log.warning("JWK set refetch failed: %s", getattr(e, "reason", "invalid JWK set"))
            return False
        return True

    async def _follow(self) -> None:
        core = self._core
        attempt = 0
        while True:
            client = self._client
            if client is None:
                return
            err: Optional[TokenError] = None
            call = client.stub.WatchRevocations(core.request(), metadata=client.metadata)
            try:
                async for ev in call:
                    if core.on_event(ev):
                        attempt = 0
            except grpc.RpcError as e:
                err = from_rpc_error(e)
            except Exception:  # noqa: BLE001 - never die in sync: fail closed, retry
                log.exception("revocation feed handler failed")
            finally:
                call.cancel()
                core.feed.in_sync = False
            if core.on_break(err) and attempt == 0:
                attempt = 1
                continue
            await asyncio.sleep(_backoff(attempt, self._opt.backoff_base, self._opt.backoff_cap))
            attempt += 1

    async def _maintain(self) -> None:
        next_jwks = time.monotonic() + self._opt.jwks_max_age
        while True:
            await asyncio.sleep(1.0)
            self._core.feed.expire(_now_ms())
            if time.monotonic() >= next_jwks and self._client is not None:
                next_jwks = time.monotonic() + self._opt.jwks_max_age
                try:
                    self._core.set_keys(*await self._client.jwks_of(self._core.tenant, timeout=5.0))
                except (TokenError, ValueError):
                    log.warning("periodic JWK set refresh failed; keeping the current set")
