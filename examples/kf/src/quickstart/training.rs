//! Step 3: a local TrainJob — one node, two processes with the torch-style
//! env — trains a softmax regression on the pipeline's dataset and writes
//! it as ONNX. The trainer is `train.py` (Python's standard library only),
//! the data reaches it through the dataset initializer, and the job runs on
//! kf-train's local backend exactly as `kf train run` runs it. The
//! pipeline's `train` task runs it; tuning runs one per trial.

use std::path::{Path, PathBuf};

use kf_train::local::{LocalBackend, LocalEvent, LocalOptions, LocalRun};
use kf_train::{TrainJob, TrainingRuntime};
use serde_json::json;

use super::dataset::Dataset;
use super::tenant::PROFILE;
use crate::server::training::{ProcessTable, write_manifest};

/// The trainer the TrainJob runs.
const TRAINER: &str = include_str!("train.py");

/// The training setup every model of a quickstart run shares: the
/// interpreter, the script and the runtime.
pub struct Trainer {
    python: String,
    script: PathBuf,
    runtime: TrainingRuntime,
}

/// What one TrainJob made.
pub struct Trained {
    /// The TrainJob's name.
    pub job: String,
    /// The ONNX model's bytes.
    pub model: Vec<u8>,
    /// Its final metrics, e.g. `loss=0.21 accuracy=0.95`.
    pub metrics: String,
}

impl Trainer {
    /// Writes the trainer script under `dir` and finds python3.
    pub fn new(dir: &Path) -> anyhow::Result<Trainer> {
        let script = std::path::absolute(dir.join("train.py"))?;
        std::fs::write(&script, TRAINER)?;
        let python = which("python3").ok_or_else(|| {
            anyhow::anyhow!("the trainer needs python3 on PATH (standard library only); install Python 3 and re-run")
        })?;
        let runtime = TrainingRuntime::from_value(json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
            "metadata": {"name": "torch-distributed"},
            "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [
                {"name": "dataset-initializer", "template": {
                    "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "dataset-initializer"}},
                    "spec": {"template": {"spec": {"containers": [{"name": "dataset-initializer", "image": "kubeflow/dataset-initializer"}]}}}}},
                {"name": "node", "dependsOn": [{"name": "dataset-initializer", "status": "Complete"}], "template": {
                    "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                    "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "python:3"}]}}}}},
            ]}}},
        }))?;
        runtime.validate()?;
        Ok(Trainer { python, script, runtime })
    }

    /// The TrainJob (as a manifest) that trains one model on the
    /// `train.csv` and `val.csv` in `data` with learning rate `lr` text (a
    /// value or a `${trialParameters.…}` placeholder) into `out`.
    pub fn manifest(&self, name: &str, data: &Path, lr: &str, out: &Path) -> serde_json::Value {
        json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name, "namespace": PROFILE},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "initializer": {"dataset": {"storageUri": format!("file://{}", data.display())}},
                "trainer": {
                    "numNodes": 1, "numProcPerNode": 2,
                    "command": [self.python, self.script, "--data", "$(KF_WORKSPACE)/dataset/train.csv",
                                "--val", "$(KF_WORKSPACE)/dataset/val.csv", format!("--lr={lr}"), "--out", out],
                },
                "activeDeadlineSeconds": 120,
            },
        })
    }

    /// Writes `manifest` and the runtime to `<dir>/manifests/` so `kf train
    /// run` can run the same job alone.
    pub fn write_manifests(&self, dir: &Path, manifest: &serde_json::Value) -> anyhow::Result<()> {
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests)?;
        let runtime = serde_json::to_value(&self.runtime)?;
        for (file, value) in [("trainjob.yaml", manifest), ("runtime.yaml", &runtime)] {
            let path = manifests.join(file);
            std::fs::write(&path, serde_saphyr::to_string(value)?)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Runs `job` in `workspace` on the local backend until it ends or
    /// `cancel` completes; `on_line` sees every output line of rank 0, and
    /// `table` (when given) follows every process for `kf server`.
    pub async fn run(
        &self,
        job: &TrainJob,
        workspace: &Path,
        mut on_line: impl FnMut(&str) + Send,
        mut table: Option<&mut ProcessTable>,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<LocalRun> {
        job.validate()?;
        let mut options = LocalOptions::new(workspace);
        options.namespace = PROFILE.into();
        options.kill_grace = std::time::Duration::from_secs(1);
        let show = |event: LocalEvent| {
            if let Some(table) = table.as_deref_mut() {
                table.event(&event);
            }
            if let LocalEvent::Line { process, line, .. } = event
                && process == "rank 0"
            {
                on_line(&line);
            }
        };
        Ok(LocalBackend::new(options).run(job, &self.runtime, show, cancel).await?)
    }
}

/// The TrainJob of model version `version`.
pub fn job_name(version: u32) -> String {
    format!("quickstart-train-v{version}")
}

/// Where TrainJob `name` lives, as `kf server`'s training API lays it out.
pub fn job_dir(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join("training").join(PROFILE).join(name)
}

/// The next free model version: the first `n` whose TrainJob directory
/// could be created (so two runs never share one).
pub fn claim_version(dir: &Path) -> anyhow::Result<u32> {
    crate::train_cmd::claim_numbered(&job_dir(dir, ""), job_name).map(|(n, _)| n)
}

/// Runs TrainJob `quickstart-train-v<version>` on `dataset` in its
/// directory under `dir/training/` (claimed by the caller, laid out as
/// `kf server` shows TrainJobs); the model goes to
/// `dir/models/v<version>/model.onnx`.
pub async fn train(trainer: &Trainer, dir: &Path, version: u32, dataset: &Dataset) -> anyhow::Result<Trained> {
    let name = job_name(version);
    let data = std::path::absolute(dir.join("data").join(format!("v{version}")))?;
    dataset.write_for_trainer(&data)?;
    let home = std::path::absolute(job_dir(dir, &name))?;
    let workspace = home.join("workspace");
    let model_path = std::path::absolute(dir.join("models").join(format!("v{version}")).join("model.onnx"))?;
    let manifest = trainer.manifest(&name, &data, "0.5", &model_path);
    trainer.write_manifests(dir, &manifest)?;
    let job = TrainJob::from_value(manifest)?;
    write_manifest(&home, &job, &trainer.runtime)?;
    let mut table = ProcessTable::plan(&home, &job, &trainer.runtime, PROFILE)?;
    let show = |line: &str| eprintln!("  [train] {line}");
    let run = trainer.run(&job, &workspace, show, Some(&mut table), std::future::pending()).await?;
    table.finish();
    anyhow::ensure!(
        run.outcome.succeeded(),
        "the TrainJob ended {}: {} (logs in {})",
        run.outcome.reason.as_str(),
        run.outcome.message,
        workspace.join("logs").display()
    );
    let model = std::fs::read(&model_path).map_err(|e| {
        anyhow::anyhow!("the trainer finished but its model {} is unreadable: {e}", model_path.display())
    })?;
    let metrics = run
        .job
        .status
        .and_then(|s| s.trainer_status)
        .and_then(|t| t.metrics)
        .unwrap_or_default()
        .into_iter()
        .map(|m| format!("{}={}", m.name.unwrap_or_default(), m.value.unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Trained { job: name, model, metrics })
}

fn which(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file()).map(|p| p.display().to_string())
}
