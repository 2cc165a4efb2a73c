"""The in-memory state a local verifier keeps: revocations in force (fed by
the revocation feed, as ``tessera-core`` ``revocation.rs``) and the bounded
cache of verified tokens (as ``verified.rs``)."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

from ._tokens import AccessClaims

KIND_UNSPECIFIED = 0
KIND_TOKEN = 1
KIND_SESSION = 2
KIND_SUBJECT = 3


def subject_key(tenant: str, subject: str) -> str:
    """The server's key of a tenant's subject (``RevocationEvent.subject_key``):
    the first 22 characters of base64url SHA-256 of tenant, NUL, subject."""
    raw = f"{tenant}\0{subject}".encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode("ascii")[:22]


def _ms(ts: Any) -> int:
    """A ``google.protobuf.Timestamp`` (unset = 0) in Unix milliseconds."""
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


class RevocationCache:
    """Revocations still in force, and whether they are complete.

    Until the feed's caught-up marker arrives (and whenever the stream is
    broken) :meth:`check` answers ``None``: unknown, fail closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tokens: Dict[str, int] = {}  # jti -> expires at (ms)
        self.sessions: Dict[str, int] = {}  # sid -> expires at (ms)
        # subject key -> [cut-off ms, expires ms]
        self.subjects: Dict[str, List[int]] = {}
        self.in_sync = False

    def apply(self, ev: Any) -> None:
        """Apply one ``RevocationEvent`` (feed order)."""
        kind = ev.kind
        expires = _ms(ev.expires_at)
        with self._lock:
            if kind == KIND_TOKEN:
                self.tokens[ev.token_id] = expires
            elif kind == KIND_SESSION:
                self.sessions[ev.session_id] = expires
            elif kind == KIND_SUBJECT:
                # The server's key when it sends one: the raw subject is then
                # not needed (docs/integrating.md, "Following the feed").
                key = getattr(ev, "subject_key", "") or subject_key(ev.tenant, ev.subject)
                entry = self.subjects.setdefault(key, [0, 0])
                entry[0] = max(entry[0], _ms(ev.issued_before))
                entry[1] = max(entry[1], expires)

    def expire(self, now_ms: int) -> None:
        """Forget entries whose tokens have all expired."""
        with self._lock:
            self.tokens = {k: v for k, v in self.tokens.items() if v > now_ms}
            self.sessions = {k: v for k, v in self.sessions.items() if v > now_ms}
            self.subjects = {k: v for k, v in self.subjects.items() if v[1] > now_ms}

    def check(self, claims: AccessClaims, now_ms: int) -> Optional[bool]:
        """Revoked? ``None`` when the cache is not in sync."""
        if not self.in_sync:
            return None
        exp = self.tokens.get(claims.jti)
        if exp is not None and exp > now_ms:
            return True
        exp = self.sessions.get(claims.sid)
        if exp is not None and exp > now_ms:
            return True
        if self.subjects:
            entry = self.subjects.get(subject_key(claims.tid, claims.sub))
            # A cut-off kills every token issued before it, and one issued
            # in the same second (iat is whole seconds).
            if entry is not None and entry[1] > now_ms and claims.iat * 1000 < entry[0]:
                return True
        return False

    def __len__(self) -> int:
        return len(self.tokens) + len(self.sessions) + len(self.subjects)


#: Expired entries of the verified-token cache are swept this often (s).
SWEEP_INTERVAL_S = 10


class VerifiedCache:
    """Token string -> claims that passed full verification, with the
    ``kid`` and key-set generation that verified them.

    A hit counts only while the same key set is in force and holds the
    ``kid``; another key set clears the map. Failures are never cached.
    Bounded by entries and by (estimated) bytes, least recently used out
    first. Every check after the signature -- the validity window included
    -- still runs on a hit (the caller's business)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._min_weight = max_bytes // max(max_entries, 1)
        self._map: "OrderedDict[str, Tuple[AccessClaims, str, int, int]]" = OrderedDict()
        self._bytes = 0
        self._generation = 0
        self._next_sweep = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expired = 0
        self.key_changes = 0

    def maintain(self, generation: int, now: int, leeway: int) -> None:
        if generation != self._generation:
            with self._lock:
                if generation != self._generation:
                    if self._map:
                        self.key_changes += 1
                    self._map.clear()
                    self._bytes = 0
                    self._generation = generation
        if now >= self._next_sweep:
            with self._lock:
                self._next_sweep = now + SWEEP_INTERVAL_S
                # list(): one C-level pass, atomic under the GIL, while other
                # threads may move entries (get() does not take the lock)
                dead = [t for t, e in list(self._map.items()) if now > e[0].exp + leeway]
                for t in dead:
                    self._drop(t)
                    self.expired += 1

    def get(self, token: str, generation: int, keys: Any) -> Optional[AccessClaims]:
        entry = self._map.get(token)
        if entry is None or entry[2] != generation or entry[1] not in keys:
            self.misses += 1
            return None
        try:
            self._map.move_to_end(token)
        except KeyError:  # evicted meanwhile by another thread
            pass
        self.hits += 1
        return entry[0]

    def insert(self, token: str, claims: AccessClaims, kid: str, generation: int) -> None:
        weight = max(200 + 2 * len(token), self._min_weight)
        with self._lock:
            if generation != self._generation or token in self._map:
                return
            self._map[token] = (claims, kid, generation, weight)
            self._bytes += weight
            while self._map and (
                len(self._map) > self.max_entries or self._bytes > self.max_bytes
            ):
                oldest = next(iter(self._map))
                self._drop(oldest)
                self.evictions += 1

    def remove_expired(self, token: str) -> None:
        with self._lock:
            if token in self._map:
                self._drop(token)
                self.expired += 1

    def _drop(self, token: str) -> None:
        entry = self._map.pop(token, None)
        if entry is not None:
            self._bytes -= entry[3]

    def stats(self) -> Dict[str, int]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "expired": self.expired,
            "key_changes": self.key_changes,
            "entries": len(self._map),
            "bytes": self._bytes,
        }
