//! The `gcore-iam-exporter` binary: parse flags, start logging, run the library until SIGTERM
//! or ctrl-c, map errors to an exit code (2 for configuration, 1 for start-up failures).

use std::process::ExitCode;

use clap::Parser;
use gcore_iam_exporter::config::{Cli, Config};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_cli(cli, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gcore-iam-exporter: {error}");
            return ExitCode::from(2);
        }
    };
    gcore_iam_exporter::logging::init(config.log_level, config.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gcore-iam-exporter: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match gcore_iam_exporter::start(config, shutdown).await {
            Ok(running) => {
                running.wait().await;
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!(%error, "cannot start");
                eprintln!("gcore-iam-exporter: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Cancels on SIGTERM (how orchestrators stop containers) or ctrl-c.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only ctrl-c stops the exporter");
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
