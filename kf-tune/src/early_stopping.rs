//! Early stopping: the median stopping rule and successive-halving (ASHA)
//! pruning, as pure functions.
//!
//! Katib's `medianstop` (after Golovin et al., "Google Vizier", KDD 2017): a
//! running trial is stopped at step S when its best objective so far is
//! strictly worse than the median, over completed trials, of each one's running
//! average of the objective up to step S. The rule waits for
//! `min_trials_required` completed trials and for the trial to report
//! `start_step` values. Steps are counted in reported values (the first value
//! is step 1). Non-finite values are skipped; a trial with no finite value yet
//! has no best, and is stopped once the rule applies.
//!
//! [`SuccessiveHalving`] is the pruning side of ASHA (as Optuna's
//! `SuccessiveHalvingPruner`): rungs sit at steps r·η^(s+k); when a trial's
//! report first reaches a rung, it continues only if its value there is in
//! the best ⌊m/η⌋ (at least the best one) of the m trials that have reached
//! that rung, itself included.
//!
//! This module decides; it does not watch trials or kill processes.

use crate::katib::EarlyStoppingSpec;
use crate::sampler::Direction;
use crate::{Error, Result};

/// The median stopping rule (Katib `medianstop`).
///
/// ```
/// use kf_tune::Direction;
/// use kf_tune::early_stopping::MedianStop;
///
/// let rule = MedianStop { min_trials_required: 2, start_step: 2 };
/// let done: [&[f64]; 3] = [&[0.5, 0.6, 0.7], &[0.4, 0.5, 0.6], &[0.6, 0.7, 0.8]];
/// // Running averages at step 2: 0.55, 0.45, 0.65 → median 0.55 (accuracy, maximised).
/// assert!(rule.should_stop(Direction::Maximize, &[0.3, 0.5], &done));
/// assert!(!rule.should_stop(Direction::Maximize, &[0.3, 0.56], &done));
/// assert!(!rule.should_stop(Direction::Maximize, &[0.1], &done)); // before start_step
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedianStop {
    /// Completed trials needed before any trial is stopped (Katib default 3).
    pub min_trials_required: usize,
    /// Values a trial must report before it can be stopped (Katib default 4).
    pub start_step: usize,
}

impl Default for MedianStop {
    fn default() -> Self {
        MedianStop { min_trials_required: 3, start_step: 4 }
    }
}

impl MedianStop {
    /// The rule with Katib's settings applied; unknown settings and values
    /// below 1 are rejected with the setting's name.
    pub fn from_settings(settings: &[(&str, &str)]) -> Result<Self> {
        let mut rule = MedianStop::default();
        for &(name, value) in settings {
            let fail = |message: String| Error::InvalidSetting {
                algorithm: "medianstop".into(),
                setting: name.into(),
                message,
            };
            let parsed = value
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&v| v >= 1)
                .ok_or_else(|| fail(format!("expected an integer ≥ 1, found {value:?}")));
            match name {
                "min_trials_required" => rule.min_trials_required = parsed?,
                "start_step" => rule.start_step = parsed?,
                _ => return Err(fail("unknown setting; medianstop takes min_trials_required and start_step".into())),
            }
        }
        Ok(rule)
    }

    /// The rule a Katib `spec.earlyStopping` describes.
    pub fn from_katib(spec: &EarlyStoppingSpec) -> Result<Self> {
        let name = spec.algorithm_name.as_deref().unwrap_or_default();
        if name != "medianstop" {
            return Err(Error::UnknownAlgorithm { name: name.into(), known: "medianstop".into() });
        }
        let settings: Vec<(String, String)> = spec
            .algorithm_settings
            .iter()
            .flatten()
            .map(|s| (s.name.clone().unwrap_or_default(), s.value.as_ref().map(|v| v.text()).unwrap_or_default()))
            .collect();
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::from_settings(&pairs)
    }

    /// Whether the trial that reported `running` so far should stop, given the
    /// intermediate values of completed trials (`completed`). O(T · S + T log T)
    /// for T completed trials and S = `running.len()`.
    pub fn should_stop(&self, direction: Direction, running: &[f64], completed: &[&[f64]]) -> bool {
        let step = running.len();
        if step < self.start_step.max(1) {
            return false;
        }
        let mut averages: Vec<f64> = completed
            .iter()
            .filter_map(|values| {
                let finite: Vec<f64> = values.iter().take(step).copied().filter(|v| v.is_finite()).collect();
                (!finite.is_empty()).then(|| finite.iter().sum::<f64>() / finite.len() as f64)
            })
            .map(|v| direction.loss(v))
            .collect();
        if averages.len() < self.min_trials_required.max(1) {
            return false;
        }
        averages.sort_by(f64::total_cmp);
        let mid = averages.len() / 2;
        let median = if averages.len() % 2 == 1 { averages[mid] } else { 0.5 * (averages[mid - 1] + averages[mid]) };
        let best = running.iter().filter(|v| v.is_finite()).map(|&v| direction.loss(v)).fold(f64::INFINITY, f64::min);
        best > median
    }
}

impl MedianStop {
    /// The rule over values keyed by step, as the ask/tell protocol reports
    /// them (steps are integers ≥ 0, need not be consecutive): at `step` ≥
    /// `start_step`, once `min_trials_required` completed trials have reported
    /// something up to `step`, the running trial stops when its best value up
    /// to `step` is strictly worse than the median of the completed trials'
    /// averages of their values up to `step`. Non-finite values are skipped.
    /// O(T · S + T log T) for T completed trials of S reports each.
    ///
    /// ```
    /// use kf_tune::Direction;
    /// use kf_tune::early_stopping::MedianStop;
    ///
    /// let rule = MedianStop { min_trials_required: 2, start_step: 2 };
    /// let done: [&[(u64, f64)]; 2] = [&[(0, 1.0), (2, 0.5)], &[(1, 0.8), (5, 0.2)]];
    /// // At step 2 the averages are 0.75 and 0.8 (median 0.775); loss is minimised.
    /// assert!(rule.should_stop_at(Direction::Minimize, 2, &[(2, 0.9)], &done));
    /// assert!(!rule.should_stop_at(Direction::Minimize, 2, &[(0, 0.7), (2, 0.9)], &done));
    /// assert!(!rule.should_stop_at(Direction::Minimize, 1, &[(1, 5.0)], &done)); // before start_step
    /// ```
    pub fn should_stop_at(
        &self,
        direction: Direction,
        step: u64,
        running: &[(u64, f64)],
        completed: &[&[(u64, f64)]],
    ) -> bool {
        if step < self.start_step as u64 {
            return false;
        }
        let mut averages: Vec<f64> = completed
            .iter()
            .filter_map(|values| {
                let (sum, n) = values
                    .iter()
                    .filter(|(s, v)| *s <= step && v.is_finite())
                    .fold((0.0, 0usize), |(sum, n), (_, v)| (sum + v, n + 1));
                (n > 0).then(|| direction.loss(sum / n as f64))
            })
            .collect();
        if averages.len() < self.min_trials_required.max(1) {
            return false;
        }
        averages.sort_by(f64::total_cmp);
        let mid = averages.len() / 2;
        let median = if averages.len() % 2 == 1 { averages[mid] } else { 0.5 * (averages[mid - 1] + averages[mid]) };
        let best = running
            .iter()
            .filter(|(s, v)| *s <= step && v.is_finite())
            .map(|&(_, v)| direction.loss(v))
            .fold(f64::INFINITY, f64::min);
        best > median
    }
}

/// Successive-halving pruning on intermediate values (ASHA's early stopper).
///
/// ```
/// use kf_tune::Direction;
/// use kf_tune::early_stopping::SuccessiveHalving;
///
/// // Rungs at steps 1, 3, 9, …
/// let rule = SuccessiveHalving { min_resource: 1, reduction_factor: 3, min_early_stopping_rate: 0 };
/// let others: [&[(u64, f64)]; 5] =
///     [&[(1, 0.2)], &[(1, 0.4)], &[(1, 0.5)], &[(1, 0.6)], &[(1, 0.7)]];
/// // Six trials at rung step 1: the best ⌊6/3⌋ = 2 go on.
/// assert!(!rule.should_prune(Direction::Minimize, &[(1, 0.3)], &others));
/// assert!(rule.should_prune(Direction::Minimize, &[(1, 0.45)], &others));
/// // Between rungs nothing is decided.
/// assert!(!rule.should_prune(Direction::Minimize, &[(1, 0.3), (2, 0.9)], &others));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuccessiveHalving {
    /// r: the step of the first rung (≥ 1, default 1).
    pub min_resource: u64,
    /// η: the rung spacing and the fraction kept (≥ 2, default 3).
    pub reduction_factor: u64,
    /// s: rungs start at r·η^s (default 0).
    pub min_early_stopping_rate: u32,
}

impl Default for SuccessiveHalving {
    fn default() -> Self {
        SuccessiveHalving { min_resource: 1, reduction_factor: 3, min_early_stopping_rate: 0 }
    }
}

impl SuccessiveHalving {
    /// The rule with settings applied (`min_resource`, `reduction_factor`,
    /// `min_early_stopping_rate`); unknown settings and out-of-range values are
    /// rejected with the setting's name.
    pub fn from_settings(settings: &[(&str, &str)]) -> Result<Self> {
        let mut rule = SuccessiveHalving::default();
        for &(name, value) in settings {
            let fail =
                |message: String| Error::InvalidSetting { algorithm: "asha".into(), setting: name.into(), message };
            let parsed = |min: u64| {
                value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&v| v >= min)
                    .ok_or_else(|| fail(format!("expected an integer ≥ {min}, found {value:?}")))
            };
            match name {
                "min_resource" => rule.min_resource = parsed(1)?,
                "reduction_factor" => rule.reduction_factor = parsed(2)?,
                "min_early_stopping_rate" => {
                    rule.min_early_stopping_rate = u32::try_from(parsed(0)?.min(63)).unwrap_or(63);
                }
                _ => {
                    return Err(fail(
                        "unknown setting; asha pruning takes min_resource, reduction_factor and min_early_stopping_rate"
                            .into(),
                    ));
                }
            }
        }
        Ok(rule)
    }

    /// The rung steps up to `step`, ascending. O(log step).
    fn rungs_up_to(&self, step: u64) -> Vec<u64> {
        let eta = self.reduction_factor.max(2);
        let mut rung = self.min_resource.max(1).saturating_mul(eta.saturating_pow(self.min_early_stopping_rate));
        let mut out = Vec::new();
        while rung <= step {
            out.push(rung);
            match rung.checked_mul(eta) {
                Some(next) => rung = next,
                None => break,
            }
        }
        out
    }

    /// Whether the trial whose reports so far are `running` (steps ascending,
    /// the last one just reported) should stop, given the reports of every
    /// other trial (`others`: running, completed or pruned). A decision is
    /// made only at the report that first reaches a rung; a trial's value at
    /// a rung is its value at the first step at or after it. Non-finite
    /// values count as the worst. O(T · S) for T other trials of S reports.
    pub fn should_prune(&self, direction: Direction, running: &[(u64, f64)], others: &[&[(u64, f64)]]) -> bool {
        let Some(&(step, _)) = running.last() else {
            return false;
        };
        let previous = running.len().checked_sub(2).map(|i| running[i].0);
        let Some(&rung) = self.rungs_up_to(step).iter().rev().find(|&&r| previous.is_none_or(|p| p < r)) else {
            return false;
        };
        let at_rung = |reports: &[(u64, f64)]| {
            reports.iter().filter(|(s, _)| *s >= rung).min_by_key(|(s, _)| *s).map(|&(_, v)| {
                let loss = direction.loss(v);
                if loss.is_nan() { f64::INFINITY } else { loss }
            })
        };
        let Some(mine) = at_rung(running) else {
            return false;
        };
        let competitors: Vec<f64> = others.iter().filter_map(|r| at_rung(r)).collect();
        let m = competitors.len() + 1;
        let keep = (m / self.reduction_factor.max(2) as usize).max(1);
        let better = competitors.iter().filter(|&&v| v < mine).count();
        better >= keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn waits_for_enough_completed_trials() {
        let rule = MedianStop { min_trials_required: 3, start_step: 1 };
        let two: [&[f64]; 2] = [&[1.0], &[1.0]];
        assert!(!rule.should_stop(Direction::Minimize, &[9.0], &two));
        let three: [&[f64]; 3] = [&[1.0], &[1.0], &[1.0]];
        assert!(rule.should_stop(Direction::Minimize, &[9.0], &three));
    }

    #[test]
    fn settings_are_applied_or_rejected() {
        let rule = MedianStop::from_settings(&[("min_trials_required", "1"), ("start_step", "2")]).unwrap();
        assert_eq!(rule, MedianStop { min_trials_required: 1, start_step: 2 });
        let err = MedianStop::from_settings(&[("start_step", "0")]).unwrap_err().to_string();
        assert!(err.contains("\"start_step\"") && err.contains("≥ 1"), "{err}");
        let err = MedianStop::from_settings(&[("patience", "3")]).unwrap_err().to_string();
        assert!(err.contains("unknown setting"), "{err}");
    }

    #[test]
    fn halving_settings_are_applied_or_rejected() {
        let rule = SuccessiveHalving::from_settings(&[("min_resource", "2"), ("reduction_factor", "4")]).unwrap();
        assert_eq!(rule.rungs_up_to(40), [2, 8, 32]);
        let err = SuccessiveHalving::from_settings(&[("reduction_factor", "1")]).unwrap_err().to_string();
        assert!(err.contains("\"reduction_factor\"") && err.contains("≥ 2"), "{err}");
        assert!(SuccessiveHalving::from_settings(&[("eta", "3")]).is_err());
    }

    #[test]
    fn halving_keeps_a_third_at_each_rung() {
        let rule = SuccessiveHalving::default();
        // Nine trials reached step 3 with losses 0..9; the step-3 rung keeps 3 of 10.
        let others: Vec<Vec<(u64, f64)>> = (0..9).map(|i| vec![(1, 0.0), (3, f64::from(i))]).collect();
        let refs: Vec<&[(u64, f64)]> = others.iter().map(Vec::as_slice).collect();
        assert!(!rule.should_prune(Direction::Minimize, &[(1, 0.0), (3, 1.5)], &refs));
        assert!(rule.should_prune(Direction::Minimize, &[(1, 0.0), (3, 2.5)], &refs));
        assert!(!rule.should_prune(Direction::Maximize, &[(1, 0.0), (3, 6.5)], &refs));
        assert!(rule.should_prune(Direction::Maximize, &[(1, 0.0), (3, 5.5)], &refs));
    }

    proptest! {
        /// A trial whose every value is at least as good as any other trial's
        /// is never pruned by successive halving, at any report.
        #[test]
        fn halving_never_prunes_the_best_trial(
            others in proptest::collection::vec(proptest::collection::btree_map(0u64..30, -10.0..10.0f64, 1..8), 0..10),
            steps in proptest::collection::btree_set(0u64..30, 1..8),
            best in -20.0..-10.0f64,
            maximize in any::<bool>(),
            min_resource in 1u64..4,
            reduction_factor in 2u64..5,
            rate in 0u32..3,
        ) {
            let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
            let sign = if maximize { -1.0 } else { 1.0 };
            let others: Vec<Vec<(u64, f64)>> =
                others.into_iter().map(|m| m.into_iter().map(|(s, v)| (s, v * sign)).collect()).collect();
            let refs: Vec<&[(u64, f64)]> = others.iter().map(Vec::as_slice).collect();
            let rule = SuccessiveHalving { min_resource, reduction_factor, min_early_stopping_rate: rate };
            let running: Vec<(u64, f64)> = steps.into_iter().map(|s| (s, best * sign)).collect();
            for k in 1..=running.len() {
                prop_assert!(!rule.should_prune(direction, &running[..k], &refs));
            }
        }

        /// A trial at least as good as every value any completed trial reported is never stopped.
        #[test]
        fn never_stops_the_best_trial(
            completed in proptest::collection::vec(proptest::collection::vec(-10.0..10.0f64, 1..8), 0..8),
            running in proptest::collection::vec(-10.0..10.0f64, 1..8),
            maximize in any::<bool>(),
            min_trials in 1usize..4,
            start_step in 1usize..4,
        ) {
            let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
            let best_seen = completed.iter().flatten().map(|&v| direction.loss(v)).fold(f64::INFINITY, f64::min);
            let mut running = running;
            // Make the running trial's best at least as good as anything seen.
            if let Some(first) = running.first_mut() {
                let loss = best_seen.min(direction.loss(*first));
                *first = if maximize { -loss } else { loss };
            }
            let refs: Vec<&[f64]> = completed.iter().map(Vec::as_slice).collect();
            let rule = MedianStop { min_trials_required: min_trials, start_step };
            prop_assert!(!rule.should_stop(direction, &running, &refs));
        }

        /// Keyed by step: a trial whose best value is at least as good as every
        /// value a completed trial reported is never stopped, at any step.
        #[test]
        fn never_stops_the_best_trial_at_any_step(
            completed in proptest::collection::vec(proptest::collection::btree_map(0u64..10, -10.0..10.0f64, 1..6), 0..8),
            running in proptest::collection::btree_map(0u64..10, -10.0..10.0f64, 1..6),
            maximize in any::<bool>(),
            min_trials in 1usize..4,
            start_step in 0usize..4,
            step in 0u64..12,
        ) {
            let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
            let completed: Vec<Vec<(u64, f64)>> = completed.into_iter().map(|m| m.into_iter().collect()).collect();
            let best_seen = completed.iter().flatten().map(|&(_, v)| direction.loss(v)).fold(f64::INFINITY, f64::min);
            let mut running: Vec<(u64, f64)> = running.into_iter().collect();
            running[0].0 = 0;
            let loss = best_seen.min(direction.loss(running[0].1));
            running[0].1 = if maximize { -loss } else { loss };
            let refs: Vec<&[(u64, f64)]> = completed.iter().map(Vec::as_slice).collect();
            let rule = MedianStop { min_trials_required: min_trials, start_step };
            prop_assert!(!rule.should_stop_at(direction, step, &running, &refs));
        }
    }
}
