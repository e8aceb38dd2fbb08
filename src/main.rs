//! The `klamm` binary: parse arguments, load configuration, run the broker until SIGINT or
//! SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing::{error, warn};
use tracing_subscriber::EnvFilter;

use klamm::config::{self, Sources};
use klamm::Broker;

/// A Kafka-compatible message broker. With no arguments it serves 127.0.0.1:9092 with data
/// under ./data.
#[derive(Parser, Debug)]
#[command(name = "klamm", version)]
struct Args {
    /// A configuration file: TOML, or Kafka's server.properties format for *.properties.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a configuration key (Kafka's names), overriding the file and the environment.
    #[arg(long = "override", short = 'o', value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // Reporting a failed log write goes to stderr too, and panics when stderr is a closed
        // pipe; losing log lines must never take a connection down.
        .log_internal_errors(false)
        .init();
    let sources = Sources {
        file: args.config,
        overrides: args.overrides,
        env: true,
    };
    let config = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if !config.unknown.is_empty() {
        warn!(keys = %config.unknown.join(", "), "ignoring configuration keys that mean nothing to Klamm");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let broker = match Broker::start(config).await {
            Ok(b) => b,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        broker.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            error!("cannot install SIGTERM handler: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
