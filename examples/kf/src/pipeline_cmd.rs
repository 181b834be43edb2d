//! `kf pipeline …`: validate, run, resume, list, draw and benchmark kf-dag
//! pipelines — kf's own YAML/JSON format (`kf_dag::format`) or pipelines
//! compiled by the kfp SDK (`kf_dag::kfp`), whose containers run through
//! KFP's executor contract (`kf_dag::runner::KfpRunner`). Wiring only: the
//! engine, the store layout and the pictures are kf-dag's.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use kf_dag::exec::{ChannelSink, Executor, RunOutcome, RunRequest};
use kf_dag::kfp::KfpPipeline;
use kf_dag::local::{LocalRuns, SavedPipeline};
use kf_dag::run::{Event, RunState, TaskState};
use kf_dag::runner::{FunctionRunner, KfpRunner, PythonMode};
use kf_dag::{Plan, encoding};
use serde_json::{Value, json};

use crate::output::OutputFormat;

/// `kf pipeline` arguments.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Check a pipeline file and print its shape.
    Validate {
        /// The pipeline (kf format, YAML or JSON).
        file: PathBuf,
    },
    /// Run a pipeline: containers run as local processes (images are not used).
    Run {
        /// The pipeline: kf format (YAML or JSON) or KFP v2 IR YAML compiled by kfp.
        file: PathBuf,
        /// A pipeline parameter, `name=value` (repeatable); values are read as the declared type.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// At most this many tasks at once (default: the number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        #[command(flatten)]
        store: StoreArg,
        /// The run's id (default: `<pipeline>-<millis>`).
        #[arg(long)]
        run_id: Option<String>,
        /// Run every task even when a cached result exists.
        #[arg(long)]
        no_cache: bool,
        /// Do not reuse cached results older than this (e.g. 30m, 12h).
        #[arg(long, value_parser = kf_dag::format::parse_duration)]
        cache_max_age: Option<Duration>,
        #[command(flatten)]
        python: PythonArg,
    },
    /// Continue a run that stopped (crash, kill): completed tasks are kept.
    Resume {
        /// The run id given or printed by `kf pipeline run`.
        run_id: String,
        /// At most this many tasks at once (default: the number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        python: PythonArg,
    },
    /// List the runs in a store.
    List {
        #[command(flatten)]
        store: StoreArg,
    },
    /// Draw a pipeline.
    Graph {
        /// The pipeline (kf format, YAML or JSON).
        file: PathBuf,
        /// DOT for Graphviz, or a standalone SVG.
        #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
        format: GraphFormat,
    },
    /// The in-process no-op scheduling benchmark.
    Bench {
        /// Independent tasks, or one long chain.
        #[arg(long, value_enum, default_value_t = BenchShape::Wide)]
        shape: BenchShape,
        /// Number of tasks.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// At most this many tasks at once (default: the number of cores).
        #[arg(long)]
        parallelism: Option<usize>,
    },
}

#[derive(Debug, ClapArgs)]
struct StoreArg {
    /// Where runs keep journals, artifacts and the cache: a directory or file:// URL.
    #[arg(long = "store", env = "KF_PIPELINE_STORE", default_value = ".kf")]
    url: String,
    /// Keep artifacts and the step cache in this object store instead
    /// (`s3://bucket/prefix`, configured from AWS_* variables; `file://…`).
    #[arg(long = "objects", env = "KF_PIPELINE_OBJECTS")]
    objects: Option<String>,
}

impl StoreArg {
    fn open(&self) -> Result<LocalRuns, String> {
        let runs = LocalRuns::open(&self.url).map_err(|e| e.to_string())?;
        match &self.objects {
            Some(url) => runs.with_objects(url).map_err(|e| e.to_string()),
            None => Ok(runs),
        }
    }
}

#[derive(Debug, ClapArgs)]
struct PythonArg {
    /// The Python that runs KFP lightweight components (it needs the kfp package).
    #[arg(long, env = "KF_PYTHON", default_value = "python3")]
    python: String,
    /// Start a fresh interpreter for every KFP lightweight component instead
    /// of forking each from one that has imported kfp's executor.
    #[arg(long)]
    no_component_server: bool,
}

impl PythonArg {
    fn runner(&self, runs: &LocalRuns) -> KfpRunner {
        let mode = if self.no_component_server { PythonMode::Spawn } else { PythonMode::Server };
        KfpRunner::new(runs.work_dir()).python(&self.python).mode(mode)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Svg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BenchShape {
    Wide,
    Chain,
}

/// Runs `kf pipeline …`; exit 0 on success, 1 when the input is rejected or the run failed.
pub fn run(args: Args, output: OutputFormat) -> ExitCode {
    match dispatch(args, output) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("kf pipeline: {message}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: Args, output: OutputFormat) -> Result<ExitCode, String> {
    match args.command {
        PipelineCommand::Validate { file } => validate(&file, output),
        PipelineCommand::Run { file, params, parallelism, store, run_id, no_cache, cache_max_age, python } => {
            let (plan, saved) = load(&file)?;
            let plan = Arc::new(plan);
            let parameters = parse_params(&plan, &params)?;
            let runs = store.open()?;
            let mut executor = configure(executor(&runs, &saved, &python, !no_cache), parallelism)?;
            if let Some(max_age) = cache_max_age {
                executor = executor.cache_max_age(max_age);
            }
            let run_id = run_id.unwrap_or_else(|| {
                let ms =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
                format!("{}-{ms}", plan.pipeline().name)
            });
            // Kept beside the journal so `resume` needs only the run id.
            runs.save_pipeline(&run_id, &saved).map_err(|e| e.to_string())?;
            let request = RunRequest { id: Some(run_id), parameters };
            let outcome = drive(executor, output, |executor| async move { executor.run(plan, request).await })?;
            Ok(report(&outcome, output))
        }
        PipelineCommand::Resume { run_id, parallelism, store, python } => {
            let runs = store.open()?;
            let saved = runs.load_pipeline(&run_id).map_err(|e| e.to_string())?;
            let plan = Arc::new(Plan::new(saved.to_pipeline().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?);
            let executor = configure(executor(&runs, &saved, &python, true), parallelism)?;
            let outcome = drive(executor, output, |executor| async move { executor.resume(plan, &run_id).await })?;
            Ok(report(&outcome, output))
        }
        PipelineCommand::List { store } => list(&store.url, output),
        PipelineCommand::Graph { file, format } => {
            let (plan, _) = load(&file)?;
            out!(
                "{}",
                match format {
                    GraphFormat::Dot => kf_dag::graph::to_dot(&plan),
                    GraphFormat::Svg => kf_dag::graph::to_svg(&plan),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Bench { shape, tasks, parallelism } => {
            let shape = match shape {
                BenchShape::Wide => kf_dag::bench::Shape::Wide,
                BenchShape::Chain => kf_dag::bench::Shape::Chain,
            };
            let r =
                runtime()?.block_on(kf_dag::bench::run_no_op(shape, tasks, parallelism)).map_err(|e| e.to_string())?;
            match output {
                OutputFormat::Json => outln!(
                    "{}",
                    json!({"tasks": r.tasks, "wall_s": r.wall_s, "tasks_per_s": r.tasks_per_s, "peak_rss_mb": r.peak_rss_mb})
                ),
                OutputFormat::Text => outln!(
                    "{} no-op tasks in {:.3} s: {:.0} tasks/s, peak RSS {}",
                    r.tasks,
                    r.wall_s,
                    r.tasks_per_s,
                    r.peak_rss_mb.map_or("unknown".to_owned(), |m| format!("{m:.0} MB"))
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a pipeline file: a KFP PipelineSpec (compiled by kfp) when its first
/// document has `pipelineInfo` and `root`, kf's own format otherwise.
fn load(file: &Path) -> Result<(Plan, SavedPipeline), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: cannot read file: {e}", file.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

/// A pipeline from its text (see [`load`]), validated into a plan.
pub(crate) fn parse(text: &str) -> Result<(Plan, SavedPipeline), String> {
    let docs = crate::documents::yaml_values(text).unwrap_or_default();
    let is_kfp = docs.first().is_some_and(|d| d.get("pipelineInfo").is_some() && d.get("root").is_some());
    let saved = if is_kfp {
        SavedPipeline::Kfp(Box::new(KfpPipeline::from_values(&docs).map_err(|e| e.to_string())?))
    } else {
        SavedPipeline::Kf(Box::new(kf_dag::format::from_str(text).map_err(|e| e.to_string())?))
    };
    let plan = Plan::new(saved.to_pipeline().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    Ok((plan, saved))
}

/// The executor for a pipeline, with the note that images are not used.
fn executor(runs: &LocalRuns, saved: &SavedPipeline, python: &PythonArg, cache: bool) -> kf_dag::Result<Executor> {
    if matches!(saved, SavedPipeline::Kfp(_)) {
        eprintln!(
            "kf pipeline: container images are not used locally; components run on this host (Python: {})",
            python.python
        );
    }
    executor_for(runs, saved, python.runner(runs), cache)
}

/// The executor for a pipeline: KFP's executor contract (through `kfp`)
/// for a kfp-compiled pipeline, kf's process contract for kf's format.
pub(crate) fn executor_for(
    runs: &LocalRuns,
    saved: &SavedPipeline,
    kfp: KfpRunner,
    cache: bool,
) -> kf_dag::Result<Executor> {
    match saved {
        SavedPipeline::Kf(_) => runs.executor(FunctionRunner::new(), cache),
        SavedPipeline::Kfp(_) => runs.executor_with(kfp, FunctionRunner::new(), cache),
    }
}

fn validate(file: &Path, output: OutputFormat) -> Result<ExitCode, String> {
    match (load(file).map(|(plan, _)| plan), output) {
        (Ok(plan), OutputFormat::Text) => {
            let root = plan.root();
            outln!(
                "{}: ok — pipeline {:?}, {} tasks, {} components, critical path {} ({})",
                file.display(),
                plan.pipeline().name,
                root.order().len(),
                plan.pipeline().components.len(),
                root.critical_path_len(),
                root.critical_path().join(" → ")
            );
            Ok(ExitCode::SUCCESS)
        }
        (Ok(plan), OutputFormat::Json) => {
            let root = plan.root();
            outln!(
                "{}",
                json!({"file": file.display().to_string(), "ok": true, "pipeline": plan.pipeline().name,
                       "tasks": root.order(), "levels": root.levels(), "critical_path": root.critical_path()})
            );
            Ok(ExitCode::SUCCESS)
        }
        (Err(message), OutputFormat::Json) => {
            outln!("{}", json!({"file": file.display().to_string(), "ok": false, "error": message}));
            Ok(ExitCode::FAILURE)
        }
        (Err(message), OutputFormat::Text) => Err(message),
    }
}

fn parse_params(plan: &Plan, params: &[String]) -> Result<BTreeMap<String, Value>, String> {
    let declared = &plan.pipeline().parameters().parameters;
    let mut out = BTreeMap::new();
    for p in params {
        let (name, text) = p.split_once('=').ok_or_else(|| format!("--param {p:?}: expected NAME=VALUE"))?;
        let spec = declared.get(name).ok_or_else(|| {
            let known: Vec<&String> = declared.keys().collect();
            format!("--param {name}: the pipeline has no parameter {name:?} (it has {known:?})")
        })?;
        out.insert(name.to_owned(), spec.ty.parse_text(text).map_err(|e| format!("--param {name}: {e}"))?);
    }
    Ok(out)
}

fn configure(executor: kf_dag::Result<Executor>, parallelism: Option<usize>) -> Result<Executor, String> {
    let executor = executor.map_err(|e| e.to_string())?;
    Ok(match parallelism {
        Some(p) => executor.parallelism(p),
        None => executor,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| format!("cannot start tokio: {e}"))
}

/// Runs `start` with a live progress display on a TTY (stderr); Ctrl-C cancels the run.
fn drive<F, Fut>(executor: Executor, output: OutputFormat, start: F) -> Result<RunOutcome, String>
where
    F: FnOnce(Executor) -> Fut,
    Fut: std::future::Future<Output = kf_dag::Result<RunOutcome>>,
{
    let runtime = runtime()?;
    let cancel = kf_dag::exec::CancelHandle::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let executor = executor.cancel_handle(cancel.clone()).events(Arc::new(ChannelSink(tx)));
    let live = std::io::stderr().is_terminal() && output == OutputFormat::Text;
    runtime.block_on(async move {
        let progress = live.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let display = async {
            let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
            while let Some((_, event)) = rx.recv().await {
                let Event::Task { task, state, .. } = event else { continue };
                let key = match state {
                    TaskState::Running => "running",
                    TaskState::Succeeded => "succeeded",
                    TaskState::Failed => "failed",
                    TaskState::Skipped => "skipped",
                    TaskState::Cached => "cached",
                    TaskState::Retrying => "retrying",
                    _ => continue,
                };
                *counts.entry(key).or_default() += 1;
                if let Some(bar) = &progress {
                    let done: usize =
                        ["succeeded", "failed", "skipped", "cached"].iter().filter_map(|k| counts.get(k)).sum();
                    let started = counts.get("running").copied().unwrap_or(0);
                    bar.set_message(format!(
                        "{done} done ({} ok, {} cached, {} failed, {} skipped), {} running — {task} {state}",
                        counts.get("succeeded").unwrap_or(&0),
                        counts.get("cached").unwrap_or(&0),
                        counts.get("failed").unwrap_or(&0),
                        counts.get("skipped").unwrap_or(&0),
                        started
                            .saturating_sub(counts.get("succeeded").unwrap_or(&0) + counts.get("failed").unwrap_or(&0)),
                    ));
                }
            }
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
        };
        let ctrl_c = cancel.clone();
        let interrupt = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                ctrl_c.cancel();
            }
        });
        let (outcome, ()) = tokio::join!(start(executor), display);
        interrupt.abort();
        outcome.map_err(|e| e.to_string())
    })
}

/// Prints the final table (or JSON) and gives the exit code.
fn report(outcome: &RunOutcome, output: OutputFormat) -> ExitCode {
    let state = encoding::run_state_str(outcome.state);
    match output {
        OutputFormat::Json => {
            let tasks: Vec<Value> = outcome
                .tasks
                .iter()
                .map(|(task, s)| {
                    json!({"task": task, "state": s.state.as_str(), "attempts": s.attempts,
                           "duration_ms": s.duration().map(|d| d.as_millis() as u64),
                           "cached": s.state == TaskState::Cached, "resumed": s.resumed, "message": s.message})
                })
                .collect();
            outln!(
                "{}",
                json!({"run": outcome.run, "state": state, "tasks": tasks, "outputs": encoding::outputs_to_value(&outcome.outputs)})
            );
        }
        OutputFormat::Text => {
            let width = outcome.tasks.keys().map(|t| t.chars().count()).max().unwrap_or(4).max(4);
            outln!("{:width$}  {:10}  {:>8}  {:>9}  NOTE", "TASK", "STATE", "ATTEMPTS", "DURATION");
            for (task, s) in &outcome.tasks {
                let duration = s.duration().map_or("-".to_owned(), |d| format!("{:.2}s", d.as_secs_f64()));
                let mut note = s.message.clone().unwrap_or_default();
                if s.resumed {
                    note = format!("from the journal {note}");
                }
                let note: String = note.lines().next().unwrap_or("").chars().take(100).collect();
                outln!("{task:width$}  {:10}  {:>8}  {duration:>9}  {note}", s.state.as_str(), s.attempts);
            }
            outln!("run {}: {state}", outcome.run);
            for (name, value) in &outcome.outputs.parameters {
                outln!("output {name} = {value}");
            }
        }
    }
    if outcome.state == RunState::Succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn list(store: &str, output: OutputFormat) -> Result<ExitCode, String> {
    let runs = LocalRuns::open(store).map_err(|e| e.to_string())?;
    let listing = runs.list().map_err(|e| e.to_string())?;
    match output {
        OutputFormat::Json => {
            let runs: Vec<Value> = listing
                .iter()
                .map(|r| {
                    let tasks: serde_json::Map<String, Value> =
                        r.tasks.iter().map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect();
                    json!({"run": r.record.id, "pipeline": r.record.pipeline, "created_ms": r.record.created_ms,
                           "state": r.state.map(encoding::run_state_str), "tasks": tasks})
                })
                .collect();
            outln!("{}", json!({"runs": runs}));
        }
        OutputFormat::Text => {
            outln!("{:30}  {:20}  {:10}  TASKS", "RUN", "PIPELINE", "STATE");
            for r in &listing {
                let tasks: Vec<String> = r.tasks.iter().map(|(s, n)| format!("{n} {s}")).collect();
                let state = r.state.map_or("-", encoding::run_state_str);
                outln!("{:30}  {:20}  {:10}  {}", r.record.id, r.record.pipeline, state, tasks.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
