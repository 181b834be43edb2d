//! kf-tune inside your own binary: a Katib-style TPE experiment whose trials
//! are a Rust closure, with median early stopping, then one ask/tell exchange
//! for when your own code runs the trials.
//!
//! Run with `cargo run -p kf-tune --example embed`. The guide that walks
//! through it is docs/guides/kf-tune.md.

use std::sync::Arc;

use kf_tune::Experiment;
use kf_tune::ask_tell::{Session, SpaceFile};
use kf_tune::experiment::{Event, ExperimentState, Plan, TrialPhase};
use kf_tune::runner::{self, FnRunner, MetricsSink, TrialRun};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: experiment
    // The experiment is a Katib Experiment (kubeflow.org/v1beta1), the same
    // document `kubectl apply` takes. The trial template is required by Katib;
    // with a closure as the runner its trialSpec is never started.
    let experiment = Experiment::from_value(json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment",
        "metadata": {"name": "embed"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "tpe", "algorithmSettings": [
                {"name": "n_startup_trials", "value": "5"}, {"name": "random_state", "value": "7"}]},
            "earlyStopping": {"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "3"}, {"name": "start_step", "value": "2"}]},
            "parallelTrialCount": 2,
            "maxTrialCount": 16,
            "parameters": [
                {"name": "lr", "parameterType": "double",
                 "feasibleSpace": {"min": "0.0001", "max": "1", "distribution": "logUniform"}},
                {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "8"}},
            ],
            "trialTemplate": {
                "trialParameters": [{"name": "learningRate", "reference": "lr"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job",
                              "spec": {"args": ["--lr=${trialParameters.learningRate}"]}},
            },
        },
    }))?;
    // Checks the document and turns it into the runner's plan; errors name the field.
    let plan = Plan::from_katib(&experiment)?;
    // guide: end

    // guide: objective
    // A trial is a closure: it reads its parameters (Katib's
    // parameterAssignments, as text) and reports the objective once per
    // "epoch". `report` returns true when the median rule stops the trial.
    let trials = Arc::new(FnRunner::new(|trial: &TrialRun, metrics: &MetricsSink| {
        let value = |name: &str| trial.parameters.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let lr: f64 = value("lr").ok_or("no lr")?.parse().map_err(|e| format!("lr: {e}"))?;
        let layers: f64 = value("layers").ok_or("no layers")?.parse().map_err(|e| format!("layers: {e}"))?;
        let best = (lr.log10() + 2.0).powi(2) + 0.1 * (layers - 5.0).powi(2);
        for epoch in 1..=5 {
            if metrics.report("loss", best + 1.0 / f64::from(epoch)) {
                break; // stopped early: what was reported so far counts
            }
        }
        Ok(())
    }));
    // guide: end

    // guide: run
    // `run` drives the experiment on tokio: it asks TPE for as many trials as
    // there are free slots, runs them, and calls back after every event.
    // Passing a `Journal` instead of `None` makes the run resumable.
    let progress = |state: &ExperimentState, event: &Event| {
        if let Event::Finished { index, end, .. } = event
            && let Some(trial) = state.trials().get(*index)
        {
            let loss = trial.objective.map_or("-".into(), |v| format!("{v:.4}"));
            println!("{:<9} {end:<12} loss={loss}", trial.name);
        }
    };
    let state = runner::block_on(runner::run(ExperimentState::new(plan), trials, None, 7, progress))??;
    // guide: end

    // guide: result
    let stopped = state.trials().iter().filter(|t| t.phase == TrialPhase::EarlyStopped).count();
    println!("ended: {:?} after {} trials, {stopped} stopped early", state.end(), state.trials().len());
    if let Some((_, best)) = state.best() {
        let params = state.plan().space.format(&best.assignment);
        println!("best: {} {params:?} loss={:.4}", best.name, best.objective.unwrap_or(f64::NAN));
    }
    // The Katib status block, as the Experiment's .status would show it.
    let status = serde_json::to_value(state.status(None, None))?;
    println!("status.currentOptimalTrial.bestTrialName = {}", status["currentOptimalTrial"]["bestTrialName"]);
    // guide: end

    // guide: ask-tell
    // When your own scheduler runs the trials, drive a sampler with ask/tell
    // instead: a Session speaks the JSON-lines protocol one line at a time
    // (`kf_tune::ask_tell::serve` runs it over stdin/stdout).
    let space = SpaceFile::from_value(json!({
        "objective": {"type": "minimize"},
        "parameters": [{"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.0001", "max": "1"}}],
    }))?;
    let mut session = Session::new(space, "tpe", &[], 7)?;
    for request in [r#"{"op":"ask","n":1}"#, r#"{"op":"tell","id":"0","value":0.25}"#, r#"{"op":"best"}"#] {
        if let Some((reply, _flow)) = session.handle_line(request) {
            println!("> {request}\n< {reply}");
        }
    }
    // guide: end
    Ok(())
}
