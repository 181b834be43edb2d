//! No-op scheduling throughput of the executor (issue target: ≥ 100,000
//! tasks/s for a 100k-task wide DAG and a 10k-task chain on the 2-core box).
//! Each iteration is a whole run: driver, in-memory journal, function runner.
//! Peak RSS is what `kf pipeline bench` (or `examples/bench_no_op`) reports.
//!
//! `cargo bench -p kf-dag --bench exec`

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kf_dag::bench::{Shape, no_op_plan, no_op_runner};
use kf_dag::exec::{Executor, RunRequest};

fn scheduling(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let mut group = c.benchmark_group("no-op scheduling");
    group.sample_size(10).measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(1));
    for (name, shape, n) in [("wide 100k", Shape::Wide, 100_000), ("chain 10k", Shape::Chain, 10_000)] {
        let plan = Arc::new(no_op_plan(shape, n).expect("a valid plan"));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let executor = Executor::new(no_op_runner());
                let outcome = runtime.block_on(executor.run(plan.clone(), RunRequest::default())).expect("a run");
                assert_eq!(outcome.tasks.len(), n);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, scheduling);
criterion_main!(benches);
