//! The HTTP API (DESIGN.md §7) and its answers to bad input (§11).

use std::fs;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Method;
use servitor::store::{ExecutionId, ExecutionStatus};

use crate::harness::{TIMEOUT, TestDaemon};

/// Status code and body of a raw request over the socket.
fn status_and_body(answer: &str) -> (u16, String) {
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (code, body)
}

fn get(daemon: &TestDaemon, method: &str, target: &str) -> (u16, serde_json::Value) {
    let answer = daemon.raw_request(
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    let (code, body) = status_and_body(&answer);
    (
        code,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_nothing_runs_or_is_created() {
    let daemon = TestDaemon::new()
        .job("ok", "#!/bin/sh\ntouch \"$SERVITOR_ROOT/ran\"\n")
        .start()
        .await;
    fs::create_dir_all(daemon.path().join("outside")).unwrap();
    for (method, target, code, message) in [
        ("POST", "/api/jobs/run?job_id=../outside", 404, "job"),
        ("POST", "/api/jobs/run?job_id=%2Fbin", 404, "job"),
        ("POST", "/api/jobs/run?job_id=ok/..", 404, "job"),
        ("POST", "/api/jobs/run?job_id=ok/../ok", 404, "job"),
        (
            "POST",
            "/api/jobs/run?job_id=nope",
            404,
            "job nope does not exist",
        ),
        ("POST", "/api/jobs/run", 400, "missing parameter job_id"),
        (
            "GET",
            "/api/jobs/get?job_id=..%2F..%2Fetc",
            404,
            "does not exist",
        ),
        (
            "GET",
            "/api/jobs/executions/get?job_id=ok&execution_id=abc",
            400,
            "decimal",
        ),
        (
            "GET",
            "/api/jobs/executions/get?job_id=ok&execution_id=-1",
            400,
            "decimal",
        ),
        (
            "GET",
            "/api/jobs/executions/get?job_id=ok&execution_id=1",
            404,
            "execution 1 of job ok",
        ),
        (
            "GET",
            "/api/jobs/executions/get?job_id=ok",
            400,
            "missing parameter execution_id",
        ),
        (
            "GET",
            "/api/jobs/executions/get_list?job_id=ok&limit=x",
            400,
            "limit",
        ),
        (
            "GET",
            "/api/jobs/executions/get_list?job_id=../x",
            404,
            "does not exist",
        ),
        (
            "GET",
            "/api/jobs/executions/logs/get?job_id=ok&execution_id=1",
            404,
            "execution 1",
        ),
        (
            "POST",
            "/api/jobs/executions/cancel?job_id=ok&execution_id=1x",
            400,
            "decimal",
        ),
        ("GET", "/api/nothing", 404, "no such path"),
        ("GET", "/", 404, "no such path"),
        ("GET", "/index.html", 404, "no such path"),
        ("PUT", "/api/jobs/get_list", 405, "not allowed"),
        ("GET", "/api/jobs/run?job_id=ok", 405, "not allowed"),
        ("DELETE", "/api/events", 405, "not allowed"),
    ] {
        let (status, body) = get(&daemon, method, target);
        assert_eq!(status, code, "{method} {target}: {body}");
        let text = body["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{method} {target}: {text:?}");
    }
    assert!(!daemon.path().join("ran").exists());
    assert!(!daemon.path().join("state/jobs/ok").exists());
    assert!(!daemon.path().join("state/outside").exists());
}

#[tokio::test]
async fn malformed_http_gets_400_and_the_daemon_keeps_serving() {
    let daemon = TestDaemon::new().job("ok", "#!/bin/sh\n").start().await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /api/jobs/get_list HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
    ] {
        let answer = daemon.raw_request(garbage);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?} -> {answer:?}"
        );
    }
    // A client that connects and goes away without a word changes nothing.
    drop(std::os::unix::net::UnixStream::connect(daemon.socket()).unwrap());
    assert_eq!(daemon.client().jobs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn job_answers_carry_the_spec_and_the_last_execution() {
    let daemon = TestDaemon::new()
        .job("j", "#!/bin/sh\necho hi\n")
        .input_spec(
            "j",
            r#"{"b": {"choices": ["x"], "required": true}, "a": {"description": "first"}}"#,
        )
        .start()
        .await;
    let (status, job) = get(&daemon, "GET", "/api/jobs/get?job_id=j");
    assert_eq!(status, 200);
    assert_eq!(
        job,
        serde_json::json!({
            "job_id": "j",
            "input_spec": {"b": {"choices": ["x"], "required": true}, "a": {"description": "first"}},
            "last_execution": null
        })
    );
    // Spec order is kept.
    let keys: Vec<_> = job["input_spec"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys, ["b", "a"]);

    let (status, answer) = get(&daemon, "POST", "/api/jobs/run?job_id=j&input_value_b=x");
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        serde_json::json!({"status": "success", "execution_id": "1"})
    );
    daemon.wait_finished("j", ExecutionId(1)).await;
    let (_, list) = get(&daemon, "GET", "/api/jobs/get_list");
    let last = &list[0]["last_execution"];
    assert_eq!(last["execution_id"], "1");
    assert_eq!(last["status"], "success");
    assert_eq!(
        last["result"],
        serde_json::json!({"exit_code": 0, "message": ""})
    );
    assert_eq!(last["input_values"], serde_json::json!({"b": "x"}));
    let history = last["status_history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert!(history[0]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn execution_lists_are_newest_first_with_limit_and_before() {
    let daemon = TestDaemon::new().job("j", "#!/bin/sh\n").start().await;
    for _ in 0..5 {
        let exec = daemon.run("j").await;
        daemon.wait_finished("j", exec).await;
    }
    let client = daemon.client();
    let ids = |list: Vec<servitor::store::Execution>| -> Vec<u64> {
        list.iter().map(|e| e.execution_id.0).collect()
    };
    assert_eq!(
        ids(client.executions("j", None, None).await.unwrap()),
        [5, 4, 3, 2, 1]
    );
    assert_eq!(
        ids(client.executions("j", Some(2), None).await.unwrap()),
        [5, 4]
    );
    assert_eq!(
        ids(client
            .executions("j", Some(2), Some(ExecutionId(4)))
            .await
            .unwrap()),
        [3, 2]
    );
    assert_eq!(
        ids(client
            .executions("j", None, Some(ExecutionId(1)))
            .await
            .unwrap()),
        Vec::<u64>::new()
    );
}

#[tokio::test]
async fn logs_are_byte_exact_with_offsets_and_non_utf8() {
    let daemon = TestDaemon::new()
        .job(
            "bytes",
            "#!/bin/sh\nprintf 'caf\\303\\251 \\377\\376 raw\\000nul\\n'\n",
        )
        .start()
        .await;
    let exec = daemon.run("bytes").await;
    daemon.wait_finished("bytes", exec).await;
    let expected = b"caf\xc3\xa9 \xff\xfe raw\0nul\n";
    assert_eq!(daemon.log("bytes", exec).await, expected);
    let on_disk = fs::read(daemon.execution_dir("bytes", 1).join("logs/main.txt")).unwrap();
    assert_eq!(on_disk, expected);
    let tail = daemon.client().log("bytes", exec, 5).await.unwrap();
    let tail = tail.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&tail[..], &expected[5..]);
    let past_end = daemon.client().log("bytes", exec, 1000).await.unwrap();
    assert!(
        past_end
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}

#[tokio::test]
async fn a_log_stream_follows_a_running_execution_until_it_ends() {
    let daemon = TestDaemon::new()
        .job(
            "slow",
            "#!/bin/sh\necho first\nwhile [ ! -e \"$SERVITOR_ROOT/next\" ]; do sleep 0.01; done\necho second\n",
        )
        .start()
        .await;
    let exec = daemon.run("slow").await;
    let response = daemon.client().log("slow", exec, 0).await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let mut body = response.into_body();
    let mut seen = Vec::new();
    // The first line arrives while the execution still runs.
    while !seen.ends_with(b"first\n") {
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await
            .expect("first line in time")
            .expect("stream still open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            seen.extend_from_slice(&data);
        }
    }
    let now = daemon.client().execution("slow", exec).await.unwrap();
    assert_eq!(now.status, ExecutionStatus::Running);
    // follow=false answers what is written so far and closes, while it runs.
    let so_far = daemon.client().log_so_far("slow", exec).await.unwrap();
    let mut so_far_bytes = Vec::new();
    let mut so_far = so_far;
    while let Some(chunk) = tokio::time::timeout(TIMEOUT, so_far.next_chunk())
        .await
        .expect("follow=false closes at once")
        .unwrap()
    {
        so_far_bytes.extend_from_slice(&chunk);
    }
    assert_eq!(so_far_bytes, b"first\n");
    let (status, message) = get(
        &daemon,
        "GET",
        &format!("/api/jobs/executions/logs/get?job_id=slow&execution_id={exec}&follow=maybe"),
    );
    assert_eq!(status, 400, "{message}");
    fs::write(daemon.path().join("next"), "").unwrap();
    let rest = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("stream ends when the execution ends")
        .unwrap()
        .to_bytes();
    seen.extend_from_slice(&rest);
    assert_eq!(seen, b"first\nsecond\n");
}

#[tokio::test]
async fn a_log_stream_of_a_queued_execution_waits_for_it() {
    let daemon = TestDaemon::new()
        .arg("--workers")
        .arg("1")
        .job(
            "gate",
            "#!/bin/sh\nwhile [ ! -e \"$SERVITOR_ROOT/open\" ]; do sleep 0.01; done\n",
        )
        .job("later", "#!/bin/sh\necho later output\n")
        .start()
        .await;
    daemon.run("gate").await;
    let exec = daemon.run("later").await;
    let follow = {
        let client = daemon.client();
        tokio::spawn(async move {
            let response = client.log("later", exec, 0).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    assert_eq!(
        daemon
            .client()
            .execution("later", exec)
            .await
            .unwrap()
            .status,
        ExecutionStatus::Created
    );
    fs::write(daemon.path().join("open"), "").unwrap();
    let body = tokio::time::timeout(TIMEOUT, follow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&body[..], b"later output\n");
}

#[tokio::test]
async fn a_large_log_streams_with_flat_memory() {
    let daemon = TestDaemon::new()
        .job(
            "big",
            "#!/bin/sh\nhead -c 67108864 /dev/zero | tr '\\0' 'x'\n",
        )
        .start()
        .await;
    let exec = daemon.run("big").await;
    daemon.wait_finished("big", exec).await;
    let rss_before = rss_kib(daemon.pid());
    let response = daemon.client().log("big", exec, 0).await.unwrap();
    let mut body = response.into_body();
    let mut total = 0usize;
    let mut peak = rss_before;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(data.iter().all(|&b| b == b'x'));
            total += data.len();
        }
        peak = peak.max(rss_kib(daemon.pid()));
        // Reading slowly keeps the daemon's side of the stream full.
        if total < 4 * 1024 * 1024 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(total, 64 * 1024 * 1024);
    assert!(
        peak < rss_before + 16 * 1024,
        "daemon memory grew from {rss_before} KiB to {peak} KiB while streaming 64 MiB"
    );
}

fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn the_event_stream_reports_every_status_change_as_json_lines() {
    let daemon = TestDaemon::new()
        .job("j", "#!/bin/sh\nexit 1\n")
        .start()
        .await;
    let response = daemon.client().events().await.unwrap();
    let mut body = response.into_body();
    let exec = daemon.run("j").await;
    let mut text = String::new();
    while text.lines().count() < 3 {
        let frame = tokio::time::timeout(TIMEOUT, body.frame())
            .await
            .expect("events in time")
            .expect("stream open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for (event, status) in events.iter().zip(["created", "running", "failure"]) {
        assert_eq!(
            *event,
            serde_json::json!({
                "id": "job_execution_status_changed",
                "payload": {"job_id": "j", "execution_id": exec.to_string(), "status": status}
            })
        );
    }
}

#[tokio::test]
async fn the_ui_folder_is_served_without_escaping_it() {
    let ui = tempfile::tempdir().unwrap();
    fs::write(ui.path().join("index.html"), "<h1>ui</h1>").unwrap();
    fs::write(ui.path().join("app.js"), "let x = 1;").unwrap();
    let daemon = TestDaemon::new();
    fs::write(daemon.path().join("secret.txt"), "TOP-SECRET-CONTENT").unwrap();
    let daemon = daemon
        .env("SERVITOR_UI_ROOT", ui.path().to_str().unwrap())
        .start()
        .await;
    let fetch = |target: &str| {
        status_and_body(&daemon.raw_request(
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        ))
    };
    assert_eq!(fetch("/"), (200, "<h1>ui</h1>".to_owned()));
    assert_eq!(fetch("/app.js"), (200, "let x = 1;".to_owned()));
    for escape in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/missing.js",
    ] {
        let (code, body) = fetch(escape);
        assert!(code == 404 || code == 400, "{escape}: {code}");
        assert!(!body.contains("TOP-SECRET-CONTENT"), "{escape}: {body}");
    }
    // The API still answers beside the UI.
    let (code, _) = fetch("/api/jobs/get_list");
    assert_eq!(code, 200);
    let (code, body) = fetch("/api/unknown");
    assert_eq!(code, 404);
    assert!(body.contains("no such path"));
    let _ = daemon
        .client()
        .send(Method::GET, "/api/jobs/get_list")
        .await
        .unwrap();
}
