//! Client subcommands for people at a shell: each prints JSON on stdout, or
//! `{"error": …}` on stderr with exit code 1. Every call goes through the
//! SDK (`tessera-client`): its stubs, its `x-tessera-key` header, its error
//! codes; this module adds the flags, the channel (TLS from the flags) and
//! the JSON.

use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use tessera_client::ClientError;
use tonic::Status;

mod args;
mod calls;
mod connect;
mod output;

pub use args::*;

/// The `tessera` command line: `serve`, and the client subcommands for
/// people at a shell. The server's modules never import this tree.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A gRPC token authority: issue, rotate, verify and revoke JWT sessions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token authority.
    Serve(Box<crate::config::ServeArgs>),
    /// Mint a session (prints the token pair as JSON).
    Issue(IssueArgs),
    /// Rotate a refresh token.
    Refresh(RefreshArgs),
    /// Verify an access token.
    Verify(VerifyArgs),
    /// Revoke a token, a session or a subject.
    Revoke(RevokeArgs),
    /// Follow the revocation feed (JSON lines).
    Watch(WatchArgs),
    /// List a subject's live sessions (every page, as one JSON array).
    Sessions(SessionsArgs),
    /// Print the public JWK set (of one tenant with `--tenant`).
    Jwks(JwksArgs),
    /// Write a new signing key pair (PKCS#8 PEM).
    Keygen(KeygenArgs),
}

/// Run a client subcommand; returns what to print.
pub async fn run(command: Command) -> Result<Value, CliError> {
    match command {
        Command::Serve(_) => Err(fail("serve is not a client command")),
        Command::Issue(a) => calls::issue(a).await,
        Command::Refresh(a) => calls::refresh(a).await,
        Command::Verify(a) => calls::verify(a).await,
        Command::Revoke(a) => calls::revoke(a).await,
        Command::Watch(a) => calls::watch(a).await,
        Command::Sessions(a) => calls::sessions(a).await,
        Command::Jwks(a) => calls::jwks(a).await,
        Command::Keygen(a) => calls::keygen(a),
    }
}

/// A failed client call, printed as JSON.
#[derive(Debug)]
pub struct CliError(pub Value);

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError::from(ClientError::Rpc(s))
    }
}

/// The code, reason and message of a failed call. The SDK folds the
/// refusals that end a session into `SessionEnded` (their code is
/// `Unauthenticated` on the wire; the message is then the SDK's).
impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let (reason, message) = match &e {
            ClientError::Rpc(s) => (tessera_client::reason(s), s.message().to_owned()),
            ClientError::SessionEnded { reason } => (Some(reason.clone()), e.to_string()),
            other => (None, other.to_string()),
        };
        CliError(json!({ "error": {
            "code": format!("{:?}", e.code()),
            "reason": reason,
            "message": message,
        }}))
    }
}

fn fail(message: impl std::fmt::Display) -> CliError {
    CliError(json!({ "error": { "message": message.to_string() } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Session ids and tokens are base64url, so one in 64 begins with `-`:
    /// each is still a value, never taken for a flag (a CLI test failed on
    /// such an id by chance). Real flags beside them still parse.
    #[test]
    fn ids_and_tokens_may_begin_with_a_hyphen() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["tessera"][..], args].concat())
                .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        };
        match parse(&[
            "revoke",
            "--subject",
            "mo",
            "--keep-session",
            "-Vx9",
            "--reason",
            "r",
        ])
        .command
        {
            Command::Revoke(a) => {
                assert_eq!(a.keep_session.as_deref(), Some("-Vx9"));
                assert_eq!(a.reason, "r");
            }
            c => panic!("{c:?}"),
        }
        match parse(&["revoke", "--session", "-abc"]).command {
            Command::Revoke(a) => assert_eq!(a.target.session.as_deref(), Some("-abc")),
            c => panic!("{c:?}"),
        }
        match parse(&["revoke", "--token", "-abc.def"]).command {
            Command::Revoke(a) => assert_eq!(a.target.token.as_deref(), Some("-abc.def")),
            c => panic!("{c:?}"),
        }
        match parse(&["refresh", "-sid.secret", "--device-fingerprint", "d"]).command {
            Command::Refresh(a) => {
                assert_eq!(a.refresh_token, "-sid.secret");
                assert_eq!(a.device_fingerprint, "d");
            }
            c => panic!("{c:?}"),
        }
        match parse(&["verify", "--audience", "api", "-eyJ.x.y"]).command {
            Command::Verify(a) => {
                assert_eq!(a.access_token, "-eyJ.x.y");
                assert_eq!(a.audience, "api");
            }
            c => panic!("{c:?}"),
        }
    }
}
