//! The `keeptrack` binary: parse the command line, start logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use keeptrack::cli::{Cli, LogFormat, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("KEEPTRACK_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,keeptrack=info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keeptrack: {e:#}");
            ExitCode::from(2)
        }
    }
}
