// LocalVerifier: verifies access tokens in process exactly as the server's
// Verify at default consistency does (clients/rust/src/verifier.rs), from
// the JWK set and the revocation feed; fails closed with STORE_UNAVAILABLE
// while its revocation cache is not in sync with the feed.

import { EventEmitter } from "node:events";
import { TesseraClient } from "./client.js";
import type { ClientOptions, TlsOptions } from "./client.js";
import { Reason, reasonOf, TokenError } from "./errors.js";
import { DEFAULT_CACHE, RevocationCache, subjectKey, VerifiedCache } from "./cache.js";
import type { CacheBounds, CacheStats, Revocation, Verified } from "./cache.js";
import {
  checkWindow,
  constantTimeEqual,
  fingerprintHash,
  headerKid,
  MAX_TOKEN_BYTES,
  PublicKeys,
  verifyToken,
} from "./token.js";
import type { AccessClaims, VerifyPolicy } from "./token.js";
import { RevocationKind } from "./gen/tessera/v1/tessera.js";
import type { RevocationEvent } from "./gen/tessera/v1/tessera.js";
import type { Timestamp } from "./gen/google/protobuf/timestamp.js";
import type { ClientReadableStream } from "@grpc/grpc-js";

/** The claims of a verified access token. */
export interface Claims {
  /** `sub` */
  readonly subject: string;
  /** `tid` ("" = none) */
  readonly tenant: string;
  /** `sid` */
  readonly sessionId: string;
  /** `jti` */
  readonly tokenId: string;
  readonly roles: readonly string[];
  /** `scope`, split on spaces. */
  readonly scopes: readonly string[];
  /** `exp`, Unix seconds. */
  readonly expiresAt: number;
  /** `aud` */
  readonly audience: readonly string[];
  /** `iss` */
  readonly issuer: string;
  /** `iat`, Unix seconds. */
  readonly issuedAt: number;
  /** `nbf`, Unix seconds. */
  readonly notBefore: number;
  /** Custom claims given at Issue. */
  readonly custom: Readonly<Record<string, unknown>>;
  /** The `act` chain of an exchanged token, current actor first; empty if not exchanged. */
  readonly actors: readonly string[];
}

export interface LocalVerifierOptions {
  /** `host:port` of the authority (or give `client`). */
  target?: string;
  /** The caller's API key (`x-tessera-key`); needs GetJwks and WatchRevocations. */
  apiKey?: string;
  /** TLS to the authority. */
  tls?: boolean | TlsOptions;
  /** An existing client to use instead of `target`/`apiKey`/`tls` (not closed by `close()`). */
  client?: TesseraClient;
  /** The issuer the server mints (`--issuer`); default "tessera". */
  issuer?: string;
  /**
   * Verify only this tenant's tokens (the server's `--tenants`): the
   * verifier fetches its keys (GetJwks with `tenant`: its own, else the
   * default ones) and expects the issuer the server names for them
   * (`issuer` only when it names none); another tenant's token is
   * TOKEN_SIGNATURE_INVALID. Absent or "": any tenant of the default keys.
   */
  tenant?: string;
  /** The audience tokens must name; absent or "" = no audience check. */
  audience?: string;
  /** Clock-skew tolerance in seconds (the server's `--leeway`); default 30. */
  leeway?: number;
  /** An unknown `kid` refetches the JWK set at most this often (ms); default 30 000. */
  minRefetchMs?: number;
  /** Refetch the JWK set this often regardless (ms), like the server's `--jwks-max-age`; default 300 000. */
  jwksMaxAgeMs?: number;
  /** Resume the feed after this cursor (saved from an earlier run) instead of a snapshot. */
  resumeCursor?: string;
  /** Bounds of the verified-token cache; `false` turns it off. Default 65 536 entries / 64 MiB. */
  cache?: CacheBounds | false;
  /** `start()` waits this long (ms) for the feed to catch up, then fails; 0 = do not wait. Default 10 000. */
  startTimeoutMs?: number;
  /** Reconnect backoff of the feed (exponential, full jitter): first ceiling and cap, ms. Default 100 / 3 000. */
  backoff?: { baseMs?: number; capMs?: number };
  /** Extra client options (channel options, timeouts) when `target` is given. */
  clientOptions?: Partial<ClientOptions>;
  /** The clock (Unix ms) that token windows and revocation horizons are checked against; default `Date.now`. For tests. */
  clock?: () => number;
}

/** What one verification checks besides the constructor's settings. */
export interface VerifyOptions {
  /** Overrides the constructor's `audience` for this call ("" = no check). */
  audience?: string;
  /** The device fingerprint, for a token bound to one. */
  fingerprint?: string;
  /** The presenter's client-certificate `x5t#S256`, for a certificate-bound token (RFC 8705). */
  certThumbprint?: string;
  /** Scopes the token must carry (SCOPE_MISSING otherwise). */
  requiredScopes?: readonly string[];
}

interface CachedVerified extends Verified {
  result: Claims;
}

const sleep = (ms: number, signal: { wake?: () => void }) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.wake = () => {
      clearTimeout(t);
      resolve();
    };
  });

function ms(t: Timestamp | undefined): number {
  return t ? t.seconds * 1000 + Math.floor(t.nanos / 1_000_000) : 0;
}

function toRevocation(e: RevocationEvent): Revocation | undefined {
  let kind: Revocation["kind"];
  switch (e.kind) {
    case RevocationKind.REVOCATION_KIND_TOKEN:
      kind = "token";
      break;
    case RevocationKind.REVOCATION_KIND_SESSION:
      kind = "session";
      break;
    case RevocationKind.REVOCATION_KIND_SUBJECT:
      kind = "subject";
      break;
    default:
      return undefined;
  }
  return {
    kind,
    tokenId: e.tokenId,
    sessionId: e.sessionId,
    tenant: e.tenant,
    subject: e.subject,
    subjectKey: e.subjectKey,
    issuedBeforeMs: ms(e.issuedBefore),
    expiresAtMs: ms(e.expiresAt),
  };
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === "object" && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

function toClaims(c: AccessClaims): Claims {
  return deepFreeze({
    subject: c.sub,
    tenant: c.tid,
    sessionId: c.sid,
    tokenId: c.jti,
    roles: [...c.roles],
    scopes: c.scope.split(" ").filter((s) => s !== ""),
    expiresAt: c.exp,
    audience: [...c.aud],
    issuer: c.iss,
    issuedAt: c.iat,
    notBefore: c.nbf,
    custom: c.custom,
    actors: [...c.actors],
  });
}

function verified(c: AccessClaims): CachedVerified {
  return { claims: c, subjectKey: subjectKey(c.tid, c.sub), result: toClaims(c) };
}

/**
 * Verifies access tokens in process, with the server's checks and reason
 * codes: signature and algorithm by `kid`, `typ`, validity window with the
 * leeway, issuer, audience, device and certificate binding, revocation
 * (from the feed), scopes. A DPoP-bound token always fails with
 * TOKEN_BINDING_MISMATCH here (its proofs' replay set lives on the server):
 * verify those with the server.
 *
 * Emits `sync` (caught up with the feed), `desync` (out of sync: verify
 * fails closed), `resync` (the server refused the cursor; starting over
 * from a snapshot) and `warning` (a message; never a token or key).
 */
export class LocalVerifier extends EventEmitter {
  readonly client: TesseraClient;
  private readonly ownsClient: boolean;
  private readonly policy: VerifyPolicy;
  private readonly audience: string;
  private readonly minRefetchMs: number;
  private readonly jwksMaxAgeMs: number;
  private readonly tenant: string;
  private readonly startTimeoutMs: number;
  private readonly backoffBase: number;
  private readonly backoffCap: number;
  private readonly cache: VerifiedCache | undefined;
  private readonly feed = new RevocationCache();
  private readonly clock: () => number;
  private keys: PublicKeys | undefined;
  private lastFetch = 0;
  private refetching: Promise<boolean> | undefined;
  private cursorValue: string;
  private lastEvent: { revokedAtMs: number; at: number } | undefined;
  private stream: ClientReadableStream<RevocationEvent> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private wake: { wake?: () => void } = {};
  private closed = false;
  private started: Promise<void> | undefined;
  private following: Promise<void> | undefined;

  constructor(options: LocalVerifierOptions) {
    super();
    if (!options || (!options.client && !options.target)) throw new TypeError("LocalVerifier: target or client is required");
    const leeway = options.leeway ?? 30;
    if (!Number.isInteger(leeway) || leeway < 0) throw new TypeError("LocalVerifier: leeway must be a whole number of seconds >= 0");
    this.ownsClient = !options.client;
    this.client =
      options.client ??
      new TesseraClient({ ...options.clientOptions, target: options.target!, apiKey: options.apiKey, tls: options.tls });
    this.policy = { issuer: options.issuer ?? "tessera", leeway };
    this.tenant = options.tenant ?? "";
    this.audience = options.audience ?? "";
    this.minRefetchMs = options.minRefetchMs ?? 30_000;
    this.jwksMaxAgeMs = options.jwksMaxAgeMs ?? 300_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.backoffBase = options.backoff?.baseMs ?? 100;
    this.backoffCap = options.backoff?.capMs ?? 3_000;
    this.cache = options.cache === false ? undefined : VerifiedCache.create(options.cache ?? DEFAULT_CACHE);
    this.cursorValue = options.resumeCursor ?? "";
    this.clock = options.clock ?? Date.now;
  }

  /**
   * Fetch the JWK set and start following the revocation feed (a snapshot
   * of everything in force, then live; resumed from the last cursor after a
   * disconnect). Resolves once the feed has caught up; rejects (and closes)
   * when the JWK set cannot be fetched or the feed does not catch up within
   * `startTimeoutMs`.
   */
  start(): Promise<void> {
    this.started ??= this.doStart();
    return this.started;
  }

  private async doStart(): Promise<void> {
    if (this.closed) throw new Error("LocalVerifier is closed");
    try {
      this.keys = await this.fetchKeys();
      this.lastFetch = Date.now();
    } catch (e) {
      this.close();
      throw e;
    }
    if (this.closed) throw new Error("LocalVerifier was closed while starting");
    const expire = setInterval(() => {
      this.feed.expire(this.clock());
    }, 1000);
    const jwks = setInterval(() => void this.refreshKeys(), this.jwksMaxAgeMs);
    expire.unref();
    jwks.unref();
    this.timers.push(expire, jwks);
    this.following = this.follow().catch(() => {
      // Only a throwing event listener gets here: stay out of sync (fail closed).
      this.feed.setInSync(false);
    });
    if (this.startTimeoutMs > 0 && !(await this.waitInSync(this.startTimeoutMs))) {
      this.close();
      throw new TokenError(Reason.STORE_UNAVAILABLE, "revocation feed did not catch up in time");
    }
  }

  /** Emit an event; a listener that throws cannot break the feed. */
  private note(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch {
      // ignored
    }
  }

  /** Stop following the feed and release the connection (when the verifier made it). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.feed.setInSync(false);
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.stream?.cancel();
    this.wake.wake?.();
    if (this.ownsClient) this.client.close();
  }

  /** Is the revocation cache complete (feed connected and caught up)? */
  inSync(): boolean {
    return this.feed.inSync();
  }

  /** Wait until in sync, at most `timeoutMs`; resolves whether it is. */
  async waitInSync(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.feed.inSync()) {
      if (this.closed || Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /** The last cursor applied: save it to resume with `resumeCursor` after a restart. */
  get cursor(): string {
    return this.cursorValue;
  }

  /** How old the last revocation was when it arrived here (ms), if any arrived. */
  lag(): number | undefined {
    return this.lastEvent ? Math.max(0, this.lastEvent.at - this.lastEvent.revokedAtMs) : undefined;
  }

  /** The verified-token cache's counters (undefined when off). */
  cacheStats(): CacheStats | undefined {
    return this.cache?.stats();
  }

  /** Number of revocations in force held in memory. */
  get revocations(): number {
    return this.feed.size;
  }

  /**
   * Verify `token` with the server's checks and reason codes; throws a
   * TokenError whose `reason` is what the server's Verify would give
   * (STORE_UNAVAILABLE while out of sync with the feed: fail closed).
   */
  async verify(token: string, options?: VerifyOptions): Promise<Claims> {
    if (
      typeof token !== "string" ||
      token.length === 0 ||
      token.length > MAX_TOKEN_BYTES ||
      (token.length * 3 > MAX_TOKEN_BYTES && Buffer.byteLength(token) > MAX_TOKEN_BYTES)
    ) {
      throw new TokenError(Reason.FIELD_INVALID, "access_token must be 1 to 8192 bytes");
    }
    const keys = this.keys;
    if (!keys) throw new TokenError(Reason.STORE_UNAVAILABLE, "local verifier is not started");
    const nowMs = this.clock();
    const now = Math.floor(nowMs / 1000);
    let v: CachedVerified;
    try {
      v = await this.check(keys, token, now);
    } catch (e) {
      if (!(e instanceof TokenError) || e.reason !== Reason.TOKEN_SIGNATURE_INVALID || !(await this.refetchFor(token))) {
        throw e;
      }
      v = await this.check(this.keys!, token, now);
    }
    const c = v.claims;
    const audience = options?.audience ?? this.audience;
    if (audience !== "" && !c.aud.includes(audience)) throw new TokenError(Reason.AUDIENCE_MISMATCH);
    const cnf = c.cnf;
    if (cnf !== undefined) {
      const bound = cnf["dfp#S256"];
      if (bound !== undefined && !constantTimeEqual(fingerprintHash(options?.fingerprint ?? ""), bound)) {
        throw new TokenError(Reason.FINGERPRINT_MISMATCH);
      }
      const cert = cnf["x5t#S256"];
      if (cert !== undefined && !constantTimeEqual(options?.certThumbprint ?? "", cert)) {
        throw new TokenError(Reason.TOKEN_BINDING_MISMATCH);
      }
      // DPoP-bound (RFC 9449): the replay set of its proofs lives in the
      // store, across replicas; a local verifier cannot keep it, so it
      // fails closed. Verify such tokens with the server.
      if (cnf.jkt !== undefined) throw new TokenError(Reason.TOKEN_BINDING_MISMATCH);
    }
    switch (this.feed.check(c.jti, c.sid, v.subjectKey, c.iat, nowMs)) {
      case "revoked":
        throw new TokenError(Reason.TOKEN_REVOKED);
      case "unknown":
        throw new TokenError(Reason.STORE_UNAVAILABLE);
    }
    const required = options?.requiredScopes;
    if (required && required.length > 0) {
      const have = v.result.scopes;
      for (const s of required) if (!have.includes(s)) throw new TokenError(Reason.SCOPE_MISSING);
    }
    return v.result;
  }

  /** Signature, type, issuer and window, through the verified-token cache. */
  private async check(keys: PublicKeys, token: string, now: number): Promise<CachedVerified> {
    const cache = this.cache;
    if (cache) {
      cache.maintain(keys.generation, now, this.policy.leeway);
      const hit = cache.get(token, keys.generation) as CachedVerified | undefined;
      if (hit) {
        try {
          checkWindow(hit.claims, now, this.policy.leeway);
        } catch (e) {
          if ((e as TokenError).reason === Reason.TOKEN_EXPIRED) cache.remove(token);
          throw e;
        }
        return hit;
      }
    }
    const { claims, kid } = await verifyToken(keys, token, now, this.policy);
    const v = verified(claims);
    // Only if the key set did not change meanwhile.
    if (cache && this.keys === keys) cache.insert(token, v, kid, keys.generation);
    return v;
  }

  /** On an unknown `kid`, refetch the JWK set (at most every `minRefetchMs`). */
  private async refetchFor(token: string): Promise<boolean> {
    const kid = headerKid(token);
    if (kid === undefined || this.keys?.has(kid)) return false;
    if (this.refetching) return this.refetching;
    if (Date.now() - this.lastFetch < this.minRefetchMs) return false;
    this.lastFetch = Date.now();
    this.refetching = this.refreshKeys().finally(() => {
      this.refetching = undefined;
    });
    return this.refetching;
  }

  /** The JWK set this verifier trusts: the default keys, or its tenant's. */
  private async fetchKeys(): Promise<PublicKeys> {
    if (this.tenant === "") return PublicKeys.fromJwksJson(await this.client.jwks());
    const { jwksJson, issuer } = await this.client.jwksOf(this.tenant);
    const keys = await PublicKeys.fromJwksJson(jwksJson);
    return keys.forTenant(this.tenant, issuer || this.policy.issuer);
  }

  /** Fetch the JWK set and put it in force; false when that failed. */
  private async refreshKeys(): Promise<boolean> {
    try {
      const keys = await this.fetchKeys();
      this.keys = keys;
      this.lastFetch = Date.now();
      return true;
    } catch {
      this.note("warning", "could not refresh the JWK set");
      return false;
    }
  }

  /** Follow the feed until closed: snapshot, then live; on a break, out of sync and resume. */
  private async follow(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      let caughtUp = false;
      let reason = "";
      try {
        ({ caughtUp, reason } = await this.watchOnce());
      } catch {
        // a listener of ours threw: treat as a broken stream
      }
      if (this.feed.inSync()) {
        this.feed.setInSync(false);
        this.note("desync");
      }
      if (this.closed) break;
      if (caughtUp) attempt = 0;
      if (reason === Reason.CURSOR_INVALID && this.cursorValue !== "") {
        // Never trust a cursor the server does not know: start over from a
        // snapshot of everything in force.
        this.note("resync");
        this.cursorValue = "";
        continue;
      }
      const ceiling = Math.min(this.backoffCap, this.backoffBase * 2 ** Math.min(attempt, 30));
      attempt++;
      await sleep(Math.random() * ceiling, this.wake);
    }
  }

  private watchOnce(): Promise<{ caughtUp: boolean; reason: string }> {
    return new Promise((resolve) => {
      let caughtUp = false;
      let done = false;
      const finish = (reason: string) => {
        if (done) return;
        done = true;
        this.stream = undefined;
        resolve({ caughtUp, reason });
      };
      const cursor = this.cursorValue;
      let stream: ClientReadableStream<RevocationEvent>;
      try {
        stream = this.client.watchRevocations({ afterCursor: cursor, includeSnapshot: cursor === "", markCaughtUp: true });
      } catch {
        finish("");
        return;
      }
      this.stream = stream;
      stream.on("data", (ev: RevocationEvent) => {
        const r = toRevocation(ev);
        if (r === undefined && ev.kind !== RevocationKind.REVOCATION_KIND_UNSPECIFIED) {
          // A kind this version does not know: never take it for the
          // caught-up marker.
          this.note("warning", "revocation feed: an event of an unknown kind was ignored");
          if (ev.cursor !== "") this.cursorValue = ev.cursor;
          return;
        }
        if (r === undefined) {
          // The caught-up marker: the cache is complete from here on.
          if (ev.cursor !== "") this.cursorValue = ev.cursor;
          caughtUp = true;
          if (!this.closed && !this.feed.inSync()) {
            this.feed.setInSync(true);
            this.note("sync");
          }
          return;
        }
        this.feed.apply(r);
        this.lastEvent = { revokedAtMs: ms(ev.revokedAt), at: Date.now() };
        if (ev.cursor !== "") this.cursorValue = ev.cursor;
      });
      stream.on("error", (err) => {
        const reason = reasonOf(err);
        if (!this.closed) this.note("warning", `revocation feed: ${reason || (err as Error).message}`);
        finish(reason);
      });
      stream.on("end", () => finish(""));
      if (this.closed) stream.cancel();
    });
  }
}
