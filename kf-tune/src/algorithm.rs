//! From an algorithm name and its settings (Katib's `algorithmName` and
//! `algorithmSettings`) to a configured [`Sampler`].
//!
//! Every setting is applied or rejected with an error naming it, never
//! silently ignored: `random_state` becomes the seed the caller feeds its
//! generator (and Sobol's scramble), TPE's settings configure [`Tpe`]. Katib
//! algorithms kf-tune does not implement yet are reported as such, distinct from
//! names that are not algorithms at all. This module only builds samplers.

use crate::katib::{ALGORITHM_NAMES, AlgorithmSpec};
use crate::sampler::Sampler;
use crate::sampler::asha::Asha;
use crate::sampler::cmaes::CmaEs;
use crate::sampler::gp::GaussianProcess;
use crate::sampler::grid::Grid;
use crate::sampler::hyperband::Hyperband;
use crate::sampler::mtpe::MultivariateTpe;
use crate::sampler::nsga2::Nsga2;
use crate::sampler::pbt::Pbt;
use crate::sampler::random::Random;
use crate::sampler::sobol::Sobol;
use crate::sampler::tpe::Tpe;
use crate::{Error, Result};

/// The algorithm names kf-tune can run today.
pub const IMPLEMENTED: [&str; 11] = [
    "random",
    "grid",
    "sobol",
    "tpe",
    "multivariate-tpe",
    "bayesianoptimization",
    "cmaes",
    "hyperband",
    "asha",
    "nsga2",
    "pbt",
];

/// A configured sampler and the seed its settings asked for.
pub struct Algorithm {
    /// The sampler.
    pub sampler: Box<dyn Sampler + Send + Sync>,
    /// `random_state`, if given: seed the generator passed to the sampler with it.
    pub seed: Option<u64>,
    /// PBT's `suggestion_trial_dir`: trial `id`'s checkpoint lives at `<dir>/<id>`.
    pub checkpoint_dir: Option<String>,
}

impl std::fmt::Debug for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Algorithm").field("sampler", &self.sampler.name()).field("seed", &self.seed).finish()
    }
}

impl Algorithm {
    /// Builds the algorithm `name` with `settings` (name, value) pairs. O(settings).
    ///
    /// ```
    /// use kf_tune::algorithm::Algorithm;
    ///
    /// let tpe = Algorithm::new("tpe", &[("n_startup_trials", "5"), ("random_state", "42")])?;
    /// assert_eq!((tpe.sampler.name(), tpe.seed), ("tpe", Some(42)));
    /// let err = Algorithm::new("tpe", &[("n_startup", "5")]).unwrap_err();
    /// assert!(err.to_string().contains("\"n_startup\""));
    /// assert!(Algorithm::new("simulated-annealing", &[]).is_err());
    /// # Ok::<(), kf_tune::Error>(())
    /// ```
    pub fn new(name: &str, settings: &[(&str, &str)]) -> Result<Self> {
        if !IMPLEMENTED.contains(&name) {
            if ALGORITHM_NAMES.contains(&name) {
                return Err(Error::Unsupported {
                    algorithm: name.into(),
                    message: format!(
                        "is a Katib algorithm kf-tune does not run yet; available: {}",
                        IMPLEMENTED.join(", ")
                    ),
                });
            }
            return Err(Error::UnknownAlgorithm { name: name.into(), known: IMPLEMENTED.join(", ") });
        }
        let mut seed = None;
        let mut tpe = Tpe::default();
        let mut gp = GaussianProcess::default();
        let mut cmaes = CmaEs::default();
        let mut hyperband = Hyperband::default();
        let mut nsga2 = Nsga2::default();
        let mut pbt = Pbt::default();
        for &(key, value) in settings {
            let fail = |message: String| Error::InvalidSetting { algorithm: name.into(), setting: key.into(), message };
            let int =
                || value.trim().parse::<u64>().map_err(|_| fail(format!("expected an integer ≥ 0, found {value:?}")));
            match (name, key) {
                ("grid", _) => return Err(fail("grid search is deterministic and takes no settings".into())),
                (_, "random_state") => seed = Some(int()?),
                ("tpe" | "multivariate-tpe", "n_startup_trials") => {
                    tpe.n_startup_trials = usize::try_from(int()?).unwrap_or(usize::MAX);
                }
                ("tpe" | "multivariate-tpe", "n_ei_candidates") => {
                    tpe.n_ei_candidates = usize::try_from(int()?).unwrap_or(usize::MAX);
                }
                ("tpe" | "multivariate-tpe", "prior_weight") => {
                    tpe.prior_weight =
                        value.trim().parse().map_err(|_| fail(format!("expected a number, found {value:?}")))?;
                }
                ("tpe" | "multivariate-tpe", "constant_liar") => {
                    tpe.constant_liar =
                        value.trim().parse().map_err(|_| fail(format!("expected true or false, found {value:?}")))?;
                }
                ("bayesianoptimization", "n_startup_trials" | "n_initial_points") => {
                    gp.n_startup_trials = usize::try_from(int()?).unwrap_or(usize::MAX);
                }
                ("bayesianoptimization", "n_candidates") => {
                    gp.n_candidates = usize::try_from(int()?).unwrap_or(usize::MAX)
                }
                ("bayesianoptimization", "base_estimator") if value.trim() != "GP" => {
                    return Err(fail(format!(
                        "kf-tune models the objective with a Gaussian process (GP), found {value:?}"
                    )));
                }
                ("bayesianoptimization", "acq_func") if value.trim() != "EI" => {
                    return Err(fail(format!("kf-tune maximises expected improvement (EI), found {value:?}")));
                }
                ("bayesianoptimization", "base_estimator" | "acq_func") => {}
                ("hyperband" | "asha", "resource_name") => {
                    if value.trim().is_empty() {
                        return Err(fail(
                            "expected the name of an int or double parameter, found an empty value".into(),
                        ));
                    }
                    hyperband.resource_name = Some(value.trim().to_owned());
                }
                ("hyperband" | "asha", "eta") => {
                    hyperband.eta =
                        value.trim().parse().map_err(|_| fail(format!("expected a number > 1, found {value:?}")))?;
                }
                ("hyperband" | "asha", "r_l") => {
                    hyperband.r_l = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| fail(format!("expected a positive number, found {value:?}")))?,
                    );
                }
                ("hyperband", "s_max" | "b_l" | "current_s" | "current_i" | "n" | "r" | "evaluating_trials") => {
                    return Err(fail(
                        "is bookkeeping Katib's hyperband service writes back; kf-tune derives it from the trial history"
                            .into(),
                    ));
                }
                ("nsga2", "population_size") => nsga2.population_size = usize::try_from(int()?).unwrap_or(usize::MAX),
                ("nsga2", "crossover_prob" | "mutation_prob" | "crossover_eta" | "mutation_eta") => {
                    let v: f64 =
                        value.trim().parse().map_err(|_| fail(format!("expected a number, found {value:?}")))?;
                    match key {
                        "crossover_prob" => nsga2.crossover_prob = v,
                        "mutation_prob" => nsga2.mutation_prob = Some(v),
                        "crossover_eta" => nsga2.crossover_eta = v,
                        _ => nsga2.mutation_eta = v,
                    }
                }
                ("pbt", "n_population") => pbt.n_population = usize::try_from(int()?).unwrap_or(usize::MAX),
                ("pbt", "truncation_threshold" | "resample_probability") => {
                    let v: f64 =
                        value.trim().parse().map_err(|_| fail(format!("expected a number, found {value:?}")))?;
                    if key == "truncation_threshold" {
                        pbt.truncation_threshold = v;
                    } else {
                        pbt.resample_probability = v;
                    }
                }
                ("pbt", "suggestion_trial_dir") => {
                    if value.trim().is_empty() {
                        return Err(fail("expected a directory, found an empty value".into()));
                    }
                    pbt.suggestion_trial_dir = Some(value.trim().to_owned());
                }
                ("cmaes", "sigma") => {
                    cmaes.sigma =
                        value.trim().parse().map_err(|_| fail(format!("expected a number, found {value:?}")))?;
                }
                ("cmaes", "popsize") => cmaes.popsize = Some(usize::try_from(int()?).unwrap_or(usize::MAX)),
                ("cmaes", "restart_strategy") => {
                    cmaes.restart = match value.trim() {
                        "ipop" => true,
                        "none" | "" => false,
                        other => return Err(fail(format!("expected ipop or none, found {other:?}"))),
                    };
                }
                _ => {
                    let known = match name {
                        "tpe" | "multivariate-tpe" => {
                            "random_state, n_startup_trials, n_ei_candidates, prior_weight, constant_liar"
                        }
                        "bayesianoptimization" => {
                            "random_state, n_startup_trials (or n_initial_points), n_candidates, base_estimator=GP, acq_func=EI"
                        }
                        "cmaes" => "random_state, sigma, popsize, restart_strategy (ipop or none)",
                        "hyperband" | "asha" => "random_state, resource_name, eta, r_l",
                        "pbt" => {
                            "random_state, n_population, truncation_threshold, resample_probability, suggestion_trial_dir"
                        }
                        "nsga2" => {
                            "random_state, population_size, crossover_prob, mutation_prob, crossover_eta, mutation_eta"
                        }
                        _ => "random_state",
                    };
                    return Err(fail(format!("unknown setting; {name} takes {known}")));
                }
            }
        }
        let sampler: Box<dyn Sampler + Send + Sync> = match name {
            "random" => Box::new(Random),
            "grid" => Box::new(Grid),
            "sobol" => Box::new(Sobol { scramble_seed: seed }),
            "cmaes" => {
                cmaes.validate()?;
                Box::new(cmaes)
            }
            "pbt" => {
                pbt.validate()?;
                Box::new(pbt.clone())
            }
            "nsga2" => {
                nsga2.validate()?;
                Box::new(nsga2)
            }
            "hyperband" => {
                hyperband.validate()?;
                Box::new(hyperband)
            }
            "asha" => {
                let asha = Asha { resource_name: hyperband.resource_name, eta: hyperband.eta, r_l: hyperband.r_l };
                asha.validate()?;
                Box::new(asha)
            }
            "bayesianoptimization" => {
                gp.validate()?;
                Box::new(gp)
            }
            "multivariate-tpe" => {
                let m = MultivariateTpe {
                    n_startup_trials: tpe.n_startup_trials,
                    n_ei_candidates: tpe.n_ei_candidates,
                    prior_weight: tpe.prior_weight,
                    constant_liar: tpe.constant_liar,
                };
                m.validate()?;
                Box::new(m)
            }
            _ => {
                tpe.validate()?;
                Box::new(tpe)
            }
        };
        Ok(Algorithm { sampler, seed, checkpoint_dir: pbt.suggestion_trial_dir })
    }

    /// Builds the algorithm a Katib `spec.algorithm` names; settings without a
    /// value count as empty strings (and are rejected where a value is needed).
    /// A Katib trial only learns its budget through a parameter, so
    /// `hyperband` needs `resource_name` here (as Katib's own service does).
    pub fn from_katib(spec: &AlgorithmSpec) -> Result<Self> {
        let name = spec.algorithm_name.as_deref().unwrap_or_default();
        let settings: Vec<(String, String)> = spec
            .algorithm_settings
            .iter()
            .flatten()
            .map(|s| (s.name.clone().unwrap_or_default(), s.value.as_ref().map(|v| v.text()).unwrap_or_default()))
            .collect();
        if name == "hyperband" && !settings.iter().any(|(k, _)| k == "resource_name") {
            return Err(Error::InvalidSetting {
                algorithm: name.into(),
                setting: "resource_name".into(),
                message: "a Katib experiment must name the int or double parameter that carries each trial's budget"
                    .into(),
            });
        }
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Self::new(name, &pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, settings: &[(&str, &str)]) -> String {
        Algorithm::new(name, settings).unwrap_err().to_string()
    }

    #[test]
    fn settings_are_applied_or_rejected() {
        assert_eq!(Algorithm::new("random", &[("random_state", "7")]).unwrap().seed, Some(7));
        assert!(err("random", &[("random_state", "x")]).contains("expected an integer"));
        assert!(err("random", &[("n_startup_trials", "3")]).contains("unknown setting; random takes random_state"));
        assert!(err("grid", &[("random_state", "1")]).contains("takes no settings"));
        assert!(err("tpe", &[("n_ei_candidates", "0")]).contains("n_ei_candidates"));
        assert!(err("tpe", &[("constant_liar", "maybe")]).contains("true or false"));
    }

    #[test]
    fn katib_hyperband_needs_a_resource_parameter() {
        let spec: AlgorithmSpec = serde_json::from_value(serde_json::json!({"algorithmName": "hyperband"})).unwrap();
        let err = Algorithm::from_katib(&spec).unwrap_err().to_string();
        assert!(err.contains("\"resource_name\""), "{err}");
        let spec: AlgorithmSpec = serde_json::from_value(serde_json::json!({"algorithmName": "hyperband",
            "algorithmSettings": [{"name": "resource_name", "value": "epochs"}]}))
        .unwrap();
        assert!(Algorithm::from_katib(&spec).is_ok());
    }

    #[test]
    fn unimplemented_and_unknown_names_differ() {
        assert!(err("enas", &[]).contains("does not run yet"));
        assert!(err("pbt", &[("truncation_threshold", "1.5")]).contains("\"truncation_threshold\""));
        let pbt = Algorithm::new("pbt", &[("n_population", "8"), ("suggestion_trial_dir", "/ckpt")]).unwrap();
        assert_eq!(pbt.checkpoint_dir.as_deref(), Some("/ckpt"));
        assert!(err("hyperband", &[("current_s", "2")]).contains("derives it from the trial history"));
        assert!(err("asha", &[("eta", "x")]).contains("\"eta\""));
        assert!(err("hyperband", &[("eta", "1")]).contains("> 1"));
        assert!(err("nsga2", &[("mutation_prob", "2")]).contains("\"mutation_prob\""));
        assert!(Algorithm::new("nsga2", &[("population_size", "20"), ("crossover_prob", "0.8")]).is_ok());
        assert!(Algorithm::new("hyperband", &[("resource_name", "epochs"), ("eta", "3"), ("r_l", "27")]).is_ok());
        assert!(err("bayesianoptimization", &[("acq_func", "gp_hedge")]).contains("expected improvement"));
        assert!(Algorithm::new("bayesianoptimization", &[("n_initial_points", "5"), ("base_estimator", "GP")]).is_ok());
        assert!(err("annealing", &[]).starts_with("unknown algorithm \"annealing\""));
    }
}
