//! Step 4: a Katib Experiment whose trial template is the training step's
//! TrainJob — TPE over the learning rate, 20 trials, 3 at a time, with the
//! median stopping rule reading the trainer's `val_loss` as it prints it.
//! kf-tune runs the experiment; each trial is a kf-train local TrainJob on
//! the pipeline's dataset, and an early stop cancels that TrainJob.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use kf_train::TrainJob;
use kf_train::local::Reason;
use kf_tune::Experiment;
use kf_tune::experiment::{Event, ExperimentState, Plan, TrialPhase, fill_trial_template};
use kf_tune::metrics::{MetricsCollector, TextMetrics};
use kf_tune::runner::{Journal, MetricsSink, TrialRun, TrialRunner};
use serde_json::{Value, json};

use super::Step;
use super::dataset::Dataset;
use super::tenant::PROFILE;
use super::training::Trainer;

const NAME: &str = "tuning: a 20-trial TPE experiment with early stopping";
const OBJECTIVE: &str = "val_loss";

/// The best trial of the experiment.
pub struct Tuned {
    /// Experiment name.
    pub experiment: String,
    /// Trials run.
    pub trials: usize,
    /// Trials the median rule stopped.
    pub early_stopped: usize,
    /// The best trial's name.
    pub best_trial: String,
    /// Its objective value.
    pub best_value: f64,
    /// Its parameters: (name, value text).
    pub best_params: Vec<(String, String)>,
    /// The model it wrote.
    pub model: PathBuf,
}

pub async fn tuning_step(dir: &Path, trainer: Arc<Trainer>, dataset: &Dataset, version: u32) -> (Step, Option<Tuned>) {
    let started = Instant::now();
    match tune(dir, trainer, dataset, version).await {
        Ok(t) => {
            let params: Vec<String> = t.best_params.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let detail = format!(
                "Experiment {} ran {} trials (3 at a time, {} stopped early by medianstop) in {:.1} s; best {} with {} \
                 ({OBJECTIVE}={:.4})",
                t.experiment,
                t.trials,
                t.early_stopped,
                started.elapsed().as_secs_f64(),
                t.best_trial,
                params.join(" "),
                t.best_value
            );
            (Step { name: NAME, status: "done", detail }, Some(t))
        }
        Err(err) => (Step { name: NAME, status: "failed", detail: format!("{err:#}") }, None),
    }
}

async fn tune(dir: &Path, trainer: Arc<Trainer>, dataset: &Dataset, version: u32) -> anyhow::Result<Tuned> {
    let name = format!("quickstart-lr-v{version}");
    // Laid out as `kf server`'s tuning API keeps experiments, so it shows this one.
    let root = std::path::absolute(dir.join("tuning").join(PROFILE).join("experiments").join(&name))?;
    std::fs::create_dir_all(&root)?;
    let data = root.join("data");
    dataset.write_for_trainer(&data)?;
    let trial_spec = trainer.manifest(
        "${trialParameters.trialName}",
        &data,
        "${trialParameters.learningRate}",
        &root.join("${trialParameters.trialName}").join("model.onnx"),
    );
    let experiment = Experiment::from_value(json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": name, "namespace": PROFILE},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": OBJECTIVE, "additionalMetricNames": ["val_accuracy"]},
            "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "n_startup_trials", "value": "6"}]},
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "4"}, {"name": "start_step", "value": "2"}]},
            "parallelTrialCount": 3,
            "maxTrialCount": 20,
            "maxFailedTrialCount": 3,
            "parameters": [{"name": "lr", "parameterType": "double",
                            "feasibleSpace": {"min": "0.01", "max": "8", "distribution": "logUniform"}}],
            "trialTemplate": {
                "primaryContainerName": "node",
                "trialParameters": [
                    {"name": "learningRate", "reference": "lr"},
                    {"name": "trialName", "reference": "${trialSpec.Name}"},
                ],
                "trialSpec": trial_spec,
            },
        },
    }))?;
    experiment.validate()?;
    std::fs::write(root.join("experiment.yaml"), serde_saphyr::to_string(&experiment.to_value())?)?;
    let spec = experiment.to_value()["spec"]["trialTemplate"]["trialSpec"].clone();
    let plan = Plan::from_katib(&experiment)?;
    let (mut journal, past) = Journal::open(&root.join("journal.jsonl"))?;
    let mut state = ExperimentState::new(plan);
    kf_tune::runner::replay(&mut state, past)?;
    let runner = Arc::new(TrainJobTrials { trainer, spec, root: root.clone() });
    let progress = |state: &ExperimentState, event: &Event| {
        if let Event::Finished { index, end, .. } = event
            && let Some(trial) = state.trials().get(*index)
        {
            let value = trial.objective.map_or("-".to_string(), |v| format!("{v:.4}"));
            eprintln!("  [tune] {} {end}: {OBJECTIVE}={value}", trial.name);
        }
    };
    let state = kf_tune::runner::run(state, runner, Some(&mut journal), 42, progress).await?;

    let trials = state.trials().len();
    let early_stopped = state.trials().iter().filter(|t| t.phase == TrialPhase::EarlyStopped).count();
    // The best trial that ran to its end: an early-stopped one may look good
    // on its last report but never wrote its model.
    let best = state
        .trials()
        .iter()
        .filter(|t| t.phase == TrialPhase::Succeeded && t.objective.is_some_and(f64::is_finite))
        .min_by(|a, b| a.objective.unwrap_or(f64::INFINITY).total_cmp(&b.objective.unwrap_or(f64::INFINITY)))
        .ok_or_else(|| {
            anyhow::anyhow!("no trial finished with a finite {OBJECTIVE}; see the logs under {}", root.display())
        })?;
    Ok(Tuned {
        experiment: name,
        trials,
        early_stopped,
        best_trial: best.name.clone(),
        best_value: best.objective.unwrap_or(f64::NAN),
        best_params: state.plan().space.format(&best.assignment),
        model: root.join(&best.name).join("model.onnx"),
    })
}

/// Runs each trial as the TrainJob of the trial template, on kf-train's
/// local backend; rank 0's `name=value` lines are the trial's metrics.
struct TrainJobTrials {
    trainer: Arc<Trainer>,
    /// The trial template's TrainJob, with `${trialParameters.…}` placeholders.
    spec: Value,
    root: PathBuf,
}

#[async_trait::async_trait]
impl TrialRunner for TrainJobTrials {
    async fn run(&self, trial: &TrialRun, metrics: &MetricsSink) -> Result<(), String> {
        let manifest = fill_trial_template(&self.spec, &trial.trial_parameters)?;
        let job = TrainJob::from_value(manifest).map_err(|e| e.to_string())?;
        let workspace = self.root.join(&trial.name);
        // Katib's default StdOut collector reads the trainer's lines.
        let collector = TextMetrics::katib_default();
        let report = |line: &str| {
            for (name, value) in collector.collect(line) {
                metrics.report(&name, value);
            }
        };
        let run =
            self.trainer.run(&job, &workspace, report, None, metrics.stopped()).await.map_err(|e| format!("{e:#}"))?;
        match run.outcome.reason {
            Reason::AllJobsCompleted => Ok(()),
            Reason::Cancelled if metrics.stop_requested() => Ok(()),
            _ => Err(format!("{}: {}", run.outcome.reason.as_str(), run.outcome.message)),
        }
    }
}
