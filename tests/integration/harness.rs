//! `TestDaemon`: a temp working directory with job scripts, the real binary
//! started on it, a client for its socket, and cleanup by pid.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use servitor::client::Client;
use servitor::store::{Execution, ExecutionId};

/// How long any wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_servitor")
}

/// Polls `check` until it returns `Some`, or panics after `TIMEOUT` naming `what`.
#[track_caller]
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Async version of `wait_until` for conditions checked through the API.
pub async fn wait_for_async<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes an executable `run` for `job` under `<root>/config/jobs`.
pub fn write_job(root: &Path, job: &str, script: &str) -> PathBuf {
    let dir = root.join("config/jobs").join(job);
    fs::create_dir_all(&dir).unwrap();
    let run = dir.join("run");
    fs::write(&run, script).unwrap();
    fs::set_permissions(&run, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

pub struct TestDaemon {
    dir: tempfile::TempDir,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
    stderr: PathBuf,
    starts: usize,
}

impl TestDaemon {
    /// A new working directory under /tmp (short, for the socket path limit).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sv")
            .tempdir_in("/tmp")
            .unwrap();
        fs::create_dir_all(dir.path().join("config/jobs")).unwrap();
        Self {
            stderr: dir.path().join("daemon.stderr"),
            dir,
            args: Vec::new(),
            envs: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    pub fn job(self, job: &str, script: &str) -> Self {
        write_job(self.dir.path(), job, script);
        self
    }

    pub fn input_spec(self, job: &str, spec: &str) -> Self {
        fs::write(
            self.dir
                .path()
                .join("config/jobs")
                .join(job)
                .join("run.input.json"),
            spec,
        )
        .unwrap();
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("servitor.sock")
    }

    pub fn client(&self) -> Client {
        Client::new(self.socket())
    }

    /// The daemon's stderr so far (every start appends to it).
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// A `servitor` command for this working directory, with a clean environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("SERVITOR_") || key == "RUST_LOG" || key == "NO_COLOR" {
                command.env_remove(key);
            }
        }
        command.env("SERVITOR_LOG", "servitor=debug");
        command.current_dir(self.dir.path());
        command
    }

    /// Starts the daemon (`serve --dir <wd>` plus the builder's args) and waits
    /// until its socket answers a request.
    pub async fn start(mut self) -> Self {
        self.spawn();
        self.wait_ready().await;
        self
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr)
            .unwrap();
        let mut command = self.command();
        command
            .arg("serve")
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        self.child = Some(command.spawn().unwrap());
        self.starts += 1;
    }

    pub async fn wait_ready(&self) {
        let client = self.client();
        wait_for_async("the daemon's socket to answer", || {
            let client = client.clone();
            async move { client.jobs().await.ok() }
        })
        .await;
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Waits for the daemon to exit by itself and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("daemon running");
        let status = wait_until("the daemon to exit", || child.try_wait().unwrap());
        self.child = None;
        status
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        self.wait_exit()
    }

    /// SIGKILL: the daemon dies at once, as in a crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub async fn restart(mut self) -> Self {
        if self.child.is_some() {
            self.stop();
        }
        self.start().await
    }

    /// Triggers `job` and returns the new execution's id.
    pub async fn run(&self, job: &str) -> ExecutionId {
        self.client().run(job, &[]).await.unwrap()
    }

    /// Polls the execution until `check` holds; panics with the last value seen.
    pub async fn wait_for(
        &self,
        job: &str,
        exec: ExecutionId,
        what: &str,
        check: impl Fn(&Execution) -> bool,
    ) -> Execution {
        let client = self.client();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let last = client.execution(job, exec).await;
            if let Ok(execution) = &last {
                if check(execution) {
                    return execution.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} of {job}/{exec}; last seen: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_finished(&self, job: &str, exec: ExecutionId) -> Execution {
        self.wait_for(job, exec, "the end", |e| e.status.is_finished())
            .await
    }

    /// The whole log of an execution (waits for its end, as the API does).
    pub async fn log(&self, job: &str, exec: ExecutionId) -> Vec<u8> {
        self.client().log_bytes(job, exec).await.unwrap().to_vec()
    }

    pub fn execution_dir(&self, job: &str, exec: u64) -> PathBuf {
        self.path()
            .join("state/jobs")
            .join(job)
            .join("executions")
            .join(exec.to_string())
    }

    /// Raw HTTP over the socket, for requests the typed client cannot make.
    pub fn raw_request(&self, request: &[u8]) -> String {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(self.socket()).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }
}

/// Kills every process group a pid file under `state/` names: what a test
/// leaves running must not outlive it.
pub fn kill_leftover_groups(root: &Path) {
    for entry in walkdir_pid_files(&root.join("state")) {
        let Ok(text) = fs::read_to_string(&entry) else {
            continue;
        };
        let Some(pgid) = text
            .split_whitespace()
            .next()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

fn walkdir_pid_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(walkdir_pid_files(&path));
        } else if entry.file_name() == "pid" {
            found.push(path);
        }
    }
    found
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // First signal: graceful; second: cancel what still runs.
            for wait in [Duration::from_secs(2), Duration::from_secs(10)] {
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                }
                let deadline = Instant::now() + wait;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        kill_leftover_groups(self.dir.path());
        if std::thread::panicking() {
            eprintln!(
                "---- daemon stderr ({}) ----\n{}",
                self.dir.path().display(),
                self.stderr()
            );
        }
    }
}
