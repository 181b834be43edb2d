//! Experiments run end to end: Katib documents, real trial processes, the
//! in-process runner, and a run killed mid-way that resumes from its journal.
#![cfg(feature = "runner")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kf_tune::Experiment;
use kf_tune::experiment::{EndReason, Event, ExperimentState, Plan, TrialPhase};
use kf_tune::runner::process::ProcessRunner;
use kf_tune::runner::{FnRunner, Journal, MetricsSink, TrialRun, replay, run};

/// A Katib Experiment (kubeflow.org/v1beta1) whose trial is a shell process
/// printing `loss=(x-0.3)^2 + (y-2)^2/100`; `log` gets one line per trial run.
fn experiment(algorithm: &str, max_trials: u32, log: &Path) -> Experiment {
    let yaml = format!(
        r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: quadratic
spec:
  objective:
    type: minimize
    goal: 0.00001
    objectiveMetricName: loss
  algorithm:
    algorithmName: {algorithm}
    algorithmSettings:
      - name: random_state
        value: "3"
  parallelTrialCount: 3
  maxTrialCount: {max_trials}
  maxFailedTrialCount: 3
  parameters:
    - name: x
      parameterType: double
      feasibleSpace: {{min: "0", max: "1"}}
    - name: units
      parameterType: int
      feasibleSpace: {{min: "-5", max: "5"}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: x
        reference: x
      - name: units
        reference: units
      - name: trialName
        reference: ${{trialSpec.Name}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: training-container
                image: not-used-locally
                command: ["sh", "-c"]
                args:
                  - >-
                    echo ${{trialParameters.trialName}} >> {log} &&
                    sleep 0.05 &&
                    awk 'BEGIN {{ x = ${{trialParameters.x}}; y = ${{trialParameters.units}};
                    printf "epoch=1 loss=%.12f\n", (x - 0.3)^2 + (y - 2)^2 / 100 + 1 }}' &&
                    awk 'BEGIN {{ x = ${{trialParameters.x}}; y = ${{trialParameters.units}};
                    printf "epoch=2 loss=%.12f\n", (x - 0.3)^2 + (y - 2)^2 / 100 }}'
            restartPolicy: Never
"#,
        log = log.display()
    );
    let value: serde_json::Value = serde_saphyr::from_str(&yaml).expect("YAML");
    Experiment::from_value(value).expect("an Experiment")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_katib_experiment_with_real_trial_processes_finds_a_good_value() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let exp = experiment("tpe", 30, &log);
    let plan = Plan::from_katib(&exp).unwrap();
    let runner = Arc::new(ProcessRunner::from_katib(&exp, &dir.path().join("trials")).unwrap());
    let (mut journal, events) = Journal::open(&dir.path().join("journal.jsonl")).unwrap();
    assert!(events.is_empty());
    let state = run(ExperimentState::new(plan), runner, Some(&mut journal), 3, |_, _| {}).await.unwrap();
    // Trials finish in whatever order the processes do, so the run is not
    // reproducible; it ends at the budget or, if it gets lucky, at the goal.
    let end = state.end();
    assert!(matches!(end, Some(EndReason::MaxTrialsReached | EndReason::GoalReached)), "{end:?}");
    let n = state.trials().len();
    assert!(n <= 30 && (end == Some(EndReason::GoalReached) || n == 30));
    let finished_well =
        |t: &&kf_tune::experiment::TrialRecord| matches!(t.phase, TrialPhase::Succeeded | TrialPhase::Killed);
    assert!(state.trials().iter().all(|t| finished_well(&t)), "{:?}", state.trials());
    let (_, best) = state.best().unwrap();
    // Random search over 30 trials has a median best around 0.01; TPE should do better.
    assert!(best.objective.unwrap() < 0.01, "best {:?}", best);
    // min strategy: the objective is the smaller of the two printed values.
    assert_eq!(best.metrics.get("loss").len(), 2);
    assert_eq!(lines(&log).len(), n);
    let status = serde_json::to_value(state.status(None, None)).unwrap();
    assert_eq!(status["trials"], n);
    assert_eq!(status["currentOptimalTrial"]["bestTrialName"], best.name.as_str());
    assert_eq!(status["currentOptimalTrial"]["parameterAssignments"][0]["name"], "x");
    assert_eq!(status["conditions"][2]["type"], "Succeeded");
}

#[tokio::test]
async fn a_killed_run_resumes_without_rerunning_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let journal_path = dir.path().join("journal.jsonl");
    let exp = experiment("random", 12, &log);
    let runner = Arc::new(ProcessRunner::from_katib(&exp, &dir.path().join("trials")).unwrap());

    // First run: killed (its future dropped, its processes killed) after 5 trials have finished.
    let (mut journal, _) = Journal::open(&journal_path).unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let kill = Arc::new(tokio::sync::Notify::new());
    let (f, k) = (finished.clone(), kill.clone());
    let first = run(
        ExperimentState::new(Plan::from_katib(&exp).unwrap()),
        runner.clone(),
        Some(&mut journal),
        3,
        move |_, e| {
            if matches!(e, Event::Finished { .. }) && f.fetch_add(1, Ordering::SeqCst) + 1 == 5 {
                k.notify_one();
            }
        },
    );
    tokio::select! {
        _ = first => panic!("the first run should have been killed"),
        () = kill.notified() => {}
    }
    drop(journal);

    // Resume: replay the journal, then run to the end.
    let (mut journal, events) = Journal::open(&journal_path).unwrap();
    let mut state = ExperimentState::new(Plan::from_katib(&exp).unwrap());
    replay(&mut state, events).unwrap();
    let done_before: Vec<String> =
        state.trials().iter().filter(|t| t.phase != TrialPhase::Running).map(|t| t.name.clone()).collect();
    assert!(done_before.len() >= 5, "{done_before:?}");
    let state = run(state, runner, Some(&mut journal), 3, |_, _| {}).await.unwrap();
    if state.end() != Some(EndReason::GoalReached) {
        assert_eq!(state.end(), Some(EndReason::MaxTrialsReached));
        assert_eq!(state.trials().len(), 12);
    }
    let runs = lines(&log);
    for name in &done_before {
        assert_eq!(runs.iter().filter(|r| *r == name).count(), 1, "{name} ran again: {runs:?}");
    }
    // The journal now replays to the same final state.
    let (_, events) = Journal::open(&journal_path).unwrap();
    let mut replayed = ExperimentState::new(Plan::from_katib(&exp).unwrap());
    replay(&mut replayed, events).unwrap();
    assert_eq!(replayed.trials(), state.trials());
}

#[tokio::test]
async fn a_torn_last_journal_line_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    std::fs::write(
        &path,
        "{\"event\":\"started\",\"index\":0,\"assignment\":[{\"float\":0.5},{\"int\":1}]}\n{\"event\":\"fini",
    )
    .unwrap();
    // A reader (a server showing a running experiment) sees the whole lines
    // and leaves the line being written alone.
    let before = std::fs::read(&path).unwrap();
    assert_eq!(Journal::read(&path).unwrap().len(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    let (mut journal, events) = Journal::open(&path).unwrap();
    assert_eq!(events.len(), 1);
    journal.append(&events[0]).unwrap();
    assert_eq!(Journal::open(&path).unwrap().1.len(), 2);
    std::fs::write(&path, "garbage\n{\"event\":\"started\",\"index\":0,\"assignment\":[]}\n").unwrap();
    assert!(Journal::open(&path).unwrap_err().to_string().contains(":1"));
}

#[tokio::test]
async fn crashing_and_silent_trials_fail_and_end_the_experiment() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment("random", 20, &dir.path().join("runs.log"));
    let plan = Plan::from_katib(&exp).unwrap(); // maxFailedTrialCount: 3
    let calls = AtomicUsize::new(0);
    let runner = Arc::new(FnRunner::new(move |trial: &TrialRun, metrics: &MetricsSink| {
        match calls.fetch_add(1, Ordering::SeqCst) % 3 {
            0 => Err(format!("{} crashed", trial.name)),
            1 => Ok(()), // printed no metric
            _ => {
                metrics.report("loss", f64::NAN);
                Ok(())
            }
        }
    }));
    let state = run(ExperimentState::new(plan), runner, None, 1, |_, _| {}).await.unwrap();
    assert_eq!(state.end(), Some(EndReason::MaxFailedTrialsReached));
    let messages: Vec<&str> = state.trials().iter().filter_map(|t| t.message.as_deref()).collect();
    assert!(messages.iter().any(|m| m.contains("crashed")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("no value for metric \"loss\"")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("NaN")), "{messages:?}");
    assert!(state.best().is_none());
    assert!(state.history().completed().next().is_none());
}

#[tokio::test]
async fn early_stopping_stops_trials_worse_than_the_median_and_the_goal_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = experiment("random", 40, &dir.path().join("runs.log")).to_value();
    doc["spec"]["earlyStopping"] = serde_json::json!({"algorithmName": "medianstop",
        "algorithmSettings": [{"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]});
    doc["spec"]["objective"]["goal"] = serde_json::json!(0.0005);
    let plan = Plan::from_katib(&Experiment::from_value(doc).unwrap()).unwrap();
    // Trials report a loss curve that flattens at (x - 0.3)^2; x comes first in the parameters.
    let runner = Arc::new(FnRunner::new(|trial: &TrialRun, metrics: &MetricsSink| {
        let x: f64 = trial.parameters[0].1.parse().map_err(|e| format!("{e}"))?;
        for step in 1..=5 {
            if metrics.report("loss", (x - 0.3).powi(2) + 1.0 / f64::from(step)) {
                return Ok(());
            }
        }
        metrics.report("loss", (x - 0.3).powi(2));
        Ok(())
    }));
    let state = run(ExperimentState::new(plan), runner, None, 5, |_, _| {}).await.unwrap();
    let stopped = state.trials().iter().filter(|t| t.phase == TrialPhase::EarlyStopped).count();
    assert!(stopped > 0, "no trial was stopped early");
    // The best trial is never one the rule stopped before it finished.
    let (_, best) = state.best().unwrap();
    assert_eq!(best.phase, TrialPhase::Succeeded);
    assert!(matches!(state.end(), Some(EndReason::GoalReached | EndReason::MaxTrialsReached)), "{:?}", state.end());
}

#[tokio::test]
async fn hyperband_runs_every_bracket_waiting_for_rungs_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = experiment("hyperband", 40, &dir.path().join("runs.log")).to_value();
    doc["spec"]["algorithm"]["algorithmSettings"] = serde_json::json!([
        {"name": "resource_name", "value": "epochs"}, {"name": "eta", "value": "3"}]);
    doc["spec"]["parameters"].as_array_mut().unwrap().push(serde_json::json!(
        {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}));
    doc["spec"]["objective"]["goal"] = serde_json::json!(-1.0);
    let plan = Plan::from_katib(&Experiment::from_value(doc).unwrap()).unwrap();
    // More epochs only remove noise: the loss is (x - 0.3)^2 + 1/epochs.
    let runner = Arc::new(FnRunner::new(|trial: &TrialRun, metrics: &MetricsSink| {
        let x: f64 = trial.parameters[0].1.parse().map_err(|e| format!("{e}"))?;
        let epochs: f64 = trial.parameters[2].1.parse().map_err(|e| format!("{e}"))?;
        metrics.report("loss", (x - 0.3).powi(2) + 1.0 / epochs);
        Ok(())
    }));
    let state = run(ExperimentState::new(plan), runner, None, 2, |_, _| {}).await.unwrap();
    // R = 9, η = 3: brackets 9@1 → 3@3 → 1@9, 5@3 → 1@9, 3@9.
    assert_eq!(state.trials().len(), 22);
    assert_eq!(state.end(), Some(EndReason::SuggestionEndReached));
    let epochs: Vec<String> = state.trials().iter().map(|t| t.assignment[2].to_string()).collect();
    assert_eq!(epochs[..13].join(","), "1,1,1,1,1,1,1,1,1,3,3,3,9");
    // The three promoted to 3 epochs are the best three of the nine at 1 epoch.
    let loss = |i: usize| state.trials()[i].objective.unwrap();
    let mut first: Vec<usize> = (0..9).collect();
    first.sort_by(|&a, &b| loss(a).total_cmp(&loss(b)));
    let promoted: Vec<_> = (9..12).map(|i| state.trials()[i].assignment[0]).collect();
    let best: Vec<_> = first[..3].iter().map(|&i| state.trials()[i].assignment[0]).collect();
    assert_eq!(promoted, best);
}
