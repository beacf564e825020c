//! Job discovery through the API (DESIGN.md §3).

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use crate::harness::{TestDaemon, write_job};

const OK: &str = "#!/bin/sh\necho ok\n";

fn ids(jobs: &[servitor::jobs::Job]) -> Vec<String> {
    jobs.iter().map(|job| job.job_id.to_string()).collect()
}

#[tokio::test]
async fn nested_and_linked_jobs_are_listed_and_non_jobs_are_not() {
    let daemon = TestDaemon::new()
        .job("top", OK)
        .job("top/child/grandchild", OK)
        .job("not-executable", OK);
    let jobs_dir = daemon.path().join("config/jobs");
    fs::set_permissions(
        jobs_dir.join("not-executable/run"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    fs::create_dir_all(jobs_dir.join("dir-named-run/run")).unwrap();
    fs::create_dir_all(jobs_dir.join("dangling")).unwrap();
    symlink("/nonexistent/run", jobs_dir.join("dangling/run")).unwrap();
    let elsewhere = daemon.path().join("elsewhere");
    write_job(&elsewhere, "target", OK);
    symlink(
        elsewhere.join("config/jobs/target"),
        jobs_dir.join("linked"),
    )
    .unwrap();
    symlink(&jobs_dir, jobs_dir.join("top/cycle")).unwrap();
    let daemon = daemon.start().await;

    let jobs = daemon.client().jobs().await.unwrap();
    assert_eq!(ids(&jobs), ["linked", "top", "top/child/grandchild"]);

    // A linked job runs in its directory as seen under config/jobs.
    let job = "linked";
    write_job(&elsewhere, "target", "#!/bin/sh\npwd\n");
    let exec = daemon.run(job).await;
    daemon.wait_finished(job, exec).await;
    let log = String::from_utf8(daemon.log(job, exec).await).unwrap();
    assert_eq!(log.trim(), jobs_dir.join("linked").display().to_string());

    for not_a_job in [
        "not-executable",
        "dir-named-run",
        "dangling",
        "top/cycle/top",
    ] {
        let err = daemon.client().run(not_a_job, &[]).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{not_a_job}");
    }
}

#[tokio::test]
async fn jobs_added_and_removed_on_disk_are_seen_without_restart() {
    let daemon = TestDaemon::new().job("first", OK).start().await;
    assert_eq!(ids(&daemon.client().jobs().await.unwrap()), ["first"]);
    write_job(daemon.path(), "second", OK);
    assert_eq!(
        ids(&daemon.client().jobs().await.unwrap()),
        ["first", "second"]
    );
    fs::remove_dir_all(daemon.path().join("config/jobs/first")).unwrap();
    assert_eq!(ids(&daemon.client().jobs().await.unwrap()), ["second"]);
    let err = daemon.client().job("first").await.unwrap_err();
    assert_eq!(err.to_string(), "job first does not exist");
}

#[tokio::test]
async fn list_can_be_limited_to_a_subtree() {
    let daemon = TestDaemon::new()
        .job("backups/db", OK)
        .job("backups/files", OK)
        .job("backupsX", OK)
        .start()
        .await;
    let client = daemon.client();
    let answer = client
        .send(hyper::Method::GET, "/api/jobs/get_list?path=backups")
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .unwrap()
        .to_bytes();
    let jobs: Vec<servitor::jobs::Job> = serde_json::from_slice(&body).unwrap();
    assert_eq!(ids(&jobs), ["backups/db", "backups/files"]);
    let err = client
        .send(hyper::Method::GET, "/api/jobs/get_list?path=../x")
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
}

#[tokio::test]
async fn a_broken_input_spec_shows_an_error_and_refuses_to_run() {
    let daemon = TestDaemon::new()
        .job("broken", OK)
        .input_spec("broken", "{\"who\": {\"required\": \"yes\"}}")
        .job("fine", OK)
        .input_spec(
            "fine",
            "{\"who\": {\"default\": \"me\", \"description\": \"who\"}}",
        )
        .start()
        .await;
    let jobs = daemon.client().jobs().await.unwrap();
    assert_eq!(ids(&jobs), ["broken", "fine"]);
    let broken = &jobs[0];
    let error = broken.error.as_deref().unwrap();
    assert!(
        error.contains("run.input.json") && error.contains("who"),
        "{error}"
    );
    assert!(jobs[1].error.is_none());
    assert_eq!(jobs[1].input_spec.0[0].1.default.as_deref(), Some("me"));

    let err = daemon.client().run("broken", &[]).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(err.to_string(), error);
    assert!(!daemon.path().join("state/jobs/broken").exists());
}

#[tokio::test]
async fn the_example_working_directory_has_the_documented_jobs() {
    let daemon = TestDaemon::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("example");
    // Serve a copy, so the test never writes state into the repository.
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(example.join("config"))
        .arg(example.join("shared-jobs"))
        .arg(daemon.path())
        .status()
        .unwrap();
    assert!(status.success());
    let daemon = daemon.start().await;
    let jobs = daemon.client().jobs().await.unwrap();
    assert_eq!(
        ids(&jobs),
        [
            "cleanup",
            "greet",
            "hello",
            "projects/website/deploy",
            "tools/colours",
            "tools/fails",
            "tools/long"
        ]
    );
    let greet = jobs
        .iter()
        .find(|job| job.job_id.as_str() == "greet")
        .unwrap();
    assert!(greet.error.is_none());
    let names: Vec<_> = greet
        .input_spec
        .0
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["name", "language", "note"]);

    let client = daemon.client();
    let exec = client.run("cleanup", &[]).await.unwrap();
    assert!(
        daemon.wait_finished("cleanup", exec).await.status
            == servitor::store::ExecutionStatus::Success
    );
    let exec = client
        .run("greet", &[("name".into(), "Ada".into())])
        .await
        .unwrap();
    daemon.wait_finished("greet", exec).await;
    assert_eq!(
        daemon.log("greet", exec).await,
        b"Hello, Ada!\nGreeting language: english\n"
    );
    let exec = client.run("tools/fails", &[]).await.unwrap();
    let failed = daemon.wait_finished("tools/fails", exec).await;
    assert_eq!(failed.result.unwrap().exit_code, 3);
}
