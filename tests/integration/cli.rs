//! The command-line client (DESIGN.md §8): the real binary against a real daemon,
//! checking stdout, stderr and the exit code together.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};

use rustix::process::{Pid, Signal, kill_process};
use servitor::events::Event;
use servitor::jobs::Job;
use servitor::store::{Execution, ExecutionId, ExecutionStatus};

use crate::harness::{TestDaemon, binary, wait_until};

/// A job that says it started, then waits for the test to create `go` in its
/// directory (so the test decides when it ends), then says it is done.
const WAITS_FOR_GO: &str =
    "#!/bin/sh\necho started\nwhile [ ! -e go ]; do sleep 0.01; done\necho done\n";
/// A job that runs until it is cancelled.
const RUNS_LONG: &str = "#!/bin/sh\necho started\nexec sleep 60\n";

/// What a finished client process did.
#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Outcome {
    #[track_caller]
    fn assert(&self, code: i32, stdout: &str, stderr: &str) {
        assert!(
            self.status.code() == Some(code) && self.stdout == stdout && self.stderr == stderr,
            "expected exit code {code}, stdout {stdout:?}, stderr {stderr:?}\n     got {self:?}"
        );
    }

    /// Exit code and stdout exact; stderr one line starting with `stderr_start`.
    #[track_caller]
    fn assert_error(&self, code: i32, stderr_start: &str) {
        assert!(
            self.status.code() == Some(code)
                && self.stdout.is_empty()
                && self.stderr.starts_with(stderr_start)
                && self.stderr.ends_with('\n')
                && self.stderr.lines().count() == 1,
            "expected exit code {code}, no stdout, one line on stderr starting {stderr_start:?}\n     got {self:?}"
        );
    }
}

/// A client process started in the background; its output goes to files so
/// that the test can look at it while it runs. Killed by pid when dropped.
struct Running {
    child: Option<Child>,
    output: tempfile::TempDir,
}

impl Running {
    fn stdout(&self) -> String {
        fs::read_to_string(self.output.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.output.path().join("stderr")).unwrap_or_default()
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().unwrap().id() as i32).unwrap()
    }

    #[track_caller]
    fn wait_stdout(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        wait_until(what, || Some(self.stdout()).filter(|out| check(out)))
    }

    /// Waits for the process to exit by itself.
    #[track_caller]
    fn finish(mut self) -> Outcome {
        let child = self.child.as_mut().unwrap();
        let status = wait_until("the client to exit", || child.try_wait().unwrap());
        self.child = None;
        Outcome {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `servitor ARGS…` against this daemon's working directory (the default `--dir .`).
fn client(daemon: &TestDaemon, args: &[&str]) -> Command {
    let mut command = daemon.command();
    command.env_remove("SERVITOR_LOG").args(args);
    command
}

fn spawn(mut command: Command) -> Running {
    let output = tempfile::tempdir().unwrap();
    command.stdout(fs::File::create(output.path().join("stdout")).unwrap());
    spawn_with_stdout_set(command, output)
}

/// `spawn` for a command whose stdout the test has already chosen.
fn spawn_with_stdout_set(mut command: Command, output: tempfile::TempDir) -> Running {
    let child = command
        .stdin(Stdio::null())
        .stderr(fs::File::create(output.path().join("stderr")).unwrap())
        .spawn()
        .unwrap();
    Running {
        child: Some(child),
        output,
    }
}

#[track_caller]
fn outcome(command: Command) -> Outcome {
    spawn(command).finish()
}

#[track_caller]
fn outcome_with_stdout_set(command: Command) -> Outcome {
    spawn_with_stdout_set(command, tempfile::tempdir().unwrap()).finish()
}

#[track_caller]
fn servitor(daemon: &TestDaemon, args: &[&str]) -> Outcome {
    outcome(client(daemon, args))
}

fn go(daemon: &TestDaemon, job: &str) {
    fs::write(daemon.path().join("config/jobs").join(job).join("go"), "").unwrap();
}

fn log_file(daemon: &TestDaemon, job: &str, exec: u64) -> PathBuf {
    daemon.execution_dir(job, exec).join("logs/main.txt")
}

/// The words of each line of a table, for checks that ignore column widths.
fn table(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// Finishes an execution left running, so the daemon stops at once on drop.
async fn cancel_and_wait(daemon: &TestDaemon, job: &str, exec: u64) {
    let _ = daemon.client().cancel(job, ExecutionId(exec)).await;
    daemon.wait_finished(job, ExecutionId(exec)).await;
}

#[tokio::test]
async fn jobs_lists_every_job_with_its_last_execution() {
    let daemon = TestDaemon::new()
        .job("backups/db", "#!/bin/sh\nexit 0\n")
        .job("hello", "#!/bin/sh\nexit 4\n")
        .start()
        .await;
    let exec = daemon.run("hello").await;
    daemon.wait_finished("hello", exec).await;

    let out = servitor(&daemon, &["jobs"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    assert!(!out.stdout.contains('\x1b'), "colour when not a terminal");
    let rows = table(&out.stdout);
    assert_eq!(rows[0], ["JOB", "LAST", "STATUS", "STARTED"]);
    assert_eq!(rows[1], ["backups/db", "-", "never", "run"]);
    assert_eq!(rows[2][..3], ["hello", "1", "failure"]);
    // STARTED is local time to the second: a date and a time.
    assert_eq!(rows[2].len(), 5, "{rows:?}");
    assert_eq!(rows[2][3].len(), "2026-01-01".len());
    assert_eq!(rows[2][4].len(), "12:00:00".len());
    assert_eq!(rows.len(), 3);
    // Columns line up: each status starts where the STATUS header does.
    let lines: Vec<&str> = out.stdout.lines().collect();
    let column = lines[0].find("STATUS").unwrap();
    assert_eq!(&lines[2][column..column + "failure".len()], "failure");

    let out = servitor(&daemon, &["jobs", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let listed: Vec<Job> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(listed, daemon.client().jobs().await.unwrap());
}

#[tokio::test]
async fn jobs_shows_a_broken_input_spec() {
    let daemon = TestDaemon::new()
        .job("broken", "#!/bin/sh\nexit 0\n")
        .input_spec("broken", "{not json")
        .start()
        .await;
    let out = servitor(&daemon, &["jobs"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].ends_with("PROBLEM"), "{out:?}");
    assert!(lines[1].contains("invalid JSON"), "{out:?}");
}

#[tokio::test]
async fn run_queues_an_execution_and_says_how_to_follow_it() {
    let daemon = TestDaemon::new()
        .job("hello", "#!/bin/sh\necho \"hello $who\"\n")
        .input_spec("hello", r#"{"who": {}}"#)
        .start()
        .await;
    servitor(&daemon, &["run", "hello", "-i", "who=a=b"]).assert(
        0,
        "hello: execution 1 queued (follow it: servitor logs hello 1 --follow)\n",
        "",
    );
    let done = daemon.wait_finished("hello", ExecutionId(1)).await;
    assert_eq!(done.input_values["who"], "a=b");
    assert_eq!(daemon.log("hello", ExecutionId(1)).await, b"hello a=b\n");

    servitor(&daemon, &["run", "hello", "--json"]).assert(
        0,
        "{\"status\":\"success\",\"execution_id\":\"2\"}\n",
        "",
    );
}

#[tokio::test]
async fn run_follow_streams_the_log_and_exits_with_the_jobs_exit_code() {
    let daemon = TestDaemon::new()
        .job("ok", "#!/bin/sh\necho out\necho err >&2\n")
        .job("fails", "#!/bin/sh\necho boom\nexit 3\n")
        .job("killed", "#!/bin/sh\necho dying\nkill -9 $$\n")
        .start()
        .await;
    servitor(&daemon, &["run", "ok", "--follow"]).assert(0, "out\nerr\n", "");
    servitor(&daemon, &["run", "fails", "--follow"]).assert(
        3,
        "boom\n",
        "servitor: fails execution 1 failed: exited with code 3\n",
    );
    servitor(&daemon, &["run", "killed", "-f"]).assert(
        137,
        "dying\n",
        "servitor: killed execution 1 failed: killed by signal 9 (SIGKILL)\n",
    );
}

#[tokio::test]
async fn run_follow_writes_output_as_the_job_writes_it() {
    let daemon = TestDaemon::new().job("waits", WAITS_FOR_GO).start().await;
    let following = spawn(client(&daemon, &["run", "waits", "--follow"]));
    following.wait_stdout("the first line", |out| out == "started\n");
    let running = daemon.client().execution("waits", ExecutionId(1)).await;
    assert_eq!(running.unwrap().status, ExecutionStatus::Running);
    go(&daemon, "waits");
    following.finish().assert(0, "started\ndone\n", "");
}

#[tokio::test]
async fn cancelling_a_followed_execution_exits_130() {
    let daemon = TestDaemon::new()
        .job("long", RUNS_LONG)
        .arg("--cancel-grace")
        .arg("2")
        .start()
        .await;
    let following = spawn(client(&daemon, &["run", "long", "--follow"]));
    following.wait_stdout("the job to start", |out| out == "started\n");
    servitor(&daemon, &["cancel", "long", "1"]).assert(0, "long: cancelling execution 1\n", "");
    let out = following.finish();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert_eq!(out.stdout, "started\n");
    assert!(
        out.stderr
            .starts_with("servitor: long execution 1 was cancelled"),
        "{out:?}"
    );
    let done = daemon.wait_finished("long", ExecutionId(1)).await;
    assert_eq!(done.status, ExecutionStatus::Cancelled);
}

#[tokio::test]
async fn ctrl_c_stops_following_and_leaves_the_job_running() {
    let daemon = TestDaemon::new().job("long", RUNS_LONG).start().await;
    let following = spawn(client(&daemon, &["run", "long", "--follow"]));
    following.wait_stdout("the job to start", |out| out == "started\n");
    kill_process(following.pid(), Signal::INT).unwrap();
    following.finish().assert(
        130,
        "started\n",
        "servitor: stopped following; long execution 1 keeps running \
         (to cancel it: servitor cancel long 1)\n",
    );
    let execution = daemon.client().execution("long", ExecutionId(1)).await;
    assert_eq!(execution.unwrap().status, ExecutionStatus::Running);

    // The same for `logs --follow`.
    let following = spawn(client(&daemon, &["logs", "long", "--follow"]));
    following.wait_stdout("the log so far", |out| out == "started\n");
    kill_process(following.pid(), Signal::INT).unwrap();
    let out = following.finish();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let execution = daemon.client().execution("long", ExecutionId(1)).await;
    assert_eq!(execution.unwrap().status, ExecutionStatus::Running);
    cancel_and_wait(&daemon, "long", 1).await;
}

#[tokio::test]
async fn executions_lists_newest_first_up_to_the_limit() {
    let daemon = TestDaemon::new()
        .job("counts", "#!/bin/sh\nexit $SERVITOR_JOB_EXECUTION\n")
        .start()
        .await;
    for _ in 0..3 {
        let exec = daemon.run("counts").await;
        daemon.wait_finished("counts", exec).await;
    }
    let out = servitor(&daemon, &["executions", "counts", "--limit", "2"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let rows = table(&out.stdout);
    assert_eq!(rows.len(), 3, "{out:?}");
    assert_eq!(rows[0], ["ID", "STATUS", "STARTED", "DURATION", "EXIT"]);
    for (row, id) in rows[1..].iter().zip(["3", "2"]) {
        assert_eq!(row[..2], [id, "failure"]);
        assert_eq!(row.last().unwrap(), id, "exit code column");
        assert!(row[4].ends_with('s'), "a duration: {row:?}");
    }

    let out = servitor(&daemon, &["executions", "counts", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed: Vec<Execution> = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<u64> = listed.iter().map(|e| e.execution_id.0).collect();
    assert_eq!(ids, [3, 2, 1]);

    servitor(&daemon, &["executions", "counts", "-n", "0"]).assert(
        0,
        "counts has no executions yet\n",
        "",
    );
}

#[tokio::test]
async fn show_prints_one_execution_and_defaults_to_the_latest() {
    let daemon = TestDaemon::new()
        .job("fails", "#!/bin/sh\nexit 3\n")
        .input_spec("fails", r#"{"who": {"default": "nobody"}}"#)
        .job("never", "#!/bin/sh\n")
        .start()
        .await;
    for _ in 0..2 {
        let exec = daemon.run("fails").await;
        daemon.wait_finished("fails", exec).await;
    }
    let out = servitor(&daemon, &["show", "fails"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let fields: Vec<(String, String)> = out
        .stdout
        .lines()
        .map(|line| {
            let (label, value) = line.split_at(9);
            (label.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("no {name} in {out:?}"))
    };
    assert_eq!(field("job"), "fails");
    assert_eq!(field("execution"), "2");
    assert_eq!(field("status"), "failure");
    assert_eq!(field("exit code"), "3");
    assert_eq!(field("message"), "exited with code 3");
    assert_eq!(field("inputs"), "who=nobody");
    assert!(field("duration").ends_with('s'));

    let out = servitor(&daemon, &["show", "fails", "1", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let shown: Execution = serde_json::from_str(&out.stdout).unwrap();
    let api = daemon.client().execution("fails", ExecutionId(1)).await;
    assert_eq!(shown, api.unwrap());

    servitor(&daemon, &["show", "never"]).assert_error(
        1,
        "servitor: job never has no executions yet (start one with `servitor run never`)",
    );
}

#[tokio::test]
async fn logs_prints_the_log_of_the_latest_or_a_given_execution() {
    let daemon = TestDaemon::new()
        .job(
            "says",
            "#!/bin/sh\necho \"run $SERVITOR_JOB_EXECUTION\"\nprintf 'no newline'\n",
        )
        .start()
        .await;
    for _ in 0..2 {
        let exec = daemon.run("says").await;
        daemon.wait_finished("says", exec).await;
    }
    servitor(&daemon, &["logs", "says"]).assert(0, "run 2\nno newline", "");
    servitor(&daemon, &["logs", "says", "1"]).assert(0, "run 1\nno newline", "");
    servitor(&daemon, &["logs", "says", "1", "--follow"]).assert(0, "run 1\nno newline", "");
}

#[tokio::test]
async fn logs_of_a_running_execution_prints_what_is_written_and_returns() {
    let daemon = TestDaemon::new().job("waits", WAITS_FOR_GO).start().await;
    let exec = daemon.run("waits").await;
    let log = log_file(&daemon, "waits", exec.0);
    wait_until("the job's first line", || {
        fs::read_to_string(&log)
            .ok()
            .filter(|text| text == "started\n")
    });
    servitor(&daemon, &["logs", "waits"]).assert(0, "started\n", "");
    let execution = daemon.client().execution("waits", exec).await;
    assert_eq!(execution.unwrap().status, ExecutionStatus::Running);

    let following = spawn(client(&daemon, &["logs", "waits", "--follow"]));
    following.wait_stdout("the log so far", |out| out == "started\n");
    go(&daemon, "waits");
    following.finish().assert(0, "started\ndone\n", "");
}

/// (job, execution, status) of one line of `servitor events`, human or JSON.
fn event_line(json: bool, line: &str) -> (String, ExecutionId, String) {
    if json {
        let event: Event = serde_json::from_str(line).unwrap();
        let payload = event.payload;
        (
            payload.job_id.to_string(),
            payload.execution_id,
            payload.status.to_string(),
        )
    } else {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words.len(),
            5,
            "date, time, job, execution, status: {line:?}"
        );
        let id = ExecutionId::parse(words[3]).unwrap();
        (words[2].to_owned(), id, words[4].to_owned())
    }
}

#[tokio::test]
async fn events_prints_status_changes_as_they_happen() {
    let daemon = TestDaemon::new()
        .job("hello", "#!/bin/sh\necho hi\n")
        .start()
        .await;
    for json in [false, true] {
        let args: &[&str] = if json {
            &["events", "--json"]
        } else {
            &["events"]
        };
        let listening = spawn(client(&daemon, args));
        let created = |out: &str| {
            out.lines()
                .map(|line| event_line(json, line))
                .find(|(_, _, status)| status == "created")
                .map(|(_, exec, _)| exec)
        };
        // The stream has no "subscribed" marker: trigger executions (one at a
        // time) until one is seen from its creation, then expect its whole life.
        let seen = wait_until("an execution's creation event", || {
            if let Some(exec) = created(&listening.stdout()) {
                return Some(exec);
            }
            let out = servitor(&daemon, &["run", "hello", "--json"]);
            assert_eq!(out.status.code(), Some(0), "{out:?}");
            let answer: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let exec = answer["execution_id"].as_str().unwrap();
            let mut command = client(&daemon, &["logs", "hello", exec, "-f"]);
            command.stdout(Stdio::null());
            let done = outcome(command);
            assert_eq!(done.status.code(), Some(0), "{done:?}");
            None
        });
        let life = |out: &str| -> Vec<String> {
            out.lines()
                .map(|line| event_line(json, line))
                .filter(|(job, exec, _)| job == "hello" && *exec == seen)
                .map(|(_, _, status)| status)
                .collect()
        };
        let out =
            listening.wait_stdout("the whole life of an execution", |out| life(out).len() >= 3);
        assert_eq!(life(&out), ["created", "running", "success"]);
        assert_eq!(listening.stderr(), "");
    }
}

#[tokio::test]
async fn errors_are_one_line_with_a_non_zero_exit_code() {
    let daemon = TestDaemon::new()
        .job("backups/db", "#!/bin/sh\nexit 0\n")
        .job("backups/files", "#!/bin/sh\nexit 0\n")
        .job("needs", "#!/bin/sh\necho \"$who\"\n")
        .input_spec("needs", r#"{"who": {"required": true}}"#)
        .start()
        .await;
    let exec = daemon.run("backups/db").await;
    daemon.wait_finished("backups/db", exec).await;

    // No such job, with suggestions, from every command that takes one.
    for args in [
        &["run", "backup/db"][..],
        &["run", "backup/db", "--follow"],
        &["executions", "backup/db"],
        &["show", "backup/db"],
        &["show", "backup/db", "1"],
        &["logs", "backup/db"],
        &["logs", "backup/db", "1", "--follow"],
        &["cancel", "backup/db", "1"],
    ] {
        servitor(&daemon, args).assert(
            1,
            "",
            "servitor: job backup/db does not exist (did you mean backups/db?)\n",
        );
    }
    servitor(&daemon, &["run", "nothing-like-it"]).assert(
        1,
        "",
        "servitor: job nothing-like-it does not exist (`servitor jobs` lists them)\n",
    );

    // No such execution.
    for args in [
        &["show", "backups/db", "9"][..],
        &["logs", "backups/db", "9"],
        &["logs", "backups/db", "9", "-f"],
        &["cancel", "backups/db", "9"],
    ] {
        servitor(&daemon, args).assert(
            1,
            "",
            "servitor: execution 9 of job backups/db does not exist\n",
        );
    }

    // A finished execution cannot be cancelled (the daemon's 409 message).
    servitor(&daemon, &["cancel", "backups/db", "1"]).assert_error(1, "servitor: ");

    // Bad -i syntax is a usage error, and nothing is started.
    for bad in ["who", "=x", "no-dashes=x"] {
        servitor(&daemon, &["run", "needs", "-i", bad]).assert(
            2,
            "",
            &format!(
                "servitor: -i {bad:?}: an input must be NAME=VALUE, NAME made of letters, digits and _\n"
            ),
        );
    }
    // A missing required input: the daemon's 400 message.
    servitor(&daemon, &["run", "needs", "--follow"]).assert(
        1,
        "",
        "servitor: missing required input who\n",
    );
    let none = daemon
        .client()
        .executions("needs", None, None)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // Usage errors found by the argument parser exit 2 as well.
    let out = servitor(&daemon, &["run"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = servitor(&daemon, &["show", "backups/db", "seven"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("not an execution id"), "{out:?}");
}

#[tokio::test]
async fn every_client_command_says_when_the_daemon_is_not_running() {
    let dir = tempfile::Builder::new()
        .prefix("svc")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("servitor.sock");
    let expected = format!(
        "servitor: servitor is not running: nothing answers on {} (start it with `servitor serve --dir {}`)\n",
        socket.display(),
        dir.path().display()
    );
    for args in [
        &["jobs"][..],
        &["jobs", "--json"],
        &["run", "x"],
        &["run", "x", "--follow"],
        &["executions", "x"],
        &["show", "x"],
        &["show", "x", "1"],
        &["logs", "x"],
        &["logs", "x", "1", "--follow"],
        &["cancel", "x", "1"],
        &["events"],
    ] {
        let mut command = Command::new(binary());
        command
            .env_remove("SERVITOR_SOCKET")
            .env_remove("SERVITOR_DIR")
            .arg("--dir")
            .arg(dir.path())
            .args(args);
        outcome(command).assert(1, "", &expected);
    }
}

#[tokio::test]
async fn the_socket_option_and_its_variable_win_over_the_directory() {
    let daemon = TestDaemon::new().job("hello", "#!/bin/sh\n").start().await;
    let socket = daemon.socket();
    let elsewhere = "/nonexistent-servitor-dir";

    let mut command = client(&daemon, &["--dir", elsewhere, "jobs", "--json"]);
    command.arg("--socket").arg(&socket);
    let out = outcome(command);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("\"hello\""), "{out:?}");

    let mut command = client(&daemon, &["--dir", elsewhere, "jobs", "--json"]);
    command.env("SERVITOR_SOCKET", &socket);
    let out = outcome(command);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("\"hello\""), "{out:?}");
}

#[tokio::test]
async fn permission_denied_on_the_socket_is_said_plainly() {
    let daemon = TestDaemon::new().start().await;
    let socket = daemon.socket();
    let mut command;
    if rustix::process::geteuid().is_root() {
        // root passes every permission check: ask as nobody instead. The working
        // directory is a private temp dir (0700), so nobody cannot reach the socket.
        command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary()]);
    } else {
        fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        command = Command::new(binary());
    }
    command
        .current_dir("/")
        .env_remove("SERVITOR_DIR")
        .arg("--socket")
        .arg(&socket)
        .arg("jobs");
    outcome(command).assert(
        1,
        "",
        &format!(
            "servitor: permission denied on {}: join the socket's group or run as its owner\n",
            socket.display()
        ),
    );
}

#[test]
fn help_describes_every_command_with_an_example() {
    let help = |args: &[&str]| {
        let mut command = Command::new(binary());
        command.args(args);
        let out = outcome(command);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(out.stderr, "");
        out.stdout
    };
    let top = help(&["--help"]);
    for word in [
        "serve",
        "jobs",
        "run",
        "executions",
        "show",
        "logs",
        "cancel",
        "events",
        "completions",
        "--socket",
        "--dir",
        "Exit codes",
        "Examples",
    ] {
        assert!(top.contains(word), "--help lacks {word}:\n{top}");
    }
    for command in [
        "serve",
        "completions",
        "jobs",
        "run",
        "executions",
        "show",
        "logs",
        "cancel",
        "events",
    ] {
        let text = help(&[command, "--help"]);
        assert!(
            text.contains("Example"),
            "{command} --help has no example:\n{text}"
        );
    }
    let run = help(&["run", "--help"]);
    for word in ["NAME=VALUE", "--follow", "128+N", "130", "137"] {
        assert!(run.contains(word), "run --help lacks {word}:\n{run}");
    }
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let mut command = Command::new(binary());
        command.args(["completions", shell]);
        let out = outcome(command);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        assert_eq!(out.stderr, "");
        for word in ["servitor", "executions", "cancel", "--follow"] {
            assert!(out.stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let mut command = Command::new(binary());
    command.args(["completions", "tcsh"]);
    let out = outcome(command);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[tokio::test]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` (to get a terminal) is not installed");
        return;
    }
    let daemon = TestDaemon::new().job("ok", "#!/bin/sh\n").start().await;
    let exec = daemon.run("ok").await;
    daemon.wait_finished("ok", exec).await;
    // `script` runs the client on a pseudo-terminal of its own.
    let on_terminal = |no_color: Option<&str>| {
        let line = format!("{} --socket {} jobs", binary(), daemon.socket().display());
        let mut command = Command::new("script");
        command
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env_remove("SERVITOR_SOCKET")
            .env_remove("SERVITOR_LOG")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let out = outcome(command);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        out.stdout
    };
    let coloured = on_terminal(None);
    assert!(
        coloured.contains("\x1b[32msuccess\x1b[0m"),
        "no green success on a terminal: {coloured:?}"
    );
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("success"), "{plain:?}");
    assert!(
        !plain.contains('\x1b'),
        "colour despite NO_COLOR: {plain:?}"
    );
}

#[tokio::test]
async fn a_closed_stdout_ends_the_client_quietly() {
    let daemon = TestDaemon::new()
        .job("chatty", "#!/bin/sh\nseq 1 100000\n")
        .start()
        .await;
    let exec = daemon.run("chatty").await;
    daemon.wait_finished("chatty", exec).await;
    for args in [
        &["logs", "chatty"][..],
        &["jobs"],
        &["executions", "chatty"],
    ] {
        // A socket whose other end is already closed: every write fails with EPIPE,
        // as when the reader of a pipe (`| head`) has gone.
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(ours);
        let mut command = client(&daemon, args);
        command.stdout(std::os::fd::OwnedFd::from(theirs));
        let out = outcome_with_stdout_set(command);
        assert_eq!(
            (out.status.code(), out.stderr.as_str()),
            (Some(141), ""),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn logs_of_a_queued_execution_is_empty() {
    let daemon = TestDaemon::new()
        .job("long", RUNS_LONG)
        .arg("--workers")
        .arg("1")
        .start()
        .await;
    let first = daemon.run("long").await;
    let queued = daemon.run("long").await;
    daemon
        .wait_for("long", first, "running", |e| {
            e.status == ExecutionStatus::Running
        })
        .await;
    let execution = daemon.client().execution("long", queued).await.unwrap();
    assert_eq!(execution.status, ExecutionStatus::Created);
    servitor(&daemon, &["logs", "long", "2"]).assert(0, "", "");
    servitor(&daemon, &["cancel", "long", "2"]).assert(0, "long: cancelling execution 2\n", "");
    cancel_and_wait(&daemon, "long", 1).await;
    let done = daemon.wait_finished("long", queued).await;
    assert_eq!(done.status, ExecutionStatus::Cancelled);
}

#[tokio::test]
async fn events_says_so_when_the_daemon_stops() {
    let mut daemon = TestDaemon::new().job("hello", "#!/bin/sh\n").start().await;
    let listening = spawn(client(&daemon, &["events"]));
    // Wait until the listener is subscribed: an execution's events reach it.
    wait_until("the listener to see an event", || {
        if !listening.stdout().is_empty() {
            return Some(());
        }
        let mut command = client(&daemon, &["run", "hello", "--follow"]);
        command.stdout(Stdio::null());
        assert_eq!(outcome(command).status.code(), Some(0));
        None
    });
    assert!(daemon.stop().success());
    let out = listening.finish();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        out.stderr,
        "servitor: servitor closed the event stream (it is stopping)\n"
    );
}
