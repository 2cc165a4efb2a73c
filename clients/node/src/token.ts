// The token core: the JWK set, and the checks of an access token's
// signature, type, issuer and validity window with the server's reason
// codes (crates/tessera-core/src/tokens.rs, jwks.rs). Headers and payloads
// are parsed strictly here; jose/WebCrypto only checks the signature.

import { createHash, timingSafeEqual, webcrypto } from "node:crypto";
import { importJWK } from "jose";
import { TokenError, Reason } from "./errors.js";
import { hasDuplicateOf, isObject, JsonNumber, parseStrictJson, toPlain } from "./json.js";
import type { JsonObject, JsonValue } from "./json.js";

/** Longest token accepted; longer input is refused before parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;
/** The JOSE `typ` of Tessera access tokens (RFC 9068 §2.1). */
export const ACCESS_TOKEN_TYP = "at+jwt";

const subtle = webcrypto.subtle;

/** A public key from the JWK set, for exactly one algorithm. */
export interface VerifyingKey {
  kid: string;
  alg: "EdDSA" | "ES256" | "RS256";
  key: webcrypto.CryptoKey;
}

let nextGeneration = 1;

/** The public keys of a JWK set (what GetJwks returns), by `kid`. */
export class PublicKeys {
  /** Changes whenever a new set is loaded: the verified-token cache is per set. */
  generation: number;
  /**
   * With a tenant, the set is that tenant's (GetJwks with `tenant`): its
   * keys vouch only for tokens with this `tid` and this `iss`.
   */
  tenant = "";
  issuer = "";
  private constructor(private readonly keys: Map<string, VerifyingKey>) {
    this.generation = nextGeneration++;
  }

  /** These keys as one tenant's (the server's `--tenants`). */
  forTenant(tenant: string, issuer: string): PublicKeys {
    this.tenant = tenant;
    this.issuer = issuer;
    this.generation = nextGeneration++;
    return this;
  }

  /**
   * Parse an RFC 7517 JWK set as the server's core does: keys without a
   * string `kid` and `alg`, or whose (alg, kty, crv) is not one of EdDSA/OKP/
   * Ed25519, ES256/EC/P-256, RS256/RSA, are skipped; a key that does not
   * import fails the whole set.
   */
  static async fromJwksJson(json: string): Promise<PublicKeys> {
    const bad = () => new Error("invalid JWK set");
    let set: unknown;
    try {
      set = JSON.parse(json);
    } catch {
      throw bad();
    }
    const list = (set as { keys?: unknown })?.keys;
    if (!Array.isArray(list)) throw bad();
    const keys = new Map<string, VerifyingKey>();
    for (const jwk of list as Record<string, unknown>[]) {
      if (typeof jwk !== "object" || jwk === null) continue;
      const { kid, alg, kty, crv } = jwk;
      if (typeof kid !== "string" || typeof alg !== "string") continue;
      let pub: Record<string, unknown>;
      if (alg === "EdDSA" && kty === "OKP" && crv === "Ed25519") {
        pub = { kty, crv, x: jwk.x };
      } else if (alg === "ES256" && kty === "EC" && crv === "P-256") {
        pub = { kty, crv, x: jwk.x, y: jwk.y };
      } else if (alg === "RS256" && kty === "RSA") {
        pub = { kty, n: jwk.n, e: jwk.e };
      } else {
        continue;
      }
      for (const [k, v] of Object.entries(pub)) if (k !== "kty" && typeof v !== "string") throw bad();
      let key: webcrypto.CryptoKey;
      try {
        // Ed25519 is "Ed25519" in WebCrypto; jose maps EdDSA/Ed25519 to it.
        key = (await importJWK(pub, alg === "EdDSA" ? "Ed25519" : alg)) as unknown as webcrypto.CryptoKey;
      } catch {
        try {
          key = (await importJWK(pub, alg)) as unknown as webcrypto.CryptoKey;
        } catch {
          throw bad();
        }
      }
      keys.set(kid, { kid, alg, key });
    }
    return new PublicKeys(keys);
  }

  get(kid: string): VerifyingKey | undefined {
    return this.keys.get(kid);
  }
  has(kid: string): boolean {
    return this.keys.has(kid);
  }
  get size(): number {
    return this.keys.size;
  }
  kids(): string[] {
    return [...this.keys.keys()];
  }
}

/** The confirmation claim (RFC 7800) of a bound token. */
export interface Confirmation {
  /** base64url SHA-256 of the device fingerprint (Tessera's own member). */
  "dfp#S256"?: string;
  /** RFC 8705: base64url SHA-256 of the client certificate's DER. */
  "x5t#S256"?: string;
  /** RFC 9449: the thumbprint of the DPoP key. */
  jkt?: string;
}

/** Every claim of a verified access token, as the token carries it. */
export interface AccessClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  sid: string;
  tid: string;
  roles: string[];
  scope: string;
  cnf?: Confirmation;
  /** The `act` chain of an exchanged token (RFC 8693 §4.1), current actor first; empty if not exchanged. */
  actors: string[];
  custom: Record<string, unknown>;
}

/** What verification needs besides the keys and the token. */
export interface VerifyPolicy {
  issuer: string;
  /** Clock-skew tolerance (seconds) for exp, nbf and iat. */
  leeway: number;
}

const malformed = () => new TokenError(Reason.TOKEN_MALFORMED);
const badSignature = () => new TokenError(Reason.TOKEN_SIGNATURE_INVALID);

const B64URL = /^[A-Za-z0-9_-]*$/;

/** Strict base64url without padding, canonical (no stray trailing bits). */
export function b64urlDecode(s: string): Buffer | undefined {
  if (!B64URL.test(s) || s.length % 4 === 1) return undefined;
  const buf = Buffer.from(s, "base64url");
  // Non-zero trailing bits decode to the same bytes as zero ones: refuse
  // them, as the server's decoder does.
  if (s.length % 4 !== 0 && buf.toString("base64url") !== s) return undefined;
  return buf;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function parsePart(b64: string): JsonObject;
function parsePart(b64: string, allowArray: true): JsonObject | JsonValue[];
function parsePart(b64: string, allowArray = false): JsonObject | JsonValue[] {
  const bytes = b64urlDecode(b64);
  if (!bytes) throw malformed();
  let v: JsonValue;
  try {
    v = parseStrictJson(utf8.decode(bytes));
  } catch {
    throw malformed();
  }
  if (allowArray && Array.isArray(v)) return v;
  if (!isObject(v)) throw malformed();
  return v;
}

/** Header members read before the key lookup (a duplicate of one is refused). */
const HEADER_KEYS = ["alg", "kid", "typ", "crit", "b64"] as const;
/** Header members the server's JOSE library types after the key lookup. */
const JOSE_HEADER_KEYS = ["cty", "jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "enc", "zip", "url", "nonce"] as const;
/** Header members that must be strings when present (or null). */
const HEADER_STRINGS = ["cty", "jku", "x5u", "x5t", "x5t#S256", "url", "nonce", "enc", "zip"] as const;
/** Members of a header `jwk` that the server's JOSE library types: strings, and lists of strings. */
const JWK_STRINGS = ["use", "alg", "kid", "x5u", "x5t", "x5t#S256"] as const;
const JWK_LISTS = ["key_ops", "x5c"] as const;
/** Registered claims the server reads (a duplicate of one is refused). */
const CLAIM_KEYS = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "tid", "roles", "scope", "cnf", "act"] as const;
const ACTOR_KEYS = ["sub", "act"] as const;
const CNF_KEYS = ["dfp#S256", "x5t#S256", "jkt"] as const;

/** The header of a token, parsed strictly; `undefined` when it does not parse. */
export function headerKid(token: string): string | undefined {
  const dot = token.indexOf(".");
  if (dot < 0) return undefined;
  try {
    const h = parsePart(token.slice(0, dot));
    return typeof h.kid === "string" ? h.kid : undefined;
  } catch {
    return undefined;
  }
}

const LIMIT = 9007199254740992n; // 2^53

/** A NumericDate, strictly: an integer within ±2^53 (as the server's core). */
function numericDate(v: JsonValue | undefined): number {
  if (!(v instanceof JsonNumber) || !v.isInteger || v.raw === "-0") throw malformed();
  const b = BigInt(v.raw);
  if (b < -LIMIT || b > LIMIT) throw malformed();
  return Number(b);
}

function requiredString(v: JsonValue | undefined): string {
  if (typeof v !== "string") throw malformed();
  return v;
}

function optionalString(obj: JsonObject, k: string): string {
  if (!(k in obj)) return "";
  return requiredString(obj[k]);
}

function stringList(v: JsonValue): string[] {
  if (!Array.isArray(v)) throw malformed();
  for (const s of v) if (typeof s !== "string") throw malformed();
  return v as string[];
}

/**
 * A struct given as a JSON array, as serde reads it: the members in
 * declaration order, at least `required` of them, no more than there are.
 */
function positional(arr: JsonValue[], keys: readonly string[], required: number): JsonObject {
  if (arr.length < required || arr.length > keys.length) throw malformed();
  const o: JsonObject = Object.create(null);
  arr.forEach((v, i) => (o[keys[i]!] = v));
  return o;
}

function claimsOf(p: JsonObject): AccessClaims {
  if (hasDuplicateOf(p, CLAIM_KEYS)) throw malformed();
  const iss = requiredString(p.iss);
  const sub = requiredString(p.sub);
  let aud: string[] = [];
  if ("aud" in p) {
    const a = p.aud!;
    aud = typeof a === "string" ? [a] : stringList(a);
  }
  const exp = numericDate(p.exp);
  const nbf = numericDate(p.nbf);
  const iat = numericDate(p.iat);
  const jti = requiredString(p.jti);
  const sid = requiredString(p.sid);
  const tid = optionalString(p, "tid");
  const roles = "roles" in p ? stringList(p.roles!) : [];
  const scope = optionalString(p, "scope");
  let cnf: Confirmation | undefined;
  if ("cnf" in p && p.cnf !== null) {
    let c = p.cnf!;
    // serde reads a struct from an array too: its members in order.
    if (Array.isArray(c)) c = positional(c, CNF_KEYS, 0);
    if (!isObject(c) || hasDuplicateOf(c, CNF_KEYS)) throw malformed();
    cnf = {};
    for (const k of CNF_KEYS) {
      const v = c[k];
      if (v === undefined || v === null) continue;
      cnf[k] = requiredString(v);
    }
  }
  const actors = actorChain(p.act);
  const custom: Record<string, unknown> = {};
  for (const k of Object.keys(p)) {
    if (!(CLAIM_KEYS as readonly string[]).includes(k)) custom[k] = toPlain(p[k]!);
  }
  return { iss, sub, aud, exp, nbf, iat, jti, sid, tid, roles, scope, cnf, actors, custom };
}

/**
 * `act` as serde reads the core's Actor: absent or null (none), an object
 * with a string `sub` and an optional nested `act` of the same shape (each
 * at most once, other members ignored), or that as a sequence [sub, act?].
 */
function actorChain(v: JsonValue | undefined): string[] {
  const chain: string[] = [];
  while (v !== undefined && v !== null) {
    let a = v;
    if (Array.isArray(a)) a = positional(a, ACTOR_KEYS, 1);
    if (!isObject(a) || hasDuplicateOf(a, ACTOR_KEYS)) throw malformed();
    chain.push(requiredString(a.sub));
    v = a.act;
  }
  return chain;
}

async function signatureValid(key: VerifyingKey, message: string, sig: Buffer): Promise<boolean> {
  const data = Buffer.from(message, "latin1"); // the message is base64url ASCII
  try {
    switch (key.alg) {
      case "EdDSA":
        return await subtle.verify({ name: "Ed25519" }, key.key, sig, data);
      case "ES256":
        if (sig.length !== 64) return false;
        return await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key.key, sig, data);
      case "RS256":
        return await subtle.verify({ name: "RSASSA-PKCS1-v1_5" }, key.key, sig, data);
    }
  } catch {
    return false;
  }
}

/**
 * Check signature and claims of an access token at `now` (Unix seconds):
 * did the server sign it, is it an access token, is it ours and within its
 * validity window. Audience, bindings, revocation and scopes are the
 * caller's. Throws a TokenError with the server's reason.
 */
export async function verifyToken(
  keys: PublicKeys,
  token: string,
  now: number,
  policy: VerifyPolicy,
): Promise<{ claims: AccessClaims; kid: string }> {
  if (token.length > MAX_TOKEN_BYTES) throw malformed();
  const parts = token.split(".");
  if (parts.length !== 3) throw malformed();
  const [h64, p64, s64] = parts as [string, string, string];
  let header = parsePart(h64, true);
  // The server reads its first view of the header (alg, kid, typ, crit, b64)
  // from an array too, positionally; its JOSE library then refuses it.
  const asArray = Array.isArray(header);
  if (Array.isArray(header)) header = positional(header, HEADER_KEYS, 1);
  if (hasDuplicateOf(header, HEADER_KEYS)) throw malformed();
  if (!("alg" in header)) throw malformed();
  // RFC 7515 §4.1.11: a crit we do not understand must be refused (we
  // understand none); b64:false (RFC 7797) changes what is signed.
  if ((header.crit ?? null) !== null || (header.b64 ?? null) !== null) throw malformed();
  const typ = header.typ;
  if (typeof typ !== "string") throw malformed();
  const t = typ.replace(/[A-Z]/g, (c) => c.toLowerCase()); // ASCII only, as the server
  if (t !== ACCESS_TOKEN_TYP && t !== "application/at+jwt") throw malformed();
  const kid = header.kid;
  if (typeof kid !== "string") throw badSignature();
  const key = keys.get(kid);
  if (!key) throw badSignature();
  // Algorithm pinning: the key decides, the token only has to agree.
  if (header.alg !== key.alg) throw badSignature();
  // The rest of the header as the server's JOSE library types it.
  if (asArray) throw malformed();
  if (hasDuplicateOf(header, JOSE_HEADER_KEYS)) throw malformed();
  for (const k of HEADER_STRINGS) {
    const v = header[k];
    if (v !== undefined && v !== null && typeof v !== "string") throw malformed();
  }
  if (header.x5c !== undefined && header.x5c !== null) stringList(header.x5c);
  const jwk = header.jwk;
  if (jwk !== undefined && jwk !== null) {
    if (!isObject(jwk)) throw malformed();
    for (const k of JWK_STRINGS) {
      const v = jwk[k];
      if (v !== undefined && v !== null && typeof v !== "string") throw malformed();
    }
    for (const k of JWK_LISTS) {
      const v = jwk[k];
      if (v !== undefined && v !== null) stringList(v);
    }
  }

  const sig = b64urlDecode(s64);
  if (!sig) throw malformed();
  if (!(await signatureValid(key, `${h64}.${p64}`, sig))) throw badSignature();

  const claims = claimsOf(parsePart(p64));
  let issuer = policy.issuer;
  if (keys.tenant !== "") {
    // One tenant's keys vouch for its tokens only: another tid is as if
    // signed by an unknown key (the server's rule).
    if (claims.tid !== keys.tenant) throw badSignature();
    issuer = keys.issuer;
  }
  if (claims.iss !== issuer) throw new TokenError(Reason.ISSUER_MISMATCH);
  if (claims.sub === "" || claims.jti === "" || claims.sid === "") throw malformed();
  checkWindow(claims, now, policy.leeway);
  return { claims, kid };
}

/** The validity window at `now` (Unix seconds) with `leeway`. */
export function checkWindow(claims: AccessClaims, now: number, leeway: number): void {
  if (now > claims.exp + leeway) throw new TokenError(Reason.TOKEN_EXPIRED);
  if (claims.nbf > now + leeway || claims.iat > now + leeway) throw new TokenError(Reason.TOKEN_NOT_YET_VALID);
}

/** base64url SHA-256. */
export function sha256b64(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("base64url");
}

/** The hash of a device fingerprint as tokens carry it in `cnf`. */
export function fingerprintHash(fingerprint: string): string {
  return fingerprint === "" ? "" : sha256b64(`tessera-dfp\0${fingerprint}`);
}

/** The RFC 8705 thumbprint (`x5t#S256`) of a certificate's DER. */
export function certThumbprint(der: Uint8Array): string {
  return sha256b64(der);
}

/** Equal strings, compared in constant time (for equal lengths). */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
