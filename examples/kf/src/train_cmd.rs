//! `kf train …`: the kf-train commands. Wiring only — arguments in, the
//! crate's functions called, results printed; launch plans, the local
//! backend, the scheduler, the trace loaders and the simulator live in
//! `kf_train`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kf_train::launch::{self, Network};
use kf_train::local::{LocalBackend, LocalEvent, LocalOptions, Stream};
use kf_train::{TrainJob, TrainingRuntime};
use serde_json::Value;

use kf_train::scheduler::{Backfill, DominantResourceFairness, Policy, ShortestJobFirst, StrictFifo};
use kf_train::sim::{self, SimConfig};
use kf_train::trace::Format;

use crate::output::OutputFormat;

/// The `kf train` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrainCommand {
    /// Check TrainJobs and training runtimes, and resolve each job's launch
    /// plan against its runtime.
    Validate(ValidateArgs),
    /// Run a TrainJob as local processes: initializers first, then every
    /// node × process with the framework's env; logs prefixed by rank.
    Run(RunArgs),
    /// Print the Kubernetes manifests the Trainer controller would create for
    /// a TrainJob (JobSet, MPI hostfile ConfigMap, PodGroup), for `kubectl
    /// apply -f -`.
    Render(RenderArgs),
    /// Replay a GPU-cluster job trace through a scheduling policy and print
    /// JCT, queueing delay, makespan, utilisation and fairness.
    Simulate(SimulateArgs),
}

/// `kf train validate` arguments.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Manifests holding TrainJobs and/or runtimes.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// More runtime manifests (TrainingRuntime, ClusterTrainingRuntime).
    #[arg(long = "runtime")]
    runtimes: Vec<PathBuf>,
}

/// `kf train render` arguments.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The TrainJob manifest (it may hold the runtime too).
    file: PathBuf,
    /// Runtime manifests (TrainingRuntime, ClusterTrainingRuntime); repeatable.
    #[arg(long = "runtime")]
    runtimes: Vec<PathBuf>,
}

/// `kf train run` arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The TrainJob manifest (it may hold the runtime too).
    file: PathBuf,
    /// Runtime manifests (TrainingRuntime, ClusterTrainingRuntime); repeatable.
    #[arg(long = "runtime")]
    runtimes: Vec<PathBuf>,
    /// Where runs keep their workspaces: `<dir>/<job>/<n>`.
    #[arg(long, env = "KF_TRAIN_DIR", default_value = ".kf/train")]
    dir: PathBuf,
    /// Namespace the processes see.
    #[arg(long, default_value = "default")]
    namespace: String,
}

/// Trace formats (see shared/traces/README.md).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TraceFormat {
    /// The Philly trace as derived by Pollux (`philly.csv`).
    Philly,
    /// Alibaba cluster-trace-gpu-v2023 pod lists.
    Alibaba,
    /// The 60-job Tiresias sample.
    Tiresias,
}

/// Scheduling policies.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PolicyName {
    /// Strict FIFO: the first job that does not fit blocks the rest.
    Fifo,
    /// FIFO with EASY backfill.
    Backfill,
    /// Shortest job first.
    Sjf,
    /// Dominant resource fairness across queues.
    Drf,
}

/// `kf train simulate` arguments.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The trace file (CSV).
    #[arg(long)]
    trace: PathBuf,
    /// Its format.
    #[arg(long, value_enum)]
    format: TraceFormat,
    /// Nodes in the simulated cluster.
    #[arg(long)]
    nodes: usize,
    /// GPUs per node.
    #[arg(long)]
    gpus_per_node: u64,
    /// Queues; a job goes to queue `queue_key mod K`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    queues: u32,
    /// Scheduling policy.
    #[arg(long, value_enum)]
    policy: PolicyName,
    /// Replay only the first N jobs (by submission time).
    #[arg(long)]
    limit: Option<usize>,
    /// Topology of consecutive nodes, outermost level first: `block=16,rack=4`.
    #[arg(long)]
    topology: Option<String>,
    /// Also draw utilisation over time and the JCT CDF into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Runs a `kf train` subcommand.
pub fn run(command: TrainCommand, output: OutputFormat) -> ExitCode {
    match command {
        TrainCommand::Validate(args) => validate(&args, output),
        TrainCommand::Run(args) => match run_job(&args, output) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("kf train run: {err}");
                ExitCode::FAILURE
            }
        },
        TrainCommand::Simulate(args) => match simulate(&args, output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("kf train simulate: {err}");
                ExitCode::FAILURE
            }
        },
        TrainCommand::Render(args) => match render(&args, output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("kf train render: {err}");
                ExitCode::FAILURE
            }
        },
    }
}

fn simulate(args: &SimulateArgs, output: OutputFormat) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.trace)
        .map_err(|e| anyhow::anyhow!("cannot read trace {}: {e}", args.trace.display()))?;
    let format = match args.format {
        TraceFormat::Philly => Format::Philly,
        TraceFormat::Alibaba => Format::Alibaba,
        TraceFormat::Tiresias => Format::Tiresias,
    };
    let mut trace = format.load(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.trace.display()))?;
    if let Some(n) = args.limit {
        trace.limit(n);
    }
    let config = SimConfig {
        nodes: args.nodes,
        gpus_per_node: args.gpus_per_node,
        queues: args.queues as usize,
        topology: args.topology.as_deref().map(SimConfig::parse_topology).transpose()?.unwrap_or_default(),
    };
    let started = Instant::now();
    let mut result = match args.policy {
        PolicyName::Fifo => replay(&trace.jobs, &config, StrictFifo),
        PolicyName::Backfill => replay(&trace.jobs, &config, Backfill),
        PolicyName::Sjf => replay(&trace.jobs, &config, ShortestJobFirst),
        PolicyName::Drf => replay(&trace.jobs, &config, DominantResourceFairness),
    }?;
    result.report.wall_s = started.elapsed().as_secs_f64();
    if let Some(path) = &args.plot {
        std::fs::write(path, sim::plot::svg(&result))
            .map_err(|e| anyhow::anyhow!("cannot write plot {}: {e}", path.display()))?;
    }
    let r = &result.report;
    match output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(r)?),
        OutputFormat::Text => {
            outln!("policy {} on {}×{} GPUs, {} queue(s)", r.policy, r.nodes, r.gpus_per_node, r.queues);
            outln!(
                "jobs {}  completed {}  unschedulable {}  never started {}",
                r.jobs,
                r.completed,
                r.unschedulable,
                r.never_started
            );
            outln!("avg JCT {:.0} s  p99 JCT {:.0} s  avg queueing {:.0} s", r.avg_jct_s, r.p99_jct_s, r.avg_queue_s);
            outln!(
                "makespan {:.0} s  GPU utilisation {:.1}%  preemptions {}",
                r.makespan_s,
                100.0 * r.gpu_utilization,
                r.preemptions
            );
            for q in &r.fairness {
                outln!(
                    "  {}: {} jobs, share {:.3} (entitlement {:.3}, demand {:.3}), avg JCT {:.0} s",
                    q.queue,
                    q.jobs,
                    q.share,
                    q.entitlement,
                    q.demand,
                    q.avg_jct_s
                );
            }
            for (reason, n) in &trace.skipped {
                outln!("  skipped {n} trace rows: {reason}");
            }
            outln!("replayed in {:.2} s", r.wall_s);
        }
    }
    Ok(())
}

fn replay<P: Policy>(jobs: &[kf_train::trace::Job], config: &SimConfig, policy: P) -> anyhow::Result<sim::Simulation> {
    Ok(sim::simulate(jobs, config, policy)?)
}

/// TrainJobs and runtimes read from manifest files.
#[derive(Default)]
pub struct Manifests {
    pub jobs: Vec<(String, TrainJob)>,
    pub runtimes: Vec<TrainingRuntime>,
}

/// Reads every TrainJob and runtime in `files`, validated; other kinds are
/// an error (they belong to other commands).
fn load(files: &[PathBuf]) -> anyhow::Result<Manifests> {
    let mut found = Manifests::default();
    for file in files {
        let docs = crate::documents::load(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        add_documents(&mut found, docs, &file.display().to_string())?;
    }
    Ok(found)
}

/// Every TrainJob and runtime in YAML `text`, validated; other kinds are an
/// error. `origin` names the text in messages.
pub fn manifests_from_text(text: &str, origin: &str) -> anyhow::Result<Manifests> {
    let docs = crate::documents::parse(text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    let mut found = Manifests::default();
    add_documents(&mut found, docs, origin)?;
    Ok(found)
}

fn add_documents(found: &mut Manifests, docs: Vec<crate::documents::Document>, origin: &str) -> anyhow::Result<()> {
    for doc in docs {
        let at = format!("{origin} (document {})", doc.index);
        let value = doc.parts.into_iter().next().unwrap_or(Value::Null);
        match value.get("kind").and_then(Value::as_str) {
            Some("TrainJob") => {
                let job = TrainJob::from_value(value).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                job.validate().map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                found.jobs.push((at, job));
            }
            Some("TrainingRuntime" | "ClusterTrainingRuntime") => {
                let runtime = TrainingRuntime::from_value(value).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                runtime.validate().map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
                found.runtimes.push(runtime);
            }
            other => anyhow::bail!(
                "{at}: expected a TrainJob, TrainingRuntime or ClusterTrainingRuntime, found kind {:?}",
                other.unwrap_or_default()
            ),
        }
    }
    Ok(())
}

fn validate(args: &ValidateArgs, output: OutputFormat) -> ExitCode {
    let files: Vec<PathBuf> = args.files.iter().chain(&args.runtimes).cloned().collect();
    let manifests = match load(&files) {
        Ok(m) => m,
        Err(err) => {
            eprintln!("kf train validate: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let mut results = Vec::new();
    for (at, job) in &manifests.jobs {
        let name = job.name().unwrap_or_default();
        let planned = launch::resolve_runtime(job, &manifests.runtimes)
            .and_then(|runtime| launch::plan(job, runtime, &Network::Kubernetes));
        let (ok, detail) = match planned {
            Ok(plan) => {
                let framework = plan.framework.map_or("plain".to_string(), |f| format!("{f:?}").to_lowercase());
                let shape = format!(
                    "{} node(s), world size {}, {} pod(s), {framework}",
                    plan.num_nodes(),
                    plan.world_size(),
                    plan.pods.len()
                );
                (true, shape)
            }
            Err(e) => (false, e.to_string()),
        };
        failed |= !ok;
        match output {
            OutputFormat::Text => outln!("{} {at}: TrainJob {name:?}: {detail}", if ok { "OK  " } else { "FAIL" }),
            OutputFormat::Json => {
                results.push(serde_json::json!({"file": at, "job": name, "ok": ok, "detail": detail}))
            }
        }
    }
    if manifests.jobs.is_empty() && output == OutputFormat::Text {
        outln!("OK   {} runtime(s), no TrainJob to resolve", manifests.runtimes.len());
    }
    if let OutputFormat::Json = output {
        outln!("{}", serde_json::Value::Array(results));
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The one TrainJob of `file` and the runtime it references (from `file`
/// or `runtimes`).
fn job_and_runtime(file: &Path, runtime_files: &[PathBuf]) -> anyhow::Result<(TrainJob, TrainingRuntime)> {
    let Manifests { mut jobs, mut runtimes } = load(&[file.to_path_buf()])?;
    // TrainJobs in --runtime files are not the one to run.
    runtimes.extend(load(runtime_files)?.runtimes);
    let job = match jobs.len() {
        0 => anyhow::bail!("{}: no TrainJob in the file", file.display()),
        1 => jobs.remove(0).1,
        _ => anyhow::bail!("{}: more than one TrainJob; give one per file", file.display()),
    };
    let runtime = launch::resolve_runtime(&job, &runtimes)
        .map_err(|e| anyhow::anyhow!("{e}; pass the runtime manifest with --runtime FILE"))?
        .clone();
    Ok((job, runtime))
}

fn render(args: &RenderArgs, output: OutputFormat) -> anyhow::Result<()> {
    let (job, runtime) = job_and_runtime(&args.file, &args.runtimes)?;
    let plan = launch::plan(&job, &runtime, &Network::Kubernetes)?;
    let manifests = kf_train::render::render(&job, &runtime, &plan)?;
    let values = manifests.to_values()?;
    match output {
        OutputFormat::Text => out!("{}", serde_saphyr::to_string_multiple(&values)?),
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&values)?),
    }
    if let Some(secret) = &manifests.ssh_auth_secret {
        eprintln!("note: the pods mount the kubernetes.io/ssh-auth Secret {secret:?}; create it with fresh keys");
    }
    Ok(())
}

fn run_job(args: &RunArgs, output: OutputFormat) -> anyhow::Result<ExitCode> {
    let (job, runtime) = job_and_runtime(&args.file, &args.runtimes)?;
    let (job, runtime) = (&job, &runtime);
    let name = job.name().unwrap_or("trainjob");
    let workspace = claim_workspace(&args.dir.join(name))?;
    let mut options = LocalOptions::new(&workspace);
    options.namespace.clone_from(&args.namespace);

    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut display = RunDisplay::new(output);
    display.note(&format!("running TrainJob {name:?} locally in {}", workspace.display()));
    let started = Instant::now();
    let cancel = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let run = tokio.block_on(LocalBackend::new(options).run(job, runtime, |e| display.event(e), cancel))?;
    display.finish();
    let outcome = &run.outcome;
    match output {
        OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&run.job.to_value())?),
        OutputFormat::Text => {
            let verdict = outcome.condition_type();
            eprintln!(
                "{verdict} ({}) after {:.1} s: {}\nstatus: {}\nlogs: {}",
                outcome.reason.as_str(),
                started.elapsed().as_secs_f64(),
                outcome.message,
                run.workspace.status().display(),
                run.workspace.root().join("logs").display()
            );
        }
    }
    Ok(if outcome.succeeded() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The next free `<dir>/<n>`, created (so two runs never share one).
pub(crate) fn claim_workspace(dir: &Path) -> anyhow::Result<PathBuf> {
    claim_numbered(dir, |n| n.to_string()).map(|(_, path)| path)
}

/// The first `n` (from 1) whose `<dir>/<name(n)>` could be created, and that
/// directory: creating it is the claim, so two runs never share one.
pub(crate) fn claim_numbered(dir: &Path, name: impl Fn(u32) -> String) -> anyhow::Result<(u32, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    for n in 1.. {
        let candidate = dir.join(name(n));
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok((n, candidate)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => anyhow::bail!("cannot create {}: {e}", candidate.display()),
        }
    }
    anyhow::bail!("no free number under {}", dir.display())
}

/// Logs with a rank prefix (stdout; stderr with `--output json`) under a
/// status line with every process's state, progress and the latest metrics.
struct RunDisplay {
    bar: indicatif::ProgressBar,
    states: BTreeMap<String, &'static str>,
    trainer: String,
    logs_to_stdout: bool,
}

impl RunDisplay {
    fn new(output: OutputFormat) -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(Duration::from_millis(120));
        RunDisplay {
            bar,
            states: BTreeMap::new(),
            trainer: String::new(),
            logs_to_stdout: output == OutputFormat::Text,
        }
    }

    fn note(&self, line: &str) {
        self.bar.suspend(|| eprintln!("{line}"));
    }

    fn event(&mut self, event: LocalEvent) {
        match event {
            LocalEvent::Fetched { replicated_job, uri, into, files, bytes } => {
                self.note(&format!("[{replicated_job}] {uri} → {} ({files} files, {bytes} bytes)", into.display()));
            }
            LocalEvent::Started { process, pid } => {
                self.states.insert(process.clone(), "running");
                self.note(&format!("[{process}] started (pid {pid})"));
            }
            LocalEvent::Line { process, stream, line } => {
                let to_stdout = self.logs_to_stdout && stream == Stream::Stdout;
                self.bar.suspend(|| {
                    if to_stdout {
                        outln!("[{process}] {line}");
                    } else {
                        eprintln!("[{process}] {line}");
                    }
                });
            }
            LocalEvent::Exited { process, code } => {
                let state = match code {
                    Some(0) => "done",
                    Some(_) => "failed",
                    None => "killed",
                };
                self.states.insert(process.clone(), state);
                let how = code.map_or("was stopped by a signal".to_string(), |c| format!("exited with code {c}"));
                self.note(&format!("[{process}] {how}"));
            }
            LocalEvent::Status(status) => {
                if let Some(t) = status.trainer_status {
                    let mut parts = Vec::new();
                    if let Some(p) = t.progress_percentage {
                        parts.push(format!("progress {p}%"));
                    }
                    for m in t.metrics.unwrap_or_default() {
                        parts.push(format!("{}={}", m.name.unwrap_or_default(), m.value.unwrap_or_default()));
                    }
                    self.trainer = parts.join(" ");
                }
            }
            _ => {}
        }
        let states: Vec<String> = self.states.iter().map(|(p, s)| format!("{p} {s}")).collect();
        self.bar.set_message(format!("{}  {}", states.join(" · "), self.trainer));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
