//! The tracing subscriber: daemon logs to stderr, filtered by `SERVITOR_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the subscriber once. `default` is the filter used when
/// `SERVITOR_LOG` is unset (e.g. `servitor=info` for the daemon).
pub fn init(default: &str) {
    let filter = std::env::var("SERVITOR_LOG")
        .ok()
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
