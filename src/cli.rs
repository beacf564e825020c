//! Command-line interface: the clap types and `run`, which calls one small
//! function per subcommand. `servitor` alone, or `servitor serve`, runs the daemon;
//! the other subcommands are clients of its socket, through `client`.
//!
//! Exit codes are decided here: see `EXIT_*` and `execution_exit_code`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hyper::StatusCode;
use tokio::signal::unix::{Signal, SignalKind};

use crate::client::{Client, ClientError, EventLine, decode_event};
use crate::config::{self, Config};
use crate::daemon::{self, Shutdown};
use crate::output::{self, Cell, Colour, Palette, Table};
use crate::store::{Execution, ExecutionId, ExecutionStatus};

/// Wrong usage: an unknown option, a missing argument, a bad `-i` (clap uses 2 too).
pub const EXIT_USAGE: u8 = 2;
/// Interrupted with Ctrl-C while following, or the followed execution was cancelled.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long to wait before asking for the rest of a log whose stream ended
/// while the execution still ran (the daemon restarting, say).
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

const ABOUT_CLIENT: &str = "\
Client commands talk to the daemon through <dir>/servitor.sock, or --socket PATH.

Examples:
  servitor serve --dir /srv/servitor         run the daemon on a working directory
  servitor jobs                              list jobs and how each last ran
  servitor run backups/db -i TARGET=s3 --follow
  servitor logs backups/db --follow          follow the latest execution's log
  servitor executions backups/db --limit 5

Exit codes:
  0    success
  1    an error, said in one line on stderr: servitor is not running, no such job
       or execution, a request the daemon refused, permission denied on the socket
  2    wrong usage: an unknown option or a missing argument, -i without NAME=VALUE
  130  interrupted with Ctrl-C while following a log
  141  stdout was closed early (e.g. piped into head)
  `run --follow` exits with the job's own status instead (see `servitor run --help`).";

const RUN_HELP: &str = "\
Examples:
  servitor run backups/db
  servitor run backups/db -i TARGET=s3 -i KEEP=7
  servitor run backups/db --follow      # in cron: the job's output and exit code

Exit code with --follow (the job's own, so it can be used from cron or a script):
  success                              0
  exited with code N                   N
  killed by signal N                   128+N   (e.g. 137 for SIGKILL)
  cancelled                            130
  could not start (exit code -1)       1
  Ctrl-C while following               130     (the job keeps running)
  an error before the end (e.g. no such job, servitor not running)  1
Without --follow: 0 once the execution is queued, 1 on an error, 2 on bad usage.";

#[derive(Debug, Parser)]
#[command(
    name = "servitor",
    version,
    about = "A job manager: every directory under config/jobs holding an executable `run` is a job",
    long_about = None,
    after_help = ABOUT_CLIENT,
)]
pub struct Cli {
    /// The working directory (holds config/jobs, state and servitor.sock).
    #[arg(long, global = true, env = "SERVITOR_DIR", default_value = ".")]
    pub dir: PathBuf,

    /// The daemon's socket for the client commands; wins over --dir
    /// [default: <dir>/servitor.sock].
    #[arg(long, global = true, env = "SERVITOR_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default when no subcommand is given).
    ///
    /// Example: servitor serve --dir /srv/servitor --listen tcp://127.0.0.1:8080
    Serve(ServeArgs),

    /// Print a shell completion script.
    ///
    /// Example: servitor completions bash > /etc/bash_completion.d/servitor
    Completions {
        /// The shell to write completions for.
        shell: clap_complete::Shell,
    },

    /// List the jobs, with the status and start time of each one's last execution.
    #[command(
        after_help = "Examples:\n  servitor jobs\n  servitor jobs --json | jq -r '.[].job_id'"
    )]
    Jobs(JobsArgs),

    /// Start an execution of a job; with --follow, stream its log and exit with its exit code.
    #[command(after_help = RUN_HELP)]
    Run(RunArgs),

    /// List a job's executions, newest first.
    #[command(
        after_help = "Examples:\n  servitor executions backups/db\n  servitor executions backups/db --limit 100 --json"
    )]
    Executions(ExecutionsArgs),

    /// Show one execution: status, times, exit code, inputs.
    #[command(
        after_help = "Examples:\n  servitor show backups/db        # the latest execution\n  servitor show backups/db 7 --json"
    )]
    Show(ShowArgs),

    /// Print an execution's log; with --follow, keep printing until it ends.
    ///
    /// Without --follow, a running execution's log is printed as far as it is
    /// written now, and the command returns at once.
    #[command(
        after_help = "Examples:\n  servitor logs backups/db            # the latest execution's log so far\n  servitor logs backups/db 7 --follow"
    )]
    Logs(LogsArgs),

    /// Cancel a queued or running execution (SIGINT, then SIGTERM, then SIGKILL to its process group).
    #[command(after_help = "Example:\n  servitor cancel backups/db 7")]
    Cancel(CancelArgs),

    /// Print status changes of all executions as they happen, until Ctrl-C.
    #[command(
        after_help = "Examples:\n  servitor events\n  servitor events --json | jq -c 'select(.payload.status == \"failure\")'"
    )]
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Print the daemon's JSON (a list of jobs) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job id, e.g. backups/db.
    pub job: String,

    /// An input value for the job, as NAME=VALUE (repeatable).
    #[arg(short = 'i', long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,

    /// Stream the log to stdout until the execution ends, then exit with its exit code.
    #[arg(short, long)]
    pub follow: bool,

    /// Print the daemon's answer, {"status":"success","execution_id":"N"}.
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExecutionsArgs {
    /// The job id.
    pub job: String,

    /// Show at most this many executions.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: usize,

    /// Print the daemon's JSON (a list of executions) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The job id.
    pub job: String,

    /// The execution id [default: the latest].
    #[arg(value_parser = parse_execution_id)]
    pub id: Option<ExecutionId>,

    /// Print the daemon's JSON of the execution.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job id.
    pub job: String,

    /// The execution id [default: the latest].
    #[arg(value_parser = parse_execution_id)]
    pub id: Option<ExecutionId>,

    /// Keep printing as the log grows, until the execution ends (Ctrl-C stops following).
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job id.
    pub job: String,

    /// The execution id.
    #[arg(value_parser = parse_execution_id)]
    pub id: ExecutionId,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print the daemon's JSON lines as they arrive.
    #[arg(long)]
    pub json: bool,
}

fn parse_execution_id(raw: &str) -> Result<ExecutionId, String> {
    ExecutionId::parse(raw)
        .map_err(|_| format!("{raw:?} is not an execution id (a number: 1, 2, ...)"))
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// How many executions may run at once [default: number of CPUs, at least 2].
    #[arg(long, env = "SERVITOR_WORKERS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// Also serve the API and UI on this TCP address, e.g. tcp://127.0.0.1:8080 (repeatable).
    /// There is no authentication: keep it on loopback or behind a proxy.
    #[arg(long, value_name = "tcp://HOST:PORT", value_parser = config::parse_listen)]
    pub listen: Vec<std::net::SocketAddr>,

    /// Seconds between SIGINT, SIGTERM and SIGKILL when an execution is cancelled.
    #[arg(long, value_name = "SECONDS", default_value_t = config::DEFAULT_CANCEL_GRACE.as_secs_f64())]
    pub cancel_grace: f64,

    /// Folder of the web UI served at / [env: SERVITOR_UI_ROOT].
    #[arg(long, env = "SERVITOR_UI_ROOT", hide_env = true)]
    pub ui_root: Option<PathBuf>,
}

impl Cli {
    /// The log filter when `SERVITOR_LOG` is unset: the daemon logs its lifecycle,
    /// client commands only speak up about problems.
    pub fn log_default(&self) -> &'static str {
        match self.command {
            None | Some(Command::Serve(_)) => "servitor=info",
            _ => "servitor=warn",
        }
    }
}

/// Runs the parsed command line; the exit code is the command's own.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let client = || Client::new(socket_path(&cli.dir, cli.socket.as_deref()));
    let result = match cli.command {
        None => serve(&cli.dir, ServeArgs::default()).await,
        Some(Command::Serve(args)) => serve(&cli.dir, args).await,
        Some(Command::Completions { shell }) => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "servitor",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Jobs(args)) => jobs(&client(), args).await,
        Some(Command::Run(args)) => run_job(&client(), args).await,
        Some(Command::Executions(args)) => executions(&client(), args).await,
        Some(Command::Show(args)) => show(&client(), args).await,
        Some(Command::Logs(args)) => logs(&client(), args).await,
        Some(Command::Cancel(args)) => cancel(&client(), args).await,
        Some(Command::Events(args)) => events(&client(), args).await,
    };
    match result {
        Err(err) if err.is::<UsageError>() => {
            eprintln!("servitor: {err}");
            Ok(ExitCode::from(EXIT_USAGE))
        }
        Err(err) if err.is::<StdoutClosed>() => Ok(ExitCode::from(EXIT_STDOUT_CLOSED)),
        other => other,
    }
}

/// A mistake in the command line that clap cannot see; exits with `EXIT_USAGE`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// `--socket` if given, else `<dir>/servitor.sock`; absolute, so that messages
/// name it unambiguously.
fn socket_path(dir: &Path, socket: Option<&Path>) -> PathBuf {
    let path = socket.map_or_else(|| dir.join("servitor.sock"), Path::to_owned);
    std::path::absolute(&path).unwrap_or(path)
}

/// The exit code `run --follow` ends with, mirroring the job:
/// success → 0; exit code N → N; killed by signal N (recorded as -N) → 128+N;
/// cancelled → 130; could not start (-1), or no result → 1.
pub fn execution_exit_code(execution: &Execution) -> u8 {
    match execution.status {
        ExecutionStatus::Success => 0,
        ExecutionStatus::Cancelled => EXIT_INTERRUPTED,
        ExecutionStatus::Created | ExecutionStatus::Running => 1,
        ExecutionStatus::Failure => match execution.result.as_ref().map(|r| r.exit_code) {
            Some(code @ 1..=255) => code as u8,
            Some(code @ -127..=-2) => (128 - code) as u8,
            _ => 1,
        },
    }
}

/// Parses one `-i NAME=VALUE`; the value may itself hold `=`.
fn parse_input(raw: &str) -> Result<(String, String), UsageError> {
    let bad = || {
        UsageError(format!(
            "-i {raw:?}: an input must be NAME=VALUE, NAME made of letters, digits and _"
        ))
    };
    let (name, value) = raw.split_once('=').ok_or_else(bad)?;
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(bad());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Turns a 404 about `job` into "job X does not exist (did you mean Y?)" when the
/// job is indeed unknown; any other error (an unknown execution, say) stays as it is.
async fn explain(client: &Client, job: &str, err: ClientError) -> anyhow::Error {
    if err.status() != Some(StatusCode::NOT_FOUND) {
        return err.into();
    }
    let Ok(jobs) = client.jobs().await else {
        return err.into();
    };
    if jobs.iter().any(|known| known.job_id.as_str() == job) {
        return err.into();
    }
    let known: Vec<&str> = jobs.iter().map(|known| known.job_id.as_str()).collect();
    anyhow::anyhow!("{}", no_such_job(job, &known))
}

/// `explain` for a result.
async fn checked<T>(
    client: &Client,
    job: &str,
    result: Result<T, ClientError>,
) -> anyhow::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(err) => Err(explain(client, job, err).await),
    }
}

fn no_such_job(job: &str, known: &[&str]) -> String {
    let close = suggestions(job, known);
    match close.as_slice() {
        [] => format!("job {job} does not exist (`servitor jobs` lists them)"),
        [only] => format!("job {job} does not exist (did you mean {only}?)"),
        [first @ .., last] => format!(
            "job {job} does not exist (did you mean {} or {last}?)",
            first.join(", ")
        ),
    }
}

/// Up to three known ids close to `wanted`, closest first: by edit distance, or
/// ending in `wanted` as their last path segment (`db` → `backups/db`).
fn suggestions<'a>(wanted: &str, known: &[&'a str]) -> Vec<&'a str> {
    let limit = (wanted.chars().count() / 3).max(2);
    let mut close: Vec<(usize, &str)> = known
        .iter()
        .filter_map(|&id| {
            let distance = if id.rsplit('/').next() == Some(wanted) {
                1
            } else {
                edit_distance(wanted, id)
            };
            (distance <= limit).then_some((distance, id))
        })
        .collect();
    close.sort();
    close.into_iter().take(3).map(|(_, id)| id).collect()
}

/// Levenshtein distance, counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// Quotes a word for a shell command line shown to the user, when it needs it.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    emit_line(&text)?;
    Ok(())
}

/// Stdout was closed by its reader (`servitor logs … | head`): stop quietly,
/// with the exit code of a process killed by SIGPIPE.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
struct StdoutClosed;

/// Exit code when stdout is closed early: 128 + SIGPIPE, as shells report it.
const EXIT_STDOUT_CLOSED: u8 = 141;

/// Writes bytes to stdout as they are, at once (flushed).
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(err) => Err(anyhow::Error::new(err).context("writing to stdout")),
    }
}

fn emit(text: &str) -> anyhow::Result<()> {
    write_stdout(text.as_bytes())
}

fn emit_line(text: &str) -> anyhow::Result<()> {
    write_stdout(format!("{text}\n").as_bytes())
}

/// The execution `id`, or the job's newest one when `id` is not given.
async fn resolve(
    client: &Client,
    job: &str,
    id: Option<ExecutionId>,
) -> anyhow::Result<ExecutionId> {
    if let Some(id) = id {
        return Ok(id);
    }
    match checked(client, job, client.latest_execution(job).await).await? {
        Some(execution) => Ok(execution.execution_id),
        None => anyhow::bail!(
            "job {job} has no executions yet (start one with `servitor run {}`)",
            shell_word(job)
        ),
    }
}

async fn jobs(client: &Client, args: JobsArgs) -> anyhow::Result<ExitCode> {
    let jobs = client.jobs().await?;
    if args.json {
        print_json(&jobs)?;
        return Ok(ExitCode::SUCCESS);
    }
    if jobs.is_empty() {
        emit_line(
            "no jobs yet: a job is a directory under config/jobs holding an executable file named run",
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let broken = jobs.iter().any(|job| job.error.is_some());
    let mut header = vec!["JOB", "LAST", "STATUS", "STARTED"];
    if broken {
        header.push("PROBLEM");
    }
    let mut table = Table::new(header);
    for job in &jobs {
        let mut row = vec![Cell::plain(job.job_id.as_str())];
        match &job.last_execution {
            Some(last) => row.extend([
                Cell::plain(last.execution_id.to_string()),
                Cell::status(last.status),
                Cell::plain(output::when(last)),
            ]),
            None => row.extend([
                Cell::coloured("-", Colour::Dim),
                Cell::coloured("never run", Colour::Dim),
                Cell::plain(""),
            ]),
        }
        if let Some(error) = &job.error {
            row.push(Cell::coloured(error.as_str(), Colour::Red));
        }
        table.push(row);
    }
    emit(&table.render(Palette::for_stdout()))?;
    Ok(ExitCode::SUCCESS)
}

async fn run_job(client: &Client, args: RunArgs) -> anyhow::Result<ExitCode> {
    let inputs = args
        .inputs
        .iter()
        .map(|raw| parse_input(raw))
        .collect::<Result<Vec<_>, _>>()?;
    // Listen for Ctrl-C before anything starts, so that it is never fatal while following.
    let mut interrupt = if args.follow {
        Some(interrupt_signal()?)
    } else {
        None
    };
    let job = args.job.as_str();
    let exec = checked(client, job, client.run(job, &inputs).await).await?;
    let Some(interrupt) = interrupt.as_mut() else {
        if args.json {
            emit_line(&format!(
                "{}",
                serde_json::json!({"status": "success", "execution_id": exec})
            ))?;
        } else {
            emit_line(&format!(
                "{job}: execution {exec} queued (follow it: servitor logs {} {exec} --follow)",
                shell_word(job)
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    match follow(client, job, exec, interrupt).await? {
        Followed::Ended(execution) => {
            if execution.status != ExecutionStatus::Success {
                let how = execution
                    .result
                    .as_ref()
                    .map(|result| result.message.as_str())
                    .filter(|message| !message.is_empty())
                    .unwrap_or("no result recorded");
                let ended = match execution.status {
                    ExecutionStatus::Cancelled => "was cancelled",
                    _ => "failed",
                };
                eprintln!("servitor: {job} execution {exec} {ended}: {how}");
            }
            Ok(ExitCode::from(execution_exit_code(&execution)))
        }
        Followed::Interrupted => Ok(stopped_following(job, exec)),
    }
}

fn interrupt_signal() -> anyhow::Result<Signal> {
    tokio::signal::unix::signal(SignalKind::interrupt()).context("listening for Ctrl-C")
}

fn stopped_following(job: &str, exec: ExecutionId) -> ExitCode {
    eprintln!(
        "servitor: stopped following; {job} execution {exec} keeps running (to cancel it: servitor cancel {} {exec})",
        shell_word(job)
    );
    ExitCode::from(EXIT_INTERRUPTED)
}

enum Followed {
    /// The execution finished; its final record.
    Ended(Execution),
    /// Ctrl-C: we stopped following; the execution goes on.
    Interrupted,
}

/// Copies the log of `exec` to stdout as it is written, until the execution ends.
/// If the stream ends early (the daemon restarting), it picks up where it stopped.
async fn follow(
    client: &Client,
    job: &str,
    exec: ExecutionId,
    interrupt: &mut Signal,
) -> anyhow::Result<Followed> {
    let mut offset = 0;
    loop {
        let stream = tokio::select! {
            stream = client.log_stream(job, exec, offset) => stream,
            _ = interrupt.recv() => return Ok(Followed::Interrupted),
        };
        let mut stream = checked(client, job, stream).await?;
        let complete = loop {
            let chunk = tokio::select! {
                chunk = stream.next_chunk() => chunk,
                _ = interrupt.recv() => return Ok(Followed::Interrupted),
            };
            match chunk {
                Ok(Some(bytes)) => {
                    write_stdout(&bytes)?;
                    offset += bytes.len() as u64;
                }
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        // The stream ends when the execution ends, and then it has sent every byte.
        let execution = client.execution(job, exec).await.with_context(|| {
            format!("following {job} execution {exec} (it may still be running)")
        })?;
        if execution.status.is_finished() && complete {
            return Ok(Followed::Ended(execution));
        }
        if !execution.status.is_finished() {
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_PAUSE) => {}
                _ = interrupt.recv() => return Ok(Followed::Interrupted),
            }
        }
    }
}

async fn executions(client: &Client, args: ExecutionsArgs) -> anyhow::Result<ExitCode> {
    let job = args.job.as_str();
    let list = checked(
        client,
        job,
        client.executions(job, Some(args.limit), None).await,
    )
    .await?;
    if args.json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        emit_line(&format!("{job} has no executions yet"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now();
    let mut table = Table::new(vec!["ID", "STATUS", "STARTED", "DURATION", "EXIT"]);
    for execution in &list {
        table.push(vec![
            Cell::plain(execution.execution_id.to_string()),
            Cell::status(execution.status),
            Cell::plain(output::when(execution)),
            Cell::plain(
                output::run_time(execution, now).map_or_else(|| "-".to_owned(), output::duration),
            ),
            Cell::plain(
                execution
                    .result
                    .as_ref()
                    .map_or_else(String::new, |r| r.exit_code.to_string()),
            ),
        ]);
    }
    emit(&table.render(Palette::for_stdout()))?;
    Ok(ExitCode::SUCCESS)
}

async fn show(client: &Client, args: ShowArgs) -> anyhow::Result<ExitCode> {
    let job = args.job.as_str();
    let exec = resolve(client, job, args.id).await?;
    let execution = checked(client, job, client.execution(job, exec).await).await?;
    if args.json {
        print_json(&execution)?;
        return Ok(ExitCode::SUCCESS);
    }
    let palette = Palette::for_stdout();
    let time = |at: Option<chrono::DateTime<chrono::Utc>>| {
        at.map_or_else(|| "-".to_owned(), output::format_local)
    };
    let mut lines = vec![
        ("job", job.to_owned()),
        ("execution", exec.to_string()),
        (
            "status",
            palette.paint(
                execution.status.as_str(),
                output::status_colour(execution.status),
            ),
        ),
        ("queued", time(output::queued_at(&execution))),
        ("started", time(output::started_at(&execution))),
        ("finished", time(output::finished_at(&execution))),
        (
            "duration",
            output::run_time(&execution, chrono::Utc::now())
                .map_or_else(|| "-".to_owned(), output::duration),
        ),
    ];
    if let Some(result) = &execution.result {
        lines.push(("exit code", result.exit_code.to_string()));
        if !result.message.is_empty() {
            lines.push(("message", result.message.clone()));
        }
    }
    if execution.input_values.is_empty() {
        lines.push(("inputs", "-".to_owned()));
    }
    for (index, (name, value)) in execution.input_values.iter().enumerate() {
        let label = if index == 0 { "inputs" } else { "" };
        lines.push((label, format!("{name}={value}")));
    }
    for (label, value) in lines {
        emit_line(&format!(
            "{}  {value}",
            palette.paint(&format!("{label:<9}"), Colour::Bold)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn logs(client: &Client, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let job = args.job.as_str();
    let exec = resolve(client, job, args.id).await?;
    if args.follow {
        let mut interrupt = interrupt_signal()?;
        return Ok(match follow(client, job, exec, &mut interrupt).await? {
            Followed::Ended(_) => ExitCode::SUCCESS,
            Followed::Interrupted => stopped_following(job, exec),
        });
    }
    let mut stream = checked(client, job, client.log_so_far(job, exec).await).await?;
    while let Some(bytes) = stream.next_chunk().await? {
        write_stdout(&bytes)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn cancel(client: &Client, args: CancelArgs) -> anyhow::Result<ExitCode> {
    let job = args.job.as_str();
    checked(client, job, client.cancel(job, args.id).await).await?;
    emit_line(&format!("{job}: cancelling execution {}", args.id))?;
    Ok(ExitCode::SUCCESS)
}

async fn events(client: &Client, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut stream = client.event_stream().await?;
    let palette = Palette::for_stdout();
    while let Some(line) = stream.next_line().await? {
        if args.json {
            emit_line(&line)?;
            continue;
        }
        match decode_event(&line) {
            EventLine::Event(event) => {
                let payload = event.payload;
                emit_line(&format!(
                    "{}  {} {}  {}",
                    output::format_local(chrono::Utc::now()),
                    payload.job_id,
                    payload.execution_id,
                    palette.paint(
                        payload.status.as_str(),
                        output::status_colour(payload.status)
                    ),
                ))?;
            }
            EventLine::Lost { count } => {
                eprintln!("servitor: {count} events were lost because this client fell behind");
            }
            EventLine::Unknown => {}
        }
    }
    anyhow::bail!("servitor closed the event stream (it is stopping)")
}

async fn serve(dir: &std::path::Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("resolving the working directory {}", dir.display()))?;
    if !args.cancel_grace.is_finite() || args.cancel_grace < 0.0 {
        anyhow::bail!("--cancel-grace must be a number of seconds, 0 or more");
    }
    let ui_root = match args.ui_root.filter(|root| !root.as_os_str().is_empty()) {
        Some(root) => Some(
            std::path::absolute(&root)
                .with_context(|| format!("resolving the UI folder {}", root.display()))?,
        ),
        None => None,
    };
    let config = Config {
        dir,
        workers: args
            .workers
            .map_or_else(config::default_workers, |n| n as usize),
        cancel_grace: Duration::from_secs_f64(args.cancel_grace),
        listen: args.listen,
        ui_root,
    };
    let shutdown = Shutdown::on_signals().context("installing signal handlers")?;
    daemon::run(config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::store::ExecutionResult;

    fn finished(status: ExecutionStatus, exit_code: Option<i32>) -> Execution {
        Execution {
            execution_id: ExecutionId(1),
            status,
            status_history: Vec::new(),
            result: exit_code.map(|exit_code| ExecutionResult {
                exit_code,
                message: String::new(),
            }),
            input_values: BTreeMap::new(),
        }
    }

    #[test]
    fn exit_codes_mirror_the_job() {
        let code = |status, exit| execution_exit_code(&finished(status, exit));
        assert_eq!(code(ExecutionStatus::Success, Some(0)), 0);
        assert_eq!(code(ExecutionStatus::Failure, Some(3)), 3);
        assert_eq!(code(ExecutionStatus::Failure, Some(255)), 255);
        assert_eq!(code(ExecutionStatus::Failure, Some(-9)), 137);
        assert_eq!(code(ExecutionStatus::Failure, Some(-15)), 143);
        assert_eq!(code(ExecutionStatus::Failure, Some(-1)), 1);
        assert_eq!(code(ExecutionStatus::Failure, None), 1);
        assert_eq!(code(ExecutionStatus::Cancelled, Some(-2)), 130);
    }

    #[test]
    fn inputs_must_be_name_equals_value() {
        assert_eq!(
            parse_input("KEEP=a=b").unwrap(),
            ("KEEP".to_owned(), "a=b".to_owned())
        );
        assert_eq!(
            parse_input("_x=").unwrap(),
            ("_x".to_owned(), String::new())
        );
        for bad in ["KEEP", "=v", "1a=v", "a-b=v", ""] {
            assert!(parse_input(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn unknown_jobs_get_close_suggestions() {
        let known = ["backups/db", "backups/files", "hello", "cleanup"];
        assert_eq!(suggestions("backups/bd", &known), ["backups/db"]);
        assert_eq!(suggestions("db", &known), ["backups/db"]);
        assert_eq!(suggestions("helo", &known), ["hello"]);
        assert!(suggestions("zzzzzz", &known).is_empty());
        assert_eq!(
            no_such_job("backup/db", &known),
            "job backup/db does not exist (did you mean backups/db?)"
        );
        assert_eq!(
            no_such_job("x", &["a", "b", "c", "d"]),
            "job x does not exist (did you mean a, b or c?)"
        );
        assert_eq!(
            no_such_job("zzzzzz", &known),
            "job zzzzzz does not exist (`servitor jobs` lists them)"
        );
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("backups/db"), "backups/db");
        assert_eq!(shell_word("my job"), "'my job'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_socket_option_wins_over_the_directory() {
        assert_eq!(
            socket_path(Path::new("/srv/s"), None),
            Path::new("/srv/s/servitor.sock")
        );
        assert_eq!(
            socket_path(Path::new("/srv/s"), Some(Path::new("/run/x.sock"))),
            Path::new("/run/x.sock")
        );
    }
}
