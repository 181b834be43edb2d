//! Steps 6–7: serve the model the training step wrote with kf-serve over
//! the Open Inference Protocol v2 on 127.0.0.1, and send it the held-out
//! rows as live HTTP requests.

use std::net::SocketAddr;
use std::sync::Arc;

use kf_serve::metrics::Metrics;
use kf_serve::server::{ServerOptions, router, serve};
use kf_serve::{ModelRepository, OnnxModel};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Step;
use super::training::{CLASSES, TrainedModel};

pub const SERVING: &str = "serving: live OIP v2 predictions from the trained model";
const MODEL: &str = "quickstart-logreg";

pub async fn serving_step(model: &TrainedModel) -> Step {
    match serve_and_predict(model).await {
        Ok(detail) => Step { name: SERVING, status: "done", detail },
        Err(err) => Step { name: SERVING, status: "failed", detail: format!("{err:#}") },
    }
}

async fn serve_and_predict(model: &TrainedModel) -> anyhow::Result<String> {
    let repo = Arc::new(ModelRepository::new());
    let version = model.version.to_string();
    repo.insert(MODEL, &version, Arc::new(OnnxModel::load(MODEL, &model.path)?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(repo, Arc::new(Metrics::default()), ServerOptions::default());
    let server = tokio::spawn(serve(listener, app, async {
        let _ = stopped.await;
    }));

    let path = format!("/v2/models/{MODEL}/versions/{version}/infer");
    let mut correct = 0;
    let mut shown = Vec::new();
    for (i, (x, class)) in model.test.iter().enumerate() {
        let request = json!({"id": format!("row-{i}"), "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x}]});
        let response = post_json(addr, &path, &request).await?;
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
    let n = model.test.len();
    Ok(format!(
        "served {MODEL} v{version} at http://{addr}{path}; {n} live predictions over HTTP, accuracy {:.1} % \
         ({correct}/{n}) on rows the model never saw; e.g. {}",
        100.0 * correct as f64 / n.max(1) as f64,
        shown.join("; ")
    ))
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
