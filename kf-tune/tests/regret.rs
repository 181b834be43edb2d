//! TPE beats random search on a simple quadratic: mean regret over fixed seeds.

use kf_tune::sampler::random::Random;
use kf_tune::sampler::tpe::Tpe;
use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
use kf_tune::{Direction, History, Sampler, TrialState};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn space() -> SearchSpace {
    let x = |name: &str| {
        Param::new(name, Domain::Double { low: -5.0, high: 5.0, step: None, distribution: Distribution::Uniform })
            .expect("valid")
    };
    let n =
        Param::new("n", Domain::Int { low: 0, high: 40, step: 1, distribution: Distribution::Uniform }).expect("valid");
    SearchSpace::new(vec![x("x"), x("y"), n]).expect("valid")
}

/// Minimum 0 at (1, −2, 25).
fn quadratic(a: &[ParamValue]) -> f64 {
    match a {
        [ParamValue::Float(x), ParamValue::Float(y), ParamValue::Int(n)] => {
            (x - 1.0).powi(2) + (y + 2.0).powi(2) + ((*n as f64 - 25.0) / 8.0).powi(2)
        }
        other => panic!("unexpected assignment {other:?}"),
    }
}

/// Best value found in `trials` trials, asked in batches of `batch`.
fn best(sampler: &dyn Sampler, seed: u64, trials: usize, batch: usize) -> f64 {
    let space = space();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut history = History::new(Direction::Minimize);
    while history.trials.len() < trials {
        for a in sampler.suggest(&space, &history, batch, &mut rng).expect("suggests") {
            assert!(space.contains(&a));
            let value = quadratic(&a);
            history.push(a, TrialState::Completed(value));
        }
    }
    history.completed().map(|(_, loss)| loss).fold(f64::INFINITY, f64::min)
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn tpe_has_lower_mean_regret_than_random() {
    let seeds = 0..10u64;
    let random = mean(seeds.clone().map(|s| best(&Random, s, 60, 1)));
    let tpe = mean(seeds.clone().map(|s| best(&Tpe::default(), s, 60, 1)));
    let tpe_batched = mean(seeds.map(|s| best(&Tpe::default(), s, 60, 4)));
    eprintln!("mean regret: random {random}, tpe {tpe}, tpe batch 4 {tpe_batched}");
    assert!(tpe < 0.6 * random, "TPE mean regret {tpe} vs random {random}");
    assert!(tpe_batched < random, "batched TPE mean regret {tpe_batched} vs random {random}");
}
