//! The HTTP API of DESIGN.md §7: one visible route table, thin handlers.
//!
//! Handlers extract parameters, call one domain function and return. Every
//! error goes through `ApiError`.

mod error;
mod events;
mod executions;
mod jobs;
mod logs;
mod params;

use std::sync::Arc;

use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::{any, get, post};
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::catalog::Catalog;
use crate::events::EventHub;
use crate::jobs::{Job, JobId};
use crate::paths::Paths;
use crate::runner::Runner;
use crate::store::Store;
use crate::watch::FileWatcher;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub paths: Paths,
    /// The discovered jobs, re-read only when their folders change.
    pub catalog: Arc<Catalog>,
    pub store: Arc<Store>,
    pub runner: Runner,
    pub events: EventHub,
    /// Wakes log followers when a log grows.
    pub watcher: FileWatcher,
    /// Fires when the daemon begins to shut down; open streams end then.
    pub shutdown: CancellationToken,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/jobs/get_list", get(jobs::list))
        .route("/api/jobs/get", get(jobs::get))
        .route("/api/jobs/run", post(executions::run))
        .route("/api/jobs/executions/cancel", post(executions::cancel))
        .route("/api/jobs/executions/get_list", get(executions::list))
        .route("/api/jobs/executions/get", get(executions::get))
        .route("/api/jobs/executions/logs/get", get(logs::get))
        .route("/api/events", get(events::stream))
        .route("/api", any(path_not_found))
        .route("/api/{*rest}", any(path_not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The answer for any path nobody serves.
pub async fn path_not_found(uri: Uri) -> ApiError {
    ApiError::PathNotFound(uri.path().to_owned())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// A job that discovery lists right now; anything else is a 404.
async fn discovered_job(state: &AppState, raw: &str) -> Result<Job, ApiError> {
    let id = JobId::parse(raw)?;
    // A handful of system calls at most (one read when nothing changed), cheaper
    // than a hop to the blocking pool on the trigger path.
    state
        .catalog
        .find(&id)
        .ok_or_else(|| ApiError::JobNotFound(id.to_string()))
}

/// A job that is discovered now or has recorded executions (its `run` may be gone).
async fn known_job(state: &AppState, raw: &str) -> Result<JobId, ApiError> {
    let id = JobId::parse(raw)?;
    if state.store.has_history(&id) {
        return Ok(id);
    }
    discovered_job(state, raw).await.map(|job| job.job_id)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn state(root: &std::path::Path) -> AppState {
        let paths = Paths::new(root.to_owned());
        let store = Arc::new(Store::new(paths.clone()));
        let events = EventHub::new();
        let runner = Runner::new(
            Arc::clone(&store),
            events.clone(),
            1,
            std::time::Duration::from_secs(1),
            tokio_util::task::TaskTracker::new(),
        );
        AppState {
            catalog: Arc::new(Catalog::new(paths.clone())),
            paths,
            store,
            runner,
            events,
            watcher: FileWatcher::new(),
            shutdown: CancellationToken::new(),
        }
    }

    async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, serde_json::Value) {
        let response = app
            .clone()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn errors_are_json_with_the_right_codes() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("config/jobs")).unwrap();
        let app = router(state(tmp.path()));
        for (method, uri, code) in [
            (
                "GET",
                "/api/jobs/get?job_id=../../etc",
                StatusCode::NOT_FOUND,
            ),
            ("GET", "/api/jobs/get?job_id=%2Fetc", StatusCode::NOT_FOUND),
            ("GET", "/api/jobs/get", StatusCode::BAD_REQUEST),
            ("POST", "/api/jobs/run?job_id=nope", StatusCode::NOT_FOUND),
            ("GET", "/api/nothing/here", StatusCode::NOT_FOUND),
            (
                "DELETE",
                "/api/jobs/get_list",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                "GET",
                "/api/jobs/run?job_id=x",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
        ] {
            let (status, body) = call(&app, method, uri).await;
            assert_eq!(status, code, "{method} {uri}");
            assert!(body["message"].is_string(), "{method} {uri}: {body}");
        }
        assert_eq!(
            call(&app, "GET", "/api/jobs/get_list").await.1,
            serde_json::json!([])
        );
    }
}
