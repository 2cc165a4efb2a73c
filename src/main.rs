//! `tessera`: parse config, init tracing, run. Exit 64 (EX_USAGE) on bad
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

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
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
            init_tracing(args.log_format);
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
    match tessera::serve(args, listener, tessera::signals::shutdown()).await {
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
