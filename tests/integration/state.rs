//! State on disk (DESIGN.md §5): the original's layout, read and written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use servitor::store::{ExecutionId, ExecutionStatus};

use crate::harness::TestDaemon;

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            let mode = entry.metadata().unwrap().permissions().mode();
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

#[tokio::test]
async fn a_state_directory_of_the_original_tool_loads_and_continues() {
    let daemon = TestDaemon::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/original-state");
    copy_tree(&fixture, daemon.path());
    let daemon = daemon.start().await;
    let client = daemon.client();

    let executions = client.executions("backup/db", None, None).await.unwrap();
    let summary: Vec<_> = executions
        .iter()
        .map(|e| {
            let result = e.result.as_ref().unwrap();
            (
                e.execution_id.0,
                e.status,
                result.exit_code,
                result.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, ExecutionStatus::Cancelled, -2, "Cancelled"),
            (2, ExecutionStatus::Failure, 2, "Exit code 2"),
            (1, ExecutionStatus::Success, 0, ""),
        ]
    );
    assert_eq!(executions[1].input_values["target"], "prod");
    assert_eq!(
        executions[2].status_history[0].timestamp,
        "2024-03-01T10:00:00.123456+00:00"
    );
    assert_eq!(
        daemon.log("backup/db", ExecutionId(2)).await,
        b"pg_dump: error\n"
    );

    // The older single-word status file, for a job whose `run` is gone.
    let legacy = client.executions("legacy", None, None).await.unwrap();
    assert_eq!(legacy.len(), 2);
    assert_eq!(legacy[0].status, ExecutionStatus::Failure);
    assert_eq!(legacy[1].status, ExecutionStatus::Success);
    assert_eq!(legacy[1].result, None);
    assert_eq!(daemon.log("legacy", ExecutionId(1)).await, b"old log\n");

    // New executions continue the numbering in the same layout.
    let exec = daemon.run("backup/db").await;
    assert_eq!(exec, ExecutionId(4));
    daemon.wait_finished("backup/db", exec).await;
    let dir = daemon.path().join("state/jobs/backup/db/executions");
    assert_eq!(
        fs::read_to_string(dir.join("last_execution.txt")).unwrap(),
        "4"
    );
    assert_eq!(
        fs::read_to_string(dir.join("4/logs/main.txt")).unwrap(),
        "new run\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("4/result.tsv")).unwrap(),
        "0\t\n"
    );
    assert_eq!(fs::read_to_string(dir.join("4/input.json")).unwrap(), "{}");
    let history = fs::read_to_string(dir.join("4/status_history.tsv")).unwrap();
    let lines: Vec<_> = history.lines().collect();
    assert_eq!(lines.len(), 3);
    for (line, status) in lines.iter().zip(["created", "running", "success"]) {
        let (timestamp, word) = line.split_once('\t').unwrap();
        assert_eq!(word, status);
        assert!(
            chrono::DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
    }
    // servitor's own pid file is gone once the execution ended.
    assert!(!dir.join("4/pid").exists());
}

#[tokio::test]
async fn ids_are_never_reused_across_restarts_even_if_history_is_deleted() {
    let daemon = TestDaemon::new().job("j", "#!/bin/sh\n").start().await;
    for expected in 1..=2 {
        let exec = daemon.run("j").await;
        assert_eq!(exec, ExecutionId(expected));
        daemon.wait_finished("j", exec).await;
    }
    let mut daemon = daemon;
    daemon.stop();
    // Someone removes the newest execution by hand.
    fs::remove_dir_all(daemon.execution_dir("j", 2)).unwrap();
    let daemon = daemon.start().await;
    assert_eq!(daemon.run("j").await, ExecutionId(3));
}

#[tokio::test]
async fn no_temporary_files_are_left_behind() {
    let daemon = TestDaemon::new()
        .job("j", "#!/bin/sh\necho hi\n")
        .start()
        .await;
    for _ in 0..3 {
        let exec = daemon.run("j").await;
        daemon.wait_finished("j", exec).await;
    }
    let mut stack = vec![daemon.path().join("state")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(".tmp"),
                "left behind: {}",
                entry.path().display()
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
}
