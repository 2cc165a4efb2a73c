//! `tessera-bench`: the load generator and the echo server, dev tools kept
//! out of the production binary (`tessera`). Loads only ever target this
//! machine (loopback), with bounded request counts and durations.
//!
//! - `tessera-bench load --addr 127.0.0.1:50051 --scenario verify …`: a
//!   bounded run, reported as a table or JSON (rates, percentiles, errors by
//!   code, CPU per request of the server, the store and itself).
//!   `--scenario revoke --sessions FILE --returned-out FILE` revokes the
//!   given sessions by id at `--rate` and writes when each `Revoke`
//!   returned (unix ns): the revoker of the client libraries' propagation
//!   benches (clients/*/BENCHMARKS.md), a process of its own.
//! - `tessera-bench echo --listen 127.0.0.1:50052`: a trivial gRPC server
//!   (health only), the machine's gRPC ceiling to compare against.
//! - `tessera-bench otlp-sink --listen 127.0.0.1:4317`: an OTLP/gRPC trace
//!   collector that counts the spans it receives and drops them, for
//!   measuring what tracing costs (`--otlp-endpoint`).
#![forbid(unsafe_code)]

mod echo;
mod load;
mod otlp;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tessera-bench",
    version,
    about = "Load generator and echo server for Tessera (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bounded load generator against a server on this machine.
    Load(Box<load::BenchArgs>),
    /// A trivial gRPC server (health only) to measure the machine's gRPC ceiling.
    Echo(echo::EchoArgs),
    /// An OTLP trace collector that counts spans and drops them.
    OtlpSink(otlp::SinkArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(a) => {
            let json_out = a.json;
            load::run(*a).await.map(|report| {
                if json_out {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).unwrap_or_default()
                    );
                } else {
                    print!("{}", load::table(&report));
                }
            })
        }
        Command::Echo(a) => echo::echo_server(a).await,
        Command::OtlpSink(a) => otlp::sink(a).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT: the echo server and the OTLP
/// sink stop there.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
