//! The daemon's own behaviour (DESIGN.md §6): socket, signals, logs.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

use crate::harness::{TestDaemon, wait_until};

#[tokio::test]
async fn the_socket_is_created_with_mode_0770_and_removed_on_exit() {
    let mut daemon = TestDaemon::new().start().await;
    let meta = fs::metadata(daemon.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o770);
    let status = daemon.stop();
    assert_eq!(status.code(), Some(0));
    assert!(!daemon.socket().exists());
    let stderr = daemon.stderr();
    assert!(stderr.contains("listening on the UNIX socket"), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
}

#[tokio::test]
async fn servitor_without_a_subcommand_serves_the_current_directory() {
    let daemon = TestDaemon::new().job("j", "#!/bin/sh\n");
    let mut child = daemon
        .command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    daemon.wait_ready().await;
    assert_eq!(daemon.client().jobs().await.unwrap().len(), 1);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = wait_until("exit", || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_missing_working_directory_is_a_clear_startup_error() {
    let daemon = TestDaemon::new();
    let output = daemon
        .command()
        .args(["serve", "--dir", "/nonexistent/servitor-wd"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/servitor-wd"), "{stderr}");
}
