//! Runs executions: the FIFO queue, the worker limit, the child processes and cancel.
//!
//! Each running execution has one task that owns its child and awaits it. Every
//! child is started in a session and process group of its own, so a cancel reaches
//! everything it spawned: SIGINT, then SIGTERM, then SIGKILL, a grace period apart.
//! After a crash, `recover` queues what was queued and adopts process groups that
//! outlived the previous daemon.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::{Event, EventHub};
use crate::jobs::{InputError, Job, JobId};
use crate::paths::Paths;
use crate::store::{
    Execution, ExecutionId, ExecutionResult, ExecutionStatus, PidRecord, Store, StoreError,
};

/// How often a process group's liveness is checked while waiting for it to end
/// without a child handle (during a cancel, or for an adopted execution).
const GROUP_POLL: Duration = Duration::from_millis(25);
/// How long to wait for a group to vanish after SIGKILL before giving up on it.
const KILL_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    BrokenSpec(String),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("servitor is shutting down and starts nothing new")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("execution {exec} of job {job} already finished with status {status}")]
    Finished {
        job: JobId,
        exec: ExecutionId,
        status: ExecutionStatus,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

type Key = (JobId, ExecutionId);

/// A running execution, as far as others need to reach it: to cancel it.
struct Active {
    cancel: CancellationToken,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Key>,
    running: HashMap<Key, Active>,
    /// False until recovery has queued what it found, and again once shutdown begins.
    dispatching: bool,
    /// Set once shutdown begins: nothing new is accepted.
    stopped: bool,
}

struct Inner {
    store: Arc<Store>,
    events: EventHub,
    paths: Paths,
    workers: usize,
    grace: Duration,
    state: Mutex<State>,
    running_count: watch::Sender<usize>,
    recovered: watch::Sender<bool>,
    tasks: TaskTracker,
}

/// Cheap to clone handle on the daemon's executions.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

impl Runner {
    /// Creates the runner; nothing starts until `recover` has run.
    pub fn new(
        store: Arc<Store>,
        events: EventHub,
        workers: usize,
        grace: Duration,
        tasks: TaskTracker,
    ) -> Self {
        let paths = store.paths().clone();
        let inner = Arc::new(Inner {
            store,
            events,
            paths,
            workers: workers.max(1),
            grace,
            state: Mutex::new(State::default()),
            running_count: watch::Sender::new(0),
            recovered: watch::Sender::new(false),
            tasks,
        });
        Self { inner }
    }

    /// Queues a new execution of `job` with the given input values.
    pub fn submit(&self, job: &Job, given: &[(String, String)]) -> Result<Execution, SubmitError> {
        if let Some(error) = &job.error {
            return Err(SubmitError::BrokenSpec(error.clone()));
        }
        let values = job.input_spec.resolve(given)?;
        let execution = {
            let mut state = self.inner.lock();
            if state.stopped {
                return Err(SubmitError::ShuttingDown);
            }
            // Created and queued under one lock, so queue order is id order.
            let execution = self.inner.store.create(&job.job_id, values)?;
            state
                .queue
                .push_back((job.job_id.clone(), execution.execution_id));
            execution
        };
        tracing::debug!(job = %job.job_id, execution = %execution.execution_id, "execution queued");
        self.inner.announce(&job.job_id, &execution);
        // Started from here, on the request's own task: no hop through another
        // task before the child is spawned.
        self.inner.dispatch();
        Ok(execution)
    }

    /// Cancels a queued or running execution.
    pub async fn cancel(&self, job: &JobId, exec: ExecutionId) -> Result<(), CancelError> {
        self.wait_recovered().await;
        let key = (job.clone(), exec);
        {
            let mut state = self.inner.lock();
            if let Some(active) = state.running.get(&key) {
                tracing::info!(job = %job, execution = %exec, "cancelling running execution");
                active.cancel.cancel();
                return Ok(());
            }
            if let Some(position) = state.queue.iter().position(|queued| *queued == key) {
                state.queue.remove(position);
            } else {
                let current = self.inner.store.get(job, exec)?;
                return Err(CancelError::Finished {
                    job: job.clone(),
                    exec,
                    status: current.status,
                });
            }
        }
        tracing::info!(job = %job, execution = %exec, "cancelled queued execution");
        let execution = self
            .inner
            .store
            .set_status(job, exec, ExecutionStatus::Cancelled, None)?;
        self.inner.announce(job, &execution);
        Ok(())
    }

    async fn wait_recovered(&self) {
        let mut recovered = self.inner.recovered.subscribe();
        let _ = recovered.wait_for(|done| *done).await;
    }

    /// Settles what a previous daemon left unfinished, then starts dispatching.
    ///
    /// Queued executions keep their order (by creation time) ahead of anything
    /// submitted meanwhile. A `running` execution whose process group still lives
    /// is adopted; one whose processes are gone ends as a failure.
    pub async fn recover(&self) {
        let store = Arc::clone(&self.inner.store);
        let mut unfinished = tokio::task::spawn_blocking(move || store.unfinished())
            .await
            .unwrap_or_default();
        unfinished.sort_by_cached_key(|(job, execution)| {
            let created = execution
                .created_at()
                .and_then(crate::store::parse_timestamp);
            (created, job.clone(), execution.execution_id)
        });
        let mut queued = Vec::new();
        for (job, execution) in unfinished {
            let exec = execution.execution_id;
            match execution.status {
                ExecutionStatus::Created if execution.status_history.is_empty() => {
                    self.inner.fail_unsettled(
                        &job,
                        exec,
                        "servitor stopped before this execution was fully recorded",
                    );
                }
                ExecutionStatus::Created => queued.push((job, exec)),
                _ => match self.inner.store.read_pid(&job, exec) {
                    Some(record) if is_same_leader(record) && group_alive(record.pid) => {
                        tracing::info!(job = %job, execution = %exec, pid = record.pid, "adopting execution left running by a previous servitor");
                        self.inner.adopt(job, exec, record);
                    }
                    _ => {
                        tracing::warn!(job = %job, execution = %exec, "execution was running when servitor stopped; marking it failed");
                        self.inner.fail_unsettled(
                            &job,
                            exec,
                            "servitor stopped while this execution ran, and its processes are gone",
                        );
                    }
                },
            }
        }
        let requeued = {
            let mut state = self.inner.lock();
            // What was submitted while the disk was read is on disk too, and
            // already queued: queue it once.
            queued.retain(|key| !state.queue.contains(key));
            for key in queued.iter().rev() {
                state.queue.push_front(key.clone());
            }
            if !state.stopped {
                state.dispatching = true;
            }
            queued.len()
        };
        if requeued > 0 {
            tracing::info!(
                count = requeued,
                "requeued executions left queued by a previous servitor"
            );
        }
        self.inner.recovered.send_replace(true);
        self.inner.restage();
        self.inner.dispatch();
    }

    /// Stops starting executions (queued ones stay queued on disk) and waits for
    /// the running ones to end. When `force` fires meanwhile, they are cancelled.
    pub async fn drain(&self, force: CancellationToken) {
        {
            let mut state = self.inner.lock();
            state.stopped = true;
            state.dispatching = false;
        }
        self.inner.dispatch();
        let mut count = self.inner.running_count.subscribe();
        let mut forced = false;
        loop {
            let running = *count.borrow_and_update();
            if running == 0 {
                break;
            }
            if !forced {
                tracing::info!(running, "waiting for running executions to end");
            }
            tokio::select! {
                changed = count.changed() => if changed.is_err() { break },
                _ = force.cancelled(), if !forced => {
                    forced = true;
                    tracing::warn!(running, "cancelling running executions");
                    for active in self.inner.lock().running.values() {
                        active.cancel.cancel();
                    }
                }
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn announce(&self, job: &JobId, execution: &Execution) {
        self.events.send(Event::status_changed(
            job,
            execution.execution_id,
            execution.status,
        ));
    }

    /// Ends an execution a previous daemon left unsettled as a failure, exit code -1.
    fn fail_unsettled(&self, job: &JobId, exec: ExecutionId, message: &str) {
        let result = ExecutionResult {
            exit_code: -1,
            message: message.to_owned(),
        };
        self.finish(job, exec, ExecutionStatus::Failure, Some(result));
    }

    /// Builds execution folders ahead of time, off the request's path.
    fn restage(&self) {
        if self.store.wants_staged_folders() {
            let store = Arc::clone(&self.store);
            tokio::task::spawn_blocking(move || store.stage_folders());
        }
    }

    /// Starts queued executions while workers are free, unless shutdown began.
    fn dispatch(self: &Arc<Self>) {
        let mut state = self.lock();
        while !state.stopped && state.dispatching && state.running.len() < self.workers {
            let Some(key) = state.queue.pop_front() else {
                break;
            };
            let cancel = CancellationToken::new();
            state.running.insert(
                key.clone(),
                Active {
                    cancel: cancel.clone(),
                },
            );
            let inner = Arc::clone(self);
            self.tasks
                .spawn(async move { inner.execute(key.0, key.1, cancel).await });
        }
        self.running_count.send_replace(state.running.len());
    }

    /// Removes the pid file, records the final status and result, announces it.
    fn finish(
        &self,
        job: &JobId,
        exec: ExecutionId,
        status: ExecutionStatus,
        result: Option<ExecutionResult>,
    ) {
        // Gone before the final status is visible: whoever sees the end finds
        // no pid file of a process that no longer runs.
        self.store.remove_pid(job, exec);
        match self.store.set_status(job, exec, status, result) {
            Ok(execution) => self.announce(job, &execution),
            Err(err) => {
                tracing::error!(job = %job, execution = %exec, error = %err, "could not record the end of an execution")
            }
        }
    }

    fn release(self: &Arc<Self>, job: &JobId, exec: ExecutionId) {
        let mut state = self.lock();
        state.running.remove(&(job.clone(), exec));
        self.running_count.send_replace(state.running.len());
        drop(state);
        self.dispatch();
        // Staged now rather than on trigger, so building folders never competes
        // with starting an execution.
        self.restage();
    }

    #[tracing::instrument(skip_all, fields(job = %job, execution = %exec))]
    async fn execute(self: Arc<Self>, job: JobId, exec: ExecutionId, cancel: CancellationToken) {
        let (status, result) = self.run_child(&job, exec, &cancel).await;
        match status {
            ExecutionStatus::Success => tracing::info!("execution succeeded"),
            _ => {
                tracing::info!(status = %status, exit_code = result.exit_code, reason = %result.message, "execution ended")
            }
        }
        self.finish(&job, exec, status, Some(result));
        self.release(&job, exec);
    }

    async fn run_child(
        &self,
        job: &JobId,
        exec: ExecutionId,
        cancel: &CancellationToken,
    ) -> (ExecutionStatus, ExecutionResult) {
        let execution = match self
            .store
            .set_status(job, exec, ExecutionStatus::Running, None)
        {
            Ok(execution) => execution,
            Err(err) => return spawn_failure(format!("could not record the start: {err}")),
        };
        self.announce(job, &execution);
        let log = match self.store.open_log(job, exec) {
            Ok(log) => log,
            Err(err) => return spawn_failure(err.to_string()),
        };
        let mut child = match self.spawn(job, exec, &execution.input_values, &log) {
            Ok(child) => child,
            Err(err) => {
                let message = format!(
                    "could not start {}: {err}",
                    self.paths.job_run_file(job).display()
                );
                // The user looks for the reason in the log, so it goes there too.
                let _ = writeln!(&log, "servitor: {message}");
                return spawn_failure(message);
            }
        };
        drop(log);
        let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) else {
            return spawn_failure("the child exited before its pid was known".to_owned());
        };
        tracing::info!(pid, "execution started");
        let record = PidRecord {
            pid,
            start_ticks: process_start_ticks(pid).unwrap_or(0),
        };
        if let Err(err) = self.store.write_pid(job, exec, record) {
            tracing::warn!(error = %err, "could not write pid file; a restart could not adopt this execution");
        }
        let exit = tokio::select! {
            exit = child.wait() => exit,
            _ = cancel.cancelled() => Ok(self.escalate(pid, Some(&mut child)).await),
        };
        let exit = match exit {
            Ok(exit) => Some(exit),
            Err(err) => {
                tracing::error!(error = %err, "could not wait for the child");
                None
            }
        };
        if cancel.is_cancelled() {
            // The leader may have ended before the cancel; its group is ended anyway.
            if group_alive(pid) {
                self.escalate(pid, None).await;
            }
            let (exit_code, how) = exit.map(describe_exit).unwrap_or((-1, String::new()));
            let message = if how.is_empty() {
                "cancelled".to_owned()
            } else {
                format!("cancelled; {how}")
            };
            return (
                ExecutionStatus::Cancelled,
                ExecutionResult { exit_code, message },
            );
        }
        match exit {
            Some(exit) => {
                let (exit_code, message) = describe_exit(exit);
                let status = if exit_code == 0 {
                    ExecutionStatus::Success
                } else {
                    ExecutionStatus::Failure
                };
                (status, ExecutionResult { exit_code, message })
            }
            None => (
                ExecutionStatus::Failure,
                ExecutionResult {
                    exit_code: -1,
                    message: "servitor lost track of the process".to_owned(),
                },
            ),
        }
    }

    fn spawn(
        &self,
        job: &JobId,
        exec: ExecutionId,
        inputs: &BTreeMap<String, String>,
        log: &std::fs::File,
    ) -> io::Result<Child> {
        let mut command = Command::new(self.paths.job_run_file(job));
        command
            .current_dir(self.paths.job_dir(job))
            .envs(environment(&self.paths, job, exec, inputs))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .kill_on_drop(true);
        new_session(&mut command);
        command.spawn()
    }

    /// Signals the group SIGINT, SIGTERM, then SIGKILL, each after the grace
    /// period if the group still lives. Returns the leader's exit when a child
    /// handle is given.
    async fn escalate(&self, pgid: i32, mut leader: Option<&mut Child>) -> ExitStatus {
        let mut exit = None;
        for signal in [Signal::INT, Signal::TERM, Signal::KILL] {
            tracing::info!(pid = pgid, signal = ?signal, "signalling process group");
            if let Some(pid) = Pid::from_raw(pgid) {
                let _ = rustix::process::kill_process_group(pid, signal);
            }
            let wait = if signal == Signal::KILL {
                KILL_WAIT
            } else {
                self.grace
            };
            let deadline = Instant::now() + wait;
            loop {
                if exit.is_none() {
                    if let Some(child) = leader.as_deref_mut() {
                        if let Ok(Some(status)) = child.try_wait() {
                            exit = Some(status);
                        }
                    }
                }
                let leader_done = exit.is_some() || leader.is_none();
                if leader_done && !group_alive(pgid) {
                    return exit.unwrap_or_else(|| ExitStatus::from_raw(signal_status(signal)));
                }
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(GROUP_POLL).await;
            }
        }
        if let Some(child) = leader {
            if let Ok(status) = child.wait().await {
                return status;
            }
        }
        exit.unwrap_or_else(|| ExitStatus::from_raw(signal_status(Signal::KILL)))
    }

    /// Watches a process group left by a previous daemon until it is gone.
    fn adopt(self: &Arc<Self>, job: JobId, exec: ExecutionId, record: PidRecord) {
        let cancel = CancellationToken::new();
        {
            let mut state = self.lock();
            state.running.insert(
                (job.clone(), exec),
                Active {
                    cancel: cancel.clone(),
                },
            );
            self.running_count.send_replace(state.running.len());
        }
        let inner = Arc::clone(self);
        self.tasks.spawn(async move {
            let pgid = record.pid;
            let cancelled = loop {
                if !group_alive(pgid) {
                    break false;
                }
                tokio::select! {
                    _ = tokio::time::sleep(GROUP_POLL * 4) => {}
                    _ = cancel.cancelled() => {
                        inner.escalate(pgid, None).await;
                        break true;
                    }
                }
            };
            let (status, message) = if cancelled {
                (
                    ExecutionStatus::Cancelled,
                    "cancelled after servitor restarted; exit status unknown",
                )
            } else {
                (
                    ExecutionStatus::Failure,
                    "servitor restarted while this execution ran; it ended with an exit status servitor could not observe",
                )
            };
            tracing::info!(job = %job, execution = %exec, status = %status, "adopted execution ended");
            inner.finish(
                &job,
                exec,
                status,
                Some(ExecutionResult {
                    exit_code: -1,
                    message: message.to_owned(),
                }),
            );
            inner.release(&job, exec);
        });
    }
}

fn spawn_failure(message: String) -> (ExecutionStatus, ExecutionResult) {
    (
        ExecutionStatus::Failure,
        ExecutionResult {
            exit_code: -1,
            message,
        },
    )
}

/// The raw wait status of a death by `signal`, for a leader we could not wait for.
fn signal_status(signal: Signal) -> i32 {
    signal.as_raw()
}

/// The job's environment: the daemon's own, plus servitor's variables and one
/// variable per input value, named after the input.
fn environment(
    paths: &Paths,
    job: &JobId,
    exec: ExecutionId,
    inputs: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut vars = vec![
        (
            "SERVITOR_ROOT".to_owned(),
            paths.root().to_string_lossy().into_owned(),
        ),
        ("SERVITOR_JOB".to_owned(), job.to_string()),
        // So that `pwd` shows the job's directory as seen under config/jobs,
        // even when it is reached through a link.
        (
            "PWD".to_owned(),
            paths.job_dir(job).to_string_lossy().into_owned(),
        ),
        ("SERVITOR_JOB_EXECUTION".to_owned(), exec.to_string()),
    ];
    vars.extend(inputs.iter().map(|(k, v)| (k.clone(), v.clone())));
    vars
}

/// The exit code and message recorded for a finished process.
fn describe_exit(exit: ExitStatus) -> (i32, String) {
    if let Some(code) = exit.code() {
        let message = if code == 0 {
            String::new()
        } else {
            format!("exited with code {code}")
        };
        return (code, message);
    }
    match exit.signal() {
        Some(signal) => (
            -signal,
            format!("killed by signal {signal} ({})", signal_name(signal)),
        ),
        None => (-1, "ended in an unknown way".to_owned()),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "unnamed signal",
    }
}

/// True while any process is left in the group.
fn group_alive(pgid: i32) -> bool {
    let Some(pid) = Pid::from_raw(pgid) else {
        return false;
    };
    match rustix::process::test_kill_process_group(pid) {
        Ok(()) => !only_zombies_in_group(pgid),
        Err(err) => err != rustix::io::Errno::SRCH,
    }
}

/// True when `/proc` shows members of the group and every one is a zombie.
///
/// kill(2) still reaches zombies, but they are dead: a grandchild orphaned when
/// the job ended is reparented to init, which may take seconds to reap it (or
/// never, when servitor itself is PID 1 of a container). Without this, a
/// cancel would run the whole signal ladder and an adopted execution would
/// never end.
fn only_zombies_in_group(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    let pgid = pgid.to_string();
    let mut zombies = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name: state, ppid, pgrp.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next();
        if fields.nth(1) != Some(pgid.as_str()) {
            continue;
        }
        if !matches!(state, Some("Z" | "X")) {
            return false;
        }
        zombies = true;
    }
    // No member visible at all (another pid namespace): trust kill(2).
    zombies
}

/// False when the recorded pid now belongs to a process that started at another
/// time than the job's leader: the leader ended and its pid was handed out again,
/// so its group (which would have kept the pid taken) is gone too.
fn is_same_leader(record: PidRecord) -> bool {
    match process_start_ticks(record.pid) {
        Some(ticks) => record.start_ticks == 0 || ticks == record.start_ticks,
        None => true,
    }
}

/// The process's start time, to tell it from a later process with the same pid.
fn process_start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3; the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Makes the child the leader of a new session (and so of a new process group).
#[allow(unsafe_code)]
fn new_session(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setsid(2), which is async-signal-safe and touches no shared memory.
    unsafe {
        command.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_with_codes_and_signals() {
        assert_eq!(describe_exit(ExitStatus::from_raw(0)), (0, String::new()));
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            (3, "exited with code 3".to_owned())
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            (-9, "killed by signal 9 (SIGKILL)".to_owned())
        );
    }

    #[test]
    fn start_ticks_of_this_process_are_readable() {
        assert!(process_start_ticks(std::process::id() as i32).is_some());
        assert!(group_alive(
            rustix::process::getpgrp().as_raw_nonzero().get()
        ));
    }
}
