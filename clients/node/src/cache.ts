// The bounded cache of verified tokens and the revocation cache fed by the
// feed: the Node counterparts of crates/tessera-core/src/verified.rs and
// revocation.rs.

import { createHash } from "node:crypto";

import type { AccessClaims } from "./token.js";

/** Bounds of the verified-token cache; either 0 turns it off. */
export interface CacheBounds {
  maxEntries: number;
  maxBytes: number;
}

export const DEFAULT_CACHE: CacheBounds = { maxEntries: 65_536, maxBytes: 64 * 1024 * 1024 };

/** How often (seconds) expired entries are swept. */
export const SWEEP_INTERVAL_S = 10;

/** A verified token's claims, with what later checks derive from them. */
export interface Verified {
  claims: AccessClaims;
  /** The revocation cache's key of the token's tenant and subject. */
  subjectKey: string;
}

interface Entry {
  verified: Verified;
  kid: string;
  generation: number;
  weight: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  expired: number;
  keyChanges: number;
  entries: number;
  bytes: number;
}

/** Bytes an entry costs besides twice its token (an estimate, as in the Rust core). */
const ENTRY_OVERHEAD = 400;

/**
 * A bounded map from the exact token string to the claims it verified to.
 * Only tokens that passed full verification are admitted. Keyed by the
 * whole string (never a prefix or the signature alone). Entries count only
 * for the key set that verified them: a new set clears the map. Eviction is
 * a segmented FIFO: a new entry enters a probation segment and reaches the
 * protected one when hit again, so a flood of tokens seen once cycles
 * through probation and leaves the hot tokens in place.
 */
export class VerifiedCache {
  private readonly probation = new Map<string, Entry>();
  private readonly protectedSeg = new Map<string, Entry>();
  private probationBytes = 0;
  private protectedBytes = 0;
  private readonly minWeight: number;
  private readonly protectedCap: number;
  private generation = 0;
  private nextSweep = -Infinity;
  private readonly s: CacheStats = { hits: 0, misses: 0, evictions: 0, expired: 0, keyChanges: 0, entries: 0, bytes: 0 };

  constructor(private readonly bounds: CacheBounds) {
    this.minWeight = Math.max(1, Math.floor(bounds.maxBytes / bounds.maxEntries));
    this.protectedCap = Math.floor(bounds.maxBytes * 0.8);
  }

  static create(bounds: CacheBounds): VerifiedCache | undefined {
    if (!(bounds.maxEntries > 0) || !(bounds.maxBytes > 0)) return undefined;
    return new VerifiedCache(bounds);
  }

  /** Before every lookup: clear on a new key set; sweep expired entries when due. */
  maintain(generation: number, now: number, leeway: number): void {
    if (generation !== this.generation) {
      if (this.generation !== 0) this.s.keyChanges++;
      this.generation = generation;
      this.clear();
    }
    if (now >= this.nextSweep) {
      this.nextSweep = now + SWEEP_INTERVAL_S;
      for (const seg of [this.probation, this.protectedSeg]) {
        for (const [token, e] of seg) {
          if (now > e.verified.claims.exp + leeway) {
            this.delete(token);
            this.s.expired++;
          }
        }
      }
    }
  }

  get(token: string, generation: number): Verified | undefined {
    let e = this.protectedSeg.get(token);
    if (e === undefined) {
      e = this.probation.get(token);
      if (e !== undefined && e.generation === generation) {
        // Seen again: promote.
        this.probation.delete(token);
        this.probationBytes -= e.weight;
        this.protectedSeg.set(token, e);
        this.protectedBytes += e.weight;
        while (this.protectedBytes > this.protectedCap && this.protectedSeg.size > 1) {
          const [oldest, o] = this.protectedSeg.entries().next().value as [string, Entry];
          this.protectedSeg.delete(oldest);
          this.protectedBytes -= o.weight;
          this.probation.set(oldest, o);
          this.probationBytes += o.weight;
        }
      }
    }
    if (e === undefined || e.generation !== generation) {
      this.s.misses++;
      return undefined;
    }
    this.s.hits++;
    return e.verified;
  }

  insert(token: string, verified: Verified, kid: string, generation: number): void {
    if (this.probation.has(token) || this.protectedSeg.has(token)) this.delete(token);
    const weight = Math.max(this.minWeight, ENTRY_OVERHEAD + 2 * token.length);
    if (weight > this.bounds.maxBytes) return;
    this.probation.set(token, { verified, kid, generation, weight });
    this.probationBytes += weight;
    while (
      this.probation.size + this.protectedSeg.size > this.bounds.maxEntries ||
      this.probationBytes + this.protectedBytes > this.bounds.maxBytes
    ) {
      const seg = this.probation.size > 0 ? this.probation : this.protectedSeg;
      const oldest = seg.keys().next().value as string;
      this.delete(oldest);
      this.s.evictions++;
    }
  }

  /** Drop a token found expired. */
  remove(token: string): void {
    if (this.delete(token)) this.s.expired++;
  }

  private delete(token: string): boolean {
    let e = this.probation.get(token);
    if (e) {
      this.probation.delete(token);
      this.probationBytes -= e.weight;
      return true;
    }
    e = this.protectedSeg.get(token);
    if (e) {
      this.protectedSeg.delete(token);
      this.protectedBytes -= e.weight;
      return true;
    }
    return false;
  }

  clear(): void {
    this.probation.clear();
    this.protectedSeg.clear();
    this.probationBytes = 0;
    this.protectedBytes = 0;
  }

  stats(): CacheStats {
    return {
      ...this.s,
      entries: this.probation.size + this.protectedSeg.size,
      bytes: this.probationBytes + this.protectedBytes,
    };
  }
}

/** What the revocation cache says about a token. */
export type CacheAnswer = "revoked" | "not-revoked" | "unknown";

export type RevocationKindName = "token" | "session" | "subject";

/** A revocation event as the cache applies it (times in Unix ms). */
export interface Revocation {
  kind: RevocationKindName;
  tokenId: string;
  sessionId: string;
  tenant: string;
  subject: string;
  /**
   * Subject events: the server's key of (tenant, subject)
   * (`RevocationEvent.subject_key`); absent or "" from servers before it,
   * whose events carry the raw subject instead.
   */
  subjectKey?: string;
  issuedBeforeMs: number;
  expiresAtMs: number;
}

/**
 * The revocation cache's key of a tenant's subject: the server's own
 * (`RevocationEvent.subject_key`), the first 22 characters of base64url
 * SHA-256 of tenant, NUL, subject (unambiguous for any strings: neither
 * may hold a NUL).
 */
export function subjectKey(tenant: string, subject: string): string {
  return createHash("sha256").update(`${tenant}\0${subject}`, "utf8").digest("base64url").slice(0, 22);
}

/** Does a subject cut-off (ms) kill a token issued at `iat` (seconds)? */
export function cutoffKills(iat: number, cutoffMs: number): boolean {
  return iat * 1000 < cutoffMs;
}

/**
 * The revocations in force, fed in order from the feed, and whether they
 * are complete: until the feed has caught up, every answer is "unknown"
 * (fail closed).
 */
export class RevocationCache {
  private readonly tokens = new Map<string, number>();
  private readonly sessions = new Map<string, number>();
  private readonly subjects = new Map<string, { cut: number; exp: number }>();
  private synced = false;

  inSync(): boolean {
    return this.synced;
  }
  setInSync(v: boolean): void {
    this.synced = v;
  }

  apply(ev: Revocation): void {
    switch (ev.kind) {
      case "token":
        this.tokens.set(ev.tokenId, ev.expiresAtMs);
        break;
      case "session":
        this.sessions.set(ev.sessionId, ev.expiresAtMs);
        break;
      case "subject": {
        // The server's key when it sends one: the raw subject is then not
        // needed (docs/integrating.md, "Following the feed").
        const key = ev.subjectKey || subjectKey(ev.tenant, ev.subject);
        const e = this.subjects.get(key) ?? { cut: 0, exp: 0 };
        e.cut = Math.max(e.cut, ev.issuedBeforeMs);
        e.exp = Math.max(e.exp, ev.expiresAtMs);
        this.subjects.set(key, e);
        break;
      }
    }
  }

  /** Drop entries whose tokens have expired by `nowMs`. */
  expire(nowMs: number): void {
    for (const [k, exp] of this.tokens) if (!(exp > nowMs)) this.tokens.delete(k);
    for (const [k, exp] of this.sessions) if (!(exp > nowMs)) this.sessions.delete(k);
    for (const [k, e] of this.subjects) if (!(e.exp > nowMs)) this.subjects.delete(k);
  }

  check(jti: string, sid: string, skey: string, iat: number, nowMs: number): CacheAnswer {
    if (!this.synced) return "unknown";
    const t = this.tokens.get(jti);
    if (t !== undefined && t > nowMs) return "revoked";
    const s = this.sessions.get(sid);
    if (s !== undefined && s > nowMs) return "revoked";
    const u = this.subjects.get(skey);
    if (u !== undefined && u.exp > nowMs && cutoffKills(iat, u.cut)) return "revoked";
    return "not-revoked";
  }

  get size(): number {
    return this.tokens.size + this.sessions.size + this.subjects.size;
  }
}
