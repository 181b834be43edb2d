//! kf-serve inside your own binary: the iris ONNX model and a hand-written
//! Rust model as two revisions of one served model, 20 % canary, behind the
//! Open Inference Protocol v2 REST API on 127.0.0.1, called over HTTP.
//!
//! Run with `cargo run -p kf-serve --features server,onnx --example embed
//! [-- path/to/iris-logreg.onnx]`. The guide that walks through it is
//! docs/guides/kf-serve.md.

use std::sync::Arc;

use kf_serve::metrics::Metrics;
use kf_serve::protocol::{DataType, InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata, Tensor};
use kf_serve::router::{CanaryModel, TrafficSplit};
use kf_serve::server::{self, ServerOptions};
use kf_serve::{FnModel, Model, ModelRepository, OnnxModel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: onnx
    // An ONNX file runs natively (tract): no Python, no sidecar. The iris model
    // takes `input` FP32 [N, 4] and returns `label` INT64 [N] and `probabilities` FP32 [N, 3].
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/iris-logreg.onnx").into());
    let onnx: Arc<dyn Model> = Arc::new(OnnxModel::load("iris", &path)?);
    // guide: end

    // guide: closure
    // Any Rust code is a model too: metadata plus a closure over v2 tensors.
    // This one is a two-rule decision on petal length and width, declaring the
    // same inputs and outputs as the ONNX model so it can stand in for it.
    let metadata = ModelMetadata {
        platform: "rust".into(),
        inputs: vec![MetadataTensor { name: "input".into(), datatype: DataType::Fp32, shape: vec![-1, 4] }],
        ..onnx.metadata().clone()
    };
    let rules: Arc<dyn Model> = Arc::new(FnModel::new(metadata, |request: &InferenceRequest| {
        let rows = request.inputs[0].data().as_f32().unwrap_or_default();
        let labels: Vec<i64> = rows
            .chunks(4)
            .map(|r| {
                if r[2] < 2.5 {
                    0
                } else if r[3] < 1.75 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let probabilities: Vec<f32> = labels.iter().flat_map(|&l| (0..3).map(move |c| f32::from(c == l))).collect();
        Ok(InferenceResponse {
            outputs: vec![
                Tensor::new("label", vec![labels.len()], labels.clone())?,
                Tensor::new("probabilities", vec![labels.len(), 3], probabilities)?,
            ],
            ..Default::default()
        })
    }));
    // guide: end

    // guide: repository
    // The repository serves models by name and version and checks every
    // request against the model's metadata. "iris" is a canary: 20 % of
    // requests go to the rules, 80 % to the ONNX model (exact over every 100).
    let canary = Arc::new(CanaryModel::new(onnx.clone(), rules.clone(), TrafficSplit::new(20)?)?);
    let repo = Arc::new(ModelRepository::new());
    repo.insert("iris-onnx", "1", onnx);
    repo.insert("iris-rules", "1", rules);
    repo.insert("iris", "1", canary.clone());
    // guide: end

    // guide: serve
    // The v2 REST API as an axum Router (/v2/health/*, /v2/models/…/infer,
    // /metrics); `server::serve` runs it until the shutdown future completes.
    let app = server::router(repo.clone(), Arc::new(Metrics::default()), ServerOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server::serve(listener, app, async {
        let _ = stopped.await;
    }));
    // guide: end

    // guide: http
    // One v2 infer request over HTTP, in the protocol's JSON form.
    let body = r#"{"id":"q1","inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}]}"#;
    let request = format!(
        "POST /v2/models/iris-onnx/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, answer) = response.split_once("\r\n\r\n").ok_or("an HTTP response has a head and a body")?;
    println!("POST /v2/models/iris-onnx/infer\n{}\n{answer}", head.lines().next().unwrap_or_default());
    let _ = stop.send(());
    running.await??;
    // guide: end

    // guide: canary
    // In process, without HTTP: ten requests to "iris" and where the split sent them.
    let flower = InferenceRequest {
        inputs: vec![Tensor::new("input", vec![1, 4], vec![6.7f32, 3.0, 5.2, 2.3])?],
        ..Default::default()
    };
    for _ in 0..10 {
        repo.infer("iris", None, &flower)?;
    }
    let (stable, to_canary) = canary.served();
    println!("iris: {stable} request(s) to the ONNX model, {to_canary} to the rules");
    // guide: end
    Ok(())
}
