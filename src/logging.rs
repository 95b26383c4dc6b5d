//! Logging set-up: text or JSON lines on stderr.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Dependencies log at most at `info`, even when the exporter
/// itself runs at `debug` or `trace`: their request traces are noise, and the API key travels
/// in a header that no library should get a chance to print.
pub fn init(level: tracing::Level, format: LogFormat) {
    let deps = if level > tracing::Level::INFO { tracing::Level::INFO } else { level };
    let filter = EnvFilter::new(format!("{deps},gcore_iam_exporter={level}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already initialised (tests start several exporters in one process): keep the first.
    let _ = result;
}
