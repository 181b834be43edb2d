//! Invariants every sampler keeps, on random search spaces.

use std::collections::HashSet;

use kf_tune::sampler::asha::Asha;
use kf_tune::sampler::cmaes::CmaEs;
use kf_tune::sampler::gp::GaussianProcess;
use kf_tune::sampler::grid::Grid;
use kf_tune::sampler::hyperband::Hyperband;
use kf_tune::sampler::mtpe::MultivariateTpe;
use kf_tune::sampler::nsga2::Nsga2;
use kf_tune::sampler::pbt::Pbt;
use kf_tune::sampler::random::Random;
use kf_tune::sampler::sobol::{MAX_DIMENSIONS, Sobol, SobolSequence};
use kf_tune::sampler::tpe::Tpe;
use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
use kf_tune::{Direction, History, Sampler, TrialState};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

fn distribution(log_ok: bool) -> impl Strategy<Value = Distribution> {
    let all = if log_ok {
        vec![Distribution::Uniform, Distribution::LogUniform, Distribution::Normal, Distribution::LogNormal]
    } else {
        vec![Distribution::Uniform, Distribution::Normal]
    };
    proptest::sample::select(all)
}

/// Any valid domain; `stepped` forces a finite one (for the grid).
fn domain(stepped: bool) -> BoxedStrategy<Domain> {
    let double = (-100.0..100.0f64, 0.0..100.0f64, proptest::option::of(0.01..10.0f64), any::<bool>()).prop_flat_map(
        move |(low, width, step, positive)| {
            let low = if positive { low.abs() + 1e-3 } else { low };
            let step = if stepped { Some(step.unwrap_or(1.0).max(width / 20.0).max(0.01)) } else { step };
            distribution(positive).prop_map(move |distribution| Domain::Double {
                low,
                high: low + width,
                step,
                distribution,
            })
        },
    );
    let int = (-50i64..50, 0i64..100, 1i64..5, any::<bool>()).prop_flat_map(|(low, width, step, positive)| {
        let low = if positive { low.abs() + 1 } else { low };
        distribution(positive).prop_map(move |distribution| Domain::Int { low, high: low + width, step, distribution })
    });
    let discrete = proptest::collection::vec(-1e3..1e3f64, 1..6).prop_map(|values| Domain::Discrete { values });
    let categorical = proptest::collection::vec("[a-z]{1,4}", 1..5).prop_map(|choices| Domain::Categorical { choices });
    prop_oneof![double, int, discrete, categorical].boxed()
}

fn space(stepped: bool, max_dims: usize) -> impl Strategy<Value = SearchSpace> {
    proptest::collection::vec(domain(stepped), 1..=max_dims).prop_map(|domains| {
        let params = domains
            .into_iter()
            .enumerate()
            .map(|(i, d)| Param::new(format!("p{i}"), d).expect("valid domain"))
            .collect();
        SearchSpace::new(params).expect("unique names")
    })
}

fn history_of(space: &SearchSpace, n: usize, seed: u64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut history = History::new(Direction::Minimize);
    for (i, a) in Random.suggest(space, &history.clone(), n, &mut rng).expect("random").into_iter().enumerate() {
        let state = match i % 4 {
            0 => TrialState::Pending,
            1 => TrialState::Failed,
            _ => TrialState::Completed(i as f64 * 0.37 % 5.0),
        };
        history.push(a, state);
    }
    history
}

fn samplers() -> Vec<Box<dyn Sampler>> {
    vec![
        Box::new(Random),
        Box::new(Sobol::default()),
        Box::new(Sobol { scramble_seed: Some(3) }),
        Box::new(Tpe { n_startup_trials: 3, ..Tpe::default() }),
        Box::new(GaussianProcess { n_startup_trials: 3, n_candidates: 32 }),
        Box::new(MultivariateTpe { n_startup_trials: 3, ..MultivariateTpe::default() }),
        Box::new(CmaEs { popsize: Some(3), ..CmaEs::default() }),
        Box::new(CmaEs::default()),
        Box::new(Hyperband { r_l: Some(9.0), ..Hyperband::default() }),
        Box::new(Asha::default()),
        Box::new(Pbt { n_population: 4, resample_probability: 0.3, ..Pbt::default() }),
        Box::new(Nsga2 { population_size: 3, mutation_prob: Some(0.5), ..Nsga2::default() }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn suggestions_stay_inside_the_space(space in space(false, 6), seed in any::<u64>(), n in 0usize..30) {
        let history = history_of(&space, n, seed);
        for sampler in samplers() {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let batch = sampler.suggest(&space, &history, 5, &mut rng).expect("suggests");
            // Hyperband and PBT may stop short, waiting for a rung or a
            // generation; everything else fills the batch.
            if matches!(sampler.name(), "hyperband" | "pbt") {
                prop_assert!(batch.len() <= 5);
            } else {
                prop_assert_eq!(batch.len(), 5);
            }
            for a in &batch {
                prop_assert!(space.contains(a), "{} left the space: {:?} not in {:?}", sampler.name(), a, space);
            }
        }
    }

    #[test]
    fn seeds_make_runs_reproducible(space in space(false, 4), seed in any::<u64>()) {
        let history = history_of(&space, 12, seed);
        for sampler in samplers() {
            let a = sampler.suggest(&space, &history, 3, &mut ChaCha8Rng::seed_from_u64(seed)).expect("suggests");
            let b = sampler.suggest(&space, &history, 3, &mut ChaCha8Rng::seed_from_u64(seed)).expect("suggests");
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn grid_enumerates_exactly_the_product(space in space(true, 3)) {
        let size = Grid::size(&space).expect("finite grid");
        prop_assume!(size <= 2000);
        let per_param: Vec<Vec<ParamValue>> = space
            .params()
            .iter()
            .map(|p| (0..p.cardinality().expect("finite")).map(|k| p.nth(k).expect("in range")).collect())
            .collect();
        let mut product: Vec<Vec<ParamValue>> = vec![vec![]];
        for values in &per_param {
            product = product
                .into_iter()
                .flat_map(|prefix| values.iter().map(move |v| { let mut p = prefix.clone(); p.push(*v); p }))
                .collect();
        }
        prop_assert_eq!(product.len() as u128, size);

        // Asked a few at a time, as a runner would, the grid gives the product in order.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut history = History::default();
        let mut seen = Vec::new();
        loop {
            match Grid.suggest(&space, &history, 7, &mut rng) {
                Ok(batch) => {
                    prop_assert!(!batch.is_empty() && batch.len() <= 7);
                    for a in batch {
                        prop_assert!(space.contains(&a));
                        history.push(a.clone(), TrialState::Completed(0.0));
                        seen.push(a);
                    }
                }
                Err(kf_tune::Error::Exhausted { .. }) => break,
                Err(other) => prop_assert!(false, "unexpected error {other}"),
            }
        }
        // Lists may repeat a value, so compare as sequences, not sets.
        let dedup: Vec<_> = {
            let mut keys = HashSet::new();
            product.iter().filter(|a| keys.insert(format!("{a:?}"))).cloned().collect()
        };
        prop_assert_eq!(seen, dedup);
    }

    #[test]
    fn sobol_points_are_in_the_unit_cube_and_balanced(dims in 1usize..=MAX_DIMENSIONS, k in 0u32..9, seed in proptest::option::of(any::<u64>())) {
        let seq = match seed {
            Some(seed) => SobolSequence::scrambled(dims, seed).expect("dims in range"),
            None => SobolSequence::new(dims).expect("dims in range"),
        };
        let n = 1u32 << k;
        let points: Vec<Vec<f64>> = (0..n).map(|i| seq.point(i)).collect();
        for d in 0..dims {
            let mut bins = vec![0u32; n as usize];
            for p in &points {
                prop_assert!((0.0..1.0).contains(&p[d]));
                bins[(p[d] * f64::from(n)) as usize] += 1;
            }
            prop_assert!(bins.iter().all(|&c| c == 1), "dimension {} unbalanced: {:?}", d, bins);
        }
    }

    /// With the budget in a parameter (Katib's `resource_name`), multi-fidelity
    /// suggestions stay in the space and their budget is the parameter's value.
    #[test]
    fn budgets_written_into_a_resource_parameter_stay_inside_it(
        space in space(false, 4),
        seed in any::<u64>(),
        high in 2i64..100,
        step in 1i64..4,
        eta in 2.0..4.0f64,
        told in 0usize..60,
    ) {
        let mut params = space.params().to_vec();
        params.push(Param::new("budget_param", Domain::Int { low: 1, high, step, distribution: Distribution::Uniform }).expect("valid"));
        let space = SearchSpace::new(params).expect("unique names");
        let samplers: Vec<Box<dyn Sampler>> = vec![
            Box::new(Hyperband { resource_name: Some("budget_param".into()), eta, r_l: None }),
            Box::new(Asha { resource_name: Some("budget_param".into()), eta, r_l: None }),
        ];
        for sampler in samplers {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut history = History::new(Direction::Maximize);
            while history.trials.len() < told {
                let batch = sampler.suggest_detailed(&space, &history, 3, &mut rng).expect("suggests");
                if batch.is_empty() {
                    break;
                }
                for s in batch {
                    prop_assert!(space.contains(&s.assignment), "{} left the space: {:?}", sampler.name(), s.assignment);
                    let ParamValue::Int(b) = s.assignment[space.len() - 1] else { panic!("int") };
                    prop_assert_eq!(Some(b as f64), s.budget);
                    let v = (history.trials.len() as f64 * 0.61).sin();
                    history.push_suggestion(s, TrialState::Completed(v));
                }
            }
        }
    }
}

/// A history holding trials of another space (an experiment whose parameters
/// changed between runs) gives suggestions inside the current space, not a panic.
#[test]
fn trials_of_another_space_are_skipped() {
    let d = Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform };
    let space = SearchSpace::new(vec![Param::new("x", d.clone()).expect("valid")]).expect("space");
    let mut history = History::new(Direction::Minimize);
    for i in 0..60 {
        let a =
            if i % 2 == 0 { vec![ParamValue::Float(0.5), ParamValue::Int(3)] } else { vec![ParamValue::Float(0.25)] };
        history.push(a, TrialState::Completed(f64::from(i % 7)));
    }
    for sampler in samplers() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let batch = sampler.suggest(&space, &history, 3, &mut rng).expect("suggests");
        for a in &batch {
            assert!(space.contains(a), "{} left the space: {a:?}", sampler.name());
        }
    }
}
