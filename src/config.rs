//! `Config`: everything the daemon needs, resolved once from arguments and environment.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// The default grace period between the signals of a cancel.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Config {
    /// The working directory, absolute.
    pub dir: PathBuf,
    /// How many executions may run at once.
    pub workers: usize,
    pub cancel_grace: Duration,
    /// Extra TCP addresses that serve the same API (and UI).
    pub listen: Vec<SocketAddr>,
    /// The folder of the web UI, when one is served.
    pub ui_root: Option<PathBuf>,
}

/// `max(number of CPUs, 2)`.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(2)
}

/// Parses a `--listen` value of the form `tcp://HOST:PORT`.
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let Some(address) = raw.strip_prefix("tcp://") else {
        return Err(format!(
            "listen address {raw:?} must look like tcp://127.0.0.1:8080"
        ));
    };
    let address = address.trim_end_matches('/');
    address
        .to_socket_addrs()
        .map_err(|err| format!("listen address {raw:?} is not a valid HOST:PORT: {err}"))?
        .next()
        .ok_or_else(|| format!("listen address {raw:?} resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_need_the_tcp_scheme_and_a_port() {
        assert_eq!(
            parse_listen("tcp://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert!(parse_listen("tcp://[::1]:0").is_ok());
        for bad in [
            "127.0.0.1:80",
            "http://127.0.0.1:80",
            "tcp://127.0.0.1",
            "tcp://:x",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }
}
