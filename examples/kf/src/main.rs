//! `kf` — the reference assembly.
//!
//! One binary that composes every kf crate. This file is the command table and
//! nothing else: each subcommand's wiring lives in its own module, and logic
//! lives in the crates.
//!
//! Exit codes: 0 success, 1 the input was rejected (or the command failed),
//! 2 usage errors and parts of kf that are not built yet.

// First, so its out!/outln! macros are in scope for every command module.
#[macro_use]
mod output;

mod crds;
mod documents;
mod fmt;
mod operator;
mod pending;
mod pipeline_cmd;
mod quickstart;
mod registry_cmd;
mod serve_cmd;
mod server;
mod tenancy_cmd;
mod train_cmd;
mod tune_cmd;
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
    Pipeline(pipeline_cmd::Args),
    /// Run training jobs and the gang scheduler (kf-train).
    Train {
        #[command(subcommand)]
        command: train_cmd::TrainCommand,
    },
    /// Run hyperparameter-tuning experiments (kf-tune).
    #[command(subcommand)]
    Tune(tune_cmd::Tune),
    /// Use the model registry (kf-registry).
    Registry(registry_cmd::Args),
    /// Serve models over the Open Inference Protocol v2 (kf-serve).
    Serve(serve_cmd::Args),
    /// Manage profiles, roles and access (kf-tenancy).
    Tenancy(tenancy_cmd::TenancyArgs),
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
    Quickstart(quickstart::QuickstartArgs),
    /// Run the kf APIs and dashboard behind the tenancy layer.
    Server(server::Args),
    /// Print the CustomResourceDefinitions of the kinds kf's controllers reconcile (for kubectl apply).
    Crds,
    /// Run the reconcilers (TrainJob, Profile) against the cluster of the kubeconfig, one leader at a time.
    Operator(operator::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    match cli.command {
        Command::Pipeline(args) => pipeline_cmd::run(args, cli.output),
        Command::Train { command } => train_cmd::run(command, cli.output),
        Command::Tune(command) => tune_cmd::run(command, cli.output),
        Command::Registry(args) => registry_cmd::run(args, cli.output),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Tenancy(args) => tenancy_cmd::run(args, cli.output),
        Command::Server(args) => server::run(args),
        Command::Crds => crds::run(cli.output),
        Command::Operator(args) => operator::run(args),
        Command::Validate { files } => validate::run(&files, cli.output),
        Command::Fmt { file } => fmt::run(&file),
        Command::Quickstart(args) => quickstart::run(args, cli.output),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|err| {
        eprintln!("kf: ignoring --log-level {filter:?}: {err}");
        tracing_subscriber::EnvFilter::new("warn")
    });
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[cfg(test)]
mod tests {
    /// clap checks the whole command tree (duplicate ids, bad defaults) only
    /// when a subcommand is used; this checks every one at once.
    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
