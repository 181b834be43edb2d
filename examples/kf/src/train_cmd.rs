//! `kf train …`: the kf-train commands. Wiring only — arguments in, the
//! crate's functions called, results printed; the scheduler, the trace
//! loaders and the simulator live in `kf_train`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use kf_train::scheduler::{Backfill, DominantResourceFairness, Policy, ShortestJobFirst, StrictFifo};
use kf_train::sim::{self, SimConfig};
use kf_train::trace::Format;

use crate::output::OutputFormat;
use crate::pending;

/// The `kf train` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TrainCommand {
    /// Replay a GPU-cluster job trace through a scheduling policy and print
    /// JCT, queueing delay, makespan, utilisation and fairness.
    Simulate(SimulateArgs),
    /// Subcommands that are not built yet (`run`, …).
    #[command(external_subcommand)]
    Pending(Vec<String>),
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
        TrainCommand::Simulate(args) => match simulate(&args, output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("kf train simulate: {err}");
                ExitCode::FAILURE
            }
        },
        TrainCommand::Pending(words) => {
            let name = words.first().map_or("", String::as_str);
            pending::report(&format!("kf train {name}"), "the kf-train local backend (issue #9)")
        }
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
