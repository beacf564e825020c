//! The static web UI: files under `SERVITOR_UI_ROOT`, served at `/`.
//!
//! `ServeDir` resolves request paths inside the folder and refuses `..`, so no
//! request reaches a file outside it. `/` gives `index.html`.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::extract::Request;
use axum::response::Response;
use tower_http::services::ServeDir;

/// Serves `root`; requests for files that do not exist go to `not_found`.
pub fn service<F>(root: PathBuf, not_found: F) -> ServeDir<F>
where
    F: tower::Service<Request, Response = Response, Error = Infallible> + Clone,
{
    ServeDir::new(root)
        .append_index_html_on_directories(true)
        .fallback(not_found)
}
