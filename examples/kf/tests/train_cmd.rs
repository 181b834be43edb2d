//! `kf train simulate|validate|run`, driven as a user drives it.

use std::path::Path;
use std::process::{Command, Output};

fn kf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kf")).args(args).output().expect("kf runs")
}

/// `kf train simulate --trace TRACE` followed by whitespace-separated arguments.
fn simulate(trace: &str, args: &str) -> Output {
    let mut all = vec!["train", "simulate", "--trace", trace];
    all.extend(args.split_whitespace());
    kf(&all)
}

fn trace(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces").join(path).display().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

#[test]
fn simulate_prints_the_documented_json_keys() {
    let path = trace("pollux-philly/philly.csv");
    let out = simulate(
        &path,
        "--format philly --nodes 16 --gpus-per-node 8 --queues 4 --policy backfill --limit 500 --output json",
    );
    let v = json(&out);
    for key in [
        "jobs",
        "completed",
        "unschedulable",
        "avg_jct_s",
        "p99_jct_s",
        "avg_queue_s",
        "makespan_s",
        "gpu_utilization",
        "preemptions",
        "wall_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["jobs"], 500);
    assert_eq!(v["completed"], 500);
    assert_eq!(v["unschedulable"], 0);
    let u = v["gpu_utilization"].as_f64().unwrap();
    assert!(u > 0.0 && u <= 1.0);
    assert_eq!(v["fairness"].as_array().map(Vec::len), Some(4));
}

#[test]
fn every_policy_and_format_runs() {
    for (file, format) in
        [("tiresias/60_job.csv", "tiresias"), ("alibaba-gpu-v2023/openb_pod_list_default.csv", "alibaba")]
    {
        for policy in ["fifo", "backfill", "sjf", "drf"] {
            let path = trace(file);
            let out = simulate(
                &path,
                &format!(
                    "--format {format} --nodes 8 --gpus-per-node 8 --queues 2 --policy {policy} --limit 300 --output json"
                ),
            );
            let v = json(&out);
            assert_eq!(v["policy"], policy);
            assert_eq!(
                v["completed"].as_u64().unwrap() + v["unschedulable"].as_u64().unwrap(),
                v["jobs"].as_u64().unwrap()
            );
        }
    }
}

#[test]
fn jobs_larger_than_the_cluster_are_counted_and_text_output_is_readable() {
    let path = trace("tiresias/60_job.csv");
    let out = simulate(&path, "--format tiresias --nodes 1 --gpus-per-node 4 --policy fifo");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unschedulable") && text.contains("avg JCT"), "{text}");
    let v = json(&simulate(&path, "--format tiresias --nodes 1 --gpus-per-node 4 --policy fifo --output json"));
    // The 8-GPU jobs of the sample can never fit one 4-GPU node.
    assert!(v["unschedulable"].as_u64().unwrap() > 0);
    let zero = json(&simulate(&path, "--format tiresias --nodes 0 --gpus-per-node 8 --policy backfill --output json"));
    assert_eq!((zero["completed"].as_u64(), zero["unschedulable"].as_u64()), (Some(0), Some(60)));
}

#[test]
fn plot_writes_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("out.svg").display().to_string();
    let path = trace("tiresias/60_job.csv");
    let out = simulate(
        &path,
        &format!("--format tiresias --nodes 2 --gpus-per-node 8 --policy sjf --topology rack=2 --plot {svg}"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("Job completion time CDF"));
}

#[test]
fn bad_input_is_a_clear_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let missing = write(&dir, "missing.csv", "timestamp,num_gpus,cluster\n2017-10-01 00:00:00,1,ab\n");
    let out = simulate(&missing, "--format philly --nodes 1 --gpus-per-node 8 --policy fifo");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column duration: missing column") && !err.contains("panicked"), "{err}");
    let negative =
        write(&dir, "neg.csv", "timestamp,duration,num_gpus,gpu_time,cluster\n2017-10-01 00:00:00,-3,1,1,ab\n");
    let v = json(&simulate(&negative, "--format philly --nodes 1 --gpus-per-node 8 --policy fifo --output json"));
    assert_eq!(v["jobs"], 0);
    let out = kf(&[
        "train",
        "simulate",
        "--trace",
        "/nonexistent.csv",
        "--format",
        "philly",
        "--nodes",
        "1",
        "--gpus-per-node",
        "8",
        "--policy",
        "fifo",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read trace"));
    let usage = kf(&[
        "train",
        "simulate",
        "--trace",
        "x",
        "--format",
        "csv",
        "--nodes",
        "1",
        "--gpus-per-node",
        "8",
        "--policy",
        "fifo",
    ]);
    assert_eq!(usage.status.code(), Some(2));
    let topo = simulate(&negative, "--format philly --nodes 1 --gpus-per-node 8 --policy fifo --topology rack=0");
    assert_eq!(topo.status.code(), Some(1));
}

#[test]
fn render_prints_the_jobset_and_pod_group() {
    let job = corpus("examples__yaml__04-volcano-integration.doc1.yaml");
    let runtime = corpus("examples__yaml__04-volcano-integration.doc0.yaml");
    let out = kf(&["train", "render", &job, "--runtime", &runtime, "--output", "json"]);
    let docs = json(&out);
    let kinds: Vec<_> = docs.as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect();
    assert_eq!(kinds, ["PodGroup", "JobSet"]);
    let text = kf(&["train", "render", &job, "--runtime", &runtime]);
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("kind: JobSet"));
    let missing = kf(&["train", "render", &job]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("spec.runtimeRef.name"));
}

fn corpus(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/trainer").join(name).display().to_string()
}

/// A TrainJob on the corpus torch runtime whose two nodes × two processes
/// are shell one-liners printing the env they got.
fn shell_job(name: &str, script: &str) -> String {
    format!(
        "apiVersion: trainer.kubeflow.org/v1alpha1\nkind: TrainJob\nmetadata:\n  name: {name}\nspec:\n  runtimeRef:\n    \
         name: torch-distributed\n  trainer:\n    numNodes: 2\n    numProcPerNode: 2\n    command: [sh, -c, {script:?}]\n"
    )
}

#[test]
fn run_prefixes_logs_by_rank_and_reports_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let job = write(
        &dir,
        "job.yaml",
        &shell_job("demo", "echo world=$WORLD_SIZE master=$MASTER_ADDR; echo loss=0.5 progress=100"),
    );
    let runs = dir.path().join("runs").display().to_string();
    let runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    let out = kf(&["train", "run", &job, "--runtime", &runtime, "--dir", &runs]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    for rank in 0..4 {
        assert!(stdout.contains(&format!("[rank {rank}] world=4 master=127.0.0.1")), "{stdout}");
    }
    assert!(stderr.contains("Complete (AllJobsCompleted)"), "{stderr}");
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("runs/demo/1/trainjob.json")).unwrap()).unwrap();
    assert_eq!(status["status"]["trainerStatus"]["progressPercentage"], 100);

    // A second run gets its own workspace; --output json prints the TrainJob.
    let out = kf(&["train", "run", &job, "--runtime", &runtime, "--dir", &runs, "--output", "json"]);
    let v = json(&out);
    assert_eq!(v["kind"], "TrainJob");
    assert_eq!(v["status"]["conditions"][1]["type"], "Complete");
    assert!(dir.path().join("runs/demo/2/trainjob.json").exists());
}

#[test]
fn a_failing_rank_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = write(&dir, "job.yaml", &shell_job("bad", "if [ $RANK = 2 ]; then exit 3; fi; sleep 30"));
    let runs = dir.path().join("runs").display().to_string();
    let runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    let started = std::time::Instant::now();
    let out = kf(&["train", "run", &job, "--runtime", &runtime, "--dir", &runs]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Failed (FailedJobs)") && stderr.contains("rank 2"), "{stderr}");
    assert!(stderr.contains("exited with code 3"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "the other ranks were not stopped");
}

#[test]
fn run_without_the_runtime_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let job = write(&dir, "job.yaml", &shell_job("lonely", "true"));
    let out = kf(&["train", "run", &job, "--dir", &dir.path().display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("spec.runtimeRef.name") && stderr.contains("torch-distributed"), "{stderr}");
    assert!(stderr.contains("--runtime"), "{stderr}");
}

#[test]
fn validate_resolves_plans_and_names_bad_fields() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    let good = write(&dir, "good.yaml", &shell_job("good", "true"));
    let out = kf(&["train", "validate", &good, "--runtime", &runtime]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK") && stdout.contains("2 node(s), world size 4"), "{stdout}");

    let zero = write(&dir, "zero.yaml", &shell_job("zero", "true").replace("numNodes: 2", "numNodes: 0"));
    let out = kf(&["train", "validate", &zero, "--runtime", &runtime]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("spec.trainer.numNodes"), "{text}");

    let patch = write(
        &dir,
        "patch.yaml",
        &format!(
            "{}  runtimePatches:\n    - manager: me\n      trainingRuntimeSpec:\n        template:\n          spec:\n            \
             replicatedJobs:\n              - name: nope\n",
            shell_job("patched", "true")
        ),
    );
    let out = kf(&["train", "validate", &patch, "--runtime", &runtime]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("runtimePatches") && text.contains("nope"), "{text}");
}
