//! `tessera-bench echo`: a trivial gRPC server (health only), the machine's
//! gRPC ceiling to compare a server's figures against in the same run.

use std::net::SocketAddr;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct EchoArgs {
    /// Listen address (loopback).
    #[arg(long, default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
}

/// Run the trivial echo server until SIGTERM/SIGINT.
pub async fn echo_server(args: EchoArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err("echo listens on loopback only".into());
    }
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    eprintln!("tessera-bench echo listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(health)
        .serve_with_shutdown(args.listen, crate::shutdown())
        .await
        .map_err(|e| e.to_string())
}
