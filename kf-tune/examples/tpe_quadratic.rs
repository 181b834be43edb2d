//! Minimise a quadratic with TPE in an ask/tell loop, as a runner would:
//! ask the sampler for a batch, "run" each trial, tell the history the result.
//!
//! Run with `cargo run -p kf-tune --example tpe_quadratic`.

use kf_tune::algorithm::Algorithm;
use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
use kf_tune::{Direction, History, TrialState};
use rand::SeedableRng;

fn main() -> Result<(), kf_tune::Error> {
    let space = SearchSpace::new(vec![
        Param::new("lr", Domain::Double { low: 1e-4, high: 1.0, step: None, distribution: Distribution::LogUniform })?,
        Param::new("layers", Domain::Int { low: 1, high: 8, step: 1, distribution: Distribution::Uniform })?,
    ])?;
    // Katib's algorithmName and algorithmSettings, exactly as an Experiment gives them.
    let algorithm = Algorithm::new("tpe", &[("n_startup_trials", "8"), ("random_state", "42")])?;
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(algorithm.seed.unwrap_or(0));
    let mut history = History::new(Direction::Minimize);

    while history.trials.len() < 48 {
        for assignment in algorithm.sampler.suggest(&space, &history, 4, &mut rng)? {
            let loss = match assignment.as_slice() {
                [ParamValue::Float(lr), ParamValue::Int(layers)] => {
                    (lr.log10() + 2.0).powi(2) + 0.1 * (*layers as f64 - 5.0).powi(2)
                }
                _ => f64::NAN, // cannot happen for this space; a NaN counts as a failed trial
            };
            history.push(assignment, TrialState::Completed(loss));
        }
    }

    let (best, loss) = history
        .completed()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(a, loss)| (space.format(a), loss))
        .unwrap_or_default();
    println!("best after {} trials: {best:?} with loss {loss:.4}", history.trials.len());
    Ok(())
}
