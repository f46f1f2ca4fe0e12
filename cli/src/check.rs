//! `meshfed check metrics`: validates an exposition read from stdin, like `promtool check metrics`.

use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use meshfed_model::exposition::{self, Format};

/// `meshfed check …`
#[derive(Args)]
pub struct CheckArgs {
    #[command(subcommand)]
    what: CheckWhat,
}

#[derive(Subcommand)]
enum CheckWhat {
    /// Read a Prometheus text (or, with --openmetrics, OpenMetrics) exposition from stdin; exit 0
    /// if valid, else print `line:column: reason` per problem on stderr and exit 1.
    Metrics {
        /// Parse as OpenMetrics 1.0.0 instead of Prometheus text 0.0.4.
        #[arg(long)]
        openmetrics: bool,
    },
}

/// Runs the check and returns the exit code.
pub fn run(args: CheckArgs) -> ExitCode {
    match args.what {
        CheckWhat::Metrics { openmetrics } => {
            let mut body = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut body) {
                eprintln!("error reading stdin: {e}");
                return ExitCode::from(2);
            }
            let body = match String::from_utf8(body) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!(
                        "input is not valid UTF-8 at byte {}",
                        e.utf8_error().valid_up_to()
                    );
                    return ExitCode::FAILURE;
                }
            };
            let format = if openmetrics {
                Format::OpenMetrics
            } else {
                Format::PrometheusText
            };
            let problems = exposition::check(&body, format);
            for p in &problems {
                eprintln!("{p}");
            }
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
