use std::process::ExitCode;

use clap::Parser;
use servitor::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    servitor::telemetry::init(cli.log_default());
    match servitor::cli::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("servitor: {err:#}");
            ExitCode::FAILURE
        }
    }
}
