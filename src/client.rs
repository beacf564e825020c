//! The HTTP client of the daemon's UNIX socket, used by the command-line client.
//!
//! It speaks HTTP/1.1 through hyper and decodes the daemon's own domain types,
//! so there is one definition of a job, an execution and an event.

use std::io;
use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::events::Event;
use crate::jobs::Job;
use crate::store::{Execution, ExecutionId};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "servitor is not running: nothing answers on {} (start it with `servitor serve --dir {}`)",
        socket.display(),
        socket.parent().map(|dir| dir.display().to_string()).unwrap_or_else(|| ".".into())
    )]
    NotRunning { socket: PathBuf },
    #[error("permission denied on {}: join the socket's group or run as its owner", socket.display())]
    PermissionDenied { socket: PathBuf },
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("talking to servitor at {}: {source}", socket.display())]
    Io {
        socket: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to servitor: {0}")]
    Http(#[from] hyper::Error),
    #[error("servitor answered something unexpected: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an error answer from the daemon, if that is what this is.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    message: String,
}

#[derive(serde::Deserialize)]
struct RunAnswer {
    execution_id: ExecutionId,
}

/// A client of one daemon socket. Each request uses its own connection.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

/// Builds `path?name=value&…` with proper escaping.
pub fn api_path(path: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path.to_owned();
    }
    let query = serde_urlencoded::to_string(params).expect("string pairs always encode");
    format!("{path}?{query}")
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn connect(&self) -> Result<UnixStream, ClientError> {
        UnixStream::connect(&self.socket)
            .await
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    ClientError::NotRunning {
                        socket: self.socket.clone(),
                    }
                }
                io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                    socket: self.socket.clone(),
                },
                _ => ClientError::Io {
                    socket: self.socket.clone(),
                    source,
                },
            })
    }

    /// Sends one request; an error status becomes `ClientError::Api` with the
    /// daemon's message.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream = self.connect().await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, "servitor")
            .body(Empty::<Bytes>::new())
            .map_err(|err| ClientError::Decode(err.to_string()))?;
        let response = sender.send_request(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|body| body.message)
            .unwrap_or_else(|_| format!("servitor answered {status}"));
        Err(ClientError::Api { status, message })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
    ) -> Result<T, ClientError> {
        let body = self
            .send(method, path_and_query)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|err| ClientError::Decode(err.to_string()))
    }

    pub async fn jobs(&self) -> Result<Vec<Job>, ClientError> {
        self.json(Method::GET, "/api/jobs/get_list").await
    }

    pub async fn job(&self, job: &str) -> Result<Job, ClientError> {
        self.json(Method::GET, &api_path("/api/jobs/get", &[("job_id", job)]))
            .await
    }

    /// Queues an execution; `inputs` are (NAME, value) pairs.
    pub async fn run(
        &self,
        job: &str,
        inputs: &[(String, String)],
    ) -> Result<ExecutionId, ClientError> {
        let names: Vec<String> = inputs
            .iter()
            .map(|(name, _)| format!("input_value_{name}"))
            .collect();
        let mut params = vec![("job_id", job)];
        params.extend(
            names
                .iter()
                .zip(inputs)
                .map(|(name, (_, value))| (name.as_str(), value.as_str())),
        );
        let answer: RunAnswer = self
            .json(Method::POST, &api_path("/api/jobs/run", &params))
            .await?;
        Ok(answer.execution_id)
    }

    pub async fn executions(
        &self,
        job: &str,
        limit: Option<usize>,
        before: Option<ExecutionId>,
    ) -> Result<Vec<Execution>, ClientError> {
        let limit = limit.map(|n| n.to_string());
        let before = before.map(|id| id.to_string());
        let mut params = vec![("job_id", job)];
        if let Some(limit) = &limit {
            params.push(("limit", limit));
        }
        if let Some(before) = &before {
            params.push(("before", before));
        }
        self.json(
            Method::GET,
            &api_path("/api/jobs/executions/get_list", &params),
        )
        .await
    }

    pub async fn execution(&self, job: &str, exec: ExecutionId) -> Result<Execution, ClientError> {
        let exec = exec.to_string();
        self.json(
            Method::GET,
            &api_path(
                "/api/jobs/executions/get",
                &[("job_id", job), ("execution_id", &exec)],
            ),
        )
        .await
    }

    pub async fn cancel(&self, job: &str, exec: ExecutionId) -> Result<(), ClientError> {
        let exec = exec.to_string();
        self.send(
            Method::POST,
            &api_path(
                "/api/jobs/executions/cancel",
                &[("job_id", job), ("execution_id", &exec)],
            ),
        )
        .await
        .map(drop)
    }

    /// The log from `offset`, as a streaming response that ends when the
    /// execution has finished.
    pub async fn log(
        &self,
        job: &str,
        exec: ExecutionId,
        offset: u64,
    ) -> Result<Response<Incoming>, ClientError> {
        self.log_request(job, exec, offset, true).await
    }

    /// The log as written so far, without waiting for a running execution.
    pub async fn log_so_far(
        &self,
        job: &str,
        exec: ExecutionId,
    ) -> Result<ByteStream, ClientError> {
        Ok(ByteStream {
            body: self.log_request(job, exec, 0, false).await?.into_body(),
        })
    }

    async fn log_request(
        &self,
        job: &str,
        exec: ExecutionId,
        offset: u64,
        follow: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let exec = exec.to_string();
        let offset = offset.to_string();
        let mut params = vec![
            ("job_id", job),
            ("execution_id", &exec),
            ("offset", &offset),
        ];
        if !follow {
            params.push(("follow", "false"));
        }
        self.send(
            Method::GET,
            &api_path("/api/jobs/executions/logs/get", &params),
        )
        .await
    }

    /// The whole log of a finished execution (or, for a running one, until it ends).
    pub async fn log_bytes(&self, job: &str, exec: ExecutionId) -> Result<Bytes, ClientError> {
        Ok(self
            .log(job, exec, 0)
            .await?
            .into_body()
            .collect()
            .await?
            .to_bytes())
    }

    /// The event stream, as a response whose body yields JSON lines.
    pub async fn events(&self) -> Result<Response<Incoming>, ClientError> {
        self.send(Method::GET, "/api/events").await
    }

    /// The newest execution of `job`, if it has any.
    pub async fn latest_execution(&self, job: &str) -> Result<Option<Execution>, ClientError> {
        Ok(self
            .executions(job, Some(1), None)
            .await?
            .into_iter()
            .next())
    }

    /// The log from `offset`, chunk by chunk as the daemon sends it; the stream
    /// ends when the execution has finished (or the daemon shuts down).
    pub async fn log_stream(
        &self,
        job: &str,
        exec: ExecutionId,
        offset: u64,
    ) -> Result<ByteStream, ClientError> {
        Ok(ByteStream {
            body: self.log(job, exec, offset).await?.into_body(),
        })
    }

    /// The event stream, line by line.
    pub async fn event_stream(&self) -> Result<EventStream, ClientError> {
        Ok(EventStream {
            bytes: ByteStream {
                body: self.events().await?.into_body(),
            },
            buffer: Vec::new(),
        })
    }
}

/// A response body read chunk by chunk, as the daemon writes it.
pub struct ByteStream {
    body: Incoming,
}

impl ByteStream {
    /// The next chunk, or `None` once the daemon has ended the response.
    /// Cancel-safe: dropping the future loses no bytes.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if !data.is_empty() {
                    return Ok(Some(data));
                }
            }
        }
        Ok(None)
    }
}

/// `/api/events` split into its JSON lines.
pub struct EventStream {
    bytes: ByteStream,
    buffer: Vec<u8>,
}

/// One line of the event stream, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum EventLine {
    Event(Event),
    /// The daemon dropped `count` events because this listener fell behind.
    Lost {
        count: u64,
    },
    /// A line this version does not know; scripts still get it raw.
    Unknown,
}

impl EventStream {
    /// The next line (without its newline), or `None` when the stream ends.
    pub async fn next_line(&mut self) -> Result<Option<String>, ClientError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).take(end).collect();
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            match self.bytes.next_chunk().await? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None if self.buffer.is_empty() => return Ok(None),
                None => {
                    let line = std::mem::take(&mut self.buffer);
                    return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
                }
            }
        }
    }
}

/// Decodes one line of the event stream.
pub fn decode_event(line: &str) -> EventLine {
    #[derive(serde::Deserialize)]
    struct Lost {
        count: u64,
    }
    #[derive(serde::Deserialize)]
    struct Other {
        id: String,
        payload: serde_json::Value,
    }
    if let Ok(event) = serde_json::from_str::<Event>(line) {
        return EventLine::Event(event);
    }
    match serde_json::from_str::<Other>(line) {
        Ok(other) if other.id == "events_lost" => serde_json::from_value::<Lost>(other.payload)
            .map_or(EventLine::Unknown, |lost| EventLine::Lost {
                count: lost.count,
            }),
        _ => EventLine::Unknown,
    }
}
