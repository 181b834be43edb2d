//! Pins seeded TPE runs bit for bit, so that speed work on the samplers is
//! proven to leave their suggestions unchanged.
//!
//! Each run drives a sampler for 160 trials on a space that touches every
//! code path (uniform, log, normal and stepped doubles, ints with ties,
//! discrete lists, categoricals), with batches (the constant liar), failed
//! trials and both directions, and folds every suggested value's bits into
//! an FNV-1a fingerprint. The expected fingerprints were recorded on the
//! code before the optimisation of `tpe`/`mtpe`; a sampler whose suggestions
//! change in any bit fails here. When a deliberate change of results is
//! made, record the new fingerprints and say why in the commit. Re-recorded
//! once: the neighbour bandwidths without endpoints, the magic clip counting
//! the prior, and neighbour bandwidths in the multivariate TPE (issue 8);
//! then the independent TPE's categorical kernels (Optuna 5's smoothing).

use kf_tune::sampler::mtpe::MultivariateTpe;
use kf_tune::sampler::tpe::Tpe;
use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
use kf_tune::{Direction, History, Sampler, TrialState};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn param(name: &str, domain: Domain) -> Param {
    Param::new(name, domain).expect("valid parameter")
}

fn double(low: f64, high: f64, step: Option<f64>, distribution: Distribution) -> Domain {
    Domain::Double { low, high, step, distribution }
}

/// Branin's box: two plain uniform doubles.
fn branin_space() -> SearchSpace {
    SearchSpace::new(vec![
        param("x1", double(-5.0, 10.0, None, Distribution::Uniform)),
        param("x2", double(0.0, 15.0, None, Distribution::Uniform)),
    ])
    .expect("valid space")
}

/// Every kind of parameter and prior.
fn mixed_space() -> SearchSpace {
    SearchSpace::new(vec![
        param("lr", double(1e-5, 1e-1, None, Distribution::LogUniform)),
        param("dropout", double(0.0, 0.5, Some(0.05), Distribution::Uniform)),
        param("momentum", double(0.5, 0.99, None, Distribution::Normal)),
        param("layers", Domain::Int { low: 1, high: 8, step: 1, distribution: Distribution::Uniform }),
        param("batch", Domain::Int { low: 16, high: 256, step: 16, distribution: Distribution::LogUniform }),
        param("width", Domain::Int { low: 8, high: 512, step: 1, distribution: Distribution::LogNormal }),
        param("scale", Domain::Discrete { values: vec![0.1, 0.5, 1.0, 2.0] }),
        param("activation", Domain::Categorical { choices: vec!["relu".into(), "tanh".into(), "gelu".into()] }),
    ])
    .expect("valid space")
}

fn num(v: &ParamValue) -> f64 {
    match v {
        ParamValue::Float(x) => *x,
        ParamValue::Int(i) => *i as f64,
        ParamValue::Category(c) => *c as f64,
    }
}

/// A deterministic objective with structure in every parameter.
fn objective(a: &[ParamValue]) -> f64 {
    a.iter().enumerate().map(|(j, v)| ((num(v).abs() + 1.0).ln() - 0.3 * j as f64).powi(2)).sum::<f64>()
        + (num(&a[0]) * 3.0).sin()
}

fn fold(hash: &mut u64, bits: u64) {
    for byte in bits.to_le_bytes() {
        *hash ^= u64::from(byte);
        *hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
}

/// The fingerprint of a 160-trial run: every suggestion's bits, in order.
fn fingerprint(sampler: &dyn Sampler, space: &SearchSpace, direction: Direction, seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut history = History::new(direction);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut round = 0usize;
    while history.trials.len() < 160 {
        // Mostly single asks; every fifth round a batch of 3, told one round
        // later, so pending trials meet the constant liar.
        let batch = if round % 5 == 4 { 3 } else { 1 };
        let suggestions = sampler.suggest(space, &history, batch, &mut rng).expect("suggests");
        assert_eq!(suggestions.len(), batch);
        let first_new = history.trials.len();
        for a in suggestions {
            assert!(space.contains(&a), "{a:?} outside the space");
            for v in &a {
                fold(&mut hash, num(v).to_bits());
            }
            history.push(a, TrialState::Pending);
        }
        // Tell the trials still pending from earlier rounds, then these.
        for i in 0..history.trials.len() {
            if history.trials[i].state != TrialState::Pending || (batch > 1 && i >= first_new) {
                continue;
            }
            history.trials[i].state = if i % 11 == 7 {
                TrialState::Failed
            } else {
                TrialState::Completed(objective(&history.trials[i].assignment))
            };
        }
        round += 1;
    }
    hash
}

fn check(name: &str, got: u64, expected: u64) {
    assert_eq!(got, expected, "{name}: fingerprint {got:#018x}, pinned {expected:#018x}");
}

#[test]
fn independent_tpe_suggestions_are_pinned() {
    let tpe = Tpe::default();
    check("tpe branin", fingerprint(&tpe, &branin_space(), Direction::Minimize, 3), 0x46c1_40c4_98a8_4c6b);
    check("tpe mixed min", fingerprint(&tpe, &mixed_space(), Direction::Minimize, 11), 0xa80d_e406_d3f8_646c);
    check("tpe mixed max", fingerprint(&tpe, &mixed_space(), Direction::Maximize, 12), 0x0642_87b6_de5f_0944);
    let lean = Tpe { n_startup_trials: 4, n_ei_candidates: 7, prior_weight: 0.5, constant_liar: false };
    check("tpe settings", fingerprint(&lean, &mixed_space(), Direction::Minimize, 13), 0x2eaf_7cc1_d34a_175b);
}

#[test]
fn multivariate_tpe_suggestions_are_pinned() {
    let mtpe = MultivariateTpe::default();
    check("mtpe branin", fingerprint(&mtpe, &branin_space(), Direction::Minimize, 3), 0x7af6_cfc0_e049_dfa1);
    check("mtpe mixed min", fingerprint(&mtpe, &mixed_space(), Direction::Minimize, 11), 0x5f3e_da02_22b4_83c8);
    check("mtpe mixed max", fingerprint(&mtpe, &mixed_space(), Direction::Maximize, 12), 0x98b5_804d_e86e_5b97);
    let lean = MultivariateTpe { n_startup_trials: 4, n_ei_candidates: 7, prior_weight: 0.5, constant_liar: false };
    check("mtpe settings", fingerprint(&lean, &mixed_space(), Direction::Minimize, 13), 0xcdec_40c6_742e_da7e);
}
