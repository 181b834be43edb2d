//! Handler tests without sockets (`Router::oneshot`), and one end-to-end
//! test on 127.0.0.1:0.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::model::FnModel;
use crate::protocol::{DataType, InferenceResponse, MetadataTensor, ModelMetadata, Tensor, TensorData};
use crate::{Model, ModelState};

/// `y = 2x` over FP32 `[-1, 2]`, plus a `count` INT64 output.
fn doubler() -> Arc<dyn Model> {
    let meta = ModelMetadata {
        name: "doubler".into(),
        versions: None,
        platform: "closure".into(),
        inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1, 2] }],
        outputs: vec![
            MetadataTensor { name: "y".into(), datatype: DataType::Fp32, shape: vec![-1, 2] },
            MetadataTensor { name: "count".into(), datatype: DataType::Int64, shape: vec![1] },
        ],
    };
    Arc::new(FnModel::new(meta, |r: &InferenceRequest| {
        let x = &r.inputs[0];
        let y: Vec<f32> = x.data().as_f32().unwrap_or_default().iter().map(|v| v * 2.0).collect();
        Ok(InferenceResponse {
            outputs: vec![
                Tensor::new("y", x.shape().to_vec(), y)?,
                Tensor::new("count", vec![1], vec![x.data().len() as i64])?,
            ],
            ..Default::default()
        })
    }))
}

fn app_with(options: ServerOptions) -> (Router, Arc<ModelRepository>) {
    let repo = Arc::new(ModelRepository::new());
    repo.insert("doubler", "1", doubler());
    repo.insert("doubler", "2", doubler());
    (router(Arc::clone(&repo), Arc::new(Metrics::default()), options), repo)
}

fn app() -> Router {
    app_with(ServerOptions::default()).0
}

async fn call(app: Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, headers, body.to_vec())
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn post_json(path: &str, body: Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).expect("json")))
        .expect("request")
}

fn x_input() -> Value {
    json!([{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}])
}

async fn error_of(app: Router, request: Request<Body>) -> (StatusCode, String) {
    let (status, headers, body) = call(app, request).await;
    assert_eq!(headers["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(&body).expect("json error body");
    (status, doc["error"].as_str().expect("error string").to_string())
}

#[tokio::test]
async fn health_and_server_metadata() {
    assert_eq!(call(app(), get_req("/v2/health/live")).await.0, StatusCode::OK);
    assert_eq!(call(app(), get_req("/v2/health/ready")).await.0, StatusCode::OK);
    let (status, _, body) = call(app(), get_req("/v2")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(doc["name"], "kf-serve");
    assert!(doc["extensions"].as_array().expect("list").contains(&json!("binary_tensor_data")));
}

#[tokio::test]
async fn readiness_follows_load_state() {
    let (app, repo) = app_with(ServerOptions::default());
    repo.set_state("doubler", "3", ModelState::Loading);
    assert_eq!(error_of(app.clone(), get_req("/v2/health/ready")).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        error_of(app.clone(), get_req("/v2/models/doubler/versions/3/ready")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(call(app.clone(), get_req("/v2/models/doubler/ready")).await.0, StatusCode::OK, "v2 is ready");
    assert_eq!(call(app.clone(), get_req("/v2/models/doubler/versions/1/ready")).await.0, StatusCode::OK);
    assert_eq!(error_of(app.clone(), get_req("/v2/models/nope/ready")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(error_of(app, get_req("/v2/models/doubler/versions/9/ready")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn model_metadata_lists_versions_and_unknowns_are_404() {
    let (status, _, body) = call(app(), get_req("/v2/models/doubler")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(doc["name"], "doubler");
    assert_eq!(doc["versions"], json!(["1", "2"]));
    assert_eq!(doc["inputs"][0], json!({"name": "x", "datatype": "FP32", "shape": [-1, 2]}));
    assert_eq!(call(app(), get_req("/v2/models/doubler/versions/1")).await.0, StatusCode::OK);
    let (status, message) = error_of(app(), get_req("/v2/models/nope")).await;
    assert_eq!((status, message.as_str()), (StatusCode::NOT_FOUND, "unknown model \"nope\""));
    assert_eq!(error_of(app(), get_req("/v2/models/doubler/versions/7")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(error_of(app(), get_req("/v2/nothing/here")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn json_inference_echoes_id_and_version() {
    let body = json!({"id": "abc", "inputs": x_input()});
    let (status, headers, bytes) = call(app(), post_json("/v2/models/doubler/versions/1/infer", body)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(
        doc,
        json!({"model_name": "doubler", "model_version": "1", "id": "abc", "outputs": [
            {"name": "y", "shape": [2, 2], "datatype": "FP32", "data": [2.0, 4.0, 6.0, 8.0]},
            {"name": "count", "shape": [1], "datatype": "INT64", "data": [4]},
        ]})
    );
    // Without a version: the newest; without a Content-Type: still JSON.
    let request = Request::post("/v2/models/doubler/infer")
        .body(Body::from(serde_json::to_vec(&json!({"inputs": x_input()})).expect("json")))
        .expect("request");
    let (status, _, bytes) = call(app(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&bytes).expect("json")["model_version"], "2");
}

#[tokio::test]
async fn binary_requests_and_responses() {
    let request = InferenceRequest {
        inputs: vec![Tensor::new("x", vec![1, 2], vec![1.5f32, -1.0]).expect("t")],
        parameters: Some(serde_json::from_value(json!({"binary_data_output": true})).expect("params")),
        ..Default::default()
    };
    let encoded = request.encode(true).expect("encodes");
    let http = Request::post("/v2/models/doubler/infer")
        .header("content-type", "application/octet-stream")
        .header(HEADER_LENGTH, encoded.header_length.expect("binary").to_string())
        .body(Body::from(encoded.body))
        .expect("request");
    let (status, headers, body) = call(app(), http).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    let n = parse_header_length(headers[HEADER_LENGTH].to_str().expect("ascii")).expect("length");
    let response = InferenceResponse::decode(&body, Some(n)).expect("decodes");
    assert_eq!(response.outputs[0].data(), &TensorData::Fp32(vec![3.0, -2.0]));
}

#[tokio::test]
async fn bad_requests_get_protocol_errors() {
    let infer = "/v2/models/doubler/infer";
    let cases = [
        (json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}), 400),
        (json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}]}), 400),
        (json!({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FLOAT32", "data": [1, 2, 3, 4]}]}), 400),
        (json!({"inputs": [{"name": "x", "shape": [4, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}), 400),
        (json!({"inputs": [{"name": "z", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}), 400),
        (json!({"inputs": x_input(), "outputs": [{"name": "nope"}]}), 400),
        (json!({"id": "no inputs"}), 400),
    ];
    for (body, want) in cases {
        let (status, message) = error_of(app(), post_json(infer, body.clone())).await;
        assert_eq!(status.as_u16(), want, "{body}: {message}");
    }
    let truncated = Request::post(infer).body(Body::from(&b"{\"inputs\": ["[..])).expect("request");
    assert_eq!(error_of(app(), truncated).await.0, StatusCode::BAD_REQUEST);
    let past_end = Request::post(infer)
        .header(HEADER_LENGTH, "10000")
        .body(Body::from(serde_json::to_vec(&json!({"inputs": x_input()})).expect("json")))
        .expect("request");
    assert_eq!(error_of(app(), past_end).await.0, StatusCode::BAD_REQUEST);
    let not_a_number = Request::post(infer).header(HEADER_LENGTH, "ten").body(Body::empty()).expect("request");
    assert_eq!(error_of(app(), not_a_number).await.0, StatusCode::BAD_REQUEST);
    let unknown = post_json("/v2/models/nope/infer", json!({"inputs": x_input()}));
    assert_eq!(error_of(app(), unknown).await.0, StatusCode::NOT_FOUND);
    let unknown_version = post_json("/v2/models/doubler/versions/5/infer", json!({"inputs": x_input()}));
    assert_eq!(error_of(app(), unknown_version).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let (app, _) = app_with(ServerOptions { body_limit: 64, ..Default::default() });
    let big = serde_json::to_vec(&json!({"inputs": x_input(), "id": "x".repeat(100)})).expect("json");
    let declared = Request::post("/v2/models/doubler/infer").body(Body::from(big.clone())).expect("request");
    let (status, message) = error_of(app.clone(), declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{message}");
    // A streamed body has no Content-Length: the limit applies as bytes arrive.
    let chunks: Vec<std::result::Result<Vec<u8>, std::io::Error>> = big.chunks(16).map(|c| Ok(c.to_vec())).collect();
    let streamed = Request::post("/v2/models/doubler/infer")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .expect("request");
    assert_eq!(error_of(app, streamed).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn repository_extension_indexes_and_unloads() {
    let (app, repo) = app_with(ServerOptions::default());
    repo.set_state("broken", "1", ModelState::Failed("no such operator".into()));
    let (status, _, body) =
        call(app.clone(), Request::post("/v2/repository/index").body(Body::empty()).expect("r")).await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(doc[0], json!({"name": "broken", "version": "1", "state": "UNAVAILABLE", "reason": "no such operator"}));
    let (status, _, _) =
        call(app.clone(), Request::post("/v2/repository/models/broken/unload").body(Body::empty()).expect("r")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call(app.clone(), get_req("/v2/health/ready")).await.0, StatusCode::OK);
    let unload_again = Request::post("/v2/repository/models/broken/unload").body(Body::empty()).expect("r");
    assert_eq!(error_of(app, unload_again).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_count_requests_per_model_and_status() {
    let repo = Arc::new(ModelRepository::new());
    repo.insert("doubler", "1", doubler());
    let metrics = Arc::new(Metrics::default());
    let app = router(repo, Arc::clone(&metrics), ServerOptions::default());
    call(app.clone(), post_json("/v2/models/doubler/infer", json!({"inputs": x_input()}))).await;
    call(app.clone(), post_json("/v2/models/doubler/infer", json!({"inputs": []}))).await;
    call(app.clone(), post_json("/v2/models/random-name/infer", json!({"inputs": []}))).await;
    let (status, headers, body) = call(app, get_req("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    let text = String::from_utf8(body).expect("utf8");
    assert!(text.contains(r#"kf_serve_requests_total{model="doubler",code="200"} 1"#), "{text}");
    assert!(text.contains(r#"kf_serve_requests_total{model="doubler",code="400"} 1"#), "{text}");
    assert!(text.contains(r#"kf_serve_requests_total{model="",code="404"} 1"#), "{text}");
    assert!(!text.contains("random-name"));
    assert!(text.contains("kf_serve_requests_in_flight 0"));
}

#[tokio::test]
async fn metrics_expose_the_autoscaler_recommendation_per_known_model() {
    use crate::autoscale::{KpaConfig, ScaleMetric};
    let repo = Arc::new(ModelRepository::new());
    repo.insert("doubler", "1", doubler());
    // One request per second per replica at 70 %: three quick requests need 3+ replicas.
    let config = KpaConfig { metric: ScaleMetric::Rps, target: 1.0, ..KpaConfig::default() };
    let metrics = Arc::new(Metrics::with_autoscaler(config).expect("valid"));
    let app = router(repo, Arc::clone(&metrics), ServerOptions::default());
    for _ in 0..3 {
        call(app.clone(), post_json("/v2/models/doubler/infer", json!({"inputs": x_input()}))).await;
    }
    call(app.clone(), post_json("/v2/models/random-name/infer", json!({"inputs": []}))).await;
    let decisions = metrics.autoscale(Instant::now() + Duration::from_secs(1));
    assert_eq!(decisions.len(), 1, "only known models: {decisions:?}");
    assert_eq!(decisions[0].0, "doubler");
    assert!(decisions[0].1 >= 3, "{decisions:?}");
    let (_, _, body) = call(app, get_req("/metrics")).await;
    let text = String::from_utf8(body).expect("utf8");
    let line = format!("kf_serve_autoscaler_desired_replicas{{model=\"doubler\",metric=\"rps\"}} {}", decisions[0].1);
    assert!(text.contains(&line), "{text}");
    assert!(text.contains(r#"kf_serve_autoscaler_panic_mode{model="doubler",metric="rps"} 1"#), "{text}");
    assert!(!text.contains("random-name"));
}

#[tokio::test]
async fn the_ticker_runs_the_autoscaler_on_its_period() {
    let metrics = Arc::new(Metrics::default());
    metrics.start_model("m", Instant::now()).finish(Instant::now());
    let ticker = tokio::spawn(autoscale_ticker(Arc::clone(&metrics), Duration::from_millis(50)));
    assert!(!metrics.render().contains("kf_serve_autoscaler_desired_replicas{"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(metrics.render().contains(r#"kf_serve_autoscaler_desired_replicas{model="m",metric="concurrency"} 1"#));
    ticker.abort();
}

#[test]
fn end_to_end_on_a_real_socket_with_graceful_shutdown() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app(), async {
            let _ = stopped.await;
        }));
        let body = serde_json::to_vec(&json!({"inputs": x_input()})).expect("json");
        let raw = format!(
            "POST /v2/models/doubler/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let reply = http_exchange(addr, raw.into_bytes(), body).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains(r#""data":[2.0,4.0,6.0,8.0]"#), "{reply}");
        let _ = stop.send(());
        server.await.expect("joins").expect("clean shutdown");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no longer listening");
    });
}

async fn http_exchange(addr: std::net::SocketAddr, head: Vec<u8>, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&head).await.expect("write");
    stream.write_all(&body).await.expect("write");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("read");
    String::from_utf8_lossy(&reply).into_owned()
}

/// What `kf serve` runs: `run_until` with its own metrics and ticker; the
/// gauge appears on /metrics after a tick, for known models only.
#[test]
fn run_exposes_the_autoscaler_gauges_on_metrics() {
    use crate::autoscale::{KpaConfig, ScaleMetric};
    let repo = Arc::new(ModelRepository::new());
    repo.insert("doubler", "1", doubler());
    let mut options = ServerOptions { autoscale_period: Duration::from_millis(100), ..ServerOptions::default() };
    options.model_autoscale.insert("doubler".into(), KpaConfig { metric: ScaleMetric::Rps, ..KpaConfig::default() });
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        run_until("127.0.0.1:0".parse().expect("addr"), repo, options, |a| addr_tx.send(a).expect("send"), async {
            let _ = stopped.await;
        })
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(10)).expect("listening");
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let metrics = client.block_on(async {
        let body = serde_json::to_vec(&json!({"inputs": x_input()})).expect("json");
        let head = format!(
            "POST /v2/models/doubler/infer HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        assert!(http_exchange(addr, head.into_bytes(), body).await.starts_with("HTTP/1.1 200"));
        let get = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        for _ in 0..50 {
            let text = http_exchange(addr, get.clone().into_bytes(), Vec::new()).await;
            if text.contains("kf_serve_autoscaler_desired_replicas{") {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no autoscaler gauge after 2.5 s");
    });
    let _ = stop.send(());
    server.join().expect("joins").expect("served");
    assert!(metrics.contains(r#"kf_serve_autoscaler_desired_replicas{model="doubler",metric="rps"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_are_served_by_name() {
    use crate::kserve::InferenceGraph;
    use crate::router::{GraphPlan, GraphRouter};
    let (app, repo) = app_with(ServerOptions::default());
    let doc = json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph", "metadata": {"name": "both"},
        "spec": {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"name": "a", "serviceName": "doubler"}, {"name": "b", "serviceName": "doubler", "dependency": "Soft"},
            {"name": "c", "serviceName": "missing", "dependency": "Soft"}]}}}});
    let plan = GraphPlan::build(&InferenceGraph::from_value(doc).expect("parses")).expect("builds");
    let graphs = std::collections::BTreeMap::from([("both".to_string(), Arc::new(GraphRouter::new(plan, repo)))]);
    let app = app.merge(graph_routes(graphs));
    let (status, _, body) = call(app.clone(), post_json("/graphs/both", json!({"inputs": x_input()}))).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(answer["a"]["outputs"][0]["data"], json!([2.0, 4.0, 6.0, 8.0]));
    assert_eq!(answer["a"], answer["b"]);
    assert!(answer.get("c").is_none(), "the soft step that failed is left out");
    let (status, message) = error_of(app.clone(), post_json("/graphs/both", json!({"inputs": []}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    assert!(message.contains("step a"), "{message}");
    assert_eq!(error_of(app.clone(), post_json("/graphs/nope", json!({}))).await.0, StatusCode::NOT_FOUND);
    let not_json = Request::post("/graphs/both").body(Body::from("{")).expect("request");
    assert_eq!(error_of(app, not_json).await.0, StatusCode::BAD_REQUEST);
}

/// `doubler`, but sleeping `delay` first and saying it waits (so the server
/// runs it on the blocking pool, as it does remote and batching models).
fn slow_doubler(delay: std::time::Duration) -> Arc<dyn Model> {
    let inner = doubler();
    let metadata = inner.metadata().clone();
    struct Slow(Arc<dyn Model>, std::time::Duration, ModelMetadata);
    impl Model for Slow {
        fn metadata(&self) -> &ModelMetadata {
            &self.2
        }
        fn waits(&self) -> bool {
            true
        }
        fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
            std::thread::sleep(self.1);
            self.0.infer(request)
        }
    }
    Arc::new(Slow(inner, delay, metadata))
}

#[tokio::test]
async fn a_request_over_the_timeout_is_503_and_the_server_goes_on() {
    let options = ServerOptions { request_timeout: Some(Duration::from_millis(50)), ..ServerOptions::default() };
    let (app, repo) = app_with(options);
    repo.insert("slow", "1", slow_doubler(Duration::from_millis(400)));
    let (status, message) =
        error_of(app.clone(), post_json("/v2/models/slow/infer", json!({"inputs": x_input()}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(message.contains("timed out after 0.05 s"), "{message}");
    let (status, _, _) = call(app.clone(), post_json("/v2/models/doubler/infer", json!({"inputs": x_input()}))).await;
    assert_eq!(status, StatusCode::OK, "other models keep answering");
    let (_, _, body) = call(app, get_req("/metrics")).await;
    let text = String::from_utf8(body).expect("utf-8");
    assert!(text.contains(r#"kf_serve_requests_total{model="slow",code="503"} 1"#), "{text}");
}

#[tokio::test]
async fn metrics_show_batch_sizes_and_queue_depth_of_batching_models() {
    use crate::router::batch::{BatchOptions, BatchingModel};
    let (app, repo) = app_with(ServerOptions::default());
    let options = BatchOptions { max_batch_rows: 8, max_latency: Duration::from_millis(100) };
    // y = 2x alone: every output per row, as batching needs.
    let meta = ModelMetadata {
        name: "rows".into(),
        versions: None,
        platform: "closure".into(),
        inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1, 2] }],
        outputs: vec![MetadataTensor { name: "y".into(), datatype: DataType::Fp32, shape: vec![-1, 2] }],
    };
    let per_row = Arc::new(FnModel::new(meta, |r: &InferenceRequest| {
        let x = &r.inputs[0];
        let y: Vec<f32> = x.data().as_f32().unwrap_or_default().iter().map(|v| v * 2.0).collect();
        Ok(InferenceResponse { outputs: vec![Tensor::new("y", x.shape().to_vec(), y)?], ..Default::default() })
    }));
    repo.insert("batched", "1", Arc::new(BatchingModel::new(per_row, options).expect("starts")));
    let requests: Vec<_> = (0..4)
        .map(|_| tokio::spawn(call(app.clone(), post_json("/v2/models/batched/infer", json!({"inputs": x_input()})))))
        .collect();
    for r in requests {
        assert_eq!(r.await.expect("joins").0, StatusCode::OK);
    }
    let (_, _, body) = call(app, get_req("/metrics")).await;
    let text = String::from_utf8(body).expect("utf-8");
    // Four requests of two rows: 8 rows in all, in however many batches.
    assert!(text.contains(r#"kf_serve_batch_size_sum{model="batched",version="1"} 8"#), "{text}");
    assert!(text.contains(r#"kf_serve_batch_queue_depth{model="batched",version="1"} 0"#), "{text}");
    let count: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"kf_serve_batch_size_count{model="batched",version="1"} "#))
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!((1..=4).contains(&count), "{text}");
    assert!(!text.contains(r#"kf_serve_batch_size_count{model="doubler""#), "only batching models: {text}");
}
