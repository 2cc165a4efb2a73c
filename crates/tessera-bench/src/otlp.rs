//! A trace collector for benchmarks: OTLP/gRPC `TraceService` on loopback
//! that counts the spans it is sent and keeps none (BENCHMARKS.md,
//! "Tracing"). It answers at once, so what a run measures is Tessera's side
//! of tracing: making, sampling, batching and sending spans.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

#[derive(Debug, Clone, Args)]
pub struct SinkArgs {
    /// Listen address (loopback).
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub listen: SocketAddr,
}

#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counter {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Run the sink until SIGTERM/SIGINT, printing the span count when it moves.
pub async fn sink(args: SinkArgs) -> Result<(), String> {
    if !args.listen.ip().is_loopback() {
        return Err("the OTLP sink listens on loopback only".into());
    }
    let counter = Counter::default();
    let count = counter.0.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = count.load(Ordering::Relaxed);
            if now != last {
                eprintln!("otlp-sink: {now} spans received");
                last = now;
            }
        }
    });
    eprintln!("tessera-bench otlp-sink listening on {}", args.listen);
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(counter))
        .serve_with_shutdown(args.listen, crate::shutdown())
        .await
        .map_err(|e| e.to_string())
}
