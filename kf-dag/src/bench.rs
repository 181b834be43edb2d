//! The no-op scheduling benchmark behind `kf pipeline bench` and
//! `benches/exec.rs`: how many in-process no-op tasks per second the executor
//! schedules, journals and completes, for a wide DAG (every task independent)
//! or a chain (each task after the previous one).
//!
//! Everything but the measurement is the real path: a validated [`Plan`], the
//! [`Executor`] with its in-memory journal and a [`FunctionRunner`] whose
//! function does nothing. Peak RSS is read from `/proc/self/status` (Linux;
//! `None` elsewhere) and is the whole process's high-water mark.

use std::sync::Arc;
use std::time::Instant;

use crate::exec::{Executor, RunRequest};
use crate::ir::{Component, Executor as ExecutorSpec, FunctionSpec, Pipeline, Task};
use crate::run::RunState;
use crate::runner::{FunctionOutput, FunctionRunner};
use crate::{Error, Plan, Result};

/// The shape of the benchmark DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `n` independent tasks.
    Wide,
    /// `n` tasks, each after the one before.
    Chain,
}

impl Shape {
    /// Parses `wide` or `chain`.
    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "wide" => Some(Shape::Wide),
            "chain" => Some(Shape::Chain),
            _ => None,
        }
    }
}

/// What one benchmark run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Tasks run.
    pub tasks: usize,
    /// Wall-clock seconds from the start of the run to its outcome.
    pub wall_s: f64,
    /// `tasks / wall_s`.
    pub tasks_per_s: f64,
    /// The process's peak resident set size in MiB, where the OS tells.
    pub peak_rss_mb: Option<f64>,
}

/// A pipeline of `n` no-op function tasks (`t0000000`, …) of the given shape.
/// Validation is O(n log n).
///
/// ```
/// use kf_dag::bench::{Shape, no_op_plan};
/// let plan = no_op_plan(Shape::Chain, 3)?;
/// assert_eq!(plan.root().critical_path_len(), 3);
/// # Ok::<(), kf_dag::Error>(())
/// ```
pub fn no_op_plan(shape: Shape, n: usize) -> Result<Plan> {
    let mut p = Pipeline::new(match shape {
        Shape::Wide => "bench-wide",
        Shape::Chain => "bench-chain",
    });
    p.executors.insert("noop".into(), ExecutorSpec::Function(FunctionSpec { name: "noop".into() }));
    p.components.insert("noop".into(), Component::leaf("noop"));
    let dag = p.root.implementation.dag_mut().ok_or_else(|| Error::invalid("root.dag", "the root is not a DAG"))?;
    for i in 0..n {
        let mut task = Task::new("noop");
        // Caching is off: the benchmark measures scheduling, not digests.
        task.caching.enabled = false;
        if shape == Shape::Chain && i > 0 {
            task.after.insert(format!("t{:07}", i - 1));
        }
        dag.tasks.insert(format!("t{i:07}"), task);
    }
    Plan::new(p)
}

/// A runner whose `noop` function does nothing.
pub fn no_op_runner() -> FunctionRunner {
    let mut runner = FunctionRunner::new();
    runner.register("noop", |_| Ok(FunctionOutput::default()));
    runner
}

/// Builds the plan, then runs it once with `parallelism` (default: the
/// number of cores) and measures. Must be called inside a tokio runtime.
pub async fn run_no_op(shape: Shape, n: usize, parallelism: Option<usize>) -> Result<BenchReport> {
    let plan = Arc::new(no_op_plan(shape, n)?);
    let mut executor = Executor::new(no_op_runner());
    if let Some(p) = parallelism {
        executor = executor.parallelism(p);
    }
    let start = Instant::now();
    let outcome = executor.run(plan, RunRequest { id: Some("bench".into()), ..RunRequest::default() }).await?;
    let wall_s = start.elapsed().as_secs_f64();
    if outcome.state != RunState::Succeeded || outcome.tasks.len() != n {
        return Err(Error::Run {
            run: outcome.run,
            message: format!("the benchmark ran {} of {n} tasks and ended {:?}", outcome.tasks.len(), outcome.state),
        });
    }
    Ok(BenchReport {
        tasks: n,
        wall_s,
        tasks_per_s: n as f64 / wall_s.max(f64::MIN_POSITIVE),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// The process's peak resident set size (`VmHWM`) in MiB, on Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_shapes_run_every_task() {
        for shape in [Shape::Wide, Shape::Chain] {
            let report = run_no_op(shape, 500, Some(4)).await.unwrap();
            assert_eq!(report.tasks, 500);
            assert!(report.tasks_per_s > 0.0);
        }
        assert_eq!(Shape::parse("chain"), Some(Shape::Chain));
        assert_eq!(Shape::parse("star"), None);
    }
}
