//! Step 5: register the tuned model in kf-registry (SQLite) — a
//! RegisteredModel, a new ModelVersion per run with its metrics and lineage
//! as customProperties, and a ModelArtifact with the file's URI — then read
//! the URI back, which is what the serving step loads.

use std::path::{Path, PathBuf};

use anyhow::Context;
use kf_registry::record::Kind;
use kf_registry::registry::{FindParams, ListParams, Scope};
use kf_registry::sqlite::SqliteStore;
use kf_registry::{Artifact, ModelVersion, RegisteredModel, Registry};
use serde_json::{Value, json};

use super::Step;
use super::tuning::Tuned;

const NAME: &str = "registry: register the best model with its lineage";
/// The registered model every quickstart run adds a version to.
pub const MODEL_NAME: &str = "quickstart-logreg";

/// Where the registry put the model.
pub struct Registered {
    /// `v<run>`.
    pub version: String,
    /// The ModelArtifact's URI, as read back from the registry.
    pub uri: String,
    /// The file that URI names.
    pub path: PathBuf,
}

/// Registers `tuned`'s best model as version `v<run>`; `pipeline_run` is
/// the pipeline run whose dataset the experiment tuned on.
pub async fn registry_step(dir: &Path, tuned: &Tuned, pipeline_run: &str, run: u32) -> (Step, Option<Registered>) {
    match register(dir, tuned, pipeline_run, run).await {
        Ok(r) => {
            let detail = format!(
                "RegisteredModel {MODEL_NAME:?} version {:?} in {} with val_loss, lr and lineage (pipeline run, \
                 experiment, trial, TrainJob) as customProperties; artifact {}",
                r.version,
                dir.join("registry.db").display(),
                r.uri
            );
            (Step { name: NAME, status: "done", detail }, Some(r))
        }
        Err(err) => (Step { name: NAME, status: "failed", detail: format!("{err:#}") }, None),
    }
}

async fn register(dir: &Path, tuned: &Tuned, pipeline_run: &str, run: u32) -> anyhow::Result<Registered> {
    let db = dir.join("registry.db");
    let db = db.to_str().ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", db.display()))?;
    let store = SqliteStore::open(db).await.with_context(|| format!("the registry database {db}"))?;
    let registry = Registry::new(store);
    let find = FindParams { name: Some(MODEL_NAME.into()), ..FindParams::default() };
    let model: RegisteredModel = match registry.find(&find).await {
        Ok(model) => model,
        Err(kf_registry::Error::NotFound { .. }) => {
            let doc = json!({"name": MODEL_NAME, "description": "kf quickstart: softmax regression on iris-like data",
                             "owner": "kf-quickstart"});
            registry.create(doc, None).await?
        }
        Err(e) => return Err(e.into()),
    };
    let model_id = model.id.clone().ok_or_else(|| anyhow::anyhow!("the registry returned a model without an id"))?;
    let string = |s: &str| json!({"metadataType": "MetadataStringValue", "string_value": s});
    let mut properties = serde_json::Map::new();
    properties
        .insert("val_loss".into(), json!({"metadataType": "MetadataDoubleValue", "double_value": tuned.best_value}));
    for (name, value) in &tuned.best_params {
        properties.insert(name.clone(), string(value));
    }
    properties.insert("pipeline_run".into(), string(pipeline_run));
    properties.insert("experiment".into(), string(&tuned.experiment));
    properties.insert("trial".into(), string(&tuned.best_trial));
    // The trial's TrainJob wrote the model (Katib names it after the trial).
    properties.insert("train_job".into(), string(&tuned.best_trial));
    let version_name = format!("v{run}");
    let version: ModelVersion = registry
        .create(
            json!({"name": version_name, "registeredModelId": model_id, "author": "kf-quickstart",
                   "customProperties": Value::Object(properties)}),
            None,
        )
        .await?;
    let version_id =
        version.id.clone().ok_or_else(|| anyhow::anyhow!("the registry returned a version without an id"))?;
    let path = std::path::absolute(&tuned.model)?;
    let uri = format!("file://{}", path.display());
    registry
        .upsert_artifact(
            Kind::ModelVersion,
            &version_id,
            json!({"artifactType": "model-artifact", "name": "model.onnx", "uri": uri,
                   "modelFormatName": "onnx", "modelFormatVersion": "13"}),
        )
        .await?;

    // What serving loads is what the registry says, not what we just wrote.
    let scope = Scope { artifact_type: Some("model-artifact".into()), ..Scope::default() };
    let artifacts =
        registry.list_children::<Artifact>(Kind::ModelVersion, &version_id, &ListParams::default(), scope).await?;
    let stored =
        artifacts.items.first().ok_or_else(|| anyhow::anyhow!("version {version_name} has no model artifact"))?;
    let uri = serde_json::to_value(stored)?["uri"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the model artifact has no uri"))?
        .to_string();
    let path = PathBuf::from(
        uri.strip_prefix("file://").ok_or_else(|| anyhow::anyhow!("serving reads file:// artifacts, found {uri}"))?,
    );
    Ok(Registered { version: version_name, uri, path })
}
