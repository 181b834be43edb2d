//! TPE's ask latency with 100 and 1,000 trials of history.
//!
//! Issue #8 promises answers 20× faster than Optuna; Optuna's figures for the
//! same functions are in `shared/bench/baselines/optuna.md` ("Ask latency of
//! TPE at 100 and at 1,000 trials": compare with its "last 10 %" columns,
//! which time asks made with 90–99 and 900–999 trials of history). The
//! histories here are made by the sampler itself on the benchmark harness's
//! public functions (`tune_bench.py`), so their points cluster the way a
//! real run's do. One iteration is one `suggest(.., 1, ..)`, in process, as
//! Optuna's `study.ask` is timed. Run with `cargo bench -p kf-tune --bench tpe_ask`.

use std::f64::consts::PI;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kf_tune::sampler::mtpe::MultivariateTpe;
use kf_tune::sampler::tpe::Tpe;
use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
use kf_tune::{Direction, History, Sampler, TrialState};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;

struct Function {
    name: &'static str,
    space: SearchSpace,
    direction: Direction,
    f: fn(&[ParamValue]) -> f64,
}

fn float(v: &ParamValue) -> f64 {
    match v {
        ParamValue::Float(x) => *x,
        ParamValue::Int(i) => *i as f64,
        ParamValue::Category(c) => *c as f64,
    }
}

fn doubles(names: &[&str], low: f64, high: f64) -> SearchSpace {
    let params = names
        .iter()
        .map(|n| Param::new(*n, Domain::Double { low, high, step: None, distribution: Distribution::Uniform }))
        .collect::<Result<Vec<_>, _>>()
        .expect("valid parameters");
    SearchSpace::new(params).expect("valid space")
}

fn branin(p: &[ParamValue]) -> f64 {
    let (x1, x2) = (float(&p[0]), float(&p[1]));
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H6_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(p: &[ParamValue]) -> f64 {
    (0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| H6_A[i][j] * (float(&p[j]) - H6_P[i][j]).powi(2)).sum();
            -H6_ALPHA[i] * (-inner).exp()
        })
        .sum()
}

fn rosenbrock4(p: &[ParamValue]) -> f64 {
    let x: Vec<f64> = p.iter().map(float).collect();
    x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
}

/// The harness's `mlp_mixed` (maximize): lr, weight_decay, layers, activation.
fn mlp_mixed(p: &[ParamValue]) -> f64 {
    const BASE: [f64; 4] = [0.94, 0.925, 0.90, 0.95];
    let layers = float(&p[2]);
    let act = match p[3] {
        ParamValue::Category(c) => c.min(3),
        _ => 0,
    };
    let u = float(&p[0]).log10();
    let v = float(&p[1]).log10();
    let du = u - (-2.5 + 0.15 * (layers - 4.0) + if act == 2 { 0.5 } else { 0.0 });
    let dv = v + 4.0;
    BASE[act] - (0.02 * du * du + 0.012 * dv * dv + 0.008 * du * dv + 0.005 * (layers - 4.0).powi(2))
}

fn functions() -> Vec<Function> {
    let log = |n: &str, low: f64, high: f64| {
        Param::new(n, Domain::Double { low, high, step: None, distribution: Distribution::LogUniform })
            .expect("valid parameter")
    };
    let mlp = SearchSpace::new(vec![
        log("lr", 1e-5, 1e-1),
        log("weight_decay", 1e-6, 1e-2),
        Param::new("layers", Domain::Int { low: 1, high: 8, step: 1, distribution: Distribution::Uniform })
            .expect("valid parameter"),
        Param::new(
            "activation",
            Domain::Categorical { choices: ["relu", "tanh", "sigmoid", "gelu"].map(String::from).to_vec() },
        )
        .expect("valid parameter"),
    ])
    .expect("valid space");
    vec![
        Function {
            name: "branin",
            space: doubles(&["x1", "x2"], -5.0, 10.0),
            direction: Direction::Minimize,
            f: branin,
        },
        Function {
            name: "hartmann6",
            space: doubles(&["x1", "x2", "x3", "x4", "x5", "x6"], 0.0, 1.0),
            direction: Direction::Minimize,
            f: hartmann6,
        },
        Function {
            name: "rosenbrock4",
            space: doubles(&["x1", "x2", "x3", "x4"], -5.0, 10.0),
            direction: Direction::Minimize,
            f: rosenbrock4,
        },
        Function { name: "mlp_mixed", space: mlp, direction: Direction::Maximize, f: mlp_mixed },
    ]
}

/// The first `n` trials of a seeded run of `sampler` on `function`.
fn history(sampler: &dyn Sampler, function: &Function, n: usize) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut history = History::new(function.direction);
    while history.trials.len() < n {
        let a = sampler.suggest(&function.space, &history, 1, &mut rng).expect("suggests").remove(0);
        let value = (function.f)(&a);
        history.push(a, TrialState::Completed(value));
    }
    history
}

fn ask_latency(c: &mut Criterion) {
    let samplers: [(&str, Box<dyn Sampler>); 2] =
        [("tpe", Box::new(Tpe::default())), ("multivariate-tpe", Box::new(MultivariateTpe::default()))];
    for (name, sampler) in &samplers {
        let mut group = c.benchmark_group(format!("ask/{name}"));
        group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        for function in functions() {
            let full = history(sampler.as_ref(), &function, 1000);
            for n in [100, 1000] {
                let mut past = full.clone();
                past.trials.truncate(n);
                let mut rng = ChaCha8Rng::seed_from_u64(1);
                group.bench_with_input(BenchmarkId::new(function.name, n), &past, |b, past| {
                    b.iter(|| sampler.suggest(&function.space, black_box(past), 1, &mut rng).expect("suggests"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, ask_latency);
criterion_main!(benches);
