//! Scheduler benchmarks (issue #10):
//!
//! - `cycle/50k-workloads-1k-queues-5k-nodes/<policy>`: one scheduling cycle
//!   with 50,000 pending workloads across 1,000 queues (100 cohorts of 10,
//!   nominal quota and borrowing) on 5,000 8-GPU nodes in blocks and racks.
//!   Target: under 100 ms.
//! - `replay/philly-10k-16x8/<policy>`: the first 10,000 Philly jobs on a
//!   congested 16×8 cluster.
//!
//! `cargo bench -p kf-train --bench scheduler` (the full-trace replay is timed
//! through `kf train simulate`, see docs/kf-train.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, criterion_group, criterion_main};
use kf_train::scheduler::{
    Backfill, Cluster, DominantResourceFairness, FlavorQuota, GangScheduler, Node, PodSetRequest, Policy, Queue,
    Resources, ShortestJobFirst, StrictFifo, TopologyMode, Workload, policy,
};
use kf_train::sim::{SimConfig, simulate};
use kf_train::trace::Format;

/// A deterministic pseudo-random sequence (SplitMix64), so runs compare.
struct Mix(u64);
impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn big_scheduler<P: Policy>(policy: P) -> GangScheduler<P> {
    let node = Resources::new(64_000, 512 * 1024, 8);
    let nodes: Vec<Node> = (0..5_000)
        .map(|i| {
            Node::new(format!("n{i}"), node)
                .with_label("block", format!("b{}", i / 250))
                .with_label("rack", format!("r{}", i / 25))
        })
        .collect();
    let cluster = Cluster::new(nodes, vec!["block".into(), "rack".into()]).expect("cluster");
    let queues: Vec<Queue> = (0..1_000)
        .map(|q| {
            let mut quota = FlavorQuota::new("default", Resources::new(256_000, 2 * 1024 * 1024, 32));
            quota.borrowing_limit = Some(Resources::new(128_000, 1024 * 1024, 16));
            Queue { flavors: vec![quota], ..Queue::unlimited(format!("q{q}")) }.in_cohort(format!("c{}", q / 10))
        })
        .collect();
    let mut s = GangScheduler::new(cluster, queues, policy).expect("scheduler");
    let mut rng = Mix(42);
    for i in 0..50_000u64 {
        let q = rng.below(1_000);
        let gpus = [1, 1, 1, 2, 4, 8][rng.below(6) as usize];
        let pods = if rng.below(10) == 0 { 2 + rng.below(3) as u32 } else { 1 };
        let per_pod = Resources::new(gpus * 8_000, gpus * 64 * 1024, gpus);
        let mut w = Workload::new(
            format!("w{i}"),
            format!("q{q}"),
            i as f64,
            vec![PodSetRequest::new("worker", pods, per_pod)],
        )
        .with_duration(60.0 + rng.below(36_000) as f64)
        .with_priority(rng.below(3) as i32);
        if pods > 1 && rng.below(2) == 0 {
            w = w.with_topology("rack", TopologyMode::Required);
        }
        s.submit(w).expect("submit");
    }
    s
}

fn cycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle/50k-workloads-1k-queues-5k-nodes");
    group.sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    bench_cycle(&mut group, "fifo", StrictFifo);
    bench_cycle(&mut group, "backfill", Backfill);
    bench_cycle(&mut group, "sjf", ShortestJobFirst);
    bench_cycle(&mut group, "drf", DominantResourceFairness);
    group.finish();
}

fn bench_cycle<P: Policy + Clone>(group: &mut BenchmarkGroup<'_, WallTime>, name: &str, policy: P) {
    let base = big_scheduler(policy);
    group.bench_function(name, |b| {
        b.iter_batched(|| base.clone(), |mut s| black_box(s.schedule(0.0).decisions.len()), BatchSize::LargeInput)
    });
}

fn replay(c: &mut Criterion) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/traces/pollux-philly/philly.csv");
    let mut trace = Format::Philly.load(&std::fs::read_to_string(path).expect("philly.csv")).expect("trace");
    trace.limit(10_000);
    let mut group = c.benchmark_group("replay/philly-10k-16x8");
    group.sample_size(10).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_secs(1));
    for name in ["fifo", "backfill", "sjf", "drf"] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let policy = policy::by_name(name).expect("policy");
                black_box(simulate(&trace.jobs, &SimConfig::new(16, 8), policy).expect("replay").report.avg_jct_s)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, cycle, replay);
criterion_main!(benches);
