//! The client subcommands' flags.

use std::path::PathBuf;

use clap::Args;

use crate::config::{Dur, KeyAlg};

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Server address.
    #[arg(long, env = "TESSERA_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// API key sent as `x-tessera-key`.
    #[arg(long, env = "TESSERA_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// CA bundle (PEM) the server's certificate must chain to. TLS needs an
    /// `https://` --addr; without --ca it is verified against the system's roots.
    #[arg(long, env = "TESSERA_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for a server that requires one (mTLS).
    #[arg(long, env = "TESSERA_CERT", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, env = "TESSERA_KEY", requires = "cert")]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(long)]
    pub subject: String,
    #[arg(long, default_value = "")]
    pub tenant: String,
    /// Audience (repeatable).
    #[arg(long)]
    pub audience: Vec<String>,
    /// Role (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Scope (repeatable).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// Custom claims as a JSON object.
    #[arg(long)]
    pub claims: Option<String>,
    #[arg(long, default_value = "")]
    pub device_fingerprint: String,
    #[arg(long)]
    pub access_ttl: Option<Dur>,
    #[arg(long)]
    pub refresh_ttl: Option<Dur>,
    /// Shown by `tessera sessions` ("Alice's phone").
    #[arg(long, default_value = "")]
    pub device_name: String,
    #[arg(long, default_value = "")]
    pub client_id: String,
    #[arg(long, default_value = "")]
    pub ip_address: String,
    #[arg(long, default_value = "")]
    pub user_agent: String,
    /// Bind the session to this client certificate's `x5t#S256` (RFC 8705).
    #[arg(long, default_value = "")]
    pub cert_thumbprint: String,
}

#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(long)]
    pub subject: String,
    #[arg(long, default_value = "")]
    pub tenant: String,
}

#[derive(Debug, Clone, Args)]
pub struct JwksArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// A tenant's keys (the server's `--tenants`); none: the default keys.
    #[arg(long, default_value = "")]
    pub tenant: String,
}

#[derive(Debug, Clone, Args)]
pub struct RefreshArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// (Session ids and tokens may begin with `-`: base64url.)
    #[arg(allow_hyphen_values = true)]
    pub refresh_token: String,
    #[arg(long, default_value = "")]
    pub device_fingerprint: String,
    /// The client certificate's thumbprint, for a certificate-bound session
    /// (else, over mTLS, that of the certificate the call is made with).
    #[arg(long, default_value = "")]
    pub cert_thumbprint: String,
}

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[arg(allow_hyphen_values = true)]
    pub access_token: String,
    #[arg(long, default_value = "")]
    pub audience: String,
    #[arg(long, default_value = "")]
    pub device_fingerprint: String,
    /// Allow sliding renewal.
    #[arg(long)]
    pub renew: bool,
    /// Required scope (repeatable).
    #[arg(long = "scope")]
    pub required_scopes: Vec<String>,
    /// Check revocation in the store, not only the replica's cache.
    #[arg(long)]
    pub strong: bool,
    /// The presenter's certificate thumbprint, for certificate-bound tokens.
    #[arg(long, default_value = "")]
    pub cert_thumbprint: String,
}

#[derive(Debug, Clone, Args)]
#[group(id = "target", required = true, multiple = false)]
pub struct RevokeTargetArgs {
    /// An access or refresh token.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub token: Option<String>,
    /// A session id (ids may begin with `-`: base64url).
    #[arg(long, group = "target", allow_hyphen_values = true)]
    pub session: Option<String>,
    /// A subject: every session of it ("log out everywhere").
    #[arg(long, group = "target")]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    #[command(flatten)]
    pub target: RevokeTargetArgs,
    /// Tenant of `--subject`.
    #[arg(long, default_value = "")]
    pub tenant: String,
    #[arg(long, default_value = "")]
    pub reason: String,
    /// With `--subject`: revoke every session of the subject but this one
    /// ("log out my other devices").
    #[arg(long, requires = "subject", allow_hyphen_values = true)]
    pub keep_session: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Resume after this cursor.
    #[arg(long, default_value = "")]
    pub after: String,
    /// First print every revocation still in force.
    #[arg(long)]
    pub snapshot: bool,
    /// Only events of these tenants (comma-separated or repeated; within
    /// the caller's own when it is scoped to tenants).
    #[arg(long, value_delimiter = ',')]
    pub tenant: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KeygenArgs {
    #[arg(long, value_parser = crate::config::key_alg_parser(), default_value = "eddsa")]
    pub alg: KeyAlg,
    /// Write the private key here (mode 0600) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
