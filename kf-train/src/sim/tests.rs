//! Hand-computed replays, bad input, and properties of random replays.

use proptest::prelude::*;

use super::*;
use crate::scheduler::{Backfill, DominantResourceFairness, ShortestJobFirst, StrictFifo, policy};
use crate::trace::{Format, Job};

fn job(row: usize, submit: f64, gpus: u64, duration: f64, queue: u64) -> Job {
    Job {
        row,
        job_id: format!("j{row}"),
        submit_s: submit,
        duration_s: duration,
        gpus,
        gpus_exact: gpus as f64,
        cpu_cores: None,
        mem_mib: None,
        queue_key: queue,
    }
}

/// One node of 8 GPUs. j0 4 GPUs 0–100; j1 8 GPUs at 10; j2 2 GPUs (50 s) at
/// 20; j3 4 GPUs (200 s) at 30.
fn small() -> Vec<Job> {
    vec![job(0, 0.0, 4, 100.0, 0), job(1, 10.0, 8, 100.0, 0), job(2, 20.0, 2, 50.0, 0), job(3, 30.0, 4, 200.0, 0)]
}

#[test]
fn fifo_by_hand() {
    // j0 0–100, j1 100–200, then j2 200–250 and j3 200–400.
    let r = simulate(&small(), &SimConfig::new(1, 8), StrictFifo).unwrap().report;
    assert_eq!(r.avg_jct_s, (100.0 + 190.0 + 230.0 + 370.0) / 4.0);
    assert_eq!(r.avg_queue_s, (0.0 + 90.0 + 180.0 + 170.0) / 4.0);
    assert_eq!(r.makespan_s, 400.0);
    assert_eq!(r.gpu_utilization, 2100.0 / 3200.0);
    assert_eq!(r.p99_jct_s, 370.0);
}

#[test]
fn backfill_by_hand() {
    // j1 is reserved at 100. j2 ends at 70 ≤ 100: backfilled 20–70. j3 would
    // hold 4 GPUs past 100 and j1 needs all 8: waits until 200.
    let sim = simulate(&small(), &SimConfig::new(1, 8), Backfill).unwrap();
    let r = &sim.report;
    assert_eq!(r.avg_jct_s, (100.0 + 190.0 + 50.0 + 370.0) / 4.0);
    assert_eq!(r.makespan_s, 400.0);
    assert_eq!(r.reservation_delays, 0);
    assert_eq!(sim.busy_gpus, vec![(0.0, 4), (20.0, 6), (70.0, 4), (100.0, 8), (200.0, 4), (400.0, 0)]);
}

#[test]
fn sjf_by_hand() {
    // j0 0–100; j2 20–70; at 70 j3 (4) fits before j1 (8): 70–270; j1 270–370.
    let r = simulate(&small(), &SimConfig::new(1, 8), ShortestJobFirst).unwrap().report;
    assert_eq!(r.avg_jct_s, (100.0 + 360.0 + 50.0 + 240.0) / 4.0);
    assert_eq!(r.makespan_s, 370.0);
}

#[test]
fn drf_alternates_between_queues() {
    // One node of 2 GPUs; queue 0 submits three 1-GPU jobs first, queue 1 one.
    // At t=1 queue 0 holds 2 GPUs; when one ends (t=10), queue 1 (share 0)
    // goes before queue 0's third job.
    let jobs = vec![job(0, 0.0, 1, 10.0, 0), job(1, 0.0, 1, 20.0, 0), job(2, 1.0, 1, 10.0, 0), job(3, 2.0, 1, 10.0, 1)];
    let config = SimConfig { queues: 2, ..SimConfig::new(1, 2) };
    let r = simulate(&jobs, &config, DominantResourceFairness).unwrap().report;
    assert_eq!(r.fairness[1].avg_queue_s, 8.0);
    assert_eq!(r.fairness[0].avg_queue_s, (0.0 + 0.0 + 19.0) / 3.0);
    let shares: f64 = r.fairness.iter().map(|q| q.share).sum();
    assert!((shares - 1.0).abs() < 1e-12);
    let fifo = simulate(&jobs, &config, StrictFifo).unwrap().report;
    assert_eq!(fifo.fairness[1].avg_queue_s, 18.0, "FIFO serves queue 0's earlier job first");
}

#[test]
fn multi_node_jobs_take_whole_nodes() {
    // 12 GPUs on 8-GPU nodes: two whole nodes, so a 1-GPU job must wait.
    let jobs = vec![job(0, 0.0, 12, 100.0, 0), job(1, 1.0, 1, 10.0, 0)];
    let r = simulate(&jobs, &SimConfig::new(2, 8), StrictFifo).unwrap().report;
    assert_eq!(r.avg_queue_s, 99.0 / 2.0);
    assert_eq!(r.gpu_utilization, (1200.0 + 10.0) / (16.0 * 110.0), "only the job's own GPUs count");
}

#[test]
fn jobs_larger_than_the_cluster_and_empty_clusters_are_counted_not_looped_on() {
    let jobs = vec![job(0, 0.0, 64, 10.0, 0), job(1, 0.0, 1, 10.0, 0)];
    let r = simulate(&jobs, &SimConfig::new(2, 8), Backfill).unwrap().report;
    assert_eq!((r.completed, r.unschedulable, r.never_started), (1, 1, 0));
    for config in [SimConfig::new(0, 8), SimConfig::new(8, 0)] {
        let r = simulate(&jobs, &config, Backfill).unwrap().report;
        assert_eq!((r.completed, r.unschedulable, r.makespan_s, r.gpu_utilization), (0, 2, 0.0, 0.0));
    }
    let r = simulate(&[], &SimConfig::new(1, 8), StrictFifo).unwrap().report;
    assert_eq!((r.jobs, r.avg_jct_s, r.p99_jct_s), (0, 0.0, 0.0));
}

#[test]
fn bad_jobs_are_errors() {
    let mut jobs = small();
    jobs.swap(0, 1);
    assert!(matches!(simulate(&jobs, &SimConfig::new(1, 8), StrictFifo), Err(crate::Error::Simulation { .. })));
    let jobs = vec![job(0, 0.0, 1, -5.0, 0)];
    let err = simulate(&jobs, &SimConfig::new(1, 8), StrictFifo).unwrap_err();
    assert!(err.to_string().contains("positive duration"), "{err}");
}

#[test]
fn report_json_has_the_documented_keys() {
    let r = simulate(&small(), &SimConfig::new(1, 8), Backfill).unwrap().report;
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "jobs",
        "completed",
        "unschedulable",
        "avg_jct_s",
        "p99_jct_s",
        "avg_queue_s",
        "makespan_s",
        "gpu_utilization",
        "preemptions",
        "wall_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn philly_prefix_backfill_keeps_its_promises() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces/pollux-philly/philly.csv"))
            .unwrap();
    let mut trace = Format::Philly.load(&text).unwrap();
    trace.limit(3000);
    let config = SimConfig::new(16, 8);
    let fifo = simulate(&trace.jobs, &config, StrictFifo).unwrap().report;
    let backfill = simulate(&trace.jobs, &config, Backfill).unwrap().report;
    assert_eq!(backfill.reservation_delays, 0);
    assert_eq!((fifo.completed, backfill.completed), (3000, 3000));
    assert!(backfill.avg_jct_s <= fifo.avg_jct_s, "backfill {} > fifo {}", backfill.avg_jct_s, fifo.avg_jct_s);
    assert!(backfill.gpu_utilization > 0.0 && backfill.gpu_utilization <= 1.0);
}

fn trace_strategy() -> impl Strategy<Value = Vec<Job>> {
    proptest::collection::vec((0u32..50, 1u64..=20, 1u32..200, 0u64..3), 1..40).prop_map(|rows| {
        let mut submit = 0.0;
        rows.into_iter()
            .enumerate()
            .map(|(i, (gap, gpus, dur, q))| {
                submit += f64::from(gap);
                job(i, submit, gpus, f64::from(dur), q)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_job_is_accounted_for_and_capacity_is_never_exceeded(
        jobs in trace_strategy(), nodes in 0usize..4, gpus in 0u64..9, queues in 1usize..4, p in 0usize..4,
    ) {
        let policy = policy::by_name(["fifo", "backfill", "sjf", "drf"][p]).unwrap();
        let config = SimConfig { queues, ..SimConfig::new(nodes, gpus) };
        let sim = simulate(&jobs, &config, policy).unwrap();
        let r = &sim.report;
        prop_assert_eq!(r.completed + r.unschedulable, r.jobs);
        prop_assert_eq!(r.never_started, 0);
        let capacity = nodes as u64 * gpus;
        prop_assert!(sim.busy_gpus.iter().all(|&(_, b)| b <= capacity));
        prop_assert!(r.gpu_utilization <= 1.0 + 1e-12);
        prop_assert_eq!(r.reservation_delays, 0);
        prop_assert!(sim.jct_s.iter().all(|&j| j > 0.0));
        // Deterministic.
        let again = simulate(&jobs, &config, policy::by_name(["fifo", "backfill", "sjf", "drf"][p]).unwrap()).unwrap();
        prop_assert_eq!(&again, &sim);
    }
}
