//! The log route: the bytes of an execution's log from an offset, followed live
//! while the execution is queued or running.
//!
//! The body is produced by a task that reads the file in large chunks into a
//! small channel, so memory stays flat whatever the log's size. When it reaches
//! the end of the file it waits for new bytes or a status change; once the
//! execution has finished it reads to the end one last time and closes.

use std::io::SeekFrom;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{broadcast, mpsc};

use crate::api::params::Params;
use crate::api::{ApiError, AppState, known_job};
use crate::jobs::JobId;
use crate::store::ExecutionId;
use crate::watch::Subscription;

/// Bytes read from the log per chunk of the response.
const CHUNK_BYTES: usize = 256 * 1024;
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
    // 404 for an execution that does not exist, before any body is sent.
    app.store.get(&job, exec)?;
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(stream_log(app, job, exec, offset, sender));
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
    sender: mpsc::Sender<Chunk>,
) {
    let path = app.paths.execution_log(&job, exec);
    let mut events = app.events.subscribe();
    let mut file = None;
    let mut watch = None;
    loop {
        let finished = match app.store.get(&job, exec) {
            Ok(execution) => execution.status.is_finished(),
            Err(_) => true,
        };
        if file.is_none() {
            file = open_at(&path, position).await;
            if file.is_some() && !finished {
                // Subscribed before reading, so no write after the read is missed.
                watch = app.watcher.subscribe(&path);
            }
        }
        if let Some(file) = file.as_mut() {
            loop {
                let mut buffer = Vec::with_capacity(CHUNK_BYTES);
                match (&mut *file)
                    .take(CHUNK_BYTES as u64)
                    .read_to_end(&mut buffer)
                    .await
                {
                    Ok(0) => break,
                    Ok(read) => {
                        position += read as u64;
                        if sender.send(Ok(Bytes::from(buffer))).await.is_err() {
                            return;
                        }
                    }
                    Err(err) => {
                        let _ = sender.send(Err(err)).await;
                        return;
                    }
                }
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

async fn open_at(path: &std::path::Path, position: u64) -> Option<tokio::fs::File> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(SeekFrom::Start(position)).await.ok()?;
    Some(file)
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
