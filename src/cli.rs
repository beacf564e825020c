//! Command-line interface: the clap types and `run`, which calls one small
//! function per subcommand. `servitor` alone, or `servitor serve`, runs the daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Config};
use crate::daemon::{self, Shutdown};

#[derive(Debug, Parser)]
#[command(
    name = "servitor",
    version,
    about = "A job manager: every directory under config/jobs holding an executable `run` is a job",
    long_about = None,
)]
pub struct Cli {
    /// The working directory (holds config/jobs, state and servitor.sock).
    #[arg(long, global = true, env = "SERVITOR_DIR", default_value = ".")]
    pub dir: PathBuf,

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
    match cli.command {
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
    }
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
