//! The benchmark's baseline: the least work a job manager can do.
//!
//! Starts one `run` script again and again, a fixed number at a time, each start with its own
//! directory and log file (stdout and stderr appended to it), and waits for each. Nothing else:
//! no HTTP, no state files, no events. `bench/bench.py` compares servitor with what this program
//! achieves on the same machine in the same run.
//!
//! Two measurements, printed together as one JSON object on stdout:
//! - throughput: `--count` starts, `--parallel` at a time, as executions per second;
//! - spawn-to-first-output: `--latency-count` sequential starts, each timed from just before
//!   `spawn()` until its log file holds a first byte, watched by polling the file's size in a tight
//!   loop (the same method the benchmark applies to servitor).
//!
//! Usage: `bare_spawner --run PATH --dir DIR [--count N] [--parallel P] [--latency-count M]`

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Longest a single start may take to write its first byte before the run is declared broken.
const FIRST_OUTPUT_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    run: PathBuf,
    dir: PathBuf,
    count: usize,
    parallel: usize,
    latency_count: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut run = None;
    let mut dir = None;
    let mut count = 500;
    let mut parallel = 2;
    let mut latency_count = 50;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} needs a whole number, got {value:?}"))
        };
        match flag.as_str() {
            "--run" => run = Some(PathBuf::from(&value)),
            "--dir" => dir = Some(PathBuf::from(&value)),
            "--count" => count = number()?,
            "--parallel" => parallel = number()?.max(1),
            "--latency-count" => latency_count = number()?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Args {
        run: run.ok_or("--run PATH is required")?,
        dir: dir.ok_or("--dir DIR is required")?,
        count,
        parallel,
        latency_count,
    })
}

/// Creates the directory of start number `index` and its empty log file.
fn prepare(root: &Path, index: usize) -> io::Result<(PathBuf, File)> {
    let dir = root.join(index.to_string());
    fs::create_dir_all(&dir)?;
    let log_path = dir.join("main.txt");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    Ok((log_path, log))
}

/// Starts the script once with the log as stdout and stderr, like servitor does: current
/// directory the script's own, stdin `/dev/null`, its own process group.
fn spawn(run: &Path, log: File) -> io::Result<std::process::Child> {
    let cwd = run.parent().unwrap_or(Path::new("/"));
    Command::new(run)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
}

fn run_once(run: &Path, root: &Path, index: usize) -> io::Result<()> {
    let (_, log) = prepare(root, index)?;
    let status = spawn(run, log)?.wait()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "start {index} ended with {status}"
        )))
    }
}

/// Runs `count` starts with `parallel` threads, each taking the next start number when its
/// previous child has exited. Returns the elapsed seconds.
fn throughput(args: &Args, root: &Path) -> io::Result<f64> {
    let next = AtomicUsize::new(0);
    let began = Instant::now();
    thread::scope(|scope| {
        let workers: Vec<_> = (0..args.parallel)
            .map(|_| {
                scope.spawn(|| -> io::Result<()> {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= args.count {
                            return Ok(());
                        }
                        run_once(&args.run, root, index)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().expect("a spawner thread never panics"))
    })?;
    Ok(began.elapsed().as_secs_f64())
}

/// Times one start from just before `spawn()` to the first byte in its log file, in seconds.
fn first_output(run: &Path, root: &Path, index: usize) -> io::Result<f64> {
    let (log_path, log) = prepare(root, index)?;
    let began = Instant::now();
    let mut child = spawn(run, log)?;
    let elapsed = loop {
        if fs::metadata(&log_path)?.len() > 0 {
            break began.elapsed();
        }
        if began.elapsed() > FIRST_OUTPUT_TIMEOUT {
            // Best effort: the run is already failing, a kill error adds nothing.
            let _ = child.kill();
            return Err(io::Error::other(format!(
                "start {index} wrote nothing within {FIRST_OUTPUT_TIMEOUT:?}"
            )));
        }
        std::hint::spin_loop();
    };
    child.wait()?;
    Ok(elapsed.as_secs_f64())
}

/// The value below which `fraction` of the sorted `values` lie (nearest rank).
fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("bare_spawner: {message}");
            return ExitCode::from(2);
        }
    };
    match measure(&args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("bare_spawner: {error}");
            ExitCode::FAILURE
        }
    }
}

fn measure(args: &Args) -> io::Result<String> {
    let throughput_root = args.dir.join("throughput");
    let seconds = throughput(args, &throughput_root)?;

    let latency_root = args.dir.join("latency");
    let mut latencies = (0..args.latency_count)
        .map(|index| first_output(&args.run, &latency_root, index))
        .collect::<io::Result<Vec<f64>>>()?;
    latencies.sort_by(f64::total_cmp);
    let millis = |value: Option<f64>| match value {
        Some(seconds) => format!("{}", seconds * 1000.0),
        None => "null".to_owned(),
    };

    // Only numbers go into this object, so it is written by hand rather than with a JSON crate.
    Ok(format!(
        concat!(
            "{{\"executions\": {}, \"parallel\": {}, \"total_seconds\": {}, ",
            "\"executions_per_second\": {}, \"latency_count\": {}, ",
            "\"first_output_p50_ms\": {}, \"first_output_p95_ms\": {}}}"
        ),
        args.count,
        args.parallel,
        seconds,
        args.count as f64 / seconds,
        args.latency_count,
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.95)),
    ))
}
