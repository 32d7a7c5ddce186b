//! The `twin` binary: parses the command line, sets up logging and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use twin_api::cli::{Cli, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    twin_api::telemetry::init_tracing(cli.log_filter().as_deref());
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // One clear sentence on stderr; the chain of causes after it.
            let mut message = error.to_string();
            for cause in error.chain().skip(1) {
                message.push_str(": ");
                message.push_str(&cause.to_string());
            }
            eprintln!("twin: {message}");
            ExitCode::FAILURE
        }
    }
}
