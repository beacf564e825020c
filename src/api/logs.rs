//! The log route: the bytes of an execution's log from an offset, followed live
//! while the execution is queued or running.
//!
//! The body is produced by a task that reads the file in large chunks into a
//! small channel, so memory stays flat whatever the log's size. When it reaches
//! the end of the file it waits for new bytes or a status change; once the
//! execution has finished it reads to the end one last time and closes.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};

use crate::api::params::Params;
use crate::api::{ApiError, AppState, known_job};
use crate::jobs::JobId;
use crate::store::ExecutionId;
use crate::watch::Subscription;

/// Bytes read from the log per chunk of the response.
const CHUNK_BYTES: usize = 512 * 1024;
/// How long a follower waits at the end of a log it cannot watch (it does not
/// exist yet) before looking again.
const FOLLOW_POLL: Duration = Duration::from_millis(20);
/// The same for a watched log: writes wake the follower, so this is only a
/// safety net.
const WATCHED_POLL: Duration = Duration::from_millis(500);

pub async fn get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::from_query(query.as_deref())?;
    let job = known_job(&app, params.required("job_id")?).await?;
    let exec = params.execution_id("execution_id")?;
    let offset = params.optional_number("offset")?.unwrap_or(0);
    // `follow=false`: what is written now, without waiting for the rest.
    let follow = params.optional_bool("follow")?.unwrap_or(true);
    // 404 for an execution that does not exist, before any body is sent.
    app.store.get(&job, exec)?;
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(stream_log(app, job, exec, offset, follow, sender));
    let body = Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff",
            ),
        ],
        body,
    )
        .into_response())
}

type Chunk = Result<Bytes, std::io::Error>;

async fn stream_log(
    app: AppState,
    job: JobId,
    exec: ExecutionId,
    mut position: u64,
    follow: bool,
    sender: mpsc::Sender<Chunk>,
) {
    let path = app.paths.execution_log(&job, exec);
    let mut events = app.events.subscribe();
    let mut file = None;
    let mut watch = None;
    loop {
        let finished = !follow
            || match app.store.get(&job, exec) {
                Ok(execution) => execution.status.is_finished(),
                Err(_) => true,
            };
        if file.is_none() {
            file = std::fs::File::open(&path).ok().map(Arc::new);
            if file.is_some() && !finished {
                // Subscribed before reading, so no write after the read is missed.
                watch = app.watcher.subscribe(&path);
            }
        }
        if let Some(file) = &file {
            let (file, sender) = (Arc::clone(file), sender.clone());
            let start = position;
            match tokio::task::spawn_blocking(move || send_available(&file, start, &sender)).await {
                Ok(Some(end)) => position = end,
                _ => return,
            }
        }
        if finished {
            return;
        }
        let poll = if watch.is_some() {
            WATCHED_POLL
        } else {
            FOLLOW_POLL
        };
        tokio::select! {
            _ = wait_for_status_change(&mut events, &job, exec) => {}
            _ = written(watch.as_ref()) => {}
            _ = tokio::time::sleep(poll) => {}
            _ = sender.closed() => return,
            _ = app.shutdown.cancelled() => return,
        }
    }
}

/// Sends the file's bytes from `position` to its current end, in chunks, on a
/// blocking thread: one thread reading ahead of the socket, with at most the
/// channel's few chunks in memory. Returns the new position, or `None` when the
/// client went away or the file could not be read.
fn send_available(
    file: &std::fs::File,
    mut position: u64,
    sender: &mpsc::Sender<Chunk>,
) -> Option<u64> {
    loop {
        let mut buffer = vec![0; CHUNK_BYTES];
        match file.read_at(&mut buffer, position) {
            Ok(0) => return Some(position),
            Ok(read) => {
                buffer.truncate(read);
                position += read as u64;
                sender.blocking_send(Ok(Bytes::from(buffer))).ok()?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                let _ = sender.blocking_send(Err(err));
                return None;
            }
        }
    }
}

async fn written(watch: Option<&Subscription>) {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// Returns when an event concerns this execution (or events were lost).
async fn wait_for_status_change(
    events: &mut broadcast::Receiver<crate::events::Event>,
    job: &JobId,
    exec: ExecutionId,
) {
    loop {
        match events.recv().await {
            Ok(event) if event.payload.job_id == *job && event.payload.execution_id == exec => {
                return;
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
