//! Tessera: a gRPC token authority.
//!
//! [`App::build`] assembles the whole authority from its configuration and
//! [`App::run`] serves it until a shutdown future resolves; `main.rs` and
//! the integration tests both start it.
#![forbid(unsafe_code)]

// The layers, top down; a module imports only its own layer and those
// below it (tests/it/architecture.rs checks):
//   assembly:  lib.rs, app (App: build the parts, run, drain), config, keyload,
//              signals; cli (client commands)
//   transport: gRPC wiring, HTTP (oauth, admin, web), TLS, callers and their limits
//   authority: one file per RPC, policy, tenancy
//   feed, then store (+ cursor, the position in the store's log)
//   base:      error, trace, telemetry, audit, refusals, clock (used by all)
mod app;
pub mod audit;
pub mod authority;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cursor;
pub mod error;
pub mod feed;
pub mod keyload;
pub mod refusals;
pub mod signals;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod transport;

/// The token core (claims, minting, verification, keys), shared with the SDK.
pub use tessera_core::{keys, tokens};

/// Generated protobuf and gRPC code of `proto/tessera/v1/tessera.proto`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tessera.v1");
    /// Encoded descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("tessera_descriptor");
}

pub use app::{App, Listeners, ServeError, LIVENESS_SERVICE};

/// The fully qualified gRPC service name, as health checks know it.
pub use tessera_core::wire::SERVICE_NAME;
