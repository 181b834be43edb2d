//! `kf tune …`: wiring of kf-tune's ask/tell protocol and experiment runner.
//! Logic lives in kf-tune; this module parses arguments, reads files and maps
//! errors to exit codes.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use kf_tune::ask_tell::{self, Session, SpaceFile};

use crate::output::OutputFormat;

/// Exit code of start-up failures (the protocol's and clap's usage errors).
const START_UP_FAILURE: u8 = 2;

/// Hyperparameter tuning.
#[derive(Debug, clap::Subcommand)]
pub enum Tune {
    /// Serve the JSON-lines ask/tell protocol (shared/protocols/tune-ask-tell.md) on stdin/stdout.
    AskTell(AskTellArgs),
}

/// `kf tune ask-tell`.
#[derive(Debug, clap::Args)]
pub struct AskTellArgs {
    /// The search-space file (Katib `parameters` plus `objective` or `objectives`), JSON.
    #[arg(long)]
    space: PathBuf,
    /// Katib algorithm name: random, grid, sobol, tpe, ...
    #[arg(long)]
    algorithm: String,
    /// An algorithm setting as NAME=VALUE (Katib `algorithmSettings`); repeatable.
    #[arg(long = "settings", value_name = "NAME=VALUE", value_parser = setting, num_args = 1..)]
    settings: Vec<(String, String)>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Trials the driver asks for at once. Replies do not depend on it: every
    /// algorithm accounts for pending trials however they are asked for.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
}

fn setting(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, found {text:?}")),
    }
}

/// Runs a `kf tune` command.
pub fn run(command: Tune, _output: OutputFormat) -> ExitCode {
    match command {
        Tune::AskTell(args) => ask_tell(args),
    }
}

fn ask_tell(args: AskTellArgs) -> ExitCode {
    let start = || -> Result<Session, String> {
        let at = args.space.display();
        let text = std::fs::read_to_string(&args.space).map_err(|err| format!("{at}: cannot read file: {err}"))?;
        let doc = serde_json::from_str(&text).map_err(|err| format!("{at}: not JSON: {err}"))?;
        let file = SpaceFile::from_value(doc).map_err(|err| format!("{at}: {err}"))?;
        Session::new(file, &args.algorithm, &args.settings, args.seed).map_err(|err| err.to_string())
    };
    let session = match start() {
        Ok(session) => session,
        Err(message) => {
            eprintln!("kf tune ask-tell: {message}");
            return ExitCode::from(START_UP_FAILURE);
        }
    };
    let stdin = std::io::stdin().lock();
    let stdout = BufWriter::new(std::io::stdout().lock());
    match ask_tell::serve(session, stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kf tune ask-tell: {err}");
            ExitCode::FAILURE
        }
    }
}
