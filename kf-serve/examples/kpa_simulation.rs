//! Drives the Knative Pod Autoscaler through a load curve and prints what it
//! decides every 2 s: a newcomer's five-minute tour of stable and panic mode.
//!
//! ```text
//! cargo run -p kf-serve --example kpa_simulation
//! ```
//!
//! The load is total concurrency: 14 requests in flight, a burst to 140 for
//! ten seconds, back to 14, then nothing. Each replica takes 10 concurrent
//! requests and the KPA aims for 70 % of that. Replicas follow the decision
//! at once, as on a very fast cluster.

use std::time::Duration;

use kf_serve::autoscale::{Kpa, KpaConfig, MetricWindow, Observation};

fn load(second: u64) -> f64 {
    match second {
        0..60 => 14.0,
        60..70 => 140.0,
        70..150 => 14.0,
        _ => 0.0,
    }
}

fn main() -> kf_serve::Result<()> {
    let config = KpaConfig { target: 10.0, ..KpaConfig::default() };
    let mut kpa = Kpa::new(config.clone())?;
    let mut window = MetricWindow::new(config.stable_window);
    let mut ready = 2;
    println!("{:>5} {:>6} {:>8} {:>8} {:>7} {:>6}", "t(s)", "load", "stable", "panic", "desired", "mode");
    for second in 0..300u64 {
        let now = Duration::from_secs(second);
        window.record(now, load(second));
        if second % 2 == 1 {
            let observation = Observation {
                now,
                ready_replicas: ready,
                stable: window.average(now, config.stable_window),
                panic: window.average(now, config.panic_window),
            };
            let decision = kpa.decide(&observation);
            if decision.desired != ready || second % 20 == 1 {
                let mode = if decision.panicking { "panic" } else { "stable" };
                println!(
                    "{second:>5} {:>6.0} {:>8.1} {:>8.1} {:>7} {mode:>6}",
                    load(second),
                    observation.stable,
                    observation.panic,
                    decision.desired
                );
            }
            ready = decision.desired;
        }
    }
    Ok(())
}
