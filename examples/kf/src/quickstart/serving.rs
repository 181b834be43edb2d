//! Steps 6–7: serve with kf-serve over the Open Inference Protocol v2 on
//! 127.0.0.1 — the tuned model as a canary beside the pipeline's model
//! (KServe's `canaryTrafficPercent`) — and send the held-out rows as live
//! HTTP requests. Each answer is matched against both revisions run
//! in-process, so the report says which revision served it.

use std::net::SocketAddr;
use std::sync::Arc;

use kf_serve::metrics::Metrics;
use kf_serve::protocol::{BinaryOutputs, InferenceRequest};
use kf_serve::router::{CanaryModel, TrafficSplit};
use kf_serve::server::{ServerOptions, router, serve};
use kf_serve::{Model, ModelRepository, OnnxModel};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Step;
use super::dataset::CLASSES;
use super::pipeline::PipelineRun;

/// Share of requests the canary (the tuned model) gets.
const CANARY_PERCENT: u8 = 30;

pub const SERVING: &str = "serving: live OIP v2 predictions from the trained model";
const MODEL: &str = "quickstart-logreg";

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

pub async fn serving_step(model: &PipelineRun, tuned: Option<Canary<'_>>) -> (Step, Option<Served>) {
    match serve_and_predict(model, tuned).await {
        Ok((detail, served)) => (Step { name: SERVING, status: "done", detail }, Some(served)),
        Err(err) => (Step { name: SERVING, status: "failed", detail: format!("{err:#}") }, None),
    }
}

async fn serve_and_predict(model: &PipelineRun, tuned: Option<Canary<'_>>) -> anyhow::Result<(String, Served)> {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(repo, Arc::new(Metrics::default()), ServerOptions::default());
    let server = tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));

    let path = format!("/v2/models/{MODEL}/versions/{version}/infer");
    let mut correct = 0;
    let mut served_by_canary = 0;
    let mut shown = Vec::new();
    for (i, (x, class)) in model.dataset.test.iter().enumerate() {
        let request = json!({"id": format!("row-{i}"), "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x}]});
        let response = post_json(addr, &path, &request).await?;
        if let Some(canary) = &canary {
            served_by_canary += usize::from(which_revision(&request, &response, &stable, canary)? == "canary");
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
    let _ = stop.send(());
    server.await??;
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
        "served {MODEL} v{version} at http://{addr}{path}: {revisions}; {n} live predictions over HTTP, accuracy \
         {:.1} % ({correct}/{n}) on rows no model saw; e.g. {}",
        100.0 * accuracy,
        shown.join("; ")
    );
    Ok((detail, Served { predictions: n, accuracy }))
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

/// One HTTP/1.1 POST of a JSON body on a fresh connection; the reply's JSON
/// body, or an error with the status line.
async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> anyhow::Result<Value> {
    let body = serde_json::to_vec(body)?;
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or_default();
    anyhow::ensure!(status.contains(" 200 "), "POST {path}: {status}: {body}");
    Ok(serde_json::from_str(body)?)
}
