//! Running executions (DESIGN.md §4): environment, logs, results, inputs, queue.

use std::fs;

use servitor::store::{ExecutionId, ExecutionStatus};

use crate::harness::TestDaemon;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn failing_job_records_exit_code_and_both_streams_in_order() {
    let daemon = TestDaemon::new()
        .job(
            "fails",
            "#!/bin/sh\necho one\necho two >&2\necho three\nexit 3\n",
        )
        .start()
        .await;
    let exec = daemon.run("fails").await;
    let done = daemon.wait_finished("fails", exec).await;
    assert_eq!(done.status, ExecutionStatus::Failure);
    let result = done.result.unwrap();
    assert_eq!(result.exit_code, 3);
    assert_eq!(result.message, "exited with code 3");
    assert_eq!(daemon.log("fails", exec).await, b"one\ntwo\nthree\n");
    let statuses: Vec<_> = done.status_history.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            ExecutionStatus::Created,
            ExecutionStatus::Running,
            ExecutionStatus::Failure
        ]
    );
}

#[tokio::test]
async fn jobs_get_their_directory_environment_and_no_stdin() {
    let script = r#"#!/bin/sh
echo "cwd=$(pwd)"
echo "root=$SERVITOR_ROOT"
echo "job=$SERVITOR_JOB"
echo "exec=$SERVITOR_JOB_EXECUTION"
echo "who=$who"
echo "stdin=$(cat)"
set -- $(cut -d' ' -f5,6 /proc/$$/stat)
[ "$1" = "$$" ] && [ "$2" = "$$" ] && echo "own group and session"
"#;
    let daemon = TestDaemon::new()
        .job("env/check", script)
        .input_spec("env/check", r#"{"who": {}}"#)
        .start()
        .await;
    let exec = daemon
        .client()
        .run("env/check", &pairs(&[("who", "alice")]))
        .await
        .unwrap();
    let done = daemon.wait_finished("env/check", exec).await;
    assert_eq!(done.status, ExecutionStatus::Success);
    let log = String::from_utf8(daemon.log("env/check", exec).await).unwrap();
    let root = daemon.path();
    let expected = format!(
        "cwd={}\nroot={}\njob=env/check\nexec=1\nwho=alice\nstdin=\nown group and session\n",
        root.join("config/jobs/env/check").display(),
        root.display()
    );
    assert_eq!(log, expected);
}

#[tokio::test]
async fn a_signal_death_is_a_failure_with_minus_the_signal() {
    let daemon = TestDaemon::new()
        .job("killed", "#!/bin/sh\necho before\nkill -9 $$\n")
        .start()
        .await;
    let exec = daemon.run("killed").await;
    let done = daemon.wait_finished("killed", exec).await;
    assert_eq!(done.status, ExecutionStatus::Failure);
    let result = done.result.unwrap();
    assert_eq!(result.exit_code, -9);
    assert!(result.message.contains("SIGKILL"), "{}", result.message);
}

#[tokio::test]
async fn a_run_that_cannot_start_records_minus_one_and_the_os_error() {
    let daemon = TestDaemon::new()
        .job("bad-interpreter", "#!/nonexistent/interpreter\n")
        .start()
        .await;
    let exec = daemon.run("bad-interpreter").await;
    let done = daemon.wait_finished("bad-interpreter", exec).await;
    assert_eq!(done.status, ExecutionStatus::Failure);
    let result = done.result.unwrap();
    assert_eq!(result.exit_code, -1);
    assert!(
        result.message.contains("No such file"),
        "{}",
        result.message
    );
    let log = String::from_utf8(daemon.log("bad-interpreter", exec).await).unwrap();
    assert!(log.contains("could not start"), "{log}");
}

#[tokio::test]
async fn inputs_are_validated_defaulted_and_unknown_names_ignored() {
    let daemon = TestDaemon::new()
        .job(
            "greet",
            "#!/bin/sh\necho \"$name $size ${extra:-none} ${opt:-unset}\"\n",
        )
        .input_spec(
            "greet",
            r#"{"name": {"required": true}, "size": {"default": "m", "choices": ["s", "m", "l"]}, "opt": {}}"#,
        )
        .start()
        .await;
    let client = daemon.client();

    let missing = client.run("greet", &[]).await.unwrap_err();
    assert_eq!(missing.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(missing.to_string(), "missing required input name");
    let bad_choice = client
        .run("greet", &pairs(&[("name", "x"), ("size", "xl")]))
        .await
        .unwrap_err();
    assert_eq!(bad_choice.status().map(|s| s.as_u16()), Some(400));
    assert!(bad_choice.to_string().contains("size"), "{bad_choice}");
    let nul = client
        .run("greet", &pairs(&[("name", "a\0b")]))
        .await
        .unwrap_err();
    assert_eq!(nul.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(nul.to_string(), "input name must not contain a NUL byte");
    // Nothing was created by the refused triggers.
    assert!(!daemon.path().join("state/jobs/greet").exists());

    let exec = client
        .run("greet", &pairs(&[("name", "bob"), ("extra", "sneaky")]))
        .await
        .unwrap();
    assert_eq!(exec, ExecutionId(1));
    let done = daemon.wait_finished("greet", exec).await;
    assert_eq!(done.input_values.len(), 2);
    assert_eq!(done.input_values["size"], "m");
    assert_eq!(daemon.log("greet", exec).await, b"bob m none unset\n");
    let stored = fs::read_to_string(daemon.execution_dir("greet", 1).join("input.json")).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored, serde_json::json!({"name": "bob", "size": "m"}));
}

#[tokio::test]
async fn run_accepts_a_form_body() {
    let daemon = TestDaemon::new()
        .job("form", "#!/bin/sh\necho \"$who\"\n")
        .input_spec("form", r#"{"who": {"required": true}}"#)
        .start()
        .await;
    let body = "job_id=form&input_value_who=form%20user";
    let request = format!(
        "POST /api/jobs/run HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = daemon.raw_request(request.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(r#"{"status":"success","execution_id":"1"}"#),
        "{answer}"
    );
    daemon.wait_finished("form", ExecutionId(1)).await;
    assert_eq!(daemon.log("form", ExecutionId(1)).await, b"form user\n");
}

#[tokio::test]
async fn the_queue_is_fifo_across_jobs_with_the_worker_limit() {
    let daemon = TestDaemon::new()
        .arg("--workers")
        .arg("1")
        .job("a", "#!/bin/sh\necho a >> \"$SERVITOR_ROOT/order\"\n")
        .job("b", "#!/bin/sh\necho b >> \"$SERVITOR_ROOT/order\"\n")
        .job(
            "gate",
            "#!/bin/sh\nwhile [ ! -e \"$SERVITOR_ROOT/open\" ]; do sleep 0.01; done\n",
        )
        .start()
        .await;
    let gate = daemon.run("gate").await;
    daemon
        .wait_for("gate", gate, "running", |e| {
            e.status == ExecutionStatus::Running
        })
        .await;
    let mut triggered = Vec::new();
    for job in ["b", "a", "b", "a", "a"] {
        triggered.push((job, daemon.run(job).await));
    }
    // With the one worker busy, everything else waits in the queue.
    for (job, exec) in &triggered {
        let execution = daemon.client().execution(job, *exec).await.unwrap();
        assert_eq!(execution.status, ExecutionStatus::Created);
    }
    fs::write(daemon.path().join("open"), "").unwrap();
    for (job, exec) in &triggered {
        daemon.wait_finished(job, *exec).await;
    }
    let order = fs::read_to_string(daemon.path().join("order")).unwrap();
    assert_eq!(order, "b\na\nb\na\na\n");
    let ids: Vec<u64> = triggered.iter().map(|(_, id)| id.0).collect();
    assert_eq!(ids, [1, 1, 2, 2, 3]);
}

#[tokio::test]
async fn executions_run_in_parallel_up_to_the_worker_count() {
    let wait_for_peer = "#!/bin/sh\ntouch \"$SERVITOR_ROOT/$SERVITOR_JOB\"\nwhile [ ! -e \"$SERVITOR_ROOT/PEER\" ]; do sleep 0.01; done\n";
    let daemon = TestDaemon::new()
        .arg("--workers")
        .arg("2")
        .job("x", &wait_for_peer.replace("PEER", "y"))
        .job("y", &wait_for_peer.replace("PEER", "x"))
        .start()
        .await;
    let x = daemon.run("x").await;
    let y = daemon.run("y").await;
    // Each waits for the other: both finish only if both run at once.
    assert_eq!(
        daemon.wait_finished("x", x).await.status,
        ExecutionStatus::Success
    );
    assert_eq!(
        daemon.wait_finished("y", y).await.status,
        ExecutionStatus::Success
    );
}
