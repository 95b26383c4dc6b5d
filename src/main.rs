//! The `gcore-iam-exporter` binary: parse flags, start logging, run the library until SIGTERM
//! or ctrl-c, map errors to an exit code (2 for configuration, 1 for start-up failures).

use std::process::ExitCode;

use clap::Parser;
use gcore_iam_exporter::config::{Cli, Config};
use gcore_iam_exporter::error_chain::Chain;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            // clap's first line names the flag and the problem; the rest is a usage hint. An
            // unknown flag keeps clap's whole message, whose hint may name the flag meant.
            let text = error.to_string();
            if error.kind() == clap::error::ErrorKind::UnknownArgument {
                eprint!("{text}");
            } else {
                eprintln!(
                    "gcore-iam-exporter: {}",
                    text.lines().next().unwrap_or_default().trim_start_matches("error: ")
                );
            }
            return ExitCode::from(2);
        }
    };
    // Logging starts before the configuration is checked, so that its warnings are seen.
    gcore_iam_exporter::logging::init(cli.log_level, cli.log_format);
    let config = match Config::from_cli(cli, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("gcore-iam-exporter: {}", Chain(&error));
            return ExitCode::from(2);
        }
    };

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
                tracing::error!(error = %Chain(&error), "cannot start");
                eprintln!("gcore-iam-exporter: {}", Chain(&error));
                ExitCode::from(error.exit_code())
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
