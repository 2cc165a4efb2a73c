//! The transport layer: what faces the network. The gRPC server's tower
//! layers (caller authentication, caller budgets, stream caps), the HTTP
//! servers (OAuth endpoints, admin, their shared limits) and TLS. It turns
//! requests into calls of the authority (`crate::authority`) and never
//! the other way round.

pub(crate) mod admin;
pub(crate) mod caller_limits;
pub mod callers;
pub(crate) mod grpc;
pub(crate) mod health;
pub(crate) mod layer;
pub mod limits;
pub(crate) mod oauth;
pub(crate) mod tls;
pub(crate) mod web;
