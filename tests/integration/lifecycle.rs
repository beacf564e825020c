//! The life of executions and of the daemon itself (DESIGN.md §4 cancel, §6):
//! cancel and its signal ladder, the single-instance lock, a stale socket,
//! recovery after a crash, shutdown on signals, and the TCP listener.
//!
//! Job scripts write the pids of what they start under `<wd>/pids/`; a `Reaper`
//! kills every one of them when the test ends, whatever happened.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use rustix::process::{Pid, Signal};
use servitor::store::{ExecutionId, ExecutionResult, ExecutionStatus};

use crate::harness::{TIMEOUT, TestDaemon, wait_for_async, wait_until};

/// True while `pid` exists and is not a zombie (dead, only not reaped yet: in a
/// container whose init does not reap, orphans stay zombies for good).
fn alive(pid: i32) -> bool {
    let Some(raw) = Pid::from_raw(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(raw).is_err() {
        return false;
    }
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// The live (non-zombie) processes of process group `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state, ppid, pgrp.
        if fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X") {
            members.push(pid);
        }
    }
    members
}

/// Every pid listed (one per line) in the files under `<wd>/pids/`.
fn recorded_pids(root: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    if let Ok(entries) = fs::read_dir(root.join("pids")) {
        for entry in entries.flatten() {
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            pids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

/// Kills every recorded pid and every group it leads when dropped, so nothing
/// a test started outlives it, even when an assertion failed.
struct Reaper {
    root: PathBuf,
    groups: Vec<i32>,
}

impl Reaper {
    fn new(daemon: &TestDaemon) -> Self {
        fs::create_dir_all(daemon.path().join("pids")).unwrap();
        Self {
            root: daemon.path().to_owned(),
            groups: Vec::new(),
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in recorded_pids(&self.root)
            .into_iter()
            .chain(self.groups.clone())
        {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
        }
    }
}

#[track_caller]
fn assert_all_gone(pids: &[i32]) {
    assert!(!pids.is_empty(), "no pid was recorded");
    wait_until(&format!("processes {pids:?} to be gone"), || {
        pids.iter().all(|&pid| !alive(pid)).then_some(())
    });
}

#[track_caller]
fn assert_group_gone(pgid: i32) {
    wait_until(&format!("process group {pgid} to be empty"), || {
        group_members(pgid).is_empty().then_some(())
    });
}

fn exec_dir(daemon: &TestDaemon, job: &str, exec: ExecutionId) -> PathBuf {
    daemon.execution_dir(job, exec.0)
}

/// The last status written to `status_history.tsv`.
fn status_on_disk(daemon: &TestDaemon, job: &str, exec: ExecutionId) -> String {
    let text = fs::read_to_string(exec_dir(daemon, job, exec).join("status_history.tsv")).unwrap();
    let last = text.lines().last().unwrap_or_default();
    last.split('\t').nth(1).unwrap_or_default().to_owned()
}

/// `result.tsv` as the API would show it (`None` when absent).
fn result_on_disk(daemon: &TestDaemon, job: &str, exec: ExecutionId) -> Option<ExecutionResult> {
    let text = fs::read_to_string(exec_dir(daemon, job, exec).join("result.tsv")).ok()?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let (code, message) = line.split_once('\t').unwrap_or((line, ""));
    Some(ExecutionResult {
        exit_code: code.parse().ok()?,
        message: message.to_owned(),
    })
}

/// The pid (and process group) a running execution recorded in its pid file.
fn pid_file(daemon: &TestDaemon, job: &str, exec: ExecutionId) -> i32 {
    let path = exec_dir(daemon, job, exec).join("pid");
    wait_until("the execution's pid file", || {
        let text = fs::read_to_string(&path).ok()?;
        let mut words = text.split_whitespace();
        let pid = words.next()?.parse().ok()?;
        words.next()?.parse::<u64>().ok()?;
        Some(pid)
    })
}

fn log_on_disk(daemon: &TestDaemon, job: &str, exec: ExecutionId) -> Vec<u8> {
    fs::read(exec_dir(daemon, job, exec).join("logs/main.txt")).unwrap_or_default()
}

#[track_caller]
fn wait_log_contains(daemon: &TestDaemon, job: &str, exec: ExecutionId, needle: &str) {
    wait_until(&format!("{needle:?} in the log of {job}/{exec}"), || {
        String::from_utf8_lossy(&log_on_disk(daemon, job, exec))
            .contains(needle)
            .then_some(())
    });
}

async fn wait_running(daemon: &TestDaemon, job: &str, exec: ExecutionId) {
    daemon
        .wait_for(job, exec, "running", |e| {
            e.status == ExecutionStatus::Running
        })
        .await;
}

/// Runs a command to its end under `TIMEOUT` (killing it if it hangs) and
/// returns its status and stderr.
fn run_to_exit(mut command: Command) -> (ExitStatus, String) {
    let stderr_path = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr_path.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, fs::read_to_string(stderr_path.path()).unwrap())
}

/// Reads a streaming response to its end, failing if that takes longer than `TIMEOUT`.
async fn read_to_end(response: hyper::Response<hyper::body::Incoming>) -> Vec<u8> {
    tokio::time::timeout(TIMEOUT, response.into_body().collect())
        .await
        .expect("the stream ended in time")
        .expect("the stream ended cleanly")
        .to_bytes()
        .to_vec()
}

/// Waits until a request on the socket no longer gets an answer.
async fn wait_socket_silent(daemon: &TestDaemon) {
    let client = daemon.client();
    wait_for_async("the socket to stop answering", || {
        let client = client.clone();
        async move { client.jobs().await.is_err().then_some(()) }
    })
    .await;
}

const BLOCKER: &str =
    "#!/bin/sh\nwhile [ ! -e \"$SERVITOR_ROOT/go\" ]; do sleep 0.02; done\necho released\n";
const MARKER: &str = "#!/bin/sh\ntouch \"$SERVITOR_ROOT/ran-$SERVITOR_JOB_EXECUTION\"\n";

#[tokio::test]
async fn a_cancelled_queued_execution_never_starts() {
    let daemon = TestDaemon::new()
        .job("block", BLOCKER)
        .job("marker", MARKER)
        .arg("--workers")
        .arg("1")
        .start()
        .await;
    let block = daemon.run("block").await;
    wait_running(&daemon, "block", block).await;
    let first = daemon.run("marker").await;
    let second = daemon.run("marker").await;

    let follower = daemon.client().log("marker", first, 0).await.unwrap();
    let follower = tokio::spawn(read_to_end(follower));

    daemon.client().cancel("marker", first).await.unwrap();
    assert_eq!(follower.await.unwrap(), b"", "a follower of it is let go");
    let cancelled = daemon.wait_finished("marker", first).await;
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
    let statuses: Vec<_> = cancelled.status_history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [ExecutionStatus::Created, ExecutionStatus::Cancelled],
        "it never ran"
    );
    assert_eq!(cancelled.result, result_on_disk(&daemon, "marker", first));
    assert_eq!(status_on_disk(&daemon, "marker", first), "cancelled");
    let still_queued = daemon.client().execution("marker", second).await.unwrap();
    assert_eq!(still_queued.status, ExecutionStatus::Created);

    fs::write(daemon.path().join("go"), "").unwrap();
    let released = daemon.wait_finished("block", block).await;
    assert_eq!(released.status, ExecutionStatus::Success);
    let later = daemon.wait_finished("marker", second).await;
    assert_eq!(later.status, ExecutionStatus::Success);
    assert!(daemon.path().join(format!("ran-{second}")).exists());

    // The later execution has finished, so the cancelled one had every chance to start.
    assert!(!daemon.path().join(format!("ran-{first}")).exists());
    // Its log (made with the record) stayed empty.
    let log = exec_dir(&daemon, "marker", first).join("logs/main.txt");
    assert!(fs::read(&log).map(|bytes| bytes.is_empty()).unwrap_or(true));
    assert!(!exec_dir(&daemon, "marker", first).join("pid").exists());
    let after = daemon.client().execution("marker", first).await.unwrap();
    assert_eq!(after, cancelled);
}

#[tokio::test]
async fn cancelling_a_finished_execution_is_a_conflict_and_changes_nothing() {
    let daemon = TestDaemon::new()
        .job("quick", "#!/bin/sh\necho hi\n")
        .start()
        .await;
    let exec = daemon.run("quick").await;
    let done = daemon.wait_finished("quick", exec).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    let dir = exec_dir(&daemon, "quick", exec);
    let history = fs::read(dir.join("status_history.tsv")).unwrap();
    let result = fs::read(dir.join("result.tsv")).unwrap();

    let err = daemon.client().cancel("quick", exec).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT), "{err}");
    assert!(err.to_string().contains("finished"), "{err}");

    assert_eq!(fs::read(dir.join("status_history.tsv")).unwrap(), history);
    assert_eq!(fs::read(dir.join("result.tsv")).unwrap(), result);
    assert_eq!(
        daemon.client().execution("quick", exec).await.unwrap(),
        done
    );

    let err = daemon
        .client()
        .cancel("quick", ExecutionId(99))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");
    let err = daemon
        .client()
        .cancel("no/such/job", exec)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND), "{err}");
    for bad in ["abc", "-1", "1.0", "0x1", "", "%201"] {
        let path = format!("/api/jobs/executions/cancel?job_id=quick&execution_id={bad}");
        let err = daemon.client().send(Method::POST, &path).await.unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::BAD_REQUEST),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("execution_id"), "{bad:?}: {err}");
    }
    assert_eq!(fs::read(dir.join("status_history.tsv")).unwrap(), history);
}

const LADDER: &str = r#"#!/bin/bash
trap 'echo "got INT"' INT
trap 'echo "got TERM"' TERM
pids="$SERVITOR_ROOT/pids/ladder"
sleep 1000 &
echo $! >> "$pids"
sleep 1000 &
echo $! >> "$pids"
( trap '' INT TERM; exec sleep 1000 ) &
echo $! >> "$pids"
echo $$ >> "$pids"
echo ready
while :; do sleep 0.05; done
"#;

#[tokio::test]
async fn cancel_escalates_from_sigint_to_sigterm_to_sigkill_for_the_whole_group() {
    let daemon = TestDaemon::new()
        .job("ladder", LADDER)
        .arg("--cancel-grace")
        .arg("0.5")
        .start()
        .await;
    let reaper = Reaper::new(&daemon);
    let exec = daemon.run("ladder").await;
    wait_log_contains(&daemon, "ladder", exec, "ready\n");
    let pgid = pid_file(&daemon, "ladder", exec);
    let pids = recorded_pids(daemon.path());
    assert_eq!(pids.len(), 4, "{pids:?}");
    assert!(pids.iter().all(|&pid| alive(pid)));

    daemon.client().cancel("ladder", exec).await.unwrap();
    let done = daemon.wait_finished("ladder", exec).await;
    assert_eq!(done.status, ExecutionStatus::Cancelled);
    let result = done.result.clone().expect("a cancelled run has a result");
    assert_eq!(result.exit_code, -9, "{result:?}");
    assert!(result.message.starts_with("cancelled"), "{result:?}");
    assert!(result.message.contains("SIGKILL"), "{result:?}");
    assert_eq!(done.result, result_on_disk(&daemon, "ladder", exec));
    assert_eq!(status_on_disk(&daemon, "ladder", exec), "cancelled");

    let log = String::from_utf8(daemon.log("ladder", exec).await).unwrap();
    let int = log.find("got INT").expect("SIGINT reached the job");
    let term = log.find("got TERM").expect("SIGTERM reached the job");
    assert!(int < term, "INT before TERM: {log:?}");

    assert_all_gone(&pids);
    assert_group_gone(pgid);
    assert!(!exec_dir(&daemon, "ladder", exec).join("pid").exists());
    drop(reaper);
}

#[tokio::test]
async fn a_job_that_stops_on_sigint_is_cancelled_without_waiting_for_the_grace() {
    // The grace is longer than any wait of the test: only SIGINT can end it in time.
    let daemon = TestDaemon::new()
        .job(
            "plain",
            "#!/bin/sh\necho ready\nsleep 1000\necho not reached\n",
        )
        .arg("--cancel-grace")
        .arg("60")
        .start()
        .await;
    let mut reaper = Reaper::new(&daemon);
    let exec = daemon.run("plain").await;
    wait_log_contains(&daemon, "plain", exec, "ready\n");
    let pgid = pid_file(&daemon, "plain", exec);
    reaper.groups.push(pgid);
    // A signal between fork and exec is lost by the shell (it blocks signals
    // there), so cancel only once the sleep runs.
    let members = wait_until("sh and its sleep", || {
        let members = group_members(pgid);
        let sleeping = members.iter().any(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm == "sleep\n")
        });
        (members.len() == 2 && sleeping).then_some(members)
    });

    daemon.client().cancel("plain", exec).await.unwrap();
    let done = daemon.wait_finished("plain", exec).await;
    assert_eq!(done.status, ExecutionStatus::Cancelled);
    let result = done.result.clone().unwrap();
    assert!(
        [-2, 130].contains(&result.exit_code),
        "ended by SIGINT: {result:?}"
    );
    assert!(result.message.starts_with("cancelled"), "{result:?}");
    assert_eq!(done.result, result_on_disk(&daemon, "plain", exec));
    assert_eq!(daemon.log("plain", exec).await, b"ready\n");
    assert_all_gone(&members);
}

#[tokio::test]
async fn a_second_daemon_on_the_same_directory_refuses_to_start() {
    let daemon = TestDaemon::new().job("quick", "#!/bin/sh\n").start().await;
    let inode = fs::metadata(daemon.socket()).unwrap().ino();

    let mut second = daemon.command();
    second.arg("serve").arg("--dir").arg(daemon.path());
    let (status, stderr) = run_to_exit(second);
    assert!(!status.success(), "{status:?}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr:?}");
    assert!(lines[0].contains("another servitor"), "{stderr:?}");

    assert_eq!(daemon.client().jobs().await.unwrap().len(), 1);
    assert_eq!(fs::metadata(daemon.socket()).unwrap().ino(), inode);
    assert!(daemon.path().join("servitor.lock").exists());
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced() {
    let daemon = TestDaemon::new().job("quick", "#!/bin/sh\necho hi\n");
    let stale = std::os::unix::net::UnixListener::bind(daemon.socket()).unwrap();
    drop(stale);
    let meta = fs::symlink_metadata(daemon.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert!(
        std::os::unix::net::UnixStream::connect(daemon.socket()).is_err(),
        "nobody answers on the stale socket"
    );

    let daemon = daemon.start().await;
    let meta = fs::symlink_metadata(daemon.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert!(daemon.stderr().contains("removed stale socket"));
    assert_eq!(meta.permissions().mode() & 0o777, 0o770);
    let exec = daemon.run("quick").await;
    assert_eq!(
        daemon.wait_finished("quick", exec).await.status,
        ExecutionStatus::Success
    );
}

const WRITER: &str = r#"#!/bin/bash
for i in $(seq 1 60); do echo "line $i"; sleep 0.05; done
echo "last line"
"#;
const APPEND_NAME: &str = "#!/bin/sh\necho \"$SERVITOR_JOB\" >> \"$SERVITOR_ROOT/order\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn after_a_crash_a_running_execution_is_adopted_and_the_queue_runs_in_order() {
    let mut daemon = TestDaemon::new()
        .job("writer", WRITER)
        .job("q3", APPEND_NAME)
        .job("q1", APPEND_NAME)
        .job("q2", APPEND_NAME)
        .arg("--workers")
        .arg("1")
        .start()
        .await;
    let mut reaper = Reaper::new(&daemon);
    let writer = daemon.run("writer").await;
    wait_log_contains(&daemon, "writer", writer, "line 3\n");
    let pgid = pid_file(&daemon, "writer", writer);
    reaper.groups.push(pgid);
    // Created in this order, which is not the order of their names.
    let queued: Vec<_> = [
        ("q3", daemon.run("q3").await),
        ("q1", daemon.run("q1").await),
        ("q2", daemon.run("q2").await),
    ]
    .into();

    daemon.kill9();
    assert!(
        !group_members(pgid).is_empty(),
        "the job outlives the daemon"
    );
    daemon.spawn();
    daemon.wait_ready().await;

    let adopted = daemon.client().execution("writer", writer).await.unwrap();
    assert_eq!(
        adopted.status,
        ExecutionStatus::Running,
        "adopted while its group lives"
    );
    for (job, exec) in &queued {
        assert_eq!(status_on_disk(&daemon, job, *exec), "created");
    }

    let followed = read_to_end(daemon.client().log("writer", writer, 0).await.unwrap()).await;
    let finished = daemon.wait_finished("writer", writer).await;
    assert_eq!(followed, log_on_disk(&daemon, "writer", writer));
    let text = String::from_utf8(followed).unwrap();
    assert!(text.starts_with("line 1\nline 2\n"), "{text:?}");
    assert!(text.ends_with("line 60\nlast line\n"), "{text:?}");
    assert_eq!(finished.status, ExecutionStatus::Failure);
    let result = finished.result.clone().unwrap();
    assert!(result.message.contains("restarted"), "{result:?}");
    assert_eq!(finished.result, result_on_disk(&daemon, "writer", writer));
    assert_group_gone(pgid);

    let ended =
        servitor::store::parse_timestamp(&finished.status_history.last().unwrap().timestamp)
            .unwrap();
    for (job, exec) in &queued {
        let done = daemon.wait_finished(job, *exec).await;
        assert_eq!(done.status, ExecutionStatus::Success, "{job}");
        let started = done
            .status_history
            .iter()
            .find(|c| c.status == ExecutionStatus::Running)
            .unwrap();
        let started = servitor::store::parse_timestamp(&started.timestamp).unwrap();
        assert!(
            started >= ended,
            "{job} started only after the adopted one ended"
        );
    }
    assert_eq!(
        fs::read_to_string(daemon.path().join("order")).unwrap(),
        "q3\nq1\nq2\n"
    );

    // Ids continue where they were, for the adopted job and the queued ones.
    assert_eq!(daemon.run("q1").await, ExecutionId(2));
    let next = daemon.run("writer").await;
    assert_eq!(next, ExecutionId(2));
    wait_log_contains(&daemon, "writer", next, "line 1\n");
    reaper.groups.push(pid_file(&daemon, "writer", next));
    daemon.client().cancel("writer", next).await.unwrap();
    let cancelled = daemon.wait_finished("writer", next).await;
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
}

#[tokio::test]
async fn an_execution_whose_processes_died_with_the_daemon_ends_as_a_failure() {
    let mut daemon = TestDaemon::new()
        .job("sleeper", "#!/bin/sh\necho started\nexec sleep 1000\n")
        .start()
        .await;
    let mut reaper = Reaper::new(&daemon);
    let exec = daemon.run("sleeper").await;
    wait_log_contains(&daemon, "sleeper", exec, "started\n");
    let pgid = pid_file(&daemon, "sleeper", exec);
    reaper.groups.push(pgid);

    daemon.kill9();
    rustix::process::kill_process_group(Pid::from_raw(pgid).unwrap(), Signal::KILL).unwrap();
    assert_group_gone(pgid);
    assert_eq!(status_on_disk(&daemon, "sleeper", exec), "running");

    daemon.spawn();
    daemon.wait_ready().await;
    let done = daemon.wait_finished("sleeper", exec).await;
    assert_eq!(done.status, ExecutionStatus::Failure);
    let result = done.result.clone().unwrap();
    assert!(result.message.contains("servitor stopped"), "{result:?}");
    assert_eq!(done.result, result_on_disk(&daemon, "sleeper", exec));
    assert_eq!(status_on_disk(&daemon, "sleeper", exec), "failure");
    assert!(!exec_dir(&daemon, "sleeper", exec).join("pid").exists());
    let next = daemon.run("sleeper").await;
    assert_eq!(next, ExecutionId(2));
    wait_log_contains(&daemon, "sleeper", next, "started\n");
    reaper.groups.push(pid_file(&daemon, "sleeper", next));
    daemon.client().cancel("sleeper", next).await.unwrap();
    let cancelled = daemon.wait_finished("sleeper", next).await;
    assert_eq!(cancelled.status, ExecutionStatus::Cancelled);
}

#[tokio::test]
async fn damaged_state_files_do_not_prevent_startup() {
    let daemon = TestDaemon::new().job("j", "#!/bin/sh\necho fresh\n");
    let executions = daemon.path().join("state/jobs/j/executions");
    fs::create_dir_all(executions.join("1")).unwrap();
    fs::create_dir_all(executions.join("2")).unwrap();
    fs::write(executions.join("last_execution.txt"), "garbage\0\n").unwrap();
    // Cut off in the middle of its last line.
    fs::write(
        executions.join("1/status_history.tsv"),
        "2024-01-01T00:00:00.000000000Z\tcreated\n2024-01-01T00:00:01.000000000Z\trunning\n2024-01-01T00:00:0",
    )
    .unwrap();
    fs::write(
        executions.join("2/status_history.tsv"),
        "2024-01-01T00:00:02.000000000Z\tcreated\n2024-01-01T00:00:03.000000000Z\trunning\n2024-01-01T00:00:04.000000000Z\tsuccess\n",
    )
    .unwrap();
    fs::write(executions.join("2/result.tsv"), "").unwrap();

    let daemon = daemon.start().await;
    let jobs = daemon.client().jobs().await.unwrap();
    assert_eq!(jobs.len(), 1);
    let cut = daemon.wait_finished("j", ExecutionId(1)).await;
    assert_eq!(cut.status, ExecutionStatus::Failure, "{cut:?}");
    let two = daemon
        .client()
        .execution("j", ExecutionId(2))
        .await
        .unwrap();
    assert_eq!(two.status, ExecutionStatus::Success);
    assert_eq!(two.result, None);

    let exec = daemon.run("j").await;
    assert_eq!(exec, ExecutionId(3), "a new id above every one on disk");
    let done = daemon.wait_finished("j", exec).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    assert_eq!(daemon.log("j", exec).await, b"fresh\n");
    assert_eq!(
        fs::read_to_string(executions.join("last_execution.txt"))
            .unwrap()
            .trim(),
        "3"
    );
    let listed = daemon.client().executions("j", None, None).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|e| e.execution_id.0).collect();
    assert_eq!(ids, [3, 2, 1]);
}

const ADOPTABLE: &str = r#"#!/bin/bash
pids="$SERVITOR_ROOT/pids/adopted"
sleep 1000 &
echo $! >> "$pids"
echo $$ >> "$pids"
echo ready
while :; do sleep 0.05; done
"#;

#[tokio::test]
async fn an_adopted_execution_can_be_cancelled() {
    let mut daemon = TestDaemon::new()
        .job("adopted", ADOPTABLE)
        .arg("--cancel-grace")
        .arg("0.5")
        .start()
        .await;
    let mut reaper = Reaper::new(&daemon);
    let exec = daemon.run("adopted").await;
    wait_log_contains(&daemon, "adopted", exec, "ready\n");
    let pgid = pid_file(&daemon, "adopted", exec);
    reaper.groups.push(pgid);
    let pids = recorded_pids(daemon.path());

    daemon.kill9();
    daemon.spawn();
    daemon.wait_ready().await;
    let adopted = daemon.client().execution("adopted", exec).await.unwrap();
    assert_eq!(adopted.status, ExecutionStatus::Running);
    assert!(pids.iter().all(|&pid| alive(pid)));

    daemon.client().cancel("adopted", exec).await.unwrap();
    let done = daemon.wait_finished("adopted", exec).await;
    assert_eq!(done.status, ExecutionStatus::Cancelled);
    let result = done.result.clone().unwrap();
    assert!(result.message.starts_with("cancelled"), "{result:?}");
    assert_eq!(done.result, result_on_disk(&daemon, "adopted", exec));
    assert_all_gone(&pids);
    assert_group_gone(pgid);
    let err = daemon.client().cancel("adopted", exec).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
}

const HOLD: &str = "#!/bin/sh\necho $$ >> \"$SERVITOR_ROOT/pids/hold\"\necho holding\nwhile [ ! -e \"$SERVITOR_ROOT/go\" ]; do sleep 0.02; done\necho released\n";

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_streams_waits_for_running_and_keeps_the_queue() {
    let mut daemon = TestDaemon::new()
        .job("hold", HOLD)
        .job("later", MARKER)
        .arg("--workers")
        .arg("1")
        .start()
        .await;
    let reaper = Reaper::new(&daemon);
    let hold = daemon.run("hold").await;
    wait_log_contains(&daemon, "hold", hold, "holding\n");
    let later = daemon.run("later").await;
    let events = daemon.client().events().await.unwrap();
    let log = daemon.client().log("hold", hold, 0).await.unwrap();
    let events = tokio::spawn(read_to_end(events));
    let log = tokio::spawn(read_to_end(log));

    daemon.signal(Signal::TERM);
    let log = log.await.unwrap();
    assert_eq!(
        log, b"holding\n",
        "the follow stream ended while the job runs"
    );
    events.await.unwrap();
    wait_socket_silent(&daemon).await;

    // Still waiting for the running execution.
    assert!(alive(daemon.pid()), "{}", daemon.stderr());
    assert_eq!(status_on_disk(&daemon, "hold", hold), "running");
    fs::write(daemon.path().join("go"), "").unwrap();
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}");
    assert_eq!(status_on_disk(&daemon, "hold", hold), "success");
    assert_eq!(log_on_disk(&daemon, "hold", hold), b"holding\nreleased\n");
    assert_eq!(status_on_disk(&daemon, "later", later), "created");
    assert!(!daemon.path().join(format!("ran-{later}")).exists());
    assert!(!daemon.socket().exists());

    let daemon = daemon.start().await;
    let done = daemon.wait_finished("later", later).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    assert!(daemon.path().join(format!("ran-{later}")).exists());
    drop(reaper);
}

#[tokio::test]
async fn a_second_sigterm_cancels_the_running_executions_and_exits() {
    let mut daemon = TestDaemon::new()
        .job("hold", HOLD)
        .arg("--cancel-grace")
        .arg("0.5")
        .start()
        .await;
    let reaper = Reaper::new(&daemon);
    let hold = daemon.run("hold").await;
    wait_log_contains(&daemon, "hold", hold, "holding\n");
    let pgid = pid_file(&daemon, "hold", hold);
    let members = group_members(pgid);

    daemon.signal(Signal::TERM);
    wait_socket_silent(&daemon).await;
    assert!(alive(daemon.pid()));
    daemon.signal(Signal::TERM);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}");

    assert_eq!(status_on_disk(&daemon, "hold", hold), "cancelled");
    let result = result_on_disk(&daemon, "hold", hold).expect("result recorded");
    assert!(result.message.starts_with("cancelled"), "{result:?}");
    assert_all_gone(&members);
    assert_all_gone(&recorded_pids(daemon.path()));
    assert_group_gone(pgid);
    drop(reaper);
}

/// The address in the daemon's "listening on http://ADDR/" line.
fn tcp_address(daemon: &TestDaemon) -> String {
    wait_until("the TCP address on stderr", || {
        let stderr = daemon.stderr();
        let start = stderr.find("listening on http://")? + "listening on http://".len();
        let end = start + stderr[start..].find('/')?;
        Some(stderr[start..end].to_owned())
    })
}

fn http(address: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[tokio::test]
async fn listen_serves_the_same_api_over_tcp_with_a_warning() {
    let daemon = TestDaemon::new()
        .job("tcp/job", "#!/bin/sh\necho over tcp\n")
        .arg("--listen")
        .arg("tcp://127.0.0.1:0")
        .start()
        .await;
    let address = tcp_address(&daemon);
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    assert_ne!(address, "127.0.0.1:0", "the chosen port is named");
    let warning = daemon
        .stderr()
        .lines()
        .find(|l| l.contains("listening on http://"))
        .unwrap()
        .to_owned();
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(&format!("http://{address}/")), "{warning}");
    assert!(warning.contains("without authentication"), "{warning}");

    let answer = http(
        &address,
        "GET /api/jobs/get_list HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"job_id\":\"tcp/job\""), "{answer}");

    let answer = http(
        &address,
        "POST /api/jobs/run?job_id=tcp%2Fjob HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"execution_id\":\"1\""), "{answer}");
    // The same daemon: the run shows on the UNIX socket.
    let done = daemon.wait_finished("tcp/job", ExecutionId(1)).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    assert_eq!(daemon.log("tcp/job", ExecutionId(1)).await, b"over tcp\n");

    let answer = http(
        &address,
        "GET /api/jobs/get?job_id=nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(answer.contains("\"message\""), "{answer}");
}

#[test]
fn a_bad_listen_address_is_a_startup_error() {
    // A port in use: bound here for the whole test.
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("tcp://{}", occupied.local_addr().unwrap());
    for bad in ["127.0.0.1:80", "tcp://nonsense", "tcp://127.0.0.1", &taken] {
        let daemon = TestDaemon::new().job("quick", "#!/bin/sh\n");
        let mut command = daemon.command();
        command
            .arg("serve")
            .arg("--dir")
            .arg(daemon.path())
            .arg("--listen")
            .arg(bad);
        let (status, stderr) = run_to_exit(command);
        assert!(!status.success(), "{bad}: {status:?}");
        // One line, and at most the argument parser's pointer to --help.
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"))
            .collect();
        assert_eq!(lines.len(), 1, "{bad}: one line: {stderr:?}");
        let host = bad.strip_prefix("tcp://").unwrap_or(bad);
        assert!(
            lines[0].contains(host),
            "{bad}: names the address: {stderr:?}"
        );
        assert!(!daemon.socket().exists(), "{bad}: no socket left behind");
    }
}

#[tokio::test]
async fn a_run_triggered_while_recovery_reads_the_disk_runs_once() {
    // Many executions on disk make recovery take a while; one was left queued.
    let mut daemon = TestDaemon::new()
        .job(
            "count",
            "#!/bin/sh\necho \"$SERVITOR_JOB_EXECUTION\" >> \"$SERVITOR_ROOT/count\"\n",
        )
        .arg("--workers")
        .arg("1");
    let executions = daemon.path().join("state/jobs/count/executions");
    let old = 1000;
    for id in 1..=old {
        let dir = executions.join(id.to_string());
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("status_history.tsv"),
            "2024-01-01T00:00:00.000000000Z\tcreated\n2024-01-01T00:00:01.000000000Z\trunning\n2024-01-01T00:00:02.000000000Z\tsuccess\n",
        )
        .unwrap();
        fs::write(dir.join("result.tsv"), "0\t\n").unwrap();
    }
    let queued = executions.join((old + 1).to_string());
    fs::create_dir_all(&queued).unwrap();
    fs::write(
        queued.join("status_history.tsv"),
        "2024-01-01T00:00:03.000000000Z\tcreated\n",
    )
    .unwrap();
    fs::write(executions.join("last_execution.txt"), (old + 1).to_string()).unwrap();

    daemon.spawn();
    let client = daemon.client();
    let fresh = wait_for_async("a first run to be accepted", || {
        let client = client.clone();
        async move { client.run("count", &[]).await.ok() }
    })
    .await;
    assert_eq!(fresh, ExecutionId(old + 2));
    for exec in [ExecutionId(old + 1), fresh] {
        let done = daemon.wait_finished("count", exec).await;
        let statuses: Vec<_> = done.status_history.iter().map(|c| c.status).collect();
        assert_eq!(
            statuses[1..],
            [ExecutionStatus::Running, ExecutionStatus::Success],
            "{exec} ran once"
        );
    }
    assert_eq!(
        fs::read_to_string(daemon.path().join("count")).unwrap(),
        format!("{}\n{}\n", old + 1, old + 2),
        "each ran once, the older first"
    );
    assert!(daemon.stop().success());
}

#[tokio::test]
async fn a_pid_file_naming_another_process_is_not_adopted() {
    // An unrelated process leading its own group, as after the job's leader
    // ended and its pid was handed out again.
    let mut stranger = Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = stranger.id() as i32;
    let daemon = TestDaemon::new()
        .job("gone", "#!/bin/sh\n")
        .arg("--cancel-grace")
        .arg("0.2");
    let dir = daemon.path().join("state/jobs/gone/executions/1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("status_history.tsv"),
        "2024-01-01T00:00:00.000000000Z\tcreated\n2024-01-01T00:00:01.000000000Z\trunning\n",
    )
    .unwrap();
    // Start ticks of a process that began at boot: not this one.
    fs::write(dir.join("pid"), format!("{pid} 1\n")).unwrap();

    let daemon = daemon.start().await;
    let done = daemon.wait_finished("gone", ExecutionId(1)).await;
    let survived = alive(pid);
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert_eq!(done.status, ExecutionStatus::Failure);
    let result = done.result.unwrap();
    assert!(result.message.contains("servitor stopped"), "{result:?}");
    assert!(survived, "the unrelated process was left alone");
}

#[tokio::test]
async fn sigint_stops_an_idle_daemon_cleanly() {
    let mut daemon = TestDaemon::new()
        .job("quick", "#!/bin/sh\necho hi\n")
        .start()
        .await;
    let exec = daemon.run("quick").await;
    daemon.wait_finished("quick", exec).await;
    daemon.signal(Signal::INT);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status:?}");
    assert!(!daemon.socket().exists());
    let daemon = daemon.start().await;
    let done = daemon.client().execution("quick", exec).await.unwrap();
    assert_eq!(done.status, ExecutionStatus::Success);
    assert_eq!(daemon.run("quick").await, ExecutionId(2));
}
