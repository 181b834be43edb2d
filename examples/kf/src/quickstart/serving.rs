//! Steps 6–7: serve with kf-serve over the Open Inference Protocol v2 on
//! 127.0.0.1, behind the `TenancyLayer` — the tuned model as a canary
//! beside the pipeline's model (KServe's `canaryTrafficPercent`) — and send
//! the held-out rows as live HTTP requests with the tenant's token. Each
//! answer is matched against both revisions run in-process, so the report
//! says which revision served it.

use std::net::SocketAddr;
use std::sync::Arc;

use kf_serve::metrics::Metrics;
use kf_serve::protocol::{BinaryOutputs, InferenceRequest};
use kf_serve::router::{CanaryModel, TrafficSplit};
use kf_serve::server::{ServerOptions, router};
use kf_serve::{Model, ModelRepository, OnnxModel};
use kf_tenancy::Verb;
use serde_json::{Value, json};

use super::Step;
use super::dataset::CLASSES;
use super::pipeline::PipelineRun;
use super::tenant::{Tenant, http, serve};

/// Share of requests the canary (the tuned model) gets.
pub const CANARY_PERCENT: u8 = 30;

pub const SERVING: &str = "serving: live OIP v2 predictions from the trained model";
pub const MODEL: &str = "quickstart-logreg";

/// What the live predictions showed.
pub struct Served {
    /// Predictions made over HTTP.
    pub predictions: usize,
    /// Share of them that were right.
    pub accuracy: f64,
}

/// The canary revision: what to call it and the file the registry points at.
pub struct Canary<'a> {
    /// How the report names it, e.g. `quickstart-logreg v3 (trial quickstart-lr-v3-14)`.
    pub label: String,
    /// The ONNX file.
    pub path: &'a std::path::Path,
}

pub async fn serving_step(tenant: &Tenant, model: &PipelineRun, tuned: Option<Canary<'_>>) -> (Step, Option<Served>) {
    match serve_and_predict(tenant, model, tuned).await {
        Ok((detail, served)) => (Step { name: SERVING, status: "done", detail }, Some(served)),
        Err(err) => (Step { name: SERVING, status: "failed", detail: format!("{err:#}") }, None),
    }
}

async fn serve_and_predict(
    tenant: &Tenant,
    model: &PipelineRun,
    tuned: Option<Canary<'_>>,
) -> anyhow::Result<(String, Served)> {
    tenant.authorize(Verb::Create, "inferenceservices")?;
    let repo = Arc::new(ModelRepository::new());
    let version = model.version.to_string();
    let stable: Arc<dyn Model> = Arc::new(OnnxModel::load(MODEL, &model.model)?);
    let canary: Option<Arc<dyn Model>> = match &tuned {
        Some(t) => Some(Arc::new(OnnxModel::load(MODEL, t.path)?)),
        None => None,
    };
    match &canary {
        Some(canary) => {
            let split = TrafficSplit::new(CANARY_PERCENT)?;
            repo.insert(MODEL, &version, Arc::new(CanaryModel::new(stable.clone(), canary.clone(), split)?));
        }
        None => repo.insert(MODEL, &version, stable.clone()),
    }
    let app = router(repo, Arc::new(Metrics::default()), ServerOptions::default());
    let (addr, server) = serve(tenant.guard(app, "inferenceservices")).await?;
    let result = predict(tenant, addr, model, &version, &stable, canary.as_ref()).await;
    server.stop().await?;
    let (path, correct, served_by_canary, shown) = result?;

    let n = model.dataset.test.len();
    let revisions = match &tuned {
        Some(t) => format!(
            "the pipeline's model (stable, run {}) and {} (canary, {CANARY_PERCENT} %: served {served_by_canary} of {n})",
            model.run, t.label
        ),
        None => format!("the pipeline's model (run {}; no registered model, so no canary)", model.run),
    };
    let accuracy = correct as f64 / n.max(1) as f64;
    let detail = format!(
        "served {MODEL} v{version} at http://{addr}{path} behind the TenancyLayer (as {}; no token: 401): \
         {revisions}; {n} live predictions over HTTP, accuracy {:.1} % ({correct}/{n}) on rows no model saw; e.g. {}",
        tenant.user(),
        100.0 * accuracy,
        shown.join("; ")
    );
    Ok((detail, Served { predictions: n, accuracy }))
}

/// The held-out rows as live requests, as the tenant; also checks that a
/// request without the token is refused.
async fn predict(
    tenant: &Tenant,
    addr: SocketAddr,
    model: &PipelineRun,
    version: &str,
    stable: &Arc<dyn Model>,
    canary: Option<&Arc<dyn Model>>,
) -> anyhow::Result<(String, usize, usize, Vec<String>)> {
    let path = format!("/v2/models/{MODEL}/versions/{version}/infer");
    let (status, _) = http(addr, "POST", &path, None, Some(&json!({"inputs": []}))).await?;
    anyhow::ensure!(status == 401, "an inference request without a token got {status}; expected 401");
    let mut correct = 0;
    let mut served_by_canary = 0;
    let mut shown = Vec::new();
    for (i, (x, class)) in model.dataset.test.iter().enumerate() {
        let request = json!({"id": format!("row-{i}"), "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x}]});
        let (status, response) = tenant.call(addr, "POST", &path, Some(&request)).await?;
        anyhow::ensure!(status == 200, "POST {path}: HTTP {status}: {response}");
        if let Some(canary) = canary {
            served_by_canary += usize::from(which_revision(&request, &response, stable, canary)? == "canary");
        }
        let label = output(&response, "label").and_then(|d| d.first()?.as_i64());
        let probabilities = output(&response, "probabilities").cloned().unwrap_or_default();
        let Some(label) = label else { anyhow::bail!("the response has no label output: {response}") };
        correct += usize::from(label == *class);
        if shown.len() < 3 {
            let p = probabilities.get(usize::try_from(label).unwrap_or(0)).and_then(Value::as_f64).unwrap_or(0.0);
            let name = |c: i64| CLASSES.get(usize::try_from(c).unwrap_or(usize::MAX)).copied().unwrap_or("?");
            let features: Vec<String> = x.iter().map(|v| format!("{v:.1}")).collect();
            shown.push(format!("[{}] → {} (p={p:.2}; truth {})", features.join(", "), name(label), name(*class)));
        }
    }
    Ok((path, correct, served_by_canary, shown))
}

/// Which revision gave `response`: the one whose in-process answer to the
/// same request has the same probabilities.
fn which_revision(
    request: &Value,
    response: &Value,
    stable: &Arc<dyn Model>,
    canary: &Arc<dyn Model>,
) -> anyhow::Result<&'static str> {
    let request = InferenceRequest::decode(&serde_json::to_vec(request)?, None)?;
    let served = output(response, "probabilities").cloned().unwrap_or_default();
    let close = |model: &Arc<dyn Model>| -> anyhow::Result<bool> {
        let local = serde_json::from_slice::<Value>(&model.infer(&request)?.encode(&BinaryOutputs::none())?.body)?;
        let mine = output(&local, "probabilities").cloned().unwrap_or_default();
        Ok(mine.len() == served.len()
            && mine
                .iter()
                .zip(&served)
                .all(|(a, b)| (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(0.0)).abs() < 1e-6))
    };
    Ok(match (close(stable)?, close(canary)?) {
        (false, true) => "canary",
        (true, _) => "stable",
        (false, false) => anyhow::bail!("the answer matches neither revision: {response}"),
    })
}

fn output<'a>(response: &'a Value, name: &str) -> Option<&'a Vec<Value>> {
    response["outputs"].as_array()?.iter().find(|o| o["name"] == name)?["data"].as_array()
}
