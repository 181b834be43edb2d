//! Step 3: a local TrainJob — one node, two processes with the torch-style
//! env — trains a softmax regression on generated iris-like data and
//! writes it as ONNX. The trainer is `train.py` (Python's standard library
//! only), the data reaches it through the dataset initializer, and the job
//! runs on kf-train's local backend exactly as `kf train run` runs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use kf_train::local::{LocalBackend, LocalEvent, LocalOptions, LocalRun};
use kf_train::{TrainJob, TrainingRuntime};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde_json::json;

use super::Step;

const NAME: &str = "training: a 2-process local TrainJob writing an ONNX model";
/// The trainer the TrainJob runs.
const TRAINER: &str = include_str!("train.py");
/// Class names of the generated data, in label order.
pub const CLASSES: [&str; 3] = ["setosa", "versicolor", "virginica"];

/// One labelled example: four features and the class.
pub type Row = ([f32; 4], i64);

/// What the training step hands to the steps after it.
pub struct TrainedModel {
    /// The ONNX file.
    pub path: PathBuf,
    /// Held-out rows the model never saw: features and class.
    pub test: Vec<Row>,
    /// Which run of the quickstart made it (1, 2, …).
    pub version: u32,
    /// How later steps train more models the same way.
    pub trainer: Arc<Trainer>,
}

/// The training setup every model of a run shares: data, script, runtime.
pub struct Trainer {
    python: String,
    script: PathBuf,
    data: PathBuf,
    runtime: TrainingRuntime,
}

impl Trainer {
    /// Writes the data set and the trainer script under `dir`.
    fn prepare(dir: &Path) -> anyhow::Result<(Trainer, Vec<Row>)> {
        let (train_rows, val_rows, test) = iris_like(7, 50, 15, 20);
        let data = std::path::absolute(dir.join("data"))?;
        std::fs::create_dir_all(&data)?;
        for (name, rows) in [("train.csv", &train_rows), ("val.csv", &val_rows)] {
            let mut csv = String::from("sepal_length,sepal_width,petal_length,petal_width,class\n");
            for (x, class) in rows {
                csv.push_str(&format!("{:.3},{:.3},{:.3},{:.3},{class}\n", x[0], x[1], x[2], x[3]));
            }
            std::fs::write(data.join(name), csv)?;
        }
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
        Ok((Trainer { python, script, data, runtime }, test))
    }

    /// The TrainJob (as a manifest) that trains one model with learning
    /// rate `lr` text (a value or a `${trialParameters.…}` placeholder) into `out`.
    pub fn manifest(&self, name: &str, lr: &str, out: &Path) -> serde_json::Value {
        json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": name, "namespace": "kf-quickstart"},
            "spec": {
                "runtimeRef": {"name": "torch-distributed"},
                "initializer": {"dataset": {"storageUri": format!("file://{}", self.data.display())}},
                "trainer": {
                    "numNodes": 1, "numProcPerNode": 2,
                    "command": [self.python, self.script, "--data", "$(KF_WORKSPACE)/dataset/train.csv",
                                "--val", "$(KF_WORKSPACE)/dataset/val.csv", format!("--lr={lr}"), "--out", out],
                },
                "activeDeadlineSeconds": 120,
            },
        })
    }

    /// Runs `job` in `workspace` on the local backend until it ends or
    /// `cancel` completes; `on_line` sees every output line of rank 0.
    pub async fn run(
        &self,
        job: &TrainJob,
        workspace: &Path,
        mut on_line: impl FnMut(&str) + Send,
        cancel: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<LocalRun> {
        job.validate()?;
        let mut options = LocalOptions::new(workspace);
        options.namespace = "kf-quickstart".into();
        options.kill_grace = std::time::Duration::from_secs(1);
        let show = |event: LocalEvent| {
            if let LocalEvent::Line { process, line, .. } = event
                && process == "rank 0"
            {
                on_line(&line);
            }
        };
        Ok(LocalBackend::new(options).run(job, &self.runtime, show, cancel).await?)
    }
}

pub async fn training_step(dir: &Path) -> (Step, Option<TrainedModel>) {
    let started = Instant::now();
    match train(dir).await {
        Ok((model, summary)) => {
            let detail = format!(
                "TrainJob quickstart-train ran 2 ranks in {:.1} s: {summary}; model {}",
                started.elapsed().as_secs_f64(),
                model.path.display()
            );
            (Step { name: NAME, status: "done", detail }, Some(model))
        }
        Err(err) => (Step { name: NAME, status: "failed", detail: format!("{err:#}") }, None),
    }
}

async fn train(dir: &Path) -> anyhow::Result<(TrainedModel, String)> {
    let (trainer, test) = Trainer::prepare(dir)?;
    let workspace = crate::train_cmd::claim_workspace(&dir.join("train"))?;
    let version: u32 = workspace.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(1);
    let model_path = std::path::absolute(dir.join("models").join(format!("v{version}")).join("model.onnx"))?;
    let job = TrainJob::from_value(trainer.manifest("quickstart-train", "0.5", &model_path))?;
    let run = trainer.run(&job, &workspace, |line| eprintln!("  [train] {line}"), std::future::pending()).await?;
    anyhow::ensure!(
        run.outcome.succeeded(),
        "the TrainJob ended {}: {} (logs in {})",
        run.outcome.reason.as_str(),
        run.outcome.message,
        workspace.join("logs").display()
    );
    anyhow::ensure!(model_path.exists(), "the trainer finished but wrote no model at {}", model_path.display());
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
    let model = TrainedModel { path: model_path, test, version, trainer: Arc::new(trainer) };
    Ok((model, format!("final {metrics}")))
}

/// Iris-like data: three classes of four Gaussian features around the iris
/// species' means, `train`, `val` and `test` rows per class, shuffled.
fn iris_like(seed: u64, train: usize, val: usize, test: usize) -> (Vec<Row>, Vec<Row>, Vec<Row>) {
    const MEANS: [[f32; 4]; 3] = [[5.0, 3.4, 1.5, 0.25], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]];
    const SPREAD: [f32; 4] = [0.35, 0.33, 0.45, 0.22];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let draw = |n: usize, rng: &mut ChaCha8Rng| {
        let mut rows = Vec::new();
        for (class, mean) in MEANS.iter().enumerate() {
            for _ in 0..n {
                let mut x = [0.0f32; 4];
                for (j, v) in x.iter_mut().enumerate() {
                    // Normal::new fails only for a negative or NaN spread; these are constants.
                    let normal = Normal::new(mean[j], SPREAD[j]).unwrap_or_else(|_| unreachable!());
                    *v = normal.sample(rng).max(0.05);
                }
                rows.push((x, class as i64));
            }
        }
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.random_range(0..=i));
        }
        rows
    };
    let train_rows = draw(train, &mut rng);
    let val_rows = draw(val, &mut rng);
    let test_rows = draw(test, &mut rng);
    (train_rows, val_rows, test_rows)
}

fn which(program: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file()).map(|p| p.display().to_string())
}
