//! Execution routes: run, cancel, list, get.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use serde::Serialize;

use crate::api::params::Params;
use crate::api::{ApiError, AppState, discovered_job, known_job};
use crate::store::{Execution, ExecutionId};

#[derive(Serialize)]
pub struct RunAnswer {
    status: &'static str,
    execution_id: ExecutionId,
}

#[derive(Serialize)]
pub struct Done {
    status: &'static str,
}

pub async fn run(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RunAnswer>, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    params.extend_with_form(&headers, &body)?;
    let job = discovered_job(&app, params.required("job_id")?).await?;
    let execution = app.runner.submit(&job, &params.input_values())?;
    Ok(Json(RunAnswer {
        status: "success",
        execution_id: execution.execution_id,
    }))
}

pub async fn cancel(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Done>, ApiError> {
    let mut params = Params::from_query(query.as_deref())?;
    params.extend_with_form(&headers, &body)?;
    let job = known_job(&app, params.required("job_id")?).await?;
    let exec = params.execution_id("execution_id")?;
    app.runner.cancel(&job, exec).await?;
    Ok(Json(Done { status: "success" }))
}

pub async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Arc<Execution>>>, ApiError> {
    let params = Params::from_query(query.as_deref())?;
    let job = known_job(&app, params.required("job_id")?).await?;
    let limit = params
        .optional_number("limit")?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let before = params.optional_execution_id("before")?;
    Ok(Json(app.store.list(&job, limit, before)?))
}

pub async fn get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Arc<Execution>>, ApiError> {
    let params = Params::from_query(query.as_deref())?;
    let job = known_job(&app, params.required("job_id")?).await?;
    let exec = params.execution_id("execution_id")?;
    Ok(Json(app.store.get(&job, exec)?))
}
