//! The installer (`install/install.sh`) and uninstaller, run for real into a fake root.
//!
//! `SYSTEM_ROOT` makes both scripts write below a temporary folder and print what they would
//! do to accounts and to systemd instead of doing it, so these tests need no root and change
//! nothing outside their temp dirs. The binary installed is the one cargo built for the tests.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use tempfile::TempDir;

const TIMEOUT: Duration = Duration::from_secs(20);
const BINARY: &str = env!("CARGO_BIN_EXE_servitor");

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("install")
        .join(name)
}

/// A fake system root plus a small web UI to install from.
struct Fixture {
    root: TempDir,
    ui: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let ui = TempDir::new().unwrap();
        fs::write(
            ui.path().join("index.html"),
            "<!doctype html><title>servitor</title>\n",
        )
        .unwrap();
        fs::write(ui.path().join("app.js"), "console.log('servitor');\n").unwrap();
        fs::create_dir(ui.path().join("assets")).unwrap();
        fs::write(ui.path().join("assets/style.css"), "body { margin: 0 }\n").unwrap();
        Fixture {
            root: TempDir::new().unwrap(),
            ui,
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    /// `path` as seen on the real system, e.g. `/usr/local/bin/servitor`, inside the fake root.
    fn path(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    fn install(&self, env: &[(&str, &str)]) -> Output {
        self.run("install.sh", env)
    }

    #[track_caller]
    fn install_ok(&self, env: &[(&str, &str)]) -> Output {
        let out = self.install(env);
        assert_success(&out);
        out
    }

    fn run(&self, name: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(script(name));
        for (key, _) in std::env::vars() {
            if key.starts_with("SERVITOR_") || key == "PREFIX" || key == "SYSTEM_ROOT" {
                cmd.env_remove(key);
            }
        }
        cmd.env("SYSTEM_ROOT", self.root())
            .env("SERVITOR_BINARY", BINARY)
            .env("SERVITOR_UI_SOURCE", self.ui.path());
        for (key, value) in env {
            cmd.env(key, value);
        }
        cmd.output().unwrap()
    }

    fn unit(&self) -> String {
        fs::read_to_string(self.path("/etc/systemd/system/servitor.service")).unwrap()
    }
}

#[track_caller]
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "script failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Every regular file below `dir`, as (relative path, contents), sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().to_path_buf();
                out.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[track_caller]
fn assert_lines(unit: &str, expected: &[&str]) {
    let lines: Vec<&str> = unit.lines().collect();
    for line in expected {
        assert!(
            lines.contains(line),
            "unit lacks the line {line:?}; unit:\n{unit}"
        );
    }
}

/// The value of the unit's `KEY=` line, or None.
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn installs_binary_ui_working_dir_and_unit() {
    let fx = Fixture::new();
    let out = fx.install_ok(&[]);

    let binary = fx.path("/usr/local/bin/servitor");
    assert_eq!(fs::read(&binary).unwrap(), fs::read(BINARY).unwrap());
    assert_eq!(mode(&binary), 0o755);

    let ui = fx.path("/usr/local/share/servitor/ui");
    assert_eq!(tree(&ui), tree(fx.ui.path()));
    assert_eq!(
        mode(&ui.join("index.html")) & 0o444,
        0o444,
        "UI readable by all"
    );

    for dir in [
        "/srv/servitor",
        "/srv/servitor/config",
        "/srv/servitor/config/jobs",
        "/srv/servitor/state",
    ] {
        let path = fx.path(dir);
        assert!(path.is_dir(), "{dir} is missing");
        assert_eq!(mode(&path), 0o750, "mode of {dir}");
    }

    let unit = fx.unit();
    assert_eq!(
        mode(&fx.path("/etc/systemd/system/servitor.service")),
        0o644
    );
    assert_lines(
        &unit,
        &[
            "[Unit]",
            "After=network.target",
            "[Service]",
            "Type=exec",
            "ExecStart=/usr/local/bin/servitor serve --dir /srv/servitor",
            "WorkingDirectory=/srv/servitor",
            "User=root",
            "UMask=0077",
            "Environment=SERVITOR_UI_ROOT=/usr/local/share/servitor/ui",
            "Restart=on-failure",
            "KillMode=mixed",
            "KillSignal=SIGTERM",
            "TimeoutStopSec=15min",
            "StandardOutput=journal",
            "StandardError=journal",
            "SyslogIdentifier=servitor",
            "[Install]",
            "WantedBy=multi-user.target",
        ],
    );
    assert!(
        unit_value(&unit, "Description").is_some(),
        "no Description:\n{unit}"
    );
    assert_eq!(
        unit_value(&unit, "Group"),
        None,
        "Group= without SERVITOR_GROUP:\n{unit}"
    );

    // Nothing touched the real system; what would have been done is shown.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would run: systemctl restart servitor.service"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("useradd"),
        "no user requested, none created:\n{stdout}"
    );
}

#[test]
fn settings_reach_the_unit_and_the_paths() {
    let fx = Fixture::new();
    let out = fx.install_ok(&[
        ("PREFIX", "/opt/servitor"),
        ("SERVITOR_DIR", "/var/lib/jobs"),
        ("SERVITOR_USER", "jobrunner"),
        ("SERVITOR_GROUP", "ops"),
        ("SERVITOR_LISTEN", "tcp://127.0.0.1:8080 tcp://[::1]:8081"),
        ("SERVITOR_UMASK", "027"),
        ("SERVITOR_STOP_TIMEOUT", "1h"),
    ]);

    assert!(fx.path("/opt/servitor/bin/servitor").is_file());
    assert_eq!(
        tree(&fx.path("/opt/servitor/share/servitor/ui")),
        tree(fx.ui.path())
    );
    assert!(fx.path("/var/lib/jobs/config/jobs").is_dir());
    assert!(fx.path("/var/lib/jobs/state").is_dir());

    let unit = fx.unit();
    assert_lines(
        &unit,
        &[
            "ExecStart=/opt/servitor/bin/servitor serve --dir /var/lib/jobs \
             --listen tcp://127.0.0.1:8080 --listen tcp://[::1]:8081",
            "WorkingDirectory=/var/lib/jobs",
            "User=jobrunner",
            "Group=ops",
            "UMask=0027",
            "Environment=SERVITOR_UI_ROOT=/opt/servitor/share/servitor/ui",
            "TimeoutStopSec=1h",
        ],
    );

    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "would run: groupadd --system ops",
        "would run: useradd --system --gid ops --home-dir /var/lib/jobs",
        "would run: chown jobrunner:ops /var/lib/jobs",
    ] {
        assert!(
            stdout.contains(expected),
            "stdout lacks {expected:?}:\n{stdout}"
        );
    }
}

#[test]
fn second_run_upgrades_in_place_and_keeps_config_and_state() {
    let fx = Fixture::new();
    fx.install_ok(&[]);
    let unit_before = fx.unit();

    // What the user and the daemon wrote between the two runs.
    let job = fx.path("/srv/servitor/config/jobs/backup/run");
    fs::create_dir_all(job.parent().unwrap()).unwrap();
    fs::write(&job, "#!/bin/sh\necho backing up\n").unwrap();
    fs::set_permissions(&job, fs::Permissions::from_mode(0o700)).unwrap();
    let state = fx.path("/srv/servitor/state/jobs/backup/executions/last_execution.txt");
    fs::create_dir_all(state.parent().unwrap()).unwrap();
    fs::write(&state, "41").unwrap();
    fs::set_permissions(
        fx.path("/srv/servitor/state"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let stamp = |path: &Path| -> (Vec<u8>, u32, SystemTime) {
        let meta = fs::metadata(path).unwrap();
        (
            fs::read(path).unwrap(),
            mode(path),
            meta.modified().unwrap(),
        )
    };
    let (job_before, state_before) = (stamp(&job), stamp(&state));

    // A newer UI: one file changed, one added, one gone.
    fs::write(
        fx.ui.path().join("index.html"),
        "<!doctype html><title>v2</title>\n",
    )
    .unwrap();
    fs::write(fx.ui.path().join("new.js"), "// new\n").unwrap();
    fs::remove_file(fx.ui.path().join("app.js")).unwrap();

    fx.install_ok(&[]);

    assert_eq!(fx.unit(), unit_before);
    assert_eq!(stamp(&job), job_before);
    assert_eq!(stamp(&state), state_before);
    assert_eq!(
        mode(&fx.path("/srv/servitor/state")),
        0o700,
        "state/ left as it was"
    );
    assert_eq!(
        fs::read(fx.path("/usr/local/bin/servitor")).unwrap(),
        fs::read(BINARY).unwrap()
    );
    let ui = fx.path("/usr/local/share/servitor/ui");
    assert_eq!(tree(&ui), tree(fx.ui.path()));

    // No leftovers of the previous version or of the atomic renames.
    let share: Vec<String> = fs::read_dir(fx.path("/usr/local/share/servitor"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        share.len(),
        2,
        "expected `ui` and one version folder: {share:?}"
    );
    for dir in ["/usr/local/bin", "/etc/systemd/system"] {
        let names: Vec<String> = fs::read_dir(fx.path(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1, "leftovers in {dir}: {names:?}");
    }
}

#[test]
fn bad_input_is_refused_before_anything_is_written() {
    let cases: &[(&str, &str)] = &[
        ("SERVITOR_UMASK", "999"),
        ("SERVITOR_UMASK", "u=rwx"),
        ("SERVITOR_UMASK", "00777"),
        ("SERVITOR_USER", "Bad User"),
        ("SERVITOR_USER", "-rf"),
        ("SERVITOR_GROUP", "ops;rm"),
        ("PREFIX", "usr/local"),
        ("SERVITOR_DIR", "srv/servitor"),
        ("SERVITOR_DIR", "/srv/my jobs"),
        ("SERVITOR_DIR", "/srv/../etc"),
        ("SERVITOR_DIR", "/"),
        ("SERVITOR_LISTEN", "http://127.0.0.1:8080"),
        ("SERVITOR_LISTEN", "tcp://127.0.0.1"),
        ("SERVITOR_STOP_TIMEOUT", "soon"),
        ("SERVITOR_BINARY", "/nonexistent/servitor"),
    ];
    for &(key, value) in cases {
        let fx = Fixture::new();
        let out = fx.install(&[(key, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}={value} was accepted");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{key}={value}: one line expected:\n{stderr}"
        );
        assert!(
            stderr.contains(key),
            "{key}={value}: message does not name {key}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{key}={value}: printed {:?}",
            out.stdout
        );
        let written: Vec<_> = fs::read_dir(fx.root()).unwrap().collect();
        assert!(written.is_empty(), "{key}={value}: wrote {written:?}");
    }
}

#[test]
fn uninstall_removes_what_install_added_and_keeps_the_working_dir() {
    let fx = Fixture::new();
    fx.install_ok(&[]);
    let job = fx.path("/srv/servitor/config/jobs/hello/run");
    fs::create_dir_all(job.parent().unwrap()).unwrap();
    fs::write(&job, "#!/bin/sh\necho hello\n").unwrap();

    let out = fx.run("uninstall.sh", &[]);
    assert_success(&out);

    assert!(!fx.path("/etc/systemd/system/servitor.service").exists());
    assert!(!fx.path("/usr/local/bin/servitor").exists());
    assert!(!fx.path("/usr/local/share/servitor").exists());
    assert_eq!(fs::read_to_string(&job).unwrap(), "#!/bin/sh\necho hello\n");
    assert!(fx.path("/srv/servitor/state").is_dir());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would run: systemctl disable --now servitor.service"),
        "{stdout}"
    );
    assert!(stdout.contains("rm -rf /srv/servitor"), "{stdout}");

    // A second run finds nothing left to remove and still succeeds.
    assert_success(&fx.run("uninstall.sh", &[]));
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: systemd-analyze is not installed here; unit verification skipped");
        return;
    }
    let fx = Fixture::new();
    fx.install_ok(&[("SERVITOR_USER", "root"), ("SERVITOR_GROUP", "root")]);

    // verify checks that ExecStart's program exists and is executable, so the copy it
    // checks points at the binary inside the fake root.
    let unit = fx.unit();
    let fake_binary = fx.path("/usr/local/bin/servitor");
    let checked = unit.replace(
        "ExecStart=/usr/local/bin/servitor ",
        &format!("ExecStart={} ", fake_binary.display()),
    );
    assert_ne!(checked, unit, "ExecStart not found in:\n{unit}");
    let dir = TempDir::new().unwrap();
    let copy = dir.path().join("servitor.service");
    fs::write(&copy, checked).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown or malformed settings are only warnings, naming the file: treat them as errors.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("servitor.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
}

#[test]
fn installed_daemon_serves_the_installed_ui() {
    let fx = Fixture::new();
    fx.install_ok(&[]);
    let unit = fx.unit();
    let ui_root = unit_value(&unit, "Environment")
        .and_then(|v| v.strip_prefix("SERVITOR_UI_ROOT="))
        .unwrap();

    // Started the way the unit starts it, with every path moved into the fake root.
    let mut child = Command::new(fx.path("/usr/local/bin/servitor"))
        .args(["serve", "--dir"])
        .arg(fx.path("/srv/servitor"))
        .args(["--listen", "tcp://127.0.0.1:0"])
        .env("SERVITOR_UI_ROOT", fx.path(ui_root))
        .env_remove("SERVITOR_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _daemon = Daemon(child);
    let port = wait_for_port(stderr);

    let page = http_get(port, "/");
    assert!(
        page.lines().next().unwrap_or("").contains(" 200 "),
        "GET / answered:\n{page}"
    );
    assert!(
        page.ends_with("<!doctype html><title>servitor</title>\n"),
        "{page}"
    );
    let css = http_get(port, "/assets/style.css");
    assert!(css.ends_with("body { margin: 0 }\n"), "{css}");
}

#[test]
fn default_ui_source_is_the_checkout_ui_folder() {
    let repo_ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    if !repo_ui.is_dir() {
        eprintln!("note: no ui/ folder in the checkout; default UI source not checked");
        return;
    }
    let fx = Fixture::new();
    fx.install_ok(&[("SERVITOR_UI_SOURCE", "")]);
    let installed = tree(&fx.path("/usr/local/share/servitor/ui"));
    assert!(!installed.is_empty());
    assert_eq!(installed, tree(&repo_ui));
}

/// Reads the daemon's stderr until its `listening on http://127.0.0.1:PORT/` line.
fn wait_for_port(stderr: ChildStderr) -> u16 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                let _ = tx.send(Ok(digits.parse::<u16>().unwrap()));
                return;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        let _ = tx.send(Err(seen));
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(port)) => port,
        Ok(Err(seen)) => panic!("daemon exited without listening; stderr:\n{seen}"),
        Err(_) => panic!("no `listening on` line within {TIMEOUT:?}"),
    }
}

/// The daemon a test started: SIGTERM when dropped, SIGKILL if it has not exited in time.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn scripts_pass_shellcheck() {
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("note: shellcheck is not installed here; scripts not linted");
        return;
    }
    let out = Command::new("shellcheck")
        .arg(script("install.sh"))
        .arg(script("uninstall.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck found problems:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
