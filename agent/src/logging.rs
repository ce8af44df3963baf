//! Logging through `tracing`, to stderr or journald.

use clap::ValueEnum;
use tracing_subscriber::{
    EnvFilter, Layer as _, filter::filter_fn, layer::SubscriberExt as _,
    util::SubscriberInitExt as _,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogTarget {
    #[default]
    Stderr,
    Journald,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("connecting to journald (is systemd-journald running?): {0}")]
    Journald(#[source] std::io::Error),
    #[error("invalid log filter `{filter}`: {source}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
pub fn init(target: LogTarget, default_filter: &str) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => f,
        _ => default_filter.to_string(),
    };
    let filter =
        EnvFilter::try_new(&filter).map_err(|source| LoggingError::Filter { filter, source })?;
    let registry = tracing_subscriber::registry().with(filter);
    match target {
        LogTarget::Stderr => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
        LogTarget::Journald => registry
            .with(
                tracing_journald::layer()
                    .map_err(LoggingError::Journald)?
                    .with_syslog_identifier("vigil".into())
                    // Incidents reach the journal as their own structured entries already.
                    .with_filter(filter_fn(|meta| {
                        meta.target() != crate::incident::TRACING_TARGET
                    })),
            )
            .init(),
    }
    Ok(())
}
