//! Trace-driven simulation: a discrete-event replay of [`crate::trace`] jobs
//! through the [`crate::scheduler::GangScheduler`] with any policy, on a
//! cluster of identical GPU nodes, and the metrics of
//! `shared/traces/README.md` §5. It owns the event loop and the metrics; the
//! scheduling itself is the scheduler's, unchanged. No IO and no clock: the
//! caller times the run ([`Report::wall_s`]) and writes files ([`plot`]).
//!
//! Jobs become one-pod-set gangs: a job of `g ≤ G` GPUs is one pod of `g`
//! GPUs; a larger one needs ⌈g/G⌉ whole nodes (pods of `G` GPUs each). Jobs
//! run exactly their trace duration, which is also the requested duration
//! backfill and SJF plan with. At one instant, completions are applied
//! before arrivals, and arrivals before the scheduling pass. A preempted job
//! goes back to its queue and later restarts from the beginning.
//!
//! Cost: O(E·C) for E events (≤ 2 per job without preemption) and C the cost
//! of a scheduling cycle (see [`crate::scheduler`]). The loop has an event
//! budget (`20·jobs + 1000`), so a policy that cycles through preemptions
//! ends in [`crate::Error::Simulation`] instead of never returning.

pub mod plot;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde::Serialize;

use crate::scheduler::{Cluster, Decision, GangScheduler, PodSetRequest, Policy, Queue, Resources, Ticket, Workload};
use crate::trace::Job;
use crate::{Error, Result};

/// The simulated cluster and queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// Identical nodes.
    pub nodes: usize,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Queues (`queue_key % queues`); 0 is read as 1.
    pub queues: usize,
    /// Topology levels of consecutive nodes, outermost first, e.g.
    /// `[("block", 16), ("rack", 4)]`; empty for none.
    pub topology: Vec<(String, usize)>,
}

impl SimConfig {
    /// `nodes × gpus_per_node`, one queue, no topology.
    pub fn new(nodes: usize, gpus_per_node: u64) -> SimConfig {
        SimConfig { nodes, gpus_per_node, queues: 1, topology: Vec::new() }
    }

    /// Reads a topology written `level=nodes,…` from the outermost level in
    /// (`block=16,rack=4`: blocks of 16 consecutive nodes made of racks of 4).
    ///
    /// ```
    /// use kf_train::sim::SimConfig;
    /// assert_eq!(SimConfig::parse_topology("block=16,rack=4")?, vec![("block".into(), 16), ("rack".into(), 4)]);
    /// assert!(SimConfig::parse_topology("rack=0").is_err());
    /// # Ok::<(), kf_train::Error>(())
    /// ```
    pub fn parse_topology(text: &str) -> Result<Vec<(String, usize)>> {
        let mut levels: Vec<(String, usize)> = Vec::new();
        for (i, part) in text.split(',').map(str::trim).filter(|p| !p.is_empty()).enumerate() {
            let bad = |message: String| Error::Invalid { path: format!("topology[{i}]"), message };
            let (name, size) =
                part.split_once('=').ok_or_else(|| bad(format!("expected level=nodes, found {part:?}")))?;
            let size: usize = size.trim().parse().map_err(|_| bad(format!("expected a node count, found {size:?}")))?;
            if size == 0 || name.trim().is_empty() {
                return Err(bad(format!("expected a level name and at least one node, found {part:?}")));
            }
            if let Some((_, outer)) = levels.last()
                && (size > *outer || outer % size != 0)
            {
                return Err(bad(format!("{size} nodes per {name} must divide the {outer} of the enclosing level")));
            }
            levels.push((name.trim().to_string(), size));
        }
        Ok(levels)
    }
}

/// Metrics of one queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueReport {
    /// Queue name (`q0`, `q1`, …).
    pub queue: String,
    /// Jobs submitted to it.
    pub jobs: usize,
    /// Jobs completed.
    pub completed: usize,
    /// GPU-seconds of its completed jobs.
    pub gpu_seconds: f64,
    /// Its fraction of all completed GPU-seconds.
    pub share: f64,
    /// Its fraction of all submitted GPU-seconds (what it asked for).
    pub demand: f64,
    /// Its fair entitlement: 1 / number of queues (equal weights).
    pub entitlement: f64,
    /// Average job completion time of its jobs, seconds.
    pub avg_jct_s: f64,
    /// Average queueing delay of its jobs, seconds.
    pub avg_queue_s: f64,
}

/// What `kf train simulate --output json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Policy name.
    pub policy: String,
    /// Nodes simulated.
    pub nodes: usize,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Queues.
    pub queues: usize,
    /// Jobs replayed (after filtering and `--limit`).
    pub jobs: usize,
    /// Jobs that ran to completion.
    pub completed: usize,
    /// Jobs that can never fit the cluster (counted, never queued).
    pub unschedulable: usize,
    /// Schedulable jobs still waiting when the events ran out (0 unless
    /// quotas or policies keep a job out forever).
    pub never_started: usize,
    /// Mean job completion time (end − submit) of completed jobs, seconds.
    pub avg_jct_s: f64,
    /// Nearest-rank 99th percentile of the completion times, seconds.
    pub p99_jct_s: f64,
    /// Mean queueing delay (start − submit) of completed jobs, seconds.
    pub avg_queue_s: f64,
    /// Last completion − first submission, seconds.
    pub makespan_s: f64,
    /// Σ(gpus × duration) / (nodes × GPUs per node × makespan), 0–1.
    pub gpu_utilization: f64,
    /// Preemptions (evictions) during the replay.
    pub preemptions: usize,
    /// Jobs that started after the backfill reservation made for them
    /// (EASY's promise; always 0 when requested durations are exact).
    pub reservation_delays: usize,
    /// Scheduling cycles run.
    pub cycles: usize,
    /// Wall-clock seconds of the replay, set by the caller (the core reads no clock).
    pub wall_s: f64,
    /// Per-queue fairness: share of GPU time versus entitlement and demand.
    pub fairness: Vec<QueueReport>,
}

/// A finished replay: the report plus the series a plot needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// The metrics.
    pub report: Report,
    /// Busy GPUs over time: `(t, busy)` at every change.
    pub busy_gpus: Vec<(f64, u64)>,
    /// Completion times of completed jobs, ascending.
    pub jct_s: Vec<f64>,
}

/// Event counts of a replay.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    unschedulable: usize,
    preemptions: usize,
    cycles: usize,
    reservation_delays: usize,
}

/// Per-queue accumulation: jobs, completed (job, start, end), demanded GPU-seconds.
#[derive(Debug, Clone, Default)]
struct QueueTally {
    jobs: usize,
    done: Vec<(usize, f64, f64)>,
    demand: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct JobRun {
    start: Option<f64>,
    end: Option<f64>,
    generation: u32,
    reserved_at: Option<f64>,
}

/// The gang a trace job is simulated as on nodes of `gpus_per_node` GPUs.
pub fn workload_for(job: &Job, gpus_per_node: u64, queues: usize) -> Workload {
    let g = gpus_per_node;
    let (pods, per_pod) = if g == 0 || job.gpus <= g { (1, job.gpus) } else { (job.gpus.div_ceil(g), g) };
    let queue = format!("q{}", job.queue_key % queues.max(1) as u64);
    let pods = u32::try_from(pods).unwrap_or(u32::MAX);
    Workload::new(
        job.job_id.clone(),
        queue,
        job.submit_s,
        vec![PodSetRequest::new("job", pods, Resources::gpus(per_pod))],
    )
    .with_duration(job.duration_s)
}

/// Replays `jobs` (sorted by submission, as [`crate::trace::Format::load`]
/// returns them) through `policy` on `config`'s cluster.
///
/// ```
/// use kf_train::scheduler::Backfill;
/// use kf_train::sim::{simulate, SimConfig};
/// use kf_train::trace::Format;
///
/// let csv = "job_id,num_gpu,submit_time,iterations,model_name,duration,interval\n\
///            0,8,0,1,m,100,0\n1,8,10,1,m,100,0\n2,4,20,1,m,50,0\n3,16,30,1,m,5,0\n";
/// let trace = Format::Tiresias.load(csv)?;
/// let sim = simulate(&trace.jobs, &SimConfig::new(1, 8), Backfill)?;
/// assert_eq!((sim.report.completed, sim.report.unschedulable), (3, 1)); // 16 GPUs never fit one node
/// assert_eq!(sim.report.makespan_s, 250.0); // 0–100, 100–200, then 200–250
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn simulate<P: Policy>(jobs: &[Job], config: &SimConfig, policy: P) -> Result<Simulation> {
    let queues = config.queues.max(1);
    let nodes: Vec<crate::scheduler::Node> = (0..config.nodes)
        .map(|i| crate::scheduler::Node::new(format!("node-{i}"), Resources::gpus(config.gpus_per_node)))
        .collect();
    let cluster = Cluster::with_groups(nodes, &config.topology)?;
    let queue_specs = (0..queues).map(|q| Queue::unlimited(format!("q{q}"))).collect();
    let policy_name = policy.name().to_string();
    let mut scheduler = GangScheduler::new(cluster, queue_specs, policy)?;
    if jobs.windows(2).any(|w| w[1].submit_s < w[0].submit_s) {
        return Err(Error::Simulation {
            message: "jobs must be sorted by submit_s (as trace loaders return them)".into(),
        });
    }
    if let Some(j) = jobs.iter().find(|j| !(j.duration_s.is_finite() && j.duration_s > 0.0 && j.submit_s.is_finite())) {
        return Err(Error::Simulation {
            message: format!(
                "job {} has submit {} and duration {}; expected finite times and a positive duration",
                j.job_id, j.submit_s, j.duration_s
            ),
        });
    }

    let mut runs = vec![JobRun::default(); jobs.len()];
    // Tickets are handed out in submission order: ticket n is the n-th submitted job.
    let mut job_of_ticket: Vec<usize> = Vec::with_capacity(jobs.len());
    let mut completions: BinaryHeap<Reverse<(OrdF64, u64, u32)>> = BinaryHeap::new();
    let mut busy: u64 = 0;
    let mut busy_gpus = vec![(jobs.first().map_or(0.0, |j| j.submit_s), 0)];
    let mut tally = Tally::default();
    let mut next = 0usize;
    let budget = jobs.len().saturating_mul(20).saturating_add(1000);
    let mut iterations = 0usize;
    loop {
        let next_arrival = jobs.get(next).map(|j| j.submit_s);
        let next_completion = completions.peek().map(|Reverse((t, ..))| t.0);
        let now = match (next_arrival, next_completion) {
            (None, None) => break,
            (Some(a), None) => a,
            (None, Some(c)) => c,
            (Some(a), Some(c)) => a.min(c),
        };
        iterations += 1;
        if iterations > budget {
            return Err(Error::Simulation {
                message: format!(
                    "event budget of {budget} exhausted at t={now}s ({} preemptions); the policy may be cycling",
                    tally.preemptions
                ),
            });
        }
        while let Some(Reverse((t, ticket, generation))) = completions.peek().copied() {
            if t.0 > now {
                break;
            }
            completions.pop();
            let j = job_of_ticket[ticket as usize];
            if runs[j].generation != generation {
                continue;
            }
            scheduler.finish(Ticket(ticket))?;
            runs[j].end = Some(t.0);
            busy = busy.saturating_sub(jobs[j].gpus);
        }
        while let Some(job) = jobs.get(next).filter(|j| j.submit_s <= now) {
            let ticket = scheduler.submit(workload_for(job, config.gpus_per_node, queues))?;
            debug_assert_eq!(ticket.0 as usize, job_of_ticket.len());
            job_of_ticket.push(next);
            next += 1;
        }
        let cycle = scheduler.schedule(now);
        tally.cycles += 1;
        if let Some((head, at)) = cycle.reservation {
            let run = &mut runs[job_of_ticket[head.0 as usize]];
            run.reserved_at.get_or_insert(at);
        }
        for decision in &cycle.decisions {
            match decision {
                Decision::Admit(a) => {
                    let j = job_of_ticket[a.ticket.0 as usize];
                    let run = &mut runs[j];
                    run.start = Some(now);
                    if run.reserved_at.is_some_and(|at| now > at + 1e-6) {
                        tally.reservation_delays += 1;
                    }
                    completions.push(Reverse((OrdF64(now + jobs[j].duration_s), a.ticket.0, run.generation)));
                    busy += jobs[j].gpus;
                }
                Decision::Preempt { victim, .. } => {
                    let j = job_of_ticket[victim.0 as usize];
                    runs[j].generation += 1;
                    runs[j].start = None;
                    busy = busy.saturating_sub(jobs[j].gpus);
                    tally.preemptions += 1;
                }
                Decision::Unschedulable { .. } => tally.unschedulable += 1,
                Decision::Wait { .. } => {}
            }
        }
        match busy_gpus.last_mut() {
            Some(last) if last.0 == now => last.1 = busy,
            Some(last) if last.1 == busy => {}
            _ => busy_gpus.push((now, busy)),
        }
    }
    Ok(finish(jobs, config, queues, policy_name, &runs, tally, busy_gpus))
}

fn finish(
    jobs: &[Job],
    config: &SimConfig,
    queues: usize,
    policy: String,
    runs: &[JobRun],
    tally: Tally,
    busy_gpus: Vec<(f64, u64)>,
) -> Simulation {
    let done: Vec<(usize, f64, f64)> =
        runs.iter().enumerate().filter_map(|(j, r)| Some((j, r.start?, r.end?))).collect();
    let mut jct: Vec<f64> = done.iter().map(|&(j, _, end)| end - jobs[j].submit_s).collect();
    jct.sort_by(f64::total_cmp);
    let mean = |xs: &mut dyn Iterator<Item = f64>| {
        let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
        if n == 0 { 0.0 } else { s / n as f64 }
    };
    let p99 =
        if jct.is_empty() { 0.0 } else { jct[((0.99 * jct.len() as f64).ceil() as usize).clamp(1, jct.len()) - 1] };
    let first_submit = jobs.iter().map(|j| j.submit_s).fold(f64::INFINITY, f64::min);
    let last_end = done.iter().map(|d| d.2).fold(f64::NEG_INFINITY, f64::max);
    let makespan = if done.is_empty() { 0.0 } else { last_end - first_submit };
    let gpu_seconds = |j: usize| jobs[j].gpus as f64 * jobs[j].duration_s;
    let capacity = config.nodes as f64 * config.gpus_per_node as f64 * makespan;
    let used: f64 = done.iter().map(|d| gpu_seconds(d.0)).sum();
    let gpu_utilization = if capacity > 0.0 { used / capacity } else { 0.0 };
    let demand_total: f64 = (0..jobs.len()).map(gpu_seconds).sum();
    let mut per_queue: BTreeMap<usize, QueueTally> = BTreeMap::new();
    for (j, job) in jobs.iter().enumerate() {
        let e = per_queue.entry((job.queue_key % queues as u64) as usize).or_default();
        e.jobs += 1;
        e.demand += gpu_seconds(j);
    }
    for &d in &done {
        per_queue.entry((jobs[d.0].queue_key % queues as u64) as usize).or_default().done.push(d);
    }
    let fairness = (0..queues)
        .map(|q| {
            let QueueTally { jobs: n, done: done_q, demand } = per_queue.remove(&q).unwrap_or_default();
            let gs: f64 = done_q.iter().map(|d| gpu_seconds(d.0)).sum();
            QueueReport {
                queue: format!("q{q}"),
                jobs: n,
                completed: done_q.len(),
                gpu_seconds: gs,
                share: if used > 0.0 { gs / used } else { 0.0 },
                demand: if demand_total > 0.0 { demand / demand_total } else { 0.0 },
                entitlement: 1.0 / queues as f64,
                avg_jct_s: mean(&mut done_q.iter().map(|&(j, _, end)| end - jobs[j].submit_s)),
                avg_queue_s: mean(&mut done_q.iter().map(|&(j, start, _)| start - jobs[j].submit_s)),
            }
        })
        .collect();
    let report = Report {
        policy,
        nodes: config.nodes,
        gpus_per_node: config.gpus_per_node,
        queues,
        jobs: jobs.len(),
        completed: done.len(),
        unschedulable: tally.unschedulable,
        never_started: jobs.len() - done.len() - tally.unschedulable.min(jobs.len() - done.len()),
        avg_jct_s: mean(&mut jct.iter().copied()),
        p99_jct_s: p99,
        avg_queue_s: mean(&mut done.iter().map(|&(j, start, _)| start - jobs[j].submit_s)),
        makespan_s: makespan,
        gpu_utilization,
        preemptions: tally.preemptions,
        reservation_delays: tally.reservation_delays,
        cycles: tally.cycles,
        wall_s: 0.0,
        fairness,
    };
    Simulation { report, busy_gpus, jct_s: jct }
}

/// f64 with a total order, for the event heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests;
