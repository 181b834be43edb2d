//! The no-op scheduling benchmark, printed as JSON (what `kf pipeline bench` prints).
//!
//! `cargo run --release -p kf-dag --example bench_no_op -- wide 100000 [parallelism]`

use kf_dag::bench::{Shape, run_no_op};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shape = args.first().and_then(|s| Shape::parse(s)).ok_or("usage: bench_no_op wide|chain N [parallelism]")?;
    let n: usize = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    let parallelism = args.get(2).map(|s| s.parse()).transpose()?;
    let r = run_no_op(shape, n, parallelism).await?;
    println!(
        "{}",
        serde_json::json!({"tasks": r.tasks, "wall_s": r.wall_s, "tasks_per_s": r.tasks_per_s, "peak_rss_mb": r.peak_rss_mb})
    );
    Ok(())
}
