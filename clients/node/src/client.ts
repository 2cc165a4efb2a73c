// TesseraClient: promise-based calls over the generated grpc-js stubs, with
// the API key, TLS/mTLS, and TokenError (reason from ErrorInfo) on failure.

import { credentials, Metadata } from "@grpc/grpc-js";
import type { CallOptions, ChannelCredentials, ChannelOptions, ClientReadableStream, ServiceError } from "@grpc/grpc-js";
import { TokenError } from "./errors.js";
import {
  ExchangeRequest,
  GetJwksRequest,
  IssueRequest,
  ListSessionsRequest,
  RefreshRequest,
  RevokeRequest,
  TokenAuthorityClient,
  VerifyRequest,
  WatchRevocationsRequest,
} from "./gen/tessera/v1/tessera.js";
import type {
  DeepPartial,
  ExchangeResponse,
  IssueResponse,
  ListSessionsResponse,
  RefreshResponse,
  RevocationEvent,
  RevokeResponse,
  SubjectRef,
  VerifyResponse,
} from "./gen/tessera/v1/tessera.js";

/** Metadata that carries a caller's API key. */
export const API_KEY_HEADER = "x-tessera-key";

/** TLS to the server; with `cert` and `key`, mTLS (the caller's identity). */
export interface TlsOptions {
  /** PEM of the CA(s) that sign the server's certificate (default: the system roots). */
  ca?: Buffer | string;
  /** PEM client certificate chain (mTLS). */
  cert?: Buffer | string;
  /** PEM private key of the client certificate (mTLS). */
  key?: Buffer | string;
  /** Override the name checked against the server certificate. */
  serverName?: string;
}

export interface ClientOptions {
  /** `host:port` of the authority. */
  target: string;
  /** The caller's API key, sent as `x-tessera-key` on every call. */
  apiKey?: string;
  /** TLS (`true`: with the system roots). Absent: plaintext (loopback or a mesh only). */
  tls?: boolean | TlsOptions;
  /** Default deadline of unary calls, ms (default 10 s). */
  timeoutMs?: number;
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions;
}

/** A revocation target: exactly one of these. */
export type RevokeTarget =
  | { token: string; reason?: string }
  | { sessionId: string; reason?: string }
  | { subject: SubjectRef; reason?: string; keepSessionId?: string };

const pem = (v: Buffer | string | undefined) => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));

function channelCredentials(tls: ClientOptions["tls"]): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (tls === true) return credentials.createSsl();
  return credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert));
}

/** Channel defaults: keepalive pings, so a dead server is noticed, and a short reconnect backoff. */
export const DEFAULT_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.initial_reconnect_backoff_ms": 200,
  "grpc.max_reconnect_backoff_ms": 3_000,
};

/** Calls Tessera's `TokenAuthority` with promises; failures are `TokenError`s. */
export class TesseraClient {
  /** The generated grpc-js client, for anything not wrapped here. */
  readonly raw: TokenAuthorityClient;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ClientOptions) {
    if (!options || typeof options.target !== "string" || options.target === "") {
      throw new TypeError("TesseraClient: target is required");
    }
    if (options.apiKey !== undefined && !/^[\x20-\x7e]*$/.test(options.apiKey)) {
      throw new TypeError("TesseraClient: apiKey must be printable ASCII");
    }
    const channelOptions: ChannelOptions = { ...DEFAULT_CHANNEL_OPTIONS, ...options.channelOptions };
    if (typeof options.tls === "object" && options.tls.serverName) {
      channelOptions["grpc.ssl_target_name_override"] = options.tls.serverName;
      channelOptions["grpc.default_authority"] = options.tls.serverName;
    }
    this.raw = new TokenAuthorityClient(options.target, channelCredentials(options.tls), channelOptions);
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** Metadata of a call: the API key, plus `extra`. */
  metadata(extra?: Record<string, string>): Metadata {
    const md = new Metadata();
    if (this.apiKey) md.set(API_KEY_HEADER, this.apiKey);
    for (const [k, v] of Object.entries(extra ?? {})) md.set(k, v);
    return md;
  }

  private unary<Req, Res>(
    method: (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (e: ServiceError | null, r: Res) => void) => unknown,
    req: Req,
    opts?: { timeoutMs?: number; metadata?: Record<string, string> },
  ): Promise<Res> {
    const deadline = new Date(Date.now() + (opts?.timeoutMs ?? this.timeoutMs));
    return new Promise<Res>((resolve, reject) => {
      method.call(this.raw, req, this.metadata(opts?.metadata), { deadline }, (err, res) => {
        if (err) reject(TokenError.fromServiceError(err));
        else resolve(res);
      });
    });
  }

  /** Mint a session (Issue). */
  issue(req: DeepPartial<IssueRequest>, opts?: { timeoutMs?: number }): Promise<IssueResponse> {
    return this.unary(this.raw.issue, IssueRequest.fromPartial(req), opts);
  }

  /** Rotate a refresh token (Refresh). */
  refresh(req: DeepPartial<RefreshRequest>, opts?: { timeoutMs?: number }): Promise<RefreshResponse> {
    return this.unary(this.raw.refresh, RefreshRequest.fromPartial(req), opts);
  }

  /** Verify an access token on the server (Verify). */
  verify(req: DeepPartial<VerifyRequest>, opts?: { timeoutMs?: number }): Promise<VerifyResponse> {
    return this.unary(this.raw.verify, VerifyRequest.fromPartial(req), opts);
  }

  /**
   * Revoke a token, a session or a subject: `{ token }`, `{ sessionId }`,
   * `{ subject: { tenant, subject } }`, or a generated `RevokeRequest`.
   */
  revoke(req: RevokeTarget | DeepPartial<RevokeRequest>, opts?: { timeoutMs?: number }): Promise<RevokeResponse> {
    return this.unary(this.raw.revoke, toRevokeRequest(req), opts);
  }

  /**
   * RFC 8693 token exchange (Exchange): a narrower access token for
   * `audience` that names the subject token's user and this caller (or the
   * `actorToken`'s subject) as the actor; anything wider than the subject
   * token gives is `EXCHANGE_NOT_ALLOWED`.
   */
  exchange(req: DeepPartial<ExchangeRequest>, opts?: { timeoutMs?: number }): Promise<ExchangeResponse> {
    return this.unary(this.raw.exchange, ExchangeRequest.fromPartial(req), opts);
  }

  /** The JWK set JSON (GetJwks). */
  async jwks(opts?: { timeoutMs?: number }): Promise<string> {
    return (await this.jwksOf("", opts)).jwksJson;
  }

  /**
   * GetJwks for `tenant`: its own keys (the server's `--tenants`), else the
   * default ones, with the issuer of the tokens they sign.
   */
  async jwksOf(
    tenant: string,
    opts?: { timeoutMs?: number },
  ): Promise<{ jwksJson: string; issuer: string }> {
    const res = await this.unary(this.raw.getJwks, GetJwksRequest.fromPartial({ tenant }), opts);
    return { jwksJson: res.jwksJson, issuer: res.issuer };
  }

  /** A subject's live sessions, a page at a time (ListSessions). */
  listSessions(req: DeepPartial<ListSessionsRequest>, opts?: { timeoutMs?: number }): Promise<ListSessionsResponse> {
    return this.unary(this.raw.listSessions, ListSessionsRequest.fromPartial(req), opts);
  }

  /** The revocation feed (WatchRevocations); errors arrive as the stream's `error` event. */
  watchRevocations(req: DeepPartial<WatchRevocationsRequest>): ClientReadableStream<RevocationEvent> {
    return this.raw.watchRevocations(WatchRevocationsRequest.fromPartial(req), this.metadata());
  }

  /** Wait until the channel is connected (or the deadline passes). */
  waitForReady(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      this.raw.waitForReady(new Date(Date.now() + timeoutMs), (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.raw.close();
  }
}

function toRevokeRequest(req: RevokeTarget | DeepPartial<RevokeRequest>): RevokeRequest {
  const r = req as Record<string, unknown>;
  if ("target" in r) return RevokeRequest.fromPartial(req as DeepPartial<RevokeRequest>);
  const reason = typeof r.reason === "string" ? r.reason : "";
  if (typeof r.token === "string") return RevokeRequest.fromPartial({ target: { $case: "token", value: r.token }, reason });
  if (typeof r.sessionId === "string") {
    return RevokeRequest.fromPartial({ target: { $case: "sessionId", value: r.sessionId }, reason });
  }
  if (r.subject && typeof r.subject === "object") {
    return RevokeRequest.fromPartial({
      target: { $case: "subject", value: r.subject as SubjectRef },
      reason,
      keepSessionId: typeof r.keepSessionId === "string" ? r.keepSessionId : "",
    });
  }
  throw new TypeError("revoke: give one of token, sessionId or subject");
}
