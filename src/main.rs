//! `tessera`: parse config, init tracing, build the [`tessera::App`] and
//! run it. Exit 64 (EX_USAGE) on bad
//! configuration, 1 on a failed client call or a server error.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: per-thread free lists suit a server that allocates small
/// request-scoped buffers on every call (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tessera::cli::{Cli, Command};
use tessera::config::{LogFormat, ServeArgs};

/// Logs on stderr (filtered by `TESSERA_LOG`) and, with `--otlp-endpoint`,
/// traces over OTLP (src/trace.rs), each layer with its own filter: the log
/// level does not decide which spans are exported, and the trace spans do
/// not appear in log lines. The guard flushes the traces at exit.
fn init_tracing(args: &ServeArgs) -> Result<Option<tessera::trace::Guard>, String> {
    use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a pipe, a file or a
    // container's log gets plain lines (escape codes there are noise to
    // every log tool, and writing them cost each line).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let logs = match args.log_format {
        LogFormat::Json => logs.json().boxed(),
        LogFormat::Pretty => logs.fmt_fields(tessera::trace::PlainFields).boxed(),
    }
    // The hint keeps the log filter's own level the process's maximum (a
    // combination with a filter without one would have none).
    .with_filter(
        filter.and(filter_fn(tessera::trace::not_ours).with_max_level_hint(LevelFilter::TRACE)),
    );
    // Not an `Option` of the OTLP layer: `None` says it is interested in
    // every callsite, which turns every disabled `trace!` of the
    // dependencies into a filter evaluation per event (BENCHMARKS.md,
    // "Tracing", measured ~10 µs per Verify). Two subscribers instead.
    let registry = tracing_subscriber::registry().with(logs);
    match &args.otlp_endpoint {
        Some(endpoint) => {
            let (traces, guard) = tessera::trace::otlp_layer(endpoint, args.trace_sample_ratio)?;
            registry.with(traces).init();
            Ok(Some(guard))
        }
        None => {
            registry.init();
            Ok(None)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let _ = e.print();
            return ExitCode::from(64);
        }
    };
    match cli.command {
        Command::Serve(args) => {
            // With --config, parse once more with the file merged in below
            // flags and environment; without, the arguments are complete.
            // (`serve` validates relations between settings.)
            let args = if args.config.is_none() {
                args.with_deprecated_env()
            } else {
                let raw: Vec<String> = std::env::args()
                    .skip_while(|a| a != "serve")
                    .skip(1)
                    .collect();
                match ServeArgs::parse_with_file(raw) {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("tessera: {e}");
                        return ExitCode::from(64);
                    }
                }
            };
            if let Err(e) = args.validate() {
                eprintln!("tessera: {e}");
                return ExitCode::from(64);
            }
            let _traces = match init_tracing(&args) {
                Ok(guard) => guard,
                Err(e) => {
                    eprintln!("tessera: {e}");
                    return ExitCode::from(64);
                }
            };
            if let Some(endpoint) = &args.otlp_endpoint {
                tracing::info!(%endpoint, ratio = args.trace_sample_ratio, "exporting traces over OTLP");
            }
            serve(args).await
        }
        command => match tessera::cli::run(command).await {
            Ok(serde_json::Value::Null) => ExitCode::SUCCESS,
            Ok(value) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}", e.0);
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tessera: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(64);
        }
    };
    let served = match tessera::App::build(args, tessera::Listeners::grpc(listener)).await {
        Ok(app) => app.run(tessera::signals::shutdown()).await,
        Err(e) => Err(e),
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(
            e @ (tessera::ServeError::Config(_)
            | tessera::ServeError::Invalid(_)
            | tessera::ServeError::Keys(_)),
        ) => {
            eprintln!("tessera: {e}");
            ExitCode::from(64)
        }
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::FAILURE
        }
    }
}
