//! `pjp-prover`: the command line of the reference prover component (the
//! component itself is the `pjp_prover` library).
//!
//! `pjp-prover run` seeds an in-process queue with synthetic jobs and proves
//! them with two chained runners — a witness generator (CPU) feeding a circuit
//! prover (a Goldilocks NTT on the GPU when one is usable, else the CPU) — then
//! prints a summary. See `pjp-prover run --help`. With `--database-url` the
//! same pipeline is a fleet worker on a PostgreSQL queue.
//!
//! `migrate`, `enqueue`, `status`, `requeue`, `purge` and `verify` manage a
//! PostgreSQL queue of proving jobs (see `pjp-prover help`); `ui` serves an
//! operator web console of it.
//!
//! Exit codes: 0 done (or drained after a signal); 1 a runner failed, a
//! result failed verification, or the database failed; 2 bad usage (a
//! malformed URL included); 3 abandoned after a second signal (the released
//! jobs are listed).

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod failure;
mod progress;
mod run;
mod summary;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pjp-prover: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let fleet = match cli.command {
        Command::Run(args) => {
            let config = match args.config() {
                Ok(config) => config,
                Err(message) => {
                    eprintln!("pjp-prover: error: {message}");
                    return ExitCode::from(2);
                }
            };
            return match runtime.block_on(run::run(&args, config)) {
                Ok(code) => code,
                Err(failure) => failure.exit(),
            };
        }
        Command::Migrate(args) => runtime.block_on(commands::migrate(args)),
        Command::Enqueue(args) => {
            if let Err(message) = args.validate() {
                eprintln!("pjp-prover: error: {message}");
                return ExitCode::from(2);
            }
            runtime.block_on(commands::enqueue(args))
        }
        Command::Status(args) => runtime.block_on(commands::status(args)),
        Command::Requeue(args) => runtime.block_on(commands::requeue(args)),
        Command::Purge(args) => runtime.block_on(commands::purge(args)),
        Command::Gc(args) => runtime.block_on(commands::gc(args)),
        Command::Verify(args) => runtime.block_on(commands::verify(args)),
        Command::Ui(args) => runtime.block_on(commands::ui(args)),
    };
    match fleet {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

/// Prints a usage error as one line (help and version print in full).
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let rendered = error
                .kind()
                .as_str()
                .map_or_else(|| error.to_string(), |_| error.render().to_string());
            // The message and the lines that complete it (clap lists missing
            // arguments on lines of their own), up to the usage block.
            let line = rendered
                .lines()
                .skip_while(|l| l.trim().is_empty())
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let line = line.trim_start_matches("error: ");
            let line = if line.is_empty() {
                "invalid arguments"
            } else {
                line
            };
            eprintln!("pjp-prover: error: {line} (see --help)");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
