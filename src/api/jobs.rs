//! Job routes: list and get.

use std::sync::Arc;

use axum::Json;
use axum::extract::{RawQuery, State};

use crate::api::params::Params;
use crate::api::{ApiError, AppState, discovered_job};
use crate::jobs::{Job, JobId};

pub async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Job>>, ApiError> {
    let params = Params::from_query(query.as_deref())?;
    let subtree = match params.optional("path") {
        None | Some("") | Some(".") => None,
        Some(raw) => Some(JobId::parse(raw.trim_end_matches('/')).map_err(|_| {
            ApiError::BadRequest(format!(
                "parameter path must be a relative folder such as backups/db, got {raw:?}"
            ))
        })?),
    };
    let catalog = Arc::clone(&app.catalog);
    let all = tokio::task::spawn_blocking(move || catalog.jobs())
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    let mut found = Vec::with_capacity(all.len());
    for job in all.iter() {
        if subtree
            .as_ref()
            .is_some_and(|subtree| !job.job_id.is_within(subtree))
        {
            continue;
        }
        let mut job = job.clone();
        job.last_execution = app.store.last(&job.job_id)?;
        found.push(job);
    }
    Ok(Json(found))
}

pub async fn get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Job>, ApiError> {
    let params = Params::from_query(query.as_deref())?;
    let mut job = discovered_job(&app, params.required("job_id")?).await?;
    job.last_execution = app.store.last(&job.job_id)?;
    Ok(Json(job))
}
