//! Simulated load curves through the KPA, and its invariants as properties.

use super::*;
use proptest::prelude::*;

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// 10 concurrent requests per replica at 70 %: 7 per replica.
fn config() -> KpaConfig {
    KpaConfig { target: 10.0, ..KpaConfig::default() }
}

#[derive(Debug, Clone, Copy)]
struct Tick {
    at: u64,
    ready: u32,
    decision: Decision,
}

/// Feeds `load(second)` (total concurrency) into the windows second by
/// second and decides every 2 s, as Knative's autoscaler ticks; replicas
/// become ready at once (the fastest cluster, the harshest test of churn).
fn simulate(config: KpaConfig, ready: u32, seconds: u64, load: impl Fn(u64) -> f64) -> Vec<Tick> {
    let stable_window = config.stable_window;
    let panic_window = config.panic_window;
    let mut kpa = Kpa::new(config).expect("valid config");
    let mut window = MetricWindow::new(stable_window);
    let mut ready = ready;
    let mut ticks = Vec::new();
    for s in 0..seconds {
        window.record(secs(s), load(s));
        if s % 2 == 1 {
            let observation = Observation {
                now: secs(s),
                ready_replicas: ready,
                stable: window.average(secs(s), stable_window),
                panic: window.average(secs(s), panic_window),
            };
            let decision = kpa.decide(&observation);
            ticks.push(Tick { at: s, ready, decision });
            ready = decision.desired;
        }
    }
    ticks
}

fn at(ticks: &[Tick], second: u64) -> Tick {
    *ticks.iter().find(|t| t.at == second).expect("a tick at that second")
}

/// Whatever the curve: never down while panicking, and every step down
/// respects the scale-down rate.
fn check_invariants(ticks: &[Tick], config: &KpaConfig) {
    for pair in ticks.windows(2) {
        let (before, after) = (pair[0].decision, pair[1].decision);
        if before.panicking && after.panicking {
            assert!(after.desired >= before.desired, "scaled down while panicking: {pair:?}");
        }
        let floor = (f64::from(pair[1].ready.max(1)) / config.max_scale_down_rate).floor() as u32;
        assert!(after.desired >= floor.max(config.min_replicas), "faster than the scale-down rate: {pair:?}");
    }
}

#[test]
fn step_up_panics_to_the_new_level_then_calms_down_a_stable_window_later() {
    let c = config();
    let ticks = simulate(c.clone(), 2, 300, |s| if s < 120 { 14.0 } else { 70.0 });
    check_invariants(&ticks, &c);
    let before = at(&ticks, 119).decision;
    assert_eq!((before.desired, before.panicking), (2, false));
    // The panic window sees the step within one tick and panic goes straight
    // for the load it sees; the stable window alone would take a minute.
    let first = at(&ticks, 121).decision;
    assert!(first.panicking && first.desired > 2, "{first:?}");
    assert!(first.stable_desired <= 3, "the stable window barely moved: {first:?}");
    assert_eq!(at(&ticks, 125).decision.desired, 10);
    // 121 was the last tick over the threshold (at 5+ replicas 70 is < 2×):
    // panic ends with the first tick more than a stable window after it.
    let over: Vec<u64> = ticks.iter().filter(|t| t.at >= 121 && t.at <= 181).map(|t| t.at).collect();
    assert!(over.iter().all(|s| at(&ticks, *s).decision.panicking), "panic held for the stable window");
    assert!(!at(&ticks, 183).decision.panicking);
    assert!(ticks.iter().filter(|t| t.at >= 125).all(|t| t.decision.desired == 10), "no churn after the step");
}

#[test]
fn a_short_spike_scales_up_at_once_and_down_only_after_the_panic() {
    let c = config();
    let ticks = simulate(c.clone(), 1, 400, |s| if (100..104).contains(&s) { 140.0 } else { 7.0 });
    check_invariants(&ticks, &c);
    assert_eq!(at(&ticks, 99).decision.desired, 1);
    let spike = at(&ticks, 101).decision;
    assert!(spike.panicking && spike.desired >= 7, "{spike:?}");
    let peak = ticks.iter().map(|t| t.decision.desired).max().unwrap_or(0);
    assert!(peak >= 14, "panic provisions for the whole spike, found {peak}");
    // Held at the peak while panicking, i.e. until 101 + a stable window.
    assert!(ticks.iter().filter(|t| (105..=161).contains(&t.at)).all(|t| t.decision.desired == peak));
    let calm = at(&ticks, 163).decision;
    assert!(!calm.panicking && calm.desired < peak, "{calm:?}");
    // Back to one replica; the descent is rate-limited (checked above).
    assert_eq!(ticks.last().map(|t| t.decision.desired), Some(1));
}

#[test]
fn decay_to_zero_waits_for_an_idle_stable_window_and_the_grace_period() {
    let c = config();
    let load = |s: u64| {
        if s < 60 {
            70.0
        } else if s < 120 {
            70.0 * 0.9f64.powi((s - 60) as i32)
        } else {
            0.0
        }
    };
    let ticks = simulate(c.clone(), 10, 400, load);
    check_invariants(&ticks, &c);
    let first_zero = ticks.iter().find(|t| t.decision.desired == 0).map(|t| t.at).expect("reaches zero");
    // Last traffic in second 119: the stable window is empty from second 179,
    // then zero must be recommended for the whole 30 s grace period.
    assert!(first_zero >= 179 + 30, "scaled to zero at {first_zero}");
    assert!(first_zero <= 179 + 30 + 2, "scaled to zero late, at {first_zero}");
    assert!(ticks.iter().filter(|t| t.at < first_zero).all(|t| t.decision.desired >= 1));
    assert!(ticks.iter().filter(|t| t.at >= first_zero).all(|t| t.decision.desired == 0), "stays at zero");

    // With a minimum of one replica it never goes.
    let floor = simulate(KpaConfig { min_replicas: 1, ..c }, 10, 400, load);
    assert_eq!(floor.last().map(|t| t.decision.desired), Some(1));
    assert!(floor.iter().all(|t| t.decision.desired >= 1));
}

#[test]
fn oscillating_load_settles_on_the_stable_mean_instead_of_churning() {
    let c = config();
    // 10 s at 70, 10 s at 7, for 300 s; then steady at 7.
    let load = |s: u64| if s < 300 && (s / 10).is_multiple_of(2) { 70.0 } else { 7.0 };
    let ticks = simulate(c.clone(), 1, 600, load);
    check_invariants(&ticks, &c);
    // The first burst panics up to the peak; at 10 replicas the next bursts
    // are under 2× capacity, so panic ends a stable window later.
    assert!(at(&ticks, 3).decision.panicking);
    assert_eq!(at(&ticks, 9).decision.desired, 10);
    let calm = ticks.iter().find(|t| !t.decision.panicking && t.at > 3).map(|t| t.at).expect("panic ends");
    assert!((61..=67).contains(&calm), "panic ended at {calm}");
    // Then the 60 s window holds three whole periods: a mean of 38.5, six
    // replicas, whatever phase the wave is in.
    let settled: Vec<u32> = ticks.iter().filter(|t| (calm..300).contains(&t.at)).map(|t| t.decision.desired).collect();
    assert!(settled.iter().all(|d| *d == 6), "no churn: {settled:?}");
    assert!(ticks.iter().filter(|t| (calm..300).contains(&t.at)).all(|t| !t.decision.panicking));
    assert_eq!(ticks.last().map(|t| (t.decision.desired, t.decision.panicking)), Some((1, false)));
}

#[test]
fn requests_per_second_scale_the_same_way() {
    let c = KpaConfig { metric: ScaleMetric::Rps, target: 20.0, ..KpaConfig::default() };
    let mut window = MetricWindow::new(c.stable_window);
    for s in 0..60 {
        window.record(secs(s), 50.0); // 50 requests each second
    }
    let mut kpa = Kpa::new(c.clone()).expect("valid");
    let obs = |w: &MetricWindow| Observation {
        now: secs(59),
        ready_replicas: 4,
        stable: w.average(secs(59), c.stable_window),
        panic: w.average(secs(59), c.panic_window),
    };
    // 50 rps over 14 rps per replica.
    assert_eq!(kpa.decide(&obs(&window)).desired, 4);
}

#[test]
fn one_replica_needing_a_second_is_already_a_panic() {
    // 7.5 concurrent requests at 7 per replica: ⌈1.07⌉ = 2 = 200 % of one.
    let mut kpa = Kpa::new(config()).expect("valid");
    let d = kpa.decide(&Observation { now: secs(2), ready_replicas: 1, stable: 7.5, panic: 7.5 });
    assert_eq!((d.desired, d.panicking), (2, true));
    // The same load on two replicas is calm.
    let mut kpa = Kpa::new(config()).expect("valid");
    let d = kpa.decide(&Observation { now: secs(2), ready_replicas: 2, stable: 7.5, panic: 7.5 });
    assert_eq!((d.desired, d.panicking), (2, false));
}

#[test]
fn resume_starts_in_panic_and_holds_the_replicas_it_found() {
    let mut kpa = Kpa::resume(config(), 8, secs(0)).expect("valid");
    assert!(kpa.is_panicking());
    let d = kpa.decide(&Observation { now: secs(2), ready_replicas: 8, stable: 7.0, panic: 7.0 });
    assert_eq!((d.desired, d.panicking), (8, true));
    let d = kpa.decide(&Observation { now: secs(62), ready_replicas: 8, stable: 7.0, panic: 7.0 });
    assert_eq!((d.desired, d.panicking), (4, false), "rate-limited descent once calm");
}

#[test]
fn bad_config_and_observations_are_errors_or_zeros_not_panics() {
    for (config, field) in [
        (KpaConfig { target: 0.0, ..config() }, "target:"),
        (KpaConfig { target: f64::NAN, ..config() }, "target:"),
        (KpaConfig { stable_window: secs(5), ..config() }, "stableWindow:"),
        (KpaConfig { panic_window: secs(61), ..config() }, "panicWindow:"),
        (KpaConfig { panic_threshold: 1.0, ..config() }, "panicThreshold:"),
        (KpaConfig { max_scale_up_rate: 1.0, ..config() }, "maxScaleUpRate:"),
        (KpaConfig { max_scale_down_rate: 0.5, ..config() }, "maxScaleDownRate:"),
        (KpaConfig { min_replicas: 3, max_replicas: 2, ..config() }, "minReplicas:"),
    ] {
        let err = Kpa::new(config).expect_err("invalid").to_string();
        assert!(err.starts_with(field), "{err} should name {field}");
    }
    let mut kpa = Kpa::new(config()).expect("valid");
    let d = kpa.decide(&Observation { now: secs(1), ready_replicas: 0, stable: f64::NAN, panic: f64::INFINITY });
    assert_eq!(d.desired, 0);
    let d = kpa.decide(&Observation { now: secs(3), ready_replicas: 3, stable: -5.0, panic: 1e300 });
    assert!(d.panicking && d.desired == 3000, "infinite-looking load is capped by the scale-up rate: {d:?}");
}

#[test]
fn windows_count_idle_seconds_and_forget_old_ones() {
    let mut w = MetricWindow::new(secs(10));
    w.record(secs(0), 10.0);
    w.record(secs(2), 20.0);
    w.record(secs(1), 30.0); // late, still kept
    assert_eq!(w.average(secs(2), secs(10)), 20.0);
    w.record(secs(30), 1.0);
    assert_eq!(w.average(secs(30), secs(60)), 1.0 / 31.0, "history is 31 s long, buckets over 10 s old are gone");
    assert_eq!(w.average(secs(30), secs(1)), 1.0);
    let mut m = ConcurrencyMeter::new(secs(60));
    m.start(Duration::from_millis(250));
    assert_eq!(m.average(secs(3), secs(2)), 1.0, "a long request counts while in flight");
    assert_eq!(m.in_flight(), 1);
}

fn arb_config() -> impl Strategy<Value = KpaConfig> {
    (1.0f64..200.0, 0.1f64..=1.0, 0u32..4, 0u32..40, 1.5f64..20.0, 1.5f64..10.0).prop_map(
        |(target, utilization, min, max, up, down)| KpaConfig {
            target,
            target_utilization: utilization,
            min_replicas: min,
            max_replicas: if max == 0 { 0 } else { max.max(min) },
            max_scale_up_rate: up,
            max_scale_down_rate: down,
            ..KpaConfig::default()
        },
    )
}

/// (seconds since the last tick, ready replicas, stable, panic)
fn arb_observations() -> impl Strategy<Value = Vec<(u64, u32, f64, f64)>> {
    prop::collection::vec((1u64..30, 0u32..60, 0.0f64..5000.0, 0.0f64..5000.0), 1..60)
}

fn run(config: &KpaConfig, observations: &[(u64, u32, f64, f64)]) -> Vec<(Observation, Decision)> {
    let mut kpa = Kpa::new(config.clone()).expect("valid");
    let mut now = 0;
    observations
        .iter()
        .map(|(dt, ready, stable, panic)| {
            now += dt;
            let o = Observation { now: secs(now), ready_replicas: *ready, stable: *stable, panic: *panic };
            (o, kpa.decide(&o))
        })
        .collect()
}

/// Steady state: `ticks` decisions at a constant load, replicas following.
fn steady(config: &KpaConfig, load: f64, ticks: u64) -> u32 {
    let mut kpa = Kpa::new(config.clone()).expect("valid");
    let mut ready = 1;
    for t in 0..ticks {
        ready = kpa.decide(&Observation { now: secs(2 * t), ready_replicas: ready, stable: load, panic: load }).desired;
    }
    ready
}

proptest! {
    #[test]
    fn desired_stays_within_min_and_max(config in arb_config(), observations in arb_observations()) {
        for (o, d) in run(&config, &observations) {
            prop_assert!(d.desired >= config.min_replicas, "{:?} -> {:?}", o, d);
            if config.max_replicas > 0 {
                prop_assert!(d.desired <= config.max_replicas, "{:?} -> {:?}", o, d);
            }
        }
    }

    #[test]
    fn each_decision_respects_the_rate_limits(
        config in arb_config(),
        ready in 0u32..60,
        loads in prop::collection::vec((0.0f64..5000.0, 0.0f64..5000.0), 1..40),
    ) {
        // Unbounded, so only the rates constrain the answer.
        let config = KpaConfig { min_replicas: 0, max_replicas: 0, ..config };
        let observations: Vec<_> = loads.iter().map(|(s, p)| (2, ready, *s, *p)).collect();
        let r = f64::from(ready.max(1));
        let up = (r * config.max_scale_up_rate).ceil() as u32;
        let down = (r / config.max_scale_down_rate).floor() as u32;
        for (o, d) in run(&config, &observations) {
            prop_assert!(d.desired <= up, "{:?} -> {:?} above {}", o, d, up);
            prop_assert!(d.desired >= down, "{:?} -> {:?} below {}", o, d, down);
        }
    }

    #[test]
    fn never_scales_down_while_panicking(config in arb_config(), observations in arb_observations()) {
        let decisions = run(&config, &observations);
        for pair in decisions.windows(2) {
            if pair[0].1.panicking && pair[1].1.panicking {
                prop_assert!(pair[1].1.desired >= pair[0].1.desired, "{:?}", pair);
            }
        }
    }

    #[test]
    fn steady_state_is_monotone_in_load(config in arb_config(), a in 0.0f64..3000.0, b in 0.0f64..3000.0) {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        // 100 ticks of 2 s: past any panic, so this is the steady state.
        let (at_low, at_high) = (steady(&config, low, 100), steady(&config, high, 100));
        prop_assert!(at_low <= at_high, "{} at {} but {} at {}", at_low, low, at_high, high);
        // And the steady state is what the formula says, within the bounds.
        let want = ((high / config.target_per_replica()).ceil() as u32).max(config.min_replicas);
        let want = if config.max_replicas > 0 { want.min(config.max_replicas) } else { want };
        prop_assert_eq!(at_high, want);
    }
}
