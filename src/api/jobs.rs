//! Job routes: list and get.

use axum::Json;
use axum::extract::{RawQuery, State};

use crate::api::params::Params;
use crate::api::{ApiError, AppState, discovered_job};
use crate::jobs::{self, Job, JobId};

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
    let paths = app.paths.clone();
    let mut found = tokio::task::spawn_blocking(move || jobs::discover(&paths))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    if let Some(subtree) = &subtree {
        found.retain(|job| job.job_id.is_within(subtree));
    }
    for job in &mut found {
        job.last_execution = app.store.last(&job.job_id)?;
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
