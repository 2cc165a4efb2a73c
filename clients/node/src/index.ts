// @tessera/client: call Tessera from Node.js, and verify its access tokens
// locally with the server's own checks and reason codes.

export { TesseraClient, API_KEY_HEADER, DEFAULT_CHANNEL_OPTIONS } from "./client.js";
export type { ClientOptions, TlsOptions, RevokeTarget } from "./client.js";
export { TokenError, Reason, reasonOf, errorInfo } from "./errors.js";
export type { ErrorInfo, ReasonCode } from "./errors.js";
export { LocalVerifier } from "./verifier.js";
export type { Claims, LocalVerifierOptions, VerifyOptions } from "./verifier.js";
export { DEFAULT_CACHE, RevocationCache, VerifiedCache } from "./cache.js";
export type { CacheBounds, CacheStats } from "./cache.js";
export {
  ACCESS_TOKEN_TYP,
  MAX_TOKEN_BYTES,
  PublicKeys,
  certThumbprint,
  fingerprintHash,
  verifyToken,
} from "./token.js";
export type { AccessClaims, Confirmation, VerifyPolicy } from "./token.js";
export {
  bearerToken,
  claimsOf,
  CLAIM_HEADERS,
  encodeStatusDetails,
  expressMiddleware,
  httpRefusal,
  serverInterceptor,
} from "./middleware.js";
export type { AuthOptions, InterceptorOptions, RequestWithClaims } from "./middleware.js";
/** The generated stubs and messages of tessera.v1. */
export * as pb from "./gen/tessera/v1/tessera.js";
