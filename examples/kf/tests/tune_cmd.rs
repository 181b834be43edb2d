//! `kf tune …` driven as a user (or a driver program) drives it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kf_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kf runs");
    // A process that exits before reading closes the pipe; that is what some tests expect.
    let _ = child.stdin.take().expect("stdin").write_all(stdin.as_bytes());
    child.wait_with_output().expect("kf finishes")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

const SPACE: &str = r#"{"objective": {"type": "minimize"}, "parameters": [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "5"}},
    {"name": "n", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}}]}"#;

#[test]
fn ask_tell_serves_a_session_on_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let space = write(&dir, "space.json", SPACE);
    let input = concat!(
        "{\"op\":\"hello\"}\n",
        "{\"op\":\"ask\",\"n\":2}\n",
        "\n",
        "{\"op\":\"tell\",\"id\":\"1\",\"value\":0.25}\n",
        "nonsense\n",
        "{\"op\":\"best\"}\n",
        "{\"op\":\"quit\"}\n",
    );
    let args = [
        "tune",
        "ask-tell",
        "--space",
        &space,
        "--algorithm",
        "tpe",
        "--settings",
        "n_startup_trials=3",
        "--seed",
        "4",
    ];
    let out = kf_with_stdin(&args, input);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(lines[0]["protocol"], "kf-tune-ask-tell");
    assert_eq!(lines[0]["algorithm"], "tpe");
    let trials = lines[1]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    assert!(trials.iter().all(|t| t["params"]["n"] == 16 || t["params"]["n"] == 32), "{trials:?}");
    assert_eq!(lines[2], serde_json::json!({"ok": true}));
    assert_eq!(lines[3]["error"]["code"], "parse_error");
    assert_eq!((lines[4]["id"].as_str(), lines[4]["value"].as_f64()), (Some("1"), Some(0.25)));
    assert_eq!(lines[4]["params"], trials[1]["params"]);
}

#[test]
fn ask_tell_start_up_failures_exit_2_with_nothing_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let space = write(&dir, "space.json", SPACE);
    let bad = write(
        &dir,
        "bad.json",
        r#"{"parameters": [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": 2, "max": 1}}]}"#,
    );
    let cases: [(&[&str], &str); 5] = [
        (&["--space", &space, "--algorithm", "annealing"], "unknown algorithm \"annealing\""),
        (&["--space", &bad, "--algorithm", "random"], "bad.json: parameters[0].feasibleSpace"),
        (&["--space", "/no/such/space.json", "--algorithm", "random"], "cannot read file"),
        (&["--space", &space, "--algorithm", "tpe", "--settings", "gamma=2"], "\"gamma\""),
        (&["--space", &space, "--algorithm", "grid"], "step"),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = ["tune", "ask-tell"].iter().chain(args).copied().collect();
        let out = kf_with_stdin(&args, "{\"op\":\"hello\"}\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn ask_tell_end_of_input_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let space = write(&dir, "space.json", SPACE);
    let out = kf_with_stdin(
        &["tune", "ask-tell", "--space", &space, "--algorithm", "sobol", "--seed", "1"],
        "{\"op\":\"ask\"}\n",
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 1);
}

/// A Katib Experiment whose trial is a shell process printing `loss=(x-0.3)^2`
/// after `sleep`; every run appends its trial name to `runs.log` in `dir`.
fn experiment_yaml(dir: &std::path::Path, max_trials: u32, sleep: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: quad
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: tpe
    algorithmSettings:
      - name: n_startup_trials
        value: "5"
  parallelTrialCount: 2
  maxTrialCount: {max_trials}
  maxFailedTrialCount: 2
  parameters:
    - name: x
      parameterType: double
      feasibleSpace:
        min: "0"
        max: "1"
  trialTemplate:
    primaryContainerName: main
    trialParameters:
      - name: x
        reference: x
      - name: me
        reference: ${{trialSpec.Name}}
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: unused
                command:
                  - sh
                  - -c
                  - echo ${{trialParameters.me}} >> {runs} && sleep {sleep} && awk 'BEGIN {{ printf "loss=%.10f\n", (${{trialParameters.x}} - 0.3)^2 }}'
"#,
        runs = dir.join("runs.log").display()
    )
}

/// A Katib Experiment `name` over one double `x` in [0, 1], whose trial runs
/// `command` (a YAML flow list) with `${trialParameters.x}`; `spec` holds
/// the rest of the spec (objective, algorithm, counts), indented two spaces.
fn x_experiment(name: &str, spec: &str, command: &str) -> String {
    format!(
        r#"apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
{spec}
  parameters:
    - name: x
      parameterType: double
      feasibleSpace:
        min: "0"
        max: "1"
  trialTemplate:
    trialParameters:
      - name: x
        reference: x
    trialSpec:
      apiVersion: batch/v1
      kind: Job
      spec:
        template:
          spec:
            containers:
              - name: main
                image: unused
                command: {command}
"#
    )
}

fn kf_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kf")).current_dir(dir).args(args).output().expect("kf runs")
}

#[test]
fn run_prints_katib_status_json_with_the_best_trial() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(&dir, "exp.yaml", &experiment_yaml(dir.path(), 20, "0"));
    let out = kf_in(dir.path(), &["--output", "json", "tune", "run", &exp]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("finished quad-0 Succeeded loss="), "{err}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["trials"], 20);
    assert_eq!(status["trialsSucceeded"], 20);
    let best = &status["currentOptimalTrial"];
    assert!(best["bestTrialName"].as_str().unwrap().starts_with("quad-"));
    let x: f64 = best["parameterAssignments"][0]["value"].as_str().unwrap().parse().unwrap();
    assert!((x - 0.3).abs() < 0.1, "best x {x}");
    assert_eq!(best["observation"]["metrics"][0]["name"], "loss");
    let last = status["conditions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["type"].as_str(), last["reason"].as_str()),
        (Some("Succeeded"), Some("ExperimentMaxTrialsReached"))
    );
    assert!(dir.path().join(".kf-tune/quad/journal.jsonl").exists());
    assert!(dir.path().join(".kf-tune/quad/trials/quad-0/output.log").exists());
}

#[test]
fn run_prints_a_table_and_fails_when_too_many_trials_fail() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(&dir, "good.yaml", &experiment_yaml(dir.path(), 4, "0"));
    let out = kf_in(dir.path(), &["tune", "run", &good]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("TRIAL") && text.contains("best: quad-") && text.contains("max trial count"), "{text}");
    // The same experiment again resumes its finished journal: nothing runs.
    let again = kf_in(dir.path(), &["tune", "run", &good]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming"));
    assert_eq!(std::fs::read_to_string(dir.path().join("runs.log")).unwrap().lines().count(), 4);
    // A trial that prints no metric fails; more than maxFailedTrialCount fail the experiment.
    let bad = experiment_yaml(dir.path(), 6, "0")
        .replace("loss=%.10f", "nothing=%.10f")
        .replace("name: quad", "name: silent");
    let bad = write(&dir, "bad.yaml", &bad);
    let out = kf_in(dir.path(), &["tune", "run", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no value for metric \"loss\""), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("max failed count"));
}

#[test]
fn run_killed_mid_experiment_resumes_without_rerunning_finished_trials() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(&dir, "exp.yaml", &experiment_yaml(dir.path(), 10, "0.3"));
    let journal = dir.path().join(".kf-tune/quad/journal.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kf"))
        .current_dir(dir.path())
        .args(["tune", "run", &exp])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let finished =
        || std::fs::read_to_string(&journal).unwrap_or_default().lines().filter(|l| l.contains("\"finished\"")).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while finished() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let done_before = finished();
    assert!((3..10).contains(&done_before), "{done_before} trials finished before the kill");
    let finished_names: Vec<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "finished")
        .map(|e| format!("quad-{}", e["index"]))
        .collect();

    let out = kf_in(dir.path(), &["--output", "json", "tune", "run", &exp]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["trials"], 10);
    let runs = std::fs::read_to_string(dir.path().join("runs.log")).unwrap();
    for name in &finished_names {
        assert_eq!(runs.lines().filter(|r| r == name).count(), 1, "{name} ran twice:\n{runs}");
    }
}

#[test]
fn run_writes_a_plot_and_a_finished_journal_only_plots_again() {
    let dir = tempfile::tempdir().unwrap();
    let exp = write(&dir, "exp.yaml", &experiment_yaml(dir.path(), 6, "0"));
    let plot = dir.path().join("out.svg");
    let plot_arg = plot.display().to_string();
    let out = kf_in(dir.path(), &["tune", "run", &exp, "--plot", &plot_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<circle class=\"trial\"").count(), 6);
    assert!(svg.contains("Optimisation history: loss (minimize)") && svg.contains("id=\"parallel-coordinates\""));

    // The experiment has ended: the same command only writes the plot from the journal.
    std::fs::remove_file(&plot).unwrap();
    let again = kf_in(dir.path(), &["tune", "run", &exp, "--plot", &plot_arg]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(0), "{err}");
    assert!(err.contains("already ended (ExperimentMaxTrialsReached)"), "{err}");
    assert_eq!(std::fs::read_to_string(&plot).unwrap(), svg);
    assert_eq!(std::fs::read_to_string(dir.path().join("runs.log")).unwrap().lines().count(), 6);

    // A failed experiment still gets its plot, failures marked.
    let bad = experiment_yaml(dir.path(), 6, "0")
        .replace("loss=%.10f", "nothing=%.10f")
        .replace("name: quad", "name: silent");
    let bad = write(&dir, "bad.yaml", &bad);
    let out = kf_in(dir.path(), &["tune", "run", &bad, "--plot", &plot_arg]);
    assert_eq!(out.status.code(), Some(1));
    let svg = std::fs::read_to_string(&plot).unwrap();
    // Three failures end it (maxFailedTrialCount 2); a trial killed then is no result either.
    let crosses = svg.matches("<path class=\"failed\"").count();
    assert!((3..=4).contains(&crosses), "{svg}");
    assert!(svg.contains(&format!("all {crosses} finished trials failed")), "{svg}");
}

/// A trial that pushes `loss=(x-0.3)^2` with python3's urllib, and prints a
/// misleading `loss=` line that the Push collector must not read.
const PUSH_TRIAL: &str = r#"
import json, os, sys, urllib.request
x = float(sys.argv[1])
print("loss=999", flush=True)
def push(body, token=os.environ["KF_TUNE_PUSH_TOKEN"]):
    req = urllib.request.Request(os.environ["KF_TUNE_PUSH_URL"], data=body.encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as err:
        return err.code, None
assert push("loss=nonsense")[0] == 400
assert push('{"metrics": {"loss": 1}}', token="0" * 64)[0] == 401
status, reply = push(json.dumps({"metrics": {"loss": 5.0 + (x - 0.3) ** 2}}))
assert status == 200 and reply == {"stop": False}, (status, reply)
status, reply = push("loss=%.10f" % ((x - 0.3) ** 2))
assert status == 200, status
"#;

#[test]
fn run_with_the_push_collector_records_what_trials_push() {
    let dir = tempfile::tempdir().unwrap();
    let script = write(&dir, "trial.py", PUSH_TRIAL);
    let spec = r#"  objective:
    type: minimize
    objectiveMetricName: loss
    metricStrategies:
      - name: loss
        value: latest
  metricsCollectorSpec:
    collector:
      kind: Push
  algorithm:
    algorithmName: tpe
    algorithmSettings:
      - name: n_startup_trials
        value: "4"
  parallelTrialCount: 2
  maxTrialCount: 12
  maxFailedTrialCount: 0"#;
    let yaml = x_experiment("pushed", spec, &format!(r#"[python3, {script}, "${{trialParameters.x}}"]"#));
    let exp = write(&dir, "exp.yaml", &yaml);
    let out = kf_in(dir.path(), &["--output", "json", "tune", "run", &exp]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["trialsSucceeded"], 12, "{err}");
    let best = &status["currentOptimalTrial"];
    let loss: f64 = best["observation"]["metrics"][0]["latest"].as_str().unwrap().parse().unwrap();
    let x: f64 = best["parameterAssignments"][0]["value"].as_str().unwrap().parse().unwrap();
    assert!(
        loss < 0.05 && (loss - (x - 0.3).powi(2)).abs() < 1e-9,
        "best loss {loss} at x {x}: stdout's 999 was not read"
    );
    let journal = std::fs::read_to_string(dir.path().join(".kf-tune/pushed/journal.jsonl")).unwrap();
    let first: serde_json::Value = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "finished")
        .unwrap();
    assert_eq!(first["metrics"]["loss"].as_array().unwrap().len(), 2, "both pushes, in order: {first}");
}

#[test]
fn run_gives_pbt_trials_a_copy_of_their_parents_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs.log");
    // Each trial counts its generations: its parent's counter + 1, saved in its own checkpoint.
    let script = write(
        &dir,
        "trial.sh",
        &format!(
            r#"c=0
if [ -f "$KF_TUNE_CHECKPOINT_DIR/counter" ]; then c=$(cat "$KF_TUNE_CHECKPOINT_DIR/counter"); fi
c=$((c + 1))
echo $c > "$KF_TUNE_CHECKPOINT_DIR/counter"
echo "$KATIB_TRIAL_NAME ${{KF_TUNE_PARENT_TRIAL:-none}} $c" >> {runs}
awk "BEGIN {{ printf \"acc=%.10f\n\", $c - ($1 - 0.3)^2 }}"
"#,
            runs = runs.display()
        ),
    );
    let spec = r#"  objective:
    type: maximize
    objectiveMetricName: acc
  algorithm:
    algorithmName: pbt
    algorithmSettings:
      - name: n_population
        value: "4"
      - name: truncation_threshold
        value: "0.25"
  parallelTrialCount: 4
  maxTrialCount: 12"#;
    let yaml = x_experiment("pop", spec, &format!(r#"[sh, {script}, "${{trialParameters.x}}"]"#));
    let exp = write(&dir, "exp.yaml", &yaml);
    let out = kf_in(dir.path(), &["tune", "run", &exp]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(&runs).unwrap();
    let rows: Vec<(String, String, u32)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(rows.len(), 12, "{log}");
    let counter = |name: &str| rows.iter().find(|r| r.0 == name).map(|r| r.2);
    for (name, parent, count) in &rows {
        let index: usize = name.strip_prefix("pop-").unwrap().parse().unwrap();
        if index < 4 {
            assert_eq!((parent.as_str(), *count), ("none", 1), "generation 0 starts empty: {log}");
        } else {
            // Generation g continues a trial of generation g-1, from its saved counter.
            let p: usize = parent.strip_prefix("pop-").unwrap().parse().unwrap();
            assert_eq!(p / 4, index / 4 - 1, "{log}");
            assert_eq!(
                Some(*count),
                counter(parent).map(|c| c + 1),
                "{name} started from {parent}'s checkpoint: {log}"
            );
        }
    }
    // Copies, not links: every parent's checkpoint still holds its own count.
    for (name, _, count) in &rows {
        let saved = dir.path().join(".kf-tune/pop/trials").join(name).join("checkpoint/counter");
        assert_eq!(std::fs::read_to_string(saved).unwrap().trim(), count.to_string());
    }
    // The journal says who started from whom, so a resumed run knows too.
    let journal = std::fs::read_to_string(dir.path().join(".kf-tune/pop/journal.jsonl")).unwrap();
    assert!(journal.lines().any(|l| l.contains("\"parent\":")), "{journal}");
}
