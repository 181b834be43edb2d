//! `kf` — the reference assembly.
//!
//! One binary that composes every kf crate. This file is the command table and
//! nothing else: each subcommand's wiring lives in its own module, and logic
//! lives in the crates.
//!
//! Exit codes: 0 success, 1 the input was rejected (or the command failed),
//! 2 usage errors and parts of kf that are not built yet.

mod documents;
mod fmt;
mod output;
mod pending;
mod quickstart;
mod train_cmd;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::OutputFormat;

/// kf — Kubeflow as embeddable Rust crates.
#[derive(Debug, Parser)]
#[command(name = "kf", version, about, propagate_version = true)]
struct Cli {
    /// Log filter for stderr: a level (error, warn, info, debug, trace) or
    /// tracing directives such as `kf_dag=debug`.
    #[arg(long, global = true, env = "KF_LOG_LEVEL", default_value = "warn")]
    log_level: String,

    /// How commands that print results print them.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build, validate and run pipelines (kf-dag).
    Pipeline(pending::Args),
    /// Run training jobs and the gang scheduler (kf-train).
    Train {
        #[command(subcommand)]
        command: train_cmd::TrainCommand,
    },
    /// Run hyperparameter-tuning experiments (kf-tune).
    Tune(pending::Args),
    /// Use the model registry (kf-registry).
    Registry(pending::Args),
    /// Serve models over the Open Inference Protocol v2 (kf-serve).
    Serve(pending::Args),
    /// Manage profiles, roles and access (kf-tenancy).
    Tenancy(pending::Args),
    /// Validate manifests and pipeline specs, one line per file.
    Validate {
        /// Files to validate (YAML; several documents per file allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Re-serialise a manifest or pipeline spec from kf's typed model to stdout.
    Fmt {
        /// The file to format.
        file: PathBuf,
    },
    /// Walk the whole ML lifecycle on embedded defaults, in one command.
    Quickstart,
    /// Run the kf APIs and dashboard behind the tenancy layer.
    Server(pending::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match cli.command {
        Command::Pipeline(_) => pending::report("kf pipeline", "the kf-dag executor (issue #6)"),
        Command::Train { command } => train_cmd::run(command, cli.output),
        Command::Tune(_) => pending::report("kf tune", "the kf-tune experiment runner (issue #8)"),
        Command::Registry(_) => pending::report("kf registry", "the kf-registry store and API (issue #11)"),
        Command::Serve(_) => pending::report("kf serve", "the kf-serve OIP v2 server (issue #13)"),
        Command::Tenancy(_) => pending::report("kf tenancy", "the kf-tenancy policy store (issue #12)"),
        Command::Server(_) => pending::report("kf server", "the composed servers and dashboard (issue #15)"),
        Command::Validate { files } => validate::run(&files, cli.output),
        Command::Fmt { file } => fmt::run(&file),
        Command::Quickstart => quickstart::run(cli.output),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("kf: ignoring --log-level {filter:?}: {err}");
        tracing_subscriber::EnvFilter::new("warn")
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
