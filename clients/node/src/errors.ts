// TokenError (with the server's ErrorInfo reason) and the decoding of
// google.rpc.Status / google.rpc.ErrorInfo from grpc-status-details-bin.

import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Metadata, status as GrpcStatus } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";

/** The `ErrorInfo.reason` codes of the wire contract (DESIGN.md §3, §9). */
export const Reason = {
  TOKEN_MALFORMED: "TOKEN_MALFORMED",
  TOKEN_SIGNATURE_INVALID: "TOKEN_SIGNATURE_INVALID",
  TOKEN_EXPIRED: "TOKEN_EXPIRED",
  TOKEN_NOT_YET_VALID: "TOKEN_NOT_YET_VALID",
  TOKEN_REVOKED: "TOKEN_REVOKED",
  ISSUER_MISMATCH: "ISSUER_MISMATCH",
  AUDIENCE_MISMATCH: "AUDIENCE_MISMATCH",
  FINGERPRINT_MISMATCH: "FINGERPRINT_MISMATCH",
  TOKEN_BINDING_MISMATCH: "TOKEN_BINDING_MISMATCH",
  DPOP_PROOF_INVALID: "DPOP_PROOF_INVALID",
  DPOP_PROOF_REPLAYED: "DPOP_PROOF_REPLAYED",
  REFRESH_TOKEN_INVALID: "REFRESH_TOKEN_INVALID",
  REFRESH_TOKEN_REUSED: "REFRESH_TOKEN_REUSED",
  CALLER_UNAUTHENTICATED: "CALLER_UNAUTHENTICATED",
  SCOPE_MISSING: "SCOPE_MISSING",
  CALLER_NOT_ALLOWED: "CALLER_NOT_ALLOWED",
  TENANT_NOT_ALLOWED: "TENANT_NOT_ALLOWED",
  FIELD_INVALID: "FIELD_INVALID",
  CURSOR_INVALID: "CURSOR_INVALID",
  RATE_LIMITED: "RATE_LIMITED",
  SESSION_LIMIT: "SESSION_LIMIT",
  STORE_UNAVAILABLE: "STORE_UNAVAILABLE",
} as const;

export type ReasonCode = (typeof Reason)[keyof typeof Reason] | string;

/** The gRPC status code the server uses for each reason a verifier gives. */
const CODE_OF: Record<string, number> = {
  SCOPE_MISSING: GrpcStatus.PERMISSION_DENIED,
  CALLER_NOT_ALLOWED: GrpcStatus.PERMISSION_DENIED,
  TENANT_NOT_ALLOWED: GrpcStatus.PERMISSION_DENIED,
  FIELD_INVALID: GrpcStatus.INVALID_ARGUMENT,
  CURSOR_INVALID: GrpcStatus.INVALID_ARGUMENT,
  RATE_LIMITED: GrpcStatus.RESOURCE_EXHAUSTED,
  SESSION_LIMIT: GrpcStatus.RESOURCE_EXHAUSTED,
  STORE_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
};

const MESSAGES: Record<string, string> = {
  TOKEN_MALFORMED: "token is malformed",
  TOKEN_SIGNATURE_INVALID: "token signature is invalid",
  TOKEN_EXPIRED: "token has expired",
  TOKEN_NOT_YET_VALID: "token is not yet valid",
  TOKEN_REVOKED: "token has been revoked",
  ISSUER_MISMATCH: "token issuer does not match",
  AUDIENCE_MISMATCH: "token audience does not match",
  FINGERPRINT_MISMATCH: "device fingerprint does not match",
  TOKEN_BINDING_MISMATCH: "token is bound to another key or certificate",
  SCOPE_MISSING: "token lacks a required scope",
  FIELD_INVALID: "invalid argument",
  STORE_UNAVAILABLE: "local verifier is not in sync with the revocation feed",
};

/**
 * Why a call or a local verification failed. `reason` is the server's
 * `ErrorInfo.reason` (or, from `LocalVerifier`, the reason the server's
 * `Verify` gives in the same case); `code` is the gRPC status code.
 * Messages never contain tokens or secrets.
 */
export class TokenError extends Error {
  readonly reason: string;
  readonly code: number;
  /** Extra `ErrorInfo.metadata` sent by the server, if any. */
  readonly metadata: Record<string, string>;

  constructor(reason: string, message?: string, code?: number, metadata?: Record<string, string>) {
    super(message ?? MESSAGES[reason] ?? reason);
    this.name = "TokenError";
    this.reason = reason;
    this.code = code ?? CODE_OF[reason] ?? GrpcStatus.UNAUTHENTICATED;
    this.metadata = metadata ?? {};
  }

  /** A TokenError from a failed grpc-js call (reason "" when the status has no ErrorInfo). */
  static fromServiceError(err: ServiceError | Error): TokenError {
    const se = err as Partial<ServiceError>;
    const info = se.metadata ? errorInfo(se.metadata) : undefined;
    const code = typeof se.code === "number" ? se.code : GrpcStatus.UNKNOWN;
    return new TokenError(info?.reason ?? "", se.details || err.message, code, info?.metadata);
  }
}

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";

/** The google.rpc.ErrorInfo of a status' `grpc-status-details-bin`, if any. */
export function errorInfo(metadata: Metadata): ErrorInfo | undefined {
  const values = metadata.get("grpc-status-details-bin");
  for (const v of values) {
    const bytes = typeof v === "string" ? Buffer.from(v, "base64") : v;
    try {
      const info = decodeStatusErrorInfo(bytes);
      if (info) return info;
    } catch {
      // A trailer that does not decode carries no reason.
    }
  }
  return undefined;
}

/** `ErrorInfo.reason` of a failed call, or "" when it has none. */
export function reasonOf(err: unknown): string {
  if (err instanceof TokenError) return err.reason;
  const md = (err as { metadata?: unknown } | null)?.metadata;
  if (md instanceof Metadata) return errorInfo(md)?.reason ?? "";
  return "";
}

// google.rpc.Status { int32 code = 1; string message = 2; repeated Any details = 3; }
// google.protobuf.Any { string type_url = 1; bytes value = 2; }
// google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string,string> metadata = 3; }
function decodeStatusErrorInfo(bytes: Uint8Array): ErrorInfo | undefined {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 3 && wire === 2) {
      const any = r.bytes();
      const a = new BinaryReader(any);
      let typeUrl = "";
      let value: Uint8Array | undefined;
      while (a.pos < a.len) {
        const [f, w] = a.tag();
        if (f === 1 && w === 2) typeUrl = a.string();
        else if (f === 2 && w === 2) value = a.bytes();
        else a.skip(w);
      }
      if (typeUrl === ERROR_INFO_TYPE && value) return decodeErrorInfo(value);
    } else {
      r.skip(wire);
    }
  }
  return undefined;
}

function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const r = new BinaryReader(bytes);
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  while (r.pos < r.len) {
    const [field, wire] = r.tag();
    if (field === 1 && wire === 2) info.reason = r.string();
    else if (field === 2 && wire === 2) info.domain = r.string();
    else if (field === 3 && wire === 2) {
      const e = new BinaryReader(r.bytes());
      let k = "";
      let v = "";
      while (e.pos < e.len) {
        const [f, w] = e.tag();
        if (f === 1 && w === 2) k = e.string();
        else if (f === 2 && w === 2) v = e.string();
        else e.skip(w);
      }
      info.metadata[k] = v;
    } else r.skip(wire);
  }
  return info;
}
