//! Every on-disk location under the working directory, and nothing else.
//!
//! Job ids reaching this module are already validated (`jobs::JobId`), so a
//! path built here never leaves `<wd>`.

use std::path::{Path, PathBuf};

use crate::jobs::JobId;
use crate::store::ExecutionId;

/// The layout of one working directory (`<wd>`).
#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// `root` should be absolute: it is handed to jobs as `SERVITOR_ROOT`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("config").join("jobs")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    pub fn socket(&self) -> PathBuf {
        self.root.join("servitor.sock")
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join("servitor.lock")
    }

    /// The job's own directory under `config/jobs`, as seen there (links not resolved).
    pub fn job_dir(&self, job: &JobId) -> PathBuf {
        self.jobs_dir().join(job.as_str())
    }

    pub fn job_run_file(&self, job: &JobId) -> PathBuf {
        self.job_dir(job).join("run")
    }

    /// servitor's own: execution folders built ahead of time (see `Store`).
    pub fn staging_dir(&self) -> PathBuf {
        self.state_dir().join(".staging")
    }

    pub fn state_jobs_dir(&self) -> PathBuf {
        self.state_dir().join("jobs")
    }

    pub fn executions_dir(&self, job: &JobId) -> PathBuf {
        self.state_jobs_dir().join(job.as_str()).join("executions")
    }

    pub fn last_execution_file(&self, job: &JobId) -> PathBuf {
        self.executions_dir(job).join("last_execution.txt")
    }

    pub fn execution_dir(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.executions_dir(job).join(exec.to_string())
    }

    pub fn execution_input(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_dir(job, exec).join("input.json")
    }

    pub fn execution_status_history(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_dir(job, exec).join("status_history.tsv")
    }

    /// The original's older single-word status file, read when no history exists.
    pub fn execution_legacy_status(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_dir(job, exec).join("status.txt")
    }

    pub fn execution_result(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_dir(job, exec).join("result.tsv")
    }

    pub fn execution_logs_dir(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_dir(job, exec).join("logs")
    }

    pub fn execution_log(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_logs_dir(job, exec).join("main.txt")
    }

    /// servitor's own record of a running execution's process group.
    pub fn execution_pid(&self, job: &JobId, exec: ExecutionId) -> PathBuf {
        self.execution_dir(job, exec).join("pid")
    }
}
