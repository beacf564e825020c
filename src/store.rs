//! On-disk execution records under `<wd>/state/`, in the original tool's layout.
//!
//! Only this module reads or writes those files. Status lines are appended
//! whole; the files of a new execution are created once; the id counter is
//! overwritten in place by one write that only ever grows it; and the loader
//! reads a half-written file as missing, so no crash leaves a record that
//! breaks startup. The files stay the truth: the in-memory index of each job's executions is loaded from them on
//! first use and kept in step by every write made here, so listings never re-read
//! thousands of files.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::jobs::JobId;
use crate::paths::Paths;

/// An execution's number within its job: 1, 2, 3… Written as a decimal string on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid execution id {0:?}: expected a positive decimal number")]
pub struct InvalidExecutionId(pub String);

impl ExecutionId {
    /// Accepts decimal digits only (no sign, no spaces), as the API requires.
    pub fn parse(raw: &str) -> Result<Self, InvalidExecutionId> {
        let invalid = || InvalidExecutionId(raw.to_owned());
        if raw.is_empty() || raw.len() > 19 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        raw.parse().map(Self).map_err(|_| invalid())
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ExecutionId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ExecutionId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Where an execution is in its life. The wire and the files use the lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Queued, waiting for a free worker.
    Created,
    Running,
    Success,
    Failure,
    Cancelled,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "created" => Self::Created,
            "running" => Self::Running,
            "success" => Self::Success,
            "failure" => Self::Failure,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Cancelled)
    }
}

impl fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// RFC 3339, UTC, as written in `status_history.tsv`.
    pub timestamp: String,
    pub status: ExecutionStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionResult {
    /// The exit code; `-N` for a death by signal N; `-1` when `run` could not start.
    pub exit_code: i32,
    pub message: String,
}

/// One execution of a job, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub execution_id: ExecutionId,
    pub status: ExecutionStatus,
    pub status_history: Vec<StatusChange>,
    pub result: Option<ExecutionResult>,
    pub input_values: BTreeMap<String, String>,
}

impl Execution {
    /// When it was queued, if the history says.
    pub fn created_at(&self) -> Option<&str> {
        self.status_history
            .iter()
            .find(|change| change.status == ExecutionStatus::Created)
            .map(|change| change.timestamp.as_str())
    }
}

/// What the pid file of a running execution holds: enough to find its process
/// group again after a restart and to tell it from a later process with the same pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: i32,
    /// Start time of the process in clock ticks since boot (`/proc/PID/stat`, field 22).
    pub start_ticks: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("execution {exec} of job {job} does not exist")]
    NotFound { job: JobId, exec: ExecutionId },
    #[error("could not {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_owned();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// The current time as written into status histories.
pub fn now_timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Parses a history timestamp; the original tool wrote other RFC 3339 forms too.
pub fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

#[derive(Default)]
struct JobHistory {
    /// The highest id ever handed out (never lowered, so ids are never reused).
    last_id: u64,
    executions: BTreeMap<ExecutionId, Arc<Execution>>,
}

/// How many execution folders are kept built ahead of time.
const STAGED_FOLDERS: usize = 4;

/// The execution records of one working directory.
///
/// Creating files is the costly part of a trigger, so a few execution folders
/// (with `logs/main.txt`, `input.json` and `status_history.tsv`, all empty) are
/// built ahead of time under `state/.staging`. A trigger fills one in and
/// renames it into place: the record appears whole, and the job can start
/// without waiting for a single new file.
pub struct Store {
    paths: Paths,
    index: Mutex<HashMap<JobId, JobHistory>>,
    staged: Mutex<Vec<PathBuf>>,
    staging: AtomicBool,
    staged_names: AtomicU64,
}

/// Updates `last_execution.txt` in place with one write at offset 0.
///
/// Replacing it by a rename costs a synchronous data flush on ext4 (its
/// rename-over-existing safeguard), tens of milliseconds per trigger. Ids only
/// grow, so the new digits always cover the old ones: the single small write
/// leaves either the old or the new number, never a mix of lengths. Loading
/// also takes the highest execution folder into account, so ids are never
/// reused whatever this file says.
fn write_counter(path: &Path, value: u64) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let digits = value.to_string();
    let written = rustix::io::pwrite(&file, digits.as_bytes(), 0)
        .map_err(|err| io_err("write", path)(err.into()))?;
    if written != digits.len() {
        return Err(io_err("write", path)(io::ErrorKind::WriteZero.into()));
    }
    let length = file.metadata().map_err(io_err("read", path))?.len();
    if length > digits.len() as u64 {
        // Longer leftovers (not a number we wrote): cut them.
        file.set_len(digits.len() as u64)
            .map_err(io_err("truncate", path))?;
    }
    Ok(())
}

/// Writes a file that is new (in a new execution folder) or written once per
/// execution. No temporary file: creating files is the costly part of a
/// trigger, and a half-written one of these is read as missing (the loader is
/// lenient), so recovery settles the execution either way.
fn write_fresh(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(contents).map_err(io_err("write", path))
}

fn append_line(path: &Path, line: &str) -> Result<(), StoreError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err("open", path))?;
    // One write call, so a reader (or a crash) never sees half a line from us.
    file.write_all(line.as_bytes())
        .map_err(io_err("append to", path))
}

fn read_optional(path: &Path) -> Result<Option<String>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_err("read", path)(err)),
    }
}

fn parse_history(text: &str) -> Vec<StatusChange> {
    text.lines()
        .filter_map(|line| {
            let (timestamp, status) = line.split_once('\t')?;
            Some(StatusChange {
                timestamp: timestamp.to_owned(),
                status: ExecutionStatus::parse(status.trim())?,
            })
        })
        .collect()
}

fn parse_result(text: &str) -> Option<ExecutionResult> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let (code, message) = line.split_once('\t').unwrap_or((line, ""));
    Some(ExecutionResult {
        exit_code: code.trim().parse().ok()?,
        message: message.to_owned(),
    })
}

fn format_result(result: &ExecutionResult) -> String {
    let message: String = result
        .message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("{}\t{}\n", result.exit_code, message)
}

impl Store {
    /// Opens the records of a working directory; folders a previous daemon
    /// staged but never used are removed.
    pub fn new(paths: Paths) -> Self {
        let staging = paths.staging_dir();
        if let Err(err) = fs::remove_dir_all(&staging) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %staging.display(), error = %err, "could not clear staged folders");
            }
        }
        Self {
            paths,
            index: Mutex::new(HashMap::new()),
            staged: Mutex::new(Vec::new()),
            staging: AtomicBool::new(false),
            staged_names: AtomicU64::new(0),
        }
    }

    /// True when fewer folders are staged than the store keeps ready.
    pub fn wants_staged_folders(&self) -> bool {
        self.staged_folders().len() < STAGED_FOLDERS && !self.staging.load(Ordering::Relaxed)
    }

    fn staged_folders(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.staged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Builds execution folders ahead of time until enough are ready. Blocking;
    /// returns at once if another call is already at it.
    pub fn stage_folders(&self) {
        if self.staging.swap(true, Ordering::Acquire) {
            return;
        }
        while self.staged_folders().len() < STAGED_FOLDERS {
            match self.stage_folder() {
                Ok(folder) => self.staged_folders().push(folder),
                Err(err) => {
                    tracing::warn!(error = %err, "could not stage an execution folder");
                    break;
                }
            }
        }
        self.staging.store(false, Ordering::Release);
    }

    fn stage_folder(&self) -> Result<PathBuf, StoreError> {
        let n = self.staged_names.fetch_add(1, Ordering::Relaxed);
        let folder = self.paths.staging_dir().join(n.to_string());
        let logs = folder.join("logs");
        fs::create_dir_all(&logs).map_err(io_err("create", &logs))?;
        for file in [
            logs.join("main.txt"),
            folder.join("input.json"),
            folder.join("status_history.tsv"),
        ] {
            write_fresh(&file, b"")?;
        }
        Ok(folder)
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<JobId, JobHistory>> {
        // A panic while holding the lock cannot leave the index inconsistent with
        // disk in a way later reads could not survive, so poisoning is ignored.
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The index, locked, with the job's history in it: loaded from disk on first
    /// use, without holding the lock, so that reading a long history never holds
    /// up requests about other jobs.
    fn loaded(
        &self,
        job: &JobId,
    ) -> Result<MutexGuard<'_, HashMap<JobId, JobHistory>>, StoreError> {
        {
            let index = self.lock();
            if index.contains_key(job) {
                return Ok(index);
            }
        }
        let history = self.load_history(job)?;
        let mut index = self.lock();
        // Another request may have loaded (and changed) it meanwhile: keep theirs.
        index.entry(job.clone()).or_insert(history);
        Ok(index)
    }

    fn load_history(&self, job: &JobId) -> Result<JobHistory, StoreError> {
        let dir = self.paths.executions_dir(job);
        let mut history = JobHistory::default();
        if let Some(text) = read_optional(&self.paths.last_execution_file(job))? {
            history.last_id = text.trim().parse().unwrap_or(0);
        }
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(history),
            Err(err) => return Err(io_err("list", &dir)(err)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("list", &dir))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|name| ExecutionId::parse(name).ok())
            else {
                continue;
            };
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let execution = self.load_execution(job, id)?;
            history.last_id = history.last_id.max(id.0);
            history.executions.insert(id, Arc::new(execution));
        }
        Ok(history)
    }

    fn load_execution(&self, job: &JobId, id: ExecutionId) -> Result<Execution, StoreError> {
        let input_values = read_optional(&self.paths.execution_input(job, id))?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        let history_path = self.paths.execution_status_history(job, id);
        let mut status_history = read_optional(&history_path)?
            .map(|text| parse_history(&text))
            .unwrap_or_default();
        if status_history.is_empty() {
            status_history = self.load_legacy_status(job, id)?;
        }
        let result = read_optional(&self.paths.execution_result(job, id))?
            .and_then(|text| parse_result(&text));
        let status = status_history
            .last()
            .map(|change| change.status)
            // A record whose creation was cut short was never acknowledged; it is
            // shown as created so recovery can settle it.
            .unwrap_or(ExecutionStatus::Created);
        Ok(Execution {
            execution_id: id,
            status,
            status_history,
            result,
            input_values,
        })
    }

    /// The original tool's `status.txt`: one word, dated by the file's mtime.
    fn load_legacy_status(
        &self,
        job: &JobId,
        id: ExecutionId,
    ) -> Result<Vec<StatusChange>, StoreError> {
        let path = self.paths.execution_legacy_status(job, id);
        let Some(text) = read_optional(&path)? else {
            return Ok(Vec::new());
        };
        let Some(status) = ExecutionStatus::parse(text.trim()) else {
            return Ok(Vec::new());
        };
        let timestamp = fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .map(|time| DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Nanos, true))
            .unwrap_or_default();
        Ok(vec![StatusChange { timestamp, status }])
    }

    /// Records a new queued execution with the next id of its job.
    pub fn create(
        &self,
        job: &JobId,
        input_values: BTreeMap<String, String>,
    ) -> Result<Execution, StoreError> {
        let mut index = self.loaded(job)?;
        let history = index.get_mut(job).expect("loaded() inserts the job");
        let executions_dir = self.paths.executions_dir(job);
        fs::create_dir_all(&executions_dir).map_err(io_err("create", &executions_dir))?;
        let input_json = serde_json::to_vec(&input_values).expect("a string map always serializes");
        let change = StatusChange {
            timestamp: now_timestamp(),
            status: ExecutionStatus::Created,
        };
        let history_line = format!("{}\t{}\n", change.timestamp, change.status);
        let mut id = ExecutionId(history.last_id + 1);
        let staged = self.staged_folders().pop();
        match staged {
            Some(folder) => {
                write_fresh(&folder.join("input.json"), &input_json)?;
                write_fresh(&folder.join("status_history.tsv"), history_line.as_bytes())?;
                loop {
                    let dir = self.paths.execution_dir(job, id);
                    match fs::rename(&folder, &dir) {
                        Ok(()) => break,
                        // A folder left by someone else: never reuse its id.
                        Err(err)
                            if matches!(
                                err.kind(),
                                io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                            ) =>
                        {
                            id.0 += 1
                        }
                        Err(err) => return Err(io_err("move into place", &dir)(err)),
                    }
                }
            }
            None => {
                loop {
                    let dir = self.paths.execution_dir(job, id);
                    match fs::create_dir(&dir) {
                        Ok(()) => break,
                        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => id.0 += 1,
                        Err(err) => return Err(io_err("create", &dir)(err)),
                    }
                }
                write_fresh(&self.paths.execution_input(job, id), &input_json)?;
                write_fresh(
                    &self.paths.execution_status_history(job, id),
                    history_line.as_bytes(),
                )?;
            }
        }
        history.last_id = id.0;
        write_counter(&self.paths.last_execution_file(job), id.0)?;
        let execution = Execution {
            execution_id: id,
            status: ExecutionStatus::Created,
            status_history: vec![change],
            result: None,
            input_values,
        };
        history.executions.insert(id, Arc::new(execution.clone()));
        Ok(execution)
    }

    /// Appends a status; with a result, `result.tsv` is written first so that a
    /// reader who sees the final status also sees the result.
    pub fn set_status(
        &self,
        job: &JobId,
        id: ExecutionId,
        status: ExecutionStatus,
        result: Option<ExecutionResult>,
    ) -> Result<Execution, StoreError> {
        let mut index = self.loaded(job)?;
        let history = index.get_mut(job).expect("loaded() inserts the job");
        let Some(current) = history.executions.get(&id) else {
            return Err(StoreError::NotFound {
                job: job.clone(),
                exec: id,
            });
        };
        let mut execution = Execution::clone(current);
        if let Some(result) = &result {
            write_fresh(
                &self.paths.execution_result(job, id),
                format_result(result).as_bytes(),
            )?;
            execution.result = Some(result.clone());
        }
        let change = StatusChange {
            timestamp: now_timestamp(),
            status,
        };
        append_line(
            &self.paths.execution_status_history(job, id),
            &format!("{}\t{}\n", change.timestamp, change.status),
        )?;
        execution.status = status;
        execution.status_history.push(change);
        history.executions.insert(id, Arc::new(execution.clone()));
        Ok(execution)
    }

    pub fn get(&self, job: &JobId, id: ExecutionId) -> Result<Arc<Execution>, StoreError> {
        let mut index = self.loaded(job)?;
        let history = index.get_mut(job).expect("loaded() inserts the job");
        history
            .executions
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                job: job.clone(),
                exec: id,
            })
    }

    /// Newest first; `before` keeps only ids below it; `limit` caps the count.
    pub fn list(
        &self,
        job: &JobId,
        limit: Option<usize>,
        before: Option<ExecutionId>,
    ) -> Result<Vec<Arc<Execution>>, StoreError> {
        let mut index = self.loaded(job)?;
        let history = index.get_mut(job).expect("loaded() inserts the job");
        let upper = before.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        Ok(history
            .executions
            .range((std::ops::Bound::Unbounded, upper))
            .rev()
            .take(limit.unwrap_or(usize::MAX))
            .map(|(_, execution)| Arc::clone(execution))
            .collect())
    }

    pub fn last(&self, job: &JobId) -> Result<Option<Arc<Execution>>, StoreError> {
        let mut index = self.loaded(job)?;
        let history = index.get_mut(job).expect("loaded() inserts the job");
        Ok(history.executions.values().next_back().cloned())
    }

    /// True when the job has recorded executions (in memory or on disk).
    pub fn has_history(&self, job: &JobId) -> bool {
        self.lock().contains_key(job) || self.paths.executions_dir(job).is_dir()
    }

    /// Every job that has a state directory, found by walking `state/jobs`.
    pub fn recorded_jobs(&self) -> Vec<JobId> {
        let root = self.paths.state_jobs_dir();
        let mut jobs = Vec::new();
        let mut walk = walkdir::WalkDir::new(&root).min_depth(1).into_iter();
        while let Some(entry) = walk.next() {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_dir() || entry.file_name() != "executions" {
                continue;
            }
            // Execution folders are not jobs; do not descend into them.
            walk.skip_current_dir();
            let Some(job_dir) = entry.path().parent() else {
                continue;
            };
            let Some(id) = job_dir
                .strip_prefix(&root)
                .ok()
                .and_then(|rel| rel.to_str())
                .and_then(|rel| JobId::parse(rel).ok())
            else {
                continue;
            };
            jobs.push(id);
        }
        jobs.sort();
        jobs
    }

    /// Every execution, of any job on disk, that has not finished yet.
    pub fn unfinished(&self) -> Vec<(JobId, Arc<Execution>)> {
        let mut found = Vec::new();
        for job in self.recorded_jobs() {
            match self.list(&job, None, None) {
                Ok(executions) => found.extend(
                    executions
                        .into_iter()
                        .filter(|execution| !execution.status.is_finished())
                        .map(|execution| (job.clone(), execution)),
                ),
                Err(err) => {
                    tracing::error!(job = %job, error = %err, "could not read the executions of a job")
                }
            }
        }
        found
    }

    pub fn write_pid(
        &self,
        job: &JobId,
        id: ExecutionId,
        pid: PidRecord,
    ) -> Result<(), StoreError> {
        write_fresh(
            &self.paths.execution_pid(job, id),
            format!("{} {}\n", pid.pid, pid.start_ticks).as_bytes(),
        )
    }

    pub fn read_pid(&self, job: &JobId, id: ExecutionId) -> Option<PidRecord> {
        let text = fs::read_to_string(self.paths.execution_pid(job, id)).ok()?;
        let mut words = text.split_whitespace();
        Some(PidRecord {
            pid: words.next()?.parse().ok()?,
            start_ticks: words.next()?.parse().ok()?,
        })
    }

    pub fn remove_pid(&self, job: &JobId, id: ExecutionId) {
        let path = self.paths.execution_pid(job, id);
        if let Err(err) = fs::remove_file(&path) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %err, "could not remove pid file");
            }
        }
    }

    /// Creates the execution's log folder and opens its log for appending.
    pub fn open_log(&self, job: &JobId, id: ExecutionId) -> Result<File, StoreError> {
        let dir = self.paths.execution_logs_dir(job, id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let path = self.paths.execution_log(job, id);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(Paths::new(tmp.path().to_owned()));
        (tmp, store)
    }

    #[test]
    fn execution_ids_are_decimal_only() {
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            " 1",
            "0x10",
            "abc",
            "99999999999999999999",
        ] {
            assert!(ExecutionId::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ExecutionId::parse("42").unwrap(), ExecutionId(42));
        assert_eq!(serde_json::to_string(&ExecutionId(7)).unwrap(), "\"7\"");
    }

    #[test]
    fn records_round_trip_in_the_original_layout() {
        let (tmp, store) = store();
        let job = JobId::parse("a/b").unwrap();
        let inputs = BTreeMap::from([("who".to_owned(), "me".to_owned())]);
        let first = store.create(&job, inputs.clone()).unwrap();
        let second = store.create(&job, BTreeMap::new()).unwrap();
        assert_eq!((first.execution_id.0, second.execution_id.0), (1, 2));
        store
            .set_status(&job, first.execution_id, ExecutionStatus::Running, None)
            .unwrap();
        let result = ExecutionResult {
            exit_code: 3,
            message: "exited\nwith 3".into(),
        };
        store
            .set_status(
                &job,
                first.execution_id,
                ExecutionStatus::Failure,
                Some(result),
            )
            .unwrap();

        let dir = tmp.path().join("state/jobs/a/b/executions");
        assert_eq!(
            fs::read_to_string(dir.join("last_execution.txt")).unwrap(),
            "2"
        );
        assert_eq!(
            fs::read_to_string(dir.join("1/result.tsv")).unwrap(),
            "3\texited with 3\n"
        );
        let history = fs::read_to_string(dir.join("1/status_history.tsv")).unwrap();
        let statuses: Vec<_> = history
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap())
            .collect();
        assert_eq!(statuses, ["created", "running", "failure"]);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(
                &fs::read_to_string(dir.join("1/input.json")).unwrap()
            )
            .unwrap(),
            serde_json::json!({"who": "me"})
        );

        // A fresh store reads the same from disk.
        let reread = Store::new(Paths::new(tmp.path().to_owned()));
        let loaded = reread.get(&job, first.execution_id).unwrap();
        assert_eq!(loaded.status, ExecutionStatus::Failure);
        assert_eq!(loaded.result.as_ref().unwrap().exit_code, 3);
        assert_eq!(loaded.input_values, inputs);
        let listed: Vec<_> = reread
            .list(&job, None, None)
            .unwrap()
            .iter()
            .map(|e| e.execution_id.0)
            .collect();
        assert_eq!(listed, [2, 1]);
        assert_eq!(
            reread.list(&job, Some(1), Some(ExecutionId(2))).unwrap()[0]
                .execution_id
                .0,
            1
        );
        assert_eq!(reread.unfinished().len(), 1);
    }

    #[test]
    fn staged_folders_become_complete_records() {
        let (tmp, store) = store();
        let job = JobId::parse("j").unwrap();
        store.stage_folders();
        let staging = tmp.path().join("state/.staging");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), STAGED_FOLDERS);
        let inputs = BTreeMap::from([("a".to_owned(), "b".to_owned())]);
        let first = store.create(&job, inputs).unwrap();
        let dir = tmp.path().join("state/jobs/j/executions/1");
        assert_eq!(first.execution_id.0, 1);
        assert_eq!(
            fs::read_to_string(dir.join("input.json")).unwrap(),
            r#"{"a":"b"}"#
        );
        assert!(
            fs::read_to_string(dir.join("status_history.tsv"))
                .unwrap()
                .ends_with("\tcreated\n")
        );
        assert_eq!(fs::read(dir.join("logs/main.txt")).unwrap(), b"");
        assert_eq!(fs::read_dir(&staging).unwrap().count(), STAGED_FOLDERS - 1);
        // A folder someone else made at the next id is skipped, not replaced.
        fs::create_dir_all(tmp.path().join("state/jobs/j/executions/2/logs")).unwrap();
        assert_eq!(
            store.create(&job, BTreeMap::new()).unwrap().execution_id.0,
            3
        );
        // Unused staged folders do not outlive the daemon that staged them.
        Store::new(Paths::new(tmp.path().to_owned()));
        assert!(!staging.exists());
    }

    #[test]
    fn ids_are_never_reused_even_when_last_execution_is_lost() {
        let (tmp, store) = store();
        let job = JobId::parse("j").unwrap();
        for _ in 0..3 {
            store.create(&job, BTreeMap::new()).unwrap();
        }
        let dir = tmp.path().join("state/jobs/j/executions");
        fs::remove_file(dir.join("last_execution.txt")).unwrap();
        fs::create_dir(dir.join("4")).unwrap(); // left by another writer
        let reread = Store::new(Paths::new(tmp.path().to_owned()));
        assert_eq!(
            reread.create(&job, BTreeMap::new()).unwrap().execution_id.0,
            5
        );
    }

    #[test]
    fn legacy_status_files_and_damaged_records_load() {
        let (tmp, store) = store();
        let dir = tmp.path().join("state/jobs/old/executions");
        fs::create_dir_all(dir.join("1")).unwrap();
        fs::write(dir.join("1/status.txt"), "success").unwrap();
        fs::create_dir_all(dir.join("2")).unwrap();
        fs::write(
            dir.join("2/status_history.tsv"),
            "2024-01-01T00:00:00Z\tcreated\n2024-01-01T00:00:01Z\trunn",
        )
        .unwrap();
        fs::write(dir.join("2/result.tsv"), "").unwrap();
        fs::write(dir.join("last_execution.txt"), "garbage").unwrap();
        let job = JobId::parse("old").unwrap();
        let first = store.get(&job, ExecutionId(1)).unwrap();
        assert_eq!(first.status, ExecutionStatus::Success);
        assert_eq!(first.status_history.len(), 1);
        let second = store.get(&job, ExecutionId(2)).unwrap();
        assert_eq!(second.status, ExecutionStatus::Created);
        assert_eq!(second.result, None);
        assert_eq!(
            store.create(&job, BTreeMap::new()).unwrap().execution_id.0,
            3
        );
    }
}
