//! Replays a GPU-cluster trace through every built-in policy and prints one
//! line of metrics per policy.
//!
//! `cargo run --release -p kf-train --example simulate -- TRACE.csv philly|alibaba|tiresias NODES GPUS_PER_NODE [LIMIT [POLICY,…]]`

use std::time::Instant;

use kf_train::scheduler::policy;
use kf_train::sim::{SimConfig, simulate};
use kf_train::trace::Format;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, format, nodes, gpus, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: simulate TRACE.csv philly|alibaba|tiresias NODES GPUS_PER_NODE [LIMIT|all [POLICY,…]]".into()
        );
    };
    let mut trace = format.parse::<Format>()?.load(&std::fs::read_to_string(path)?)?;
    if let Some(limit) = rest.first().filter(|l| *l != "all") {
        trace.limit(limit.parse()?);
    }
    let policies: Vec<&str> = rest.get(1).map_or(vec!["fifo", "backfill", "sjf", "drf"], |p| p.split(',').collect());
    let config = SimConfig::new(nodes.parse()?, gpus.parse()?);
    println!("{} jobs on {}×{} GPUs", trace.jobs.len(), config.nodes, config.gpus_per_node);
    println!(
        "{:<9} {:>12} {:>12} {:>12} {:>12} {:>6} {:>8}",
        "policy", "avg JCT s", "p99 JCT s", "avg queue s", "makespan s", "util", "wall s"
    );
    for name in policies {
        let policy = policy::by_name(name).ok_or("unknown policy")?;
        let started = Instant::now();
        let r = simulate(&trace.jobs, &config, policy)?.report;
        println!(
            "{name:<9} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>6.3} {:>8.2}",
            r.avg_jct_s,
            r.p99_jct_s,
            r.avg_queue_s,
            r.makespan_s,
            r.gpu_utilization,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
