// HTTP middleware (Express/Connect-style `(req, res, next)`, works with a
// bare node:http server too) and a grpc-js server interceptor, both backed
// by a LocalVerifier.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import { Metadata, ServerInterceptingCall, status as GrpcStatus } from "@grpc/grpc-js";
import type { ServerInterceptingCallInterface, ServerInterceptor, ServerMethodDefinition } from "@grpc/grpc-js";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { Reason, TokenError } from "./errors.js";
import { certThumbprint } from "./token.js";
import type { Claims, LocalVerifier, VerifyOptions } from "./verifier.js";

export interface AuthOptions {
  /** Overrides the verifier's audience. */
  audience?: string;
  /** Scopes every request must carry (403 / PERMISSION_DENIED otherwise). */
  requiredScopes?: readonly string[];
  /** `realm` of the WWW-Authenticate challenge. */
  realm?: string;
  /**
   * Read the presenter's client-certificate thumbprint from the TLS
   * connection, for certificate-bound tokens (default true).
   */
  useClientCertificate?: boolean;
}

/** The bearer token of an `Authorization` header value, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== "string") return undefined;
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  return m ? m[1] : undefined;
}

function quote(s: string): string {
  return s.replace(/[\\"]/g, "\\$&");
}

/** How a refusal is answered over HTTP: status and WWW-Authenticate challenge. */
export function httpRefusal(err: unknown, opts: AuthOptions = {}): { status: number; headers: Record<string, string>; body: unknown } {
  const realm = opts.realm ? `realm="${quote(opts.realm)}", ` : "";
  const reason = err instanceof TokenError ? err.reason : "";
  if (reason === Reason.STORE_UNAVAILABLE) {
    // The verifier cannot tell whether the token is revoked: not the
    // client's fault, and retrying soon may work.
    return { status: 503, headers: { "retry-after": "1" }, body: { error: "temporarily_unavailable", reason } };
  }
  if (reason === Reason.SCOPE_MISSING) {
    const scope = (opts.requiredScopes ?? []).join(" ");
    return {
      status: 403,
      headers: {
        "www-authenticate": `Bearer ${realm}error="insufficient_scope", error_description="${reason}"${scope ? `, scope="${quote(scope)}"` : ""}`,
      },
      body: { error: "insufficient_scope", reason },
    };
  }
  if (reason === "" || !(err instanceof TokenError)) {
    return { status: 500, headers: {}, body: { error: "server_error" } };
  }
  return {
    status: 401,
    headers: { "www-authenticate": `Bearer ${realm}error="invalid_token", error_description="${reason}"` },
    body: { error: "invalid_token", reason },
  };
}

/** The request property the middleware sets to the verified claims. */
export type RequestWithClaims = IncomingMessage & { tessera?: Claims };

type Next = (err?: unknown) => void;

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader("content-type", "application/json");
  res.setHeader("cache-control", "no-store");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.end(text);
}

/**
 * Express/Connect-style middleware: verifies `Authorization: Bearer <token>`
 * with `verifier` and sets `req.tessera` to the claims, then calls `next()`.
 * Refusals are answered here, never passed on:
 * - no bearer token: 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3.1, no error code);
 * - a bad, expired, revoked or mis-bound token: 401 with
 *   `WWW-Authenticate: Bearer error="invalid_token", error_description="<REASON>"`;
 * - a missing scope: 403 with `error="insufficient_scope"`;
 * - STORE_UNAVAILABLE (the verifier is out of sync with the revocation
 *   feed and fails closed): 503 with `Retry-After: 1`.
 */
export function expressMiddleware(verifier: LocalVerifier, opts: AuthOptions = {}) {
  const realm = opts.realm ? ` realm="${quote(opts.realm)}"` : "";
  return function tesseraAuth(req: IncomingMessage, res: ServerResponse, next: Next): void {
    const token = bearerToken(req.headers.authorization);
    if (token === undefined) {
      send(res, 401, { "www-authenticate": `Bearer${realm}` }, { error: "unauthorized" });
      return;
    }
    const vopts: VerifyOptions = { audience: opts.audience, requiredScopes: opts.requiredScopes };
    if (opts.useClientCertificate !== false) {
      const sock = req.socket as Partial<TLSSocket>;
      if (typeof sock.getPeerCertificate === "function") {
        const raw = sock.getPeerCertificate()?.raw;
        if (raw && raw.length > 0) vopts.certThumbprint = certThumbprint(raw);
      }
    }
    verifier.verify(token, vopts).then(
      (claims) => {
        (req as RequestWithClaims).tessera = claims;
        next();
      },
      (err) => {
        const r = httpRefusal(err, opts);
        send(res, r.status, r.headers, r.body);
      },
    );
  };
}

/** Encode a google.rpc.Status with one ErrorInfo (domain "tessera"), for grpc-status-details-bin. */
export function encodeStatusDetails(code: number, message: string, reason: string): Buffer {
  const info = new BinaryWriter().uint32(10).string(reason).uint32(18).string("tessera").finish();
  const any = new BinaryWriter()
    .uint32(10)
    .string("type.googleapis.com/google.rpc.ErrorInfo")
    .uint32(18)
    .bytes(info)
    .finish();
  const w = new BinaryWriter();
  if (code !== 0) w.uint32(8).int32(code);
  if (message !== "") w.uint32(18).string(message);
  w.uint32(26).bytes(any);
  return Buffer.from(w.finish());
}

const claimsByMetadata = new WeakMap<Metadata, Claims>();

/** Upstream metadata the interceptor sets (and strips from what the client sent). */
export const CLAIM_HEADERS = [
  "x-tessera-subject",
  "x-tessera-tenant",
  "x-tessera-session",
  "x-tessera-scopes",
  "x-tessera-roles",
] as const;

/** The claims the interceptor verified for a call (`call.metadata`), if any. */
export function claimsOf(call: { metadata: Metadata } | Metadata): Claims | undefined {
  const md = call instanceof Metadata ? call : call.metadata;
  return claimsByMetadata.get(md);
}

export interface InterceptorOptions extends AuthOptions {
  /** Which methods need a token (by full path, e.g. "/pkg.Svc/Method"); default: every method. */
  protect?: (path: string) => boolean;
}

/**
 * A grpc-js server interceptor (`new Server({ interceptors: [...] })`):
 * verifies `authorization: Bearer <token>` metadata with `verifier`. On
 * success the handler finds the claims with `claimsOf(call)` and as
 * `x-tessera-subject`, `-tenant`, `-session`, `-scopes`, `-roles` metadata
 * (client-sent values of those are removed first). On failure the call ends
 * with UNAUTHENTICATED (PERMISSION_DENIED for SCOPE_MISSING, UNAVAILABLE for
 * STORE_UNAVAILABLE) carrying a google.rpc.ErrorInfo with the reason, as
 * Tessera's own errors do.
 */
export function serverInterceptor(verifier: LocalVerifier, opts: InterceptorOptions = {}): ServerInterceptor {
  return (method: ServerMethodDefinition<unknown, unknown>, call: ServerInterceptingCallInterface) => {
    if (opts.protect && !opts.protect(method.path)) return new ServerInterceptingCall(call);
    return new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            for (const h of CLAIM_HEADERS) metadata.remove(h);
            const values = metadata.get("authorization");
            const token = values.length === 1 ? bearerToken(String(values[0])) : undefined;
            const fail = (err: unknown) => {
              const reason = err instanceof TokenError ? err.reason : "";
              const code =
                err instanceof TokenError ? err.code : GrpcStatus.UNAUTHENTICATED;
              const message = err instanceof TokenError ? err.message : "authentication failed";
              const trailers = new Metadata();
              if (reason) trailers.set("grpc-status-details-bin", encodeStatusDetails(code, message, reason));
              call.sendStatus({ code, details: message, metadata: trailers });
            };
            if (token === undefined) {
              // Nothing to verify: no reason code (as RFC 6750 §3.1 gives none).
              call.sendStatus({ code: GrpcStatus.UNAUTHENTICATED, details: "missing bearer token", metadata: new Metadata() });
              return;
            }
            const vopts: VerifyOptions = { audience: opts.audience, requiredScopes: opts.requiredScopes };
            if (opts.useClientCertificate !== false) {
              try {
                const raw = call.getAuthContext?.()?.sslPeerCertificate?.raw;
                if (raw && raw.length > 0) vopts.certThumbprint = certThumbprint(raw);
              } catch {
                // no TLS peer
              }
            }
            verifier.verify(token, vopts).then((claims) => {
              claimsByMetadata.set(metadata, claims);
              const set = (k: string, v: string) => {
                // Metadata values are printable ASCII; others only via claimsOf.
                if (/^[\x20-\x7e]*$/.test(v)) metadata.set(k, v);
              };
              set("x-tessera-subject", claims.subject);
              set("x-tessera-tenant", claims.tenant);
              set("x-tessera-session", claims.sessionId);
              set("x-tessera-scopes", claims.scopes.join(" "));
              set("x-tessera-roles", claims.roles.join(" "));
              mdNext(metadata);
            }, fail);
          },
        });
      },
    });
  };
}
