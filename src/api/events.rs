//! The event stream: chunked JSON lines, one per status change, until shutdown.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast::error::RecvError;

use crate::api::AppState;

pub async fn stream(State(app): State<AppState>) -> Response {
    let receiver = app.events.subscribe();
    let shutdown = app.shutdown.clone();
    let lines = futures_util::stream::unfold(
        (receiver, shutdown),
        |(mut receiver, shutdown)| async move {
            let next = tokio::select! {
                next = receiver.recv() => next,
                _ = shutdown.cancelled() => return None,
            };
            let line = match next {
                Ok(event) => {
                    let mut line = serde_json::to_vec(&event).expect("events always serialize");
                    line.push(b'\n');
                    line
                }
                // A listener that fell behind is told so and can refetch.
                Err(RecvError::Lagged(missed)) => {
                    format!("{{\"id\":\"events_lost\",\"payload\":{{\"count\":{missed}}}}}\n")
                        .into_bytes()
                }
                Err(RecvError::Closed) => return None,
            };
            let chunk = Ok::<_, std::convert::Infallible>(Bytes::from(line));
            Some((chunk, (receiver, shutdown)))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(lines),
    )
        .into_response()
}
