//! Step 2: the pipeline — prepare data → train → evaluate — built with
//! kf-dag's typed builder and run by its executor on a file store under
//! the quickstart's directory: the run journal, the artifacts and the step
//! cache. The three tasks are Rust functions; `train` runs the training
//! step's TrainJob (step 3). The steps after the pipeline read its Dataset
//! and Model artifacts back from the artifact store.
//!
//! The cache is honest: `prepare` has the same inputs every run, so a
//! re-run takes its Dataset from the cache; `train` gets the run's model
//! version as an input, so every run trains the model it serves; `evaluate`
//! is a cache hit exactly when the new model is byte-identical to an
//! earlier one (the trainer is deterministic on the same data).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kf_dag::Plan;
use kf_dag::artifact::ArtifactStore;
use kf_dag::builder::{Dataset as DatasetArtifact, Metrics, Model, PipelineBuilder};
use kf_dag::clock::{Clock, SystemClock};
use kf_dag::exec::{RunOutcome, RunRequest};
use kf_dag::local::{LocalRuns, SavedPipeline};
use kf_dag::run::{RunState, TaskState};
use kf_dag::runner::{FunctionInput, FunctionOutput, FunctionRunner};
use kf_serve::protocol::{BinaryOutputs, InferenceRequest};
use kf_serve::{Model as _, OnnxModel};
use serde_json::{Value, json};

use super::Step;
use super::dataset::{Dataset, Row};
use super::training::{self, Trainer};

const NAME: &str = "pipeline: prepare data → train → evaluate, with cached artifacts";
const TRAINING: &str = "training: a 2-process local TrainJob writing an ONNX model";
/// The seed of the generated data: the same every run, which is what makes
/// `prepare` a cache hit on a re-run.
const SEED: i64 = 7;
/// The pipeline's tasks, in order.
const TASKS: [&str; 3] = ["prepare", "train", "evaluate"];

/// What the pipeline run made, read back from the artifact store.
pub struct PipelineRun {
    /// The run id.
    pub run: String,
    /// Which run of the quickstart this is (1, 2, …): the model version.
    pub version: u32,
    /// The Dataset artifact.
    pub dataset: Dataset,
    /// The Model artifact, as an ONNX file the server can load.
    pub model: PathBuf,
    /// The TrainJob the `train` task ran.
    pub train_job: String,
    /// How later steps train more models the same way.
    pub trainer: Arc<Trainer>,
}

/// Runs the pipeline; returns the pipeline step and the training step.
pub async fn pipeline_step(dir: &Path) -> (Vec<Step>, Option<PipelineRun>) {
    let failed = |name, detail: String| Step { name, status: "failed", detail };
    let ran = match run(dir).await {
        Ok(ran) => ran,
        Err(err) => {
            let training = failed(TRAINING, "not run: the pipeline could not start".into());
            return (vec![failed(NAME, format!("{err:#}")), training], None);
        }
    };
    let outcome = &ran.outcome;
    let tasks: Vec<String> = TASKS
        .iter()
        .map(|task| match outcome.tasks.get(*task) {
            Some(t) if t.state == TaskState::Cached => format!("{task} cached (from an earlier run)"),
            Some(t) => match t.duration() {
                Some(d) => format!("{task} {} in {:.1} s", t.state.as_str(), d.as_secs_f64()),
                None => format!("{task} {}", t.state.as_str()),
            },
            None => format!("{task} did not run"),
        })
        .collect();
    let tasks = format!("run {}: {}", outcome.run, tasks.join(", "));
    if outcome.state != RunState::Succeeded {
        let why = |task: &str| outcome.tasks.get(task).and_then(|t| t.message.clone());
        let reason = TASKS.iter().find_map(|t| why(t).map(|m| format!("{t}: {m}"))).unwrap_or_default();
        let detail = format!("{tasks}; the run ended {:?}: {reason}", outcome.state);
        let training = why("train").unwrap_or_else(|| "the pipeline ended before the train task".into());
        return (vec![failed(NAME, detail), failed(TRAINING, training)], None);
    }
    match read_outputs(dir, ran).await {
        Ok((ran, artifacts, train_metrics)) => {
            let detail = format!(
                "{tasks} on kf-dag (journal, artifacts and step cache in {}); {artifacts}",
                store_root(dir).display()
            );
            let training = format!(
                "TrainJob {} ran 2 ranks in the pipeline's train task: final {train_metrics}; model {}",
                ran.train_job,
                dir.join("models").join(format!("v{}", ran.version)).join("model.onnx").display()
            );
            let done = |name, detail| Step { name, status: "done", detail };
            (vec![done(NAME, detail), done(TRAINING, training)], Some(ran))
        }
        Err(err) => {
            let detail = format!("{tasks}; reading its outputs: {err:#}");
            (vec![failed(NAME, detail), failed(TRAINING, "its model could not be read back".into())], None)
        }
    }
}

/// A finished run and what reading its outputs needs.
struct Ran {
    outcome: RunOutcome,
    store: ArtifactStore,
    version: u32,
    trainer: Arc<Trainer>,
}

/// Builds and runs the pipeline as model version `n`, `n` the next free
/// training workspace.
async fn run(dir: &Path) -> anyhow::Result<Ran> {
    let version = training::claim_version(dir)?;
    let trainer = Arc::new(Trainer::new(dir)?);
    let root = store_root(dir);
    let runs = LocalRuns::open(&root.display().to_string())?;
    let store = runs.artifacts().clone();
    let executor = runs.executor(functions(dir, trainer.clone()), true)?.parallelism(1);
    let request = RunRequest {
        id: Some(format!("quickstart-v{version}-{}", SystemClock.now_ms())),
        parameters: [("version".to_string(), json!(version))].into(),
    };
    let plan = plan()?;
    // Saved beside the journal, as `kf server` saves what it runs: it shows the run's DAG.
    let id = request.id.clone().unwrap_or_default();
    runs.save_pipeline(&id, &SavedPipeline::Kf(Box::new(plan.pipeline().clone())))?;
    let outcome = executor.run(Arc::new(plan), request).await?;
    Ok(Ran { outcome, store, version, trainer })
}

/// The quickstart's kf-dag store: the tenant's namespace, where `kf server` looks.
pub fn store_root(dir: &Path) -> std::path::PathBuf {
    dir.join("pipelines").join(super::tenant::PROFILE)
}

/// prepare → train → evaluate, typed: a Dataset, a Model, Metrics.
fn plan() -> kf_dag::Result<Plan> {
    let mut p = PipelineBuilder::new("quickstart");
    p.description("kf quickstart: prepare iris-like data, train a softmax regression, evaluate it");
    let version = p.parameter::<i64>("version");

    let mut prepare = p.function_component("prepare", "quickstart.prepare");
    let seed = prepare.input::<i64>("seed");
    let dataset = prepare.output_artifact::<DatasetArtifact>("dataset");
    let prepare = p.add_component(prepare);

    let mut train = p.function_component("train", "quickstart.train");
    let train_data = train.input_artifact::<DatasetArtifact>("dataset");
    let train_version = train.input::<i64>("version");
    let model = train.output_artifact::<Model>("model");
    let job = train.output::<String>("train_job");
    let final_metrics = train.output::<String>("metrics");
    let train = p.add_component(train);

    let mut evaluate = p.function_component("evaluate", "quickstart.evaluate");
    let eval_data = evaluate.input_artifact::<DatasetArtifact>("dataset");
    let eval_model = evaluate.input_artifact::<Model>("model");
    let metrics = evaluate.output_artifact::<Metrics>("metrics");
    let accuracy = evaluate.output::<f64>("accuracy");
    let evaluate = p.add_component(evaluate);

    let prepared = p.task("prepare", &prepare).set_value(&seed, SEED).done();
    let data = prepared.output_artifact(&dataset);
    let trained = p.task("train", &train).set_artifact(&train_data, &data).set(&train_version, &version).done();
    let trained_model = trained.output_artifact(&model);
    let evaluated =
        p.task("evaluate", &evaluate).set_artifact(&eval_data, &data).set_artifact(&eval_model, &trained_model).done();
    p.output_artifact::<DatasetArtifact, DatasetArtifact>("dataset", &data);
    p.output_artifact::<Model, Model>("model", &trained_model);
    p.output_artifact::<Metrics, Metrics>("metrics", &evaluated.output_artifact(&metrics));
    p.output("train_job", &trained.output(&job));
    p.output("train_metrics", &trained.output(&final_metrics));
    p.output("accuracy", &evaluated.output(&accuracy));
    p.build()
}

/// The three tasks' functions.
fn functions(dir: &Path, trainer: Arc<Trainer>) -> FunctionRunner {
    let mut functions = FunctionRunner::new();
    functions.register("quickstart.prepare", |input| {
        let seed = input.parameters.get("seed").and_then(Value::as_u64).ok_or("seed is not a non-negative integer")?;
        Ok(FunctionOutput::default().artifact("dataset", Dataset::iris_like(seed).to_csv()))
    });
    let train_dir = dir.to_path_buf();
    functions.register("quickstart.train", move |input| {
        let version = input.parameters.get("version").and_then(Value::as_u64).and_then(|v| u32::try_from(v).ok());
        let version = version.ok_or("version is not a model version number")?;
        let dataset = dataset_of(&input)?;
        // Function executors are synchronous; the TrainJob is async. The
        // runtime is multi-threaded, so this worker may block on it.
        let handle = tokio::runtime::Handle::current();
        let trained =
            tokio::task::block_in_place(|| handle.block_on(training::train(&trainer, &train_dir, version, &dataset)))
                .map_err(|e| format!("{e:#}"))?;
        Ok(FunctionOutput::default()
            .artifact("model", trained.model)
            .parameter("train_job", trained.job)
            .parameter("metrics", trained.metrics))
    });
    let scratch = dir.join("scratch");
    functions.register("quickstart.evaluate", move |input| {
        let dataset = dataset_of(&input)?;
        let model = input.artifacts.get("model").and_then(|a| a.first()).ok_or("no model artifact")?;
        let path = onnx_file(model, &scratch).map_err(|e| format!("{e:#}"))?;
        let metrics = evaluate(&path, &dataset.test).map_err(|e| format!("{e:#}"))?;
        let accuracy = metrics["accuracy"].clone();
        Ok(FunctionOutput::default().artifact("metrics", metrics.to_string()).parameter("accuracy", accuracy))
    });
    functions
}

fn dataset_of(input: &FunctionInput) -> Result<Dataset, String> {
    let bytes = input.artifacts.get("dataset").and_then(|a| a.first()).ok_or("no dataset artifact")?;
    let text = std::str::from_utf8(bytes).map_err(|e| format!("the dataset is not UTF-8: {e}"))?;
    Dataset::from_csv(text).map_err(|e| format!("{e:#}"))
}

/// Accuracy and mean log loss of the ONNX model at `path` on `rows`.
fn evaluate(path: &Path, rows: &[Row]) -> anyhow::Result<Value> {
    anyhow::ensure!(!rows.is_empty(), "the dataset has no test rows");
    let model = OnnxModel::load("quickstart-logreg", path)?;
    let features: Vec<f32> = rows.iter().flat_map(|(x, _)| *x).collect();
    let request =
        json!({"inputs": [{"name": "input", "shape": [rows.len(), 4], "datatype": "FP32", "data": features}]});
    let request = InferenceRequest::decode(&serde_json::to_vec(&request)?, None)?;
    let response: Value = serde_json::from_slice(&model.infer(&request)?.encode(&BinaryOutputs::none())?.body)?;
    let output = |name: &str| -> anyhow::Result<Vec<f64>> {
        let data = response["outputs"].as_array().and_then(|o| o.iter().find(|o| o["name"] == name));
        let data = data.and_then(|o| o["data"].as_array()).ok_or_else(|| anyhow::anyhow!("no {name} output"))?;
        Ok(data.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)).collect())
    };
    let (labels, probabilities) = (output("label")?, output("probabilities")?);
    let classes = probabilities.len() / rows.len();
    anyhow::ensure!(
        labels.len() == rows.len() && classes > 0,
        "the model answered {} labels for {} rows",
        labels.len(),
        rows.len()
    );
    let mut correct = 0;
    let mut loss = 0.0;
    for (i, (_, class)) in rows.iter().enumerate() {
        correct += usize::from(labels[i] == *class as f64);
        let p = usize::try_from(*class).ok().and_then(|c| probabilities.get(i * classes + c)).copied().unwrap_or(0.0);
        loss -= p.max(1e-12).ln();
    }
    let n = rows.len() as f64;
    Ok(json!({"accuracy": correct as f64 / n, "log_loss": loss / n, "test_rows": rows.len()}))
}

/// The run's Dataset, Model and Metrics, read from the artifact store;
/// with what the step reports about the artifacts and the training.
async fn read_outputs(dir: &Path, ran: Ran) -> anyhow::Result<(PipelineRun, String, String)> {
    let Ran { outcome, store, version, trainer } = ran;
    let artifact = |name: &str| {
        outcome.outputs.artifacts.get(name).and_then(|a| a.first()).ok_or_else(|| anyhow::anyhow!("no {name} output"))
    };
    let parameter = |name: &str| outcome.outputs.parameters.get(name).and_then(Value::as_str).unwrap_or_default();
    let (dataset, model, metrics) = (artifact("dataset")?, artifact("model")?, artifact("metrics")?);
    let rows = store.get(dataset).await?;
    let model_file = onnx_file(&store.get(model).await?, &dir.join("scratch"))?;
    let scores: Value = serde_json::from_slice(&store.get(metrics).await?)?;
    let number = |name: &str| scores[name].as_f64().unwrap_or(f64::NAN);
    let artifacts = format!(
        "Dataset {}, Model {}, Metrics {} (test accuracy={:.3} log_loss={:.4})",
        dataset.uri,
        model.uri,
        metrics.uri,
        number("accuracy"),
        number("log_loss")
    );
    let run = PipelineRun {
        run: outcome.run.clone(),
        version,
        dataset: Dataset::from_csv(std::str::from_utf8(&rows)?)?,
        model: model_file,
        train_job: parameter("train_job").to_string(),
        trainer,
    };
    Ok((run, artifacts, parameter("train_metrics").to_string()))
}

/// `bytes` as an ONNX file the server can load (it loads files only): one
/// file per content digest under `dir`, written whole or not at all.
fn onnx_file(bytes: &[u8], dir: &Path) -> anyhow::Result<PathBuf> {
    let digest = kf_dag::artifact::digest(bytes);
    let path = dir.join(format!("{}.onnx", digest.trim_start_matches("sha256:")));
    if !path.exists() {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let partial = path.with_extension("onnx.partial");
        std::fs::write(&partial, bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", partial.display()))?;
        std::fs::rename(&partial, &path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(path)
}
