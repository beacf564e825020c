//! Status-change events and the hub that fans them out to every listener.
//!
//! The runner sends an event after the matching record is on disk, so a client
//! reacting to an event can read what it announced.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::jobs::JobId;
use crate::store::{ExecutionId, ExecutionStatus};

/// How many events a slow listener may fall behind before it is told it lagged.
const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "job_execution_status_changed")]
    StatusChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusPayload {
    pub job_id: JobId,
    pub execution_id: ExecutionId,
    pub status: ExecutionStatus,
}

/// One line of `/api/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventKind,
    pub payload: StatusPayload,
}

impl Event {
    pub fn status_changed(job: &JobId, execution: ExecutionId, status: ExecutionStatus) -> Self {
        Self {
            id: EventKind::StatusChanged,
            payload: StatusPayload {
                job_id: job.clone(),
                execution_id: execution,
                status,
            },
        }
    }
}

/// Cheap to clone; every clone sends into the same channel.
#[derive(Debug, Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Event>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(EVENT_BUFFER);
        Self { sender }
    }

    /// Delivers to current subscribers; having none is not an error.
    pub fn send(&self, event: Event) {
        let _ = self.sender.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}
