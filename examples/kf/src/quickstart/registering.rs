//! Step 5: register the tuned model in kf-registry (SQLite) as the tenant:
//! the registry's REST API (the one the official Model Registry client
//! speaks) is served on 127.0.0.1 behind the `TenancyLayer`, and the
//! quickstart makes the client's calls with the user's token — a
//! RegisteredModel, a new ModelVersion per run with its metrics and lineage
//! as customProperties, a ModelArtifact with the file's URI — then reads the
//! URI back, which is what the serving step loads. A call without a token is
//! refused, which the step checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use kf_registry::Registry;
use kf_registry::sqlite::SqliteStore;
use serde_json::{Value, json};

use super::Step;
use super::tenant::{Tenant, http, serve};
use super::tuning::Tuned;

/// The API prefix the official client uses.
const API: &str = "/api/model_registry/v1alpha3";

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
pub async fn registry_step(
    dir: &Path,
    tenant: &Tenant,
    tuned: &Tuned,
    pipeline_run: &str,
    run: u32,
) -> (Step, Option<Registered>) {
    match register(dir, tenant, tuned, pipeline_run, run).await {
        Ok((r, addr)) => {
            let detail = format!(
                "as {} through the TenancyLayer on http://{addr}{API} (a call without a token got 401): \
                 RegisteredModel {MODEL_NAME:?} version {:?} in {} with val_loss, lr and lineage (pipeline run, \
                 experiment, trial, TrainJob) as customProperties; artifact {}",
                tenant.user(),
                r.version,
                dir.join("registry.db").display(),
                r.uri
            );
            (Step { name: NAME, status: "done", detail }, Some(r))
        }
        Err(err) => (Step { name: NAME, status: "failed", detail: format!("{err:#}") }, None),
    }
}

async fn register(
    dir: &Path,
    tenant: &Tenant,
    tuned: &Tuned,
    pipeline_run: &str,
    run: u32,
) -> anyhow::Result<(Registered, std::net::SocketAddr)> {
    let store = open_registry(dir).await?;
    let app = tenant.guard(kf_registry::server::router(Arc::new(Registry::new(store))), "registeredmodels");
    let (addr, server) = serve(app).await?;
    let result = calls(addr, tenant, tuned, pipeline_run, run).await;
    server.stop().await?;
    Ok((result?, addr))
}

/// Opens (creating, migrating) `<dir>/registry.db`; the error names the file.
pub async fn open_registry(dir: &Path) -> anyhow::Result<SqliteStore> {
    let db = dir.join("registry.db");
    let db = db.to_str().ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", db.display()))?;
    SqliteStore::open(db).await.with_context(|| format!("the registry database {db}"))
}

/// The official client's call sequence, as the tenant.
async fn calls(
    addr: std::net::SocketAddr,
    tenant: &Tenant,
    tuned: &Tuned,
    pipeline_run: &str,
    run: u32,
) -> anyhow::Result<Registered> {
    let (status, _) = http(addr, "GET", &format!("{API}/registered_models"), None, None).await?;
    anyhow::ensure!(status == 401, "the registry answered {status} to a call without a token; expected 401");
    let call = |method: &'static str, path: String, body: Option<Value>| async move {
        let (status, value) = tenant.call(addr, method, &path, body.as_ref()).await?;
        anyhow::Ok((status, value))
    };
    let ok = |what: &str, (status, value): (u16, Value)| -> anyhow::Result<Value> {
        anyhow::ensure!((200..300).contains(&status), "{what}: HTTP {status}: {value}");
        Ok(value)
    };

    let found = call("GET", format!("{API}/registered_model?name={MODEL_NAME}"), None).await?;
    let model = match found.0 {
        404 => {
            let doc = json!({"name": MODEL_NAME, "description": "kf quickstart: softmax regression on iris-like data",
                             "owner": tenant.user()});
            ok("create the registered model", call("POST", format!("{API}/registered_models"), Some(doc)).await?)?
        }
        _ => ok("find the registered model", found)?,
    };
    let model_id = model["id"].as_str().ok_or_else(|| anyhow::anyhow!("the registered model has no id: {model}"))?;
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
    let doc = json!({"name": version_name, "registeredModelId": model_id, "author": tenant.user(),
                     "customProperties": Value::Object(properties)});
    let version = ok("create the model version", call("POST", format!("{API}/model_versions"), Some(doc)).await?)?;
    let version_id = version["id"].as_str().ok_or_else(|| anyhow::anyhow!("the version has no id: {version}"))?;
    let path = std::path::absolute(&tuned.model)?;
    let artifact = json!({"artifactType": "model-artifact", "name": "model.onnx", "uri": format!("file://{}", path.display()),
                          "modelFormatName": "onnx", "modelFormatVersion": "13"});
    let artifacts = format!("{API}/model_versions/{version_id}/artifacts");
    ok("attach the model artifact", call("POST", artifacts.clone(), Some(artifact)).await?)?;

    // What serving loads is what the registry says, not what we just wrote.
    let listed = ok(
        "list the version's artifacts",
        call("GET", format!("{artifacts}?artifactType=model-artifact"), None).await?,
    )?;
    let uri = listed["items"][0]["uri"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("version {version_name} has no model artifact: {listed}"))?
        .to_string();
    let path = PathBuf::from(
        uri.strip_prefix("file://").ok_or_else(|| anyhow::anyhow!("serving reads file:// artifacts, found {uri}"))?,
    );
    Ok(Registered { version: version_name, uri, path })
}
