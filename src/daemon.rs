//! The daemon's wiring: lock, socket, listeners, recovery, serving and shutdown.
//!
//! Shutdown reads as a sequence: stop accepting and end every stream, start
//! nothing new (queued executions stay queued on disk), wait for the running
//! executions (cancelling them if a second signal arrives), remove the socket.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::handler::HandlerWithoutStateExt;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::events::EventHub;
use crate::paths::Paths;
use crate::runner::Runner;
use crate::store::Store;
use crate::watch::FileWatcher;

/// Mode of the API socket: owner and group only.
const SOCKET_MODE: u32 = 0o770;

/// The two stages of stopping: `graceful` on the first SIGINT/SIGTERM, `forced`
/// on the second.
#[derive(Clone, Default)]
pub struct Shutdown {
    pub graceful: CancellationToken,
    pub forced: CancellationToken,
}

impl Shutdown {
    /// Fires `graceful` on the first SIGINT or SIGTERM and `forced` on the next.
    pub fn on_signals() -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let shutdown = Self::default();
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let tokens = shutdown.clone();
        tokio::spawn(async move {
            for token in [&tokens.graceful, &tokens.forced] {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                token.cancel();
            }
        });
        Ok(shutdown)
    }
}

/// Holds `servitor.lock` for as long as it lives.
struct InstanceLock {
    _file: File,
}

fn lock_instance(paths: &Paths) -> anyhow::Result<InstanceLock> {
    let path = paths.lock_file();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(InstanceLock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "another servitor is already running in {} (it holds {})",
            paths.root().display(),
            path.display()
        ),
        Err(err) => {
            Err(io::Error::from(err)).with_context(|| format!("locking {}", path.display()))
        }
    }
}

fn bind_socket(paths: &Paths) -> anyhow::Result<UnixListener> {
    let path = paths.socket();
    // We hold the lock, so a socket file left here belongs to a dead daemon.
    match fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "removed stale socket"),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            return Err(err).with_context(|| format!("removing stale socket {}", path.display()));
        }
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("binding the API socket {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(SOCKET_MODE))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Runs the daemon until `shutdown` has played out. Returns once every running
/// execution has ended and the socket is removed.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let paths = Paths::new(config.dir.clone());
    if !paths.root().is_dir() {
        bail!(
            "working directory {} does not exist",
            paths.root().display()
        );
    }
    let _lock = lock_instance(&paths)?;
    fs::create_dir_all(paths.state_dir())
        .with_context(|| format!("creating {}", paths.state_dir().display()))?;
    if !paths.jobs_dir().is_dir() {
        tracing::warn!(path = %paths.jobs_dir().display(), "the jobs folder does not exist yet; no job will be found until it does");
    }
    // TCP first: an address that cannot be bound must not leave a socket file behind.
    let mut tcp = Vec::new();
    for address in &config.listen {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on tcp://{address}"))?;
        tcp.push(listener);
    }
    let unix = bind_socket(&paths)?;

    let tasks = TaskTracker::new();
    let store = Arc::new(Store::new(paths.clone()));
    let events = EventHub::new();
    let runner = Runner::new(
        Arc::clone(&store),
        events.clone(),
        config.workers,
        config.cancel_grace,
        tasks.clone(),
    );
    let state = AppState {
        catalog: Arc::new(Catalog::new(paths.clone())),
        paths: paths.clone(),
        store,
        runner: runner.clone(),
        events,
        watcher: FileWatcher::new(),
        shutdown: shutdown.graceful.clone(),
    };
    let app = app(state, &config);

    let servers = TaskTracker::new();
    tracing::info!(path = %paths.socket().display(), workers = config.workers, "listening on the UNIX socket");
    let token = shutdown.graceful.clone();
    servers.spawn(serve_logged(
        axum::serve(unix, app.clone()).with_graceful_shutdown(token.cancelled_owned()),
    ));
    for listener in tcp {
        let address = listener.local_addr()?;
        tracing::warn!(
            "listening on http://{address}/ over TCP without authentication: whoever reaches this address can run every job"
        );
        let token = shutdown.graceful.clone();
        servers.spawn(serve_logged(
            axum::serve(listener, app.clone()).with_graceful_shutdown(token.cancelled_owned()),
        ));
    }
    servers.close();

    let recovery = runner.clone();
    tasks.spawn(async move { recovery.recover().await });

    shutdown.graceful.cancelled().await;
    tracing::info!("shutting down: closing connections, leaving queued executions queued");
    let draining = runner.drain(shutdown.forced.clone());
    let closing = async {
        servers.wait().await;
        if let Err(err) = fs::remove_file(paths.socket()) {
            tracing::warn!(error = %err, "could not remove the socket");
        }
    };
    tokio::join!(draining, closing);
    tasks.close();
    tasks.wait().await;
    tracing::info!("stopped");
    Ok(())
}

async fn serve_logged(server: impl std::future::IntoFuture<Output = io::Result<()>>) {
    if let Err(err) = server.await {
        tracing::error!(error = %err, "HTTP server failed");
    }
}

/// The API, plus the UI (or 404s) for every other path.
fn app(state: AppState, config: &Config) -> Router {
    let router = api::router(state);
    match &config.ui_root {
        Some(root) => router.fallback_service(crate::ui::service(
            root.clone(),
            api::path_not_found.into_service(),
        )),
        None => router.fallback(api::path_not_found),
    }
}
