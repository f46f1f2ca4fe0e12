//! `meshfed`: one binary for every role. Each subcommand parses its flags and config, sets up
//! logging and calls the library's `run(config, shutdown)`.

mod check;
mod demo;
mod logging;
mod roles;

use clap::{Parser, Subcommand};

/// mimalloc: the exposition parser and the store allocate many small strings, where it is 2-3x
/// faster than glibc malloc (see BENCHMARKS.md, "Exposition parsing").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Federated telemetry and failover for multi-cluster Istio meshes.
#[derive(Parser)]
#[command(name = "meshfed", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the central aggregator (relay server, store, Prometheus API, graph).
    Aggregator(roles::AggregatorArgs),
    /// Run a per-cluster collector (scrape, forward over the relay).
    Collector(roles::CollectorArgs),
    /// Run the multi-cluster mesh simulator.
    Sim(roles::SimArgs),
    /// Run simulator, one collector per cluster and the aggregator in one process.
    Demo(demo::DemoArgs),
    /// Validate inputs.
    Check(check::CheckArgs),
    /// Write a development CA and relay certificates (for the demo and experiments).
    Certs(roles::CertsArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cli = match cli.command {
        Command::Check(args) => return check::run(args),
        Command::Certs(args) => {
            return match roles::certs(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        command => Cli { command },
    };
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let shutdown = roles::shutdown_on_signal();
        match cli.command {
            Command::Aggregator(a) => roles::aggregator(a, shutdown).await,
            Command::Collector(a) => roles::collector(a, shutdown).await,
            Command::Sim(a) => roles::sim(a, shutdown).await,
            Command::Demo(a) => demo::run(a, shutdown).await,
            Command::Check(_) | Command::Certs(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
