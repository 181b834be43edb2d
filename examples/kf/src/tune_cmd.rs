//! `kf tune …`: wiring of kf-tune's ask/tell protocol and experiment runner.
//! Logic lives in kf-tune; this module parses arguments, reads files and maps
//! errors to exit codes.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use kf_tune::Experiment;
use kf_tune::ask_tell::{self, Session, SpaceFile};
use kf_tune::experiment::{Event, ExperimentState, Plan, TrialPhase};
use kf_tune::runner::process::ProcessRunner;
use kf_tune::runner::{self, Journal};

use crate::documents;
use crate::output::OutputFormat;

/// Exit code of start-up failures (the protocol's and clap's usage errors).
const START_UP_FAILURE: u8 = 2;

/// Hyperparameter tuning.
#[derive(Debug, clap::Subcommand)]
pub enum Tune {
    /// Serve the JSON-lines ask/tell protocol (shared/protocols/tune-ask-tell.md) on stdin/stdout.
    AskTell(AskTellArgs),
    /// Run a Katib Experiment locally, trials as local processes; resumes from its journal.
    Run(RunArgs),
}

/// `kf tune run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The Katib Experiment (kubeflow.org/v1beta1), YAML.
    experiment: PathBuf,
    /// The journal to append to and resume from (default `.kf-tune/<name>/journal.jsonl`).
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Where each trial gets its working directory (default `.kf-tune/<name>/trials`).
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Seed of the sampler when the algorithm has no random_state setting.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the optimisation history and parallel coordinates to this SVG
    /// file when the run ends (also when it fails, if any trial ran). With a
    /// journal of an experiment that has already ended, only writes the plot.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
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
pub fn run(command: Tune, output: OutputFormat) -> ExitCode {
    match command {
        Tune::AskTell(args) => ask_tell(args),
        Tune::Run(args) => run_experiment(&args, output),
    }
}

fn run_experiment(args: &RunArgs, output: OutputFormat) -> ExitCode {
    let at = args.experiment.display();
    let experiment = match load_experiment(&args.experiment) {
        Ok(e) => e,
        Err(message) => {
            eprintln!("kf tune run: {at}: {message}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match Plan::from_katib(&experiment) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("kf tune run: {at}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let home = Path::new(".kf-tune").join(&plan.name);
    let workdir = args.workdir.clone().unwrap_or_else(|| home.join("trials"));
    let journal_path = args.journal.clone().unwrap_or_else(|| home.join("journal.jsonl"));
    let seed = plan.algorithm.seed.unwrap_or(args.seed);
    let started = runner::rfc3339(SystemTime::now());
    let result = (|| -> kf_tune::Result<ExperimentState> {
        let trials = Arc::new(ProcessRunner::from_katib(&experiment, &workdir)?);
        let (mut journal, events) = Journal::open(&journal_path)?;
        let mut state = ExperimentState::new(plan);
        if !events.is_empty() {
            eprintln!("resuming from {} ({} events)", journal_path.display(), events.len());
        }
        runner::replay(&mut state, events)?;
        if let Some(reason) = state.end() {
            eprintln!("the experiment has already ended ({}); not starting trials", reason.katib().0);
            return Ok(state);
        }
        runner::block_on(runner::run(state, trials, Some(&mut journal), seed, progress))?
    })();
    let state = match result {
        Ok(state) => state,
        Err(err) => {
            eprintln!("kf tune run: {at}: {err}");
            // The run's state is gone with the error; the journal holds what happened.
            if let Some(path) = &args.plot
                && let Ok(plan) = Plan::from_katib(&experiment)
                && let Ok(events) = Journal::read(&journal_path)
            {
                let mut state = ExperimentState::new(plan);
                if runner::replay(&mut state, events).is_ok() && !state.trials().is_empty() {
                    write_plot(path, &state);
                }
            }
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.plot
        && !write_plot(path, &state)
    {
        return ExitCode::FAILURE;
    }
    let status = state.status(Some(started), Some(runner::rfc3339(SystemTime::now())));
    let failed = status.conditions.iter().flatten().any(|c| c.type_.as_deref() == Some("Failed"));
    match output {
        OutputFormat::Json => match serde_json::to_string_pretty(&status) {
            Ok(json) => outln!("{json}"),
            Err(err) => {
                eprintln!("kf tune run: cannot encode the status: {err}");
                return ExitCode::FAILURE;
            }
        },
        OutputFormat::Text => print_table(&state),
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Writes the experiment's plot to `path`; false (after saying why) when it cannot.
fn write_plot(path: &Path, state: &ExperimentState) -> bool {
    match std::fs::write(path, kf_tune::plot::render_state(state)) {
        Ok(()) => {
            eprintln!("plot written to {}", path.display());
            true
        }
        Err(err) => {
            eprintln!("kf tune run: cannot write the plot to {}: {err}", path.display());
            false
        }
    }
}

fn load_experiment(path: &Path) -> Result<Experiment, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read file: {err}"))?;
    experiment_from_text(&text)
}

/// The Katib Experiment in YAML or JSON text (the first Experiment document).
pub fn experiment_from_text(text: &str) -> Result<Experiment, String> {
    let docs = documents::parse(text).map_err(|err| err.to_string())?;
    let doc = docs
        .into_iter()
        .flat_map(|d| d.parts)
        .find(|v| v.get("kind").and_then(|k| k.as_str()) == Some(kf_tune::katib::KIND))
        .ok_or("expected a Katib Experiment document, found none")?;
    Experiment::from_value(doc).map_err(|err| err.to_string())
}

/// One line on stderr per trial that starts or ends.
fn progress(state: &ExperimentState, event: &Event) {
    let metric = &state.plan().objective_metric;
    match event {
        Event::Started { index, .. } => {
            let trial = &state.trials()[*index];
            let params: Vec<String> =
                state.plan().space.format(&trial.assignment).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!("started  {} {}", trial.name, params.join(" "));
        }
        Event::Finished { index, .. } => {
            let trial = &state.trials()[*index];
            let value = trial.objective.map_or_else(String::new, |v| format!(" {metric}={v}"));
            let why = trial.message.as_deref().map_or_else(String::new, |m| format!(" ({m})"));
            let best = state.best().and_then(|(_, b)| b.objective).map_or_else(String::new, |v| format!("; best {v}"));
            let done = state.trials().iter().filter(|t| t.phase != TrialPhase::Running).count();
            eprintln!("finished {} {:?}{value}{why} [{done} done{best}]", trial.name, trial.phase);
        }
    }
}

/// The trials, then the best one.
fn print_table(state: &ExperimentState) {
    let plan = state.plan();
    let names: Vec<&str> = plan.space.params().iter().map(|p| p.name()).collect();
    outln!("{:<24} {:<13} {:>14}  {}", "TRIAL", "STATE", plan.objective_metric, names.join("  "));
    for t in state.trials() {
        let value = t.objective.map_or_else(|| "-".into(), |v| format!("{v:.6}"));
        let params: Vec<String> = plan.space.format(&t.assignment).into_iter().map(|(_, v)| v).collect();
        outln!("{:<24} {:<13} {:>14}  {}", t.name, format!("{:?}", t.phase), value, params.join("  "));
    }
    match state.best() {
        Some((_, best)) => {
            let params: Vec<String> =
                plan.space.format(&best.assignment).into_iter().map(|(k, v)| format!("{k}={v}")).collect();
            outln!(
                "best: {} {}={} with {}",
                best.name,
                plan.objective_metric,
                best.objective.unwrap_or(f64::NAN),
                params.join(" ")
            );
        }
        None => outln!("best: none (no trial succeeded)"),
    }
    if let Some(reason) = state.end() {
        outln!("ended: {}", reason.katib().1);
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
