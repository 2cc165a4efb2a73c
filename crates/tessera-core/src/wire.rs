//! The names of the wire contract, defined once: the gRPC service and its
//! methods, the metadata headers, and the `ErrorInfo` reason codes.

macro_rules! service_name {
    () => {
        "tessera.v1.TokenAuthority"
    };
}

/// The fully qualified gRPC service name (health checks know it by this).
pub const SERVICE_NAME: &str = service_name!();

/// The HTTP/2 path prefix of the service's methods (`/<service>/<method>`).
pub const SERVICE_PATH_PREFIX: &str = concat!("/", service_name!(), "/");

/// The `ErrorInfo.domain` of every error Tessera returns.
pub const ERROR_DOMAIN: &str = "tessera";

/// Metadata that carries a caller's API key.
pub const API_KEY_HEADER: &str = "x-tessera-key";

/// Response metadata that carries a token minted by sliding renewal.
pub const NEW_TOKEN_HEADER: &str = "x-new-token";

/// The RPCs a caller may be allowed (`allow` in the callers file), one
/// name each: the authority's methods, and `Check`, Envoy's external
/// authorization (`ENVOY_CHECK_PATH`). The one source of every RPC name the
/// server spells (allow lists, `--caller-rate`, metrics labels, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rpc {
    Issue,
    Refresh,
    Verify,
    Revoke,
    WatchRevocations,
    GetJwks,
    ListSessions,
    Exchange,
    Check,
}

impl Rpc {
    /// Every RPC, in the order of the proto (then `Check`).
    pub const ALL: [Rpc; 9] = [
        Rpc::Issue,
        Rpc::Refresh,
        Rpc::Verify,
        Rpc::Revoke,
        Rpc::WatchRevocations,
        Rpc::GetJwks,
        Rpc::ListSessions,
        Rpc::Exchange,
        Rpc::Check,
    ];

    /// The method name, as on the wire (`/<service>/<name>`) and in the
    /// callers file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rpc::Issue => "Issue",
            Rpc::Refresh => "Refresh",
            Rpc::Verify => "Verify",
            Rpc::Revoke => "Revoke",
            Rpc::WatchRevocations => "WatchRevocations",
            Rpc::GetJwks => "GetJwks",
            Rpc::ListSessions => "ListSessions",
            Rpc::Exchange => "Exchange",
            Rpc::Check => "Check",
        }
    }
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`Rpc::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRpc(pub String);

impl std::fmt::Display for UnknownRpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown RPC {:?}", self.0)
    }
}

impl std::error::Error for UnknownRpc {}

impl std::str::FromStr for Rpc {
    type Err = UnknownRpc;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rpc::ALL
            .into_iter()
            .find(|rpc| rpc.as_str() == s)
            .ok_or_else(|| UnknownRpc(s.to_owned()))
    }
}

/// The RPC names of [`Rpc::ALL`], as strings.
pub const RPC_NAMES: &[&str] = &{
    let mut names = [""; Rpc::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Rpc::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The gRPC path of `WatchRevocations` (its stream is exempt from the
/// request timeout).
pub const WATCH_REVOCATIONS_PATH: &str = concat!("/", service_name!(), "/WatchRevocations");

/// The HTTP header (ext_authz answers) with the `ErrorInfo.reason` of a
/// refusal.
pub const REASON_HEADER: &str = "x-tessera-reason";

/// The gRPC path of Envoy's `Authorization/Check`, served beside the
/// authority and authorized as the RPC `Check`.
pub const ENVOY_CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// The RPC name of a gRPC path, for authorization: a method of the
/// authority, or `Check` for Envoy's; `None` for health and reflection.
pub fn rpc_of_path(path: &str) -> Option<&str> {
    path.strip_prefix(SERVICE_PATH_PREFIX)
        .or_else(|| (path == ENVOY_CHECK_PATH).then_some(Rpc::Check.as_str()))
}

/// The upstream header (with ext_authz's default prefix) that carries the
/// `act` chain of an exchanged token, as a JSON array of the actors' `sub`,
/// the current actor first (`[]` for a token that was not exchanged).
pub const ACTOR_HEADER: &str = "x-tessera-actor";

/// The name of [`ACTOR_HEADER`] after `--ext-authz-header-prefix`.
pub const ACTOR_HEADER_SUFFIX: &str = "actor";

/// RFC 8693 §2.1: the token-exchange grant of `POST /oauth2/token`.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// RFC 8693 §3: the token type of an access token (what Exchange issues).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// RFC 8693 §3: a JWT (a Tessera access token is one; accepted as a
/// subject or actor token type beside [`ACCESS_TOKEN_TYPE`]).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Metadata with the server's current DPoP nonce (RFC 9449 §8, the
/// `DPoP-Nonce` header of HTTP), on Verify and Refresh answers when
/// `--dpop-nonce` is on.
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// `ErrorInfo.reason` codes.
pub mod reason {
    pub const TOKEN_MALFORMED: &str = "TOKEN_MALFORMED";
    pub const TOKEN_SIGNATURE_INVALID: &str = "TOKEN_SIGNATURE_INVALID";
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    pub const TOKEN_NOT_YET_VALID: &str = "TOKEN_NOT_YET_VALID";
    pub const TOKEN_REVOKED: &str = "TOKEN_REVOKED";
    pub const ISSUER_MISMATCH: &str = "ISSUER_MISMATCH";
    pub const AUDIENCE_MISMATCH: &str = "AUDIENCE_MISMATCH";
    pub const FINGERPRINT_MISMATCH: &str = "FINGERPRINT_MISMATCH";
    /// `UNAUTHENTICATED`: a sender-constrained token without (or with
    /// another) proof of the key it is bound to (DESIGN §9).
    pub const TOKEN_BINDING_MISMATCH: &str = "TOKEN_BINDING_MISMATCH";
    /// `UNAUTHENTICATED`: a DPoP proof that fails a check (RFC 9449 §4.3).
    pub const DPOP_PROOF_INVALID: &str = "DPOP_PROOF_INVALID";
    /// `UNAUTHENTICATED`: a DPoP proof presented a second time.
    pub const DPOP_PROOF_REPLAYED: &str = "DPOP_PROOF_REPLAYED";
    pub const REFRESH_TOKEN_INVALID: &str = "REFRESH_TOKEN_INVALID";
    pub const REFRESH_TOKEN_REUSED: &str = "REFRESH_TOKEN_REUSED";
    pub const CALLER_UNAUTHENTICATED: &str = "CALLER_UNAUTHENTICATED";
    pub const SCOPE_MISSING: &str = "SCOPE_MISSING";
    pub const CALLER_NOT_ALLOWED: &str = "CALLER_NOT_ALLOWED";
    /// `PERMISSION_DENIED`: a caller scoped to tenants (`tenants = [...]`
    /// in the callers file) named, or presented a token, session or
    /// refresh token of, a tenant outside its scope (DESIGN §10).
    pub const TENANT_NOT_ALLOWED: &str = "TENANT_NOT_ALLOWED";
    /// `PERMISSION_DENIED`: an Exchange that asks for more than the subject
    /// token gives or the caller may request (wider scopes, an audience
    /// not in `exchange_audiences`, a longer lifetime, a chain over
    /// `--max-exchange-depth`, an actor of another tenant); the message
    /// says which (DESIGN §10).
    pub const EXCHANGE_NOT_ALLOWED: &str = "EXCHANGE_NOT_ALLOWED";
    pub const FIELD_INVALID: &str = "FIELD_INVALID";
    pub const CURSOR_INVALID: &str = "CURSOR_INVALID";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// `RESOURCE_EXHAUSTED`: the subject has `--max-sessions-per-subject`
    /// live sessions and the cap refuses new ones (a Tessera addition; DESIGN
    /// lists only `RATE_LIMITED` under that code).
    pub const SESSION_LIMIT: &str = "SESSION_LIMIT";
    pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";
    /// Not a contract code: a bug, reported as `INTERNAL`.
    pub const INTERNAL: &str = "INTERNAL";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_round_trip() {
        for rpc in Rpc::ALL {
            assert_eq!(rpc.as_str().parse::<Rpc>(), Ok(rpc));
        }
        assert_eq!(RPC_NAMES.len(), Rpc::ALL.len());
        assert!("issue".parse::<Rpc>().is_err());
        assert_eq!(
            rpc_of_path(WATCH_REVOCATIONS_PATH),
            Some(Rpc::WatchRevocations.as_str())
        );
    }
}
