//! Against real kf-serve servers on 127.0.0.1:0, each on a runtime of its
//! own so that a test can kill one outright and start another on its port.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::metrics::Metrics;
use crate::protocol::{DataType, MetadataTensor, Tensor};
use crate::server::{ServerOptions, router, serve};
use crate::{FnModel, ModelRepository, ModelState};

/// A kf-serve server on its own runtime.
struct Backend {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl Backend {
    fn start(repo: Arc<ModelRepository>, addr: SocketAddr) -> Backend {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = router(repo, Arc::new(Metrics::default()), ServerOptions::default());
        runtime.spawn(serve(listener, app, std::future::pending()));
        Backend { runtime: Some(runtime), addr }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server abruptly: tasks aborted, sockets closed, no draining.
    fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_millis(500));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn vector_meta(name: &str) -> ModelMetadata {
    ModelMetadata {
        name: name.into(),
        versions: None,
        platform: "closure".into(),
        inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1] }],
        outputs: vec![MetadataTensor { name: "y".into(), datatype: DataType::Fp32, shape: vec![-1] }],
    }
}

/// `y = 2x`, counting its calls.
fn doubler(calls: Arc<AtomicUsize>) -> Arc<dyn Model> {
    Arc::new(FnModel::new(vector_meta("doubler"), move |r: &InferenceRequest| {
        calls.fetch_add(1, Ordering::SeqCst);
        let y: Vec<f32> = r.inputs[0].data().as_f32().unwrap_or_default().iter().map(|v| v * 2.0).collect();
        Ok(InferenceResponse { outputs: vec![Tensor::new("y", vec![y.len()], y)?], ..Default::default() })
    }))
}

fn request(x: &[f32]) -> InferenceRequest {
    InferenceRequest {
        id: Some("q".into()),
        inputs: vec![Tensor::new("x", vec![x.len()], x.to_vec()).expect("tensor")],
        ..Default::default()
    }
}

fn fast_options() -> RemoteOptions {
    RemoteOptions {
        timeout: Duration::from_secs(5),
        retries: 3,
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        probe_interval: Duration::from_millis(50),
        ..RemoteOptions::default()
    }
}

fn backend_with(name: &str, model: Arc<dyn Model>) -> (Backend, Arc<ModelRepository>) {
    let repo = Arc::new(ModelRepository::new());
    repo.insert(name, "1", model);
    (Backend::start(Arc::clone(&repo), "127.0.0.1:0".parse().expect("addr")), repo)
}

#[test]
fn infers_through_a_real_server_and_maps_its_errors() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (backend, _repo) = backend_with("doubler", doubler(Arc::clone(&calls)));
    let remote = RemoteModel::connect(&backend.url(), "doubler", None, fast_options()).expect("connects");
    assert_eq!(remote.metadata().inputs, vector_meta("doubler").inputs);
    assert_eq!(remote.metadata().versions, Some(vec!["1".to_string()]));
    assert!(remote.waits() && remote.is_ready());

    let response = remote.infer(&request(&[1.0, 2.5, -3.0])).expect("infers");
    assert_eq!(response.outputs[0].data().as_f32(), Some(&[2.0f32, 5.0, -6.0][..]));
    assert_eq!((response.model_name.as_str(), response.id.as_deref()), ("doubler", Some("q")));

    // The remote checks the request and says why: a 400 with its message.
    let wrong =
        InferenceRequest { inputs: vec![Tensor::new("x", vec![1], vec![1i64]).expect("t")], ..Default::default() };
    let err = remote.infer(&wrong).expect_err("wrong datatype");
    assert_eq!(err.class().http_status(), 400);
    assert!(err.to_string().contains("INT64") || err.to_string().contains("FP32"), "{err}");

    // Served from a local repository like any model, under its local name.
    let local = ModelRepository::new();
    local.insert("proxy", "7", Arc::new(remote));
    let through = local.infer("proxy", None, &request(&[4.0])).expect("infers");
    assert_eq!((through.model_name.as_str(), through.model_version.as_deref()), ("proxy", Some("7")));
    assert_eq!(through.outputs[0].data().as_f32(), Some(&[8.0f32][..]));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the bad request never reached the model");

    let missing = RemoteModel::connect(&backend.url(), "nope", None, fast_options()).expect_err("unknown");
    assert_eq!(missing.class().http_status(), 404);
    let version = RemoteModel::connect(&backend.url(), "doubler", Some("9"), fast_options()).expect_err("no v9");
    assert_eq!(version.class().http_status(), 404);
    for bad in ["https://127.0.0.1:1", "127.0.0.1:8000", "not a url"] {
        let err = RemoteModel::connect(bad, "doubler", None, fast_options()).expect_err(bad);
        assert!(matches!(err, Error::ModelLoad { .. }), "{bad}: {err}");
    }
}

#[test]
fn retries_503_until_the_model_is_ready_but_never_a_failed_inference() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (backend, repo) = backend_with("doubler", doubler(Arc::clone(&calls)));
    let remote = RemoteModel::connect(&backend.url(), "doubler", None, fast_options()).expect("connects");
    // The model reloads: 503 for 100 ms. Backoff 20+40+80+160 ms outlasts it.
    repo.set_state("doubler", "1", ModelState::Loading);
    let reload = {
        let (repo, calls) = (Arc::clone(&repo), Arc::clone(&calls));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            repo.insert("doubler", "1", doubler(calls));
        })
    };
    let response = remote.infer(&request(&[1.0])).expect("answered once the model is back");
    assert_eq!(response.outputs[0].data().as_f32(), Some(&[2.0f32][..]));
    reload.join().expect("joins");

    // Still loading after every retry: 503, and the model reads not ready.
    repo.set_state("doubler", "1", ModelState::Loading);
    let err = remote.infer(&request(&[1.0])).expect_err("never ready");
    assert_eq!(err.class().http_status(), 503);
    assert!(err.to_string().contains("after 4 attempts"), "{err}");

    // A model that fails answers 500 once: inference is not retried.
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&failures);
    repo.insert(
        "doubler",
        "1",
        Arc::new(FnModel::new(vector_meta("doubler"), move |_: &InferenceRequest| {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(Error::Inference { model: "doubler".into(), message: "out of memory".into() })
        })),
    );
    let err = remote.infer(&request(&[1.0])).expect_err("fails");
    assert_eq!(err.class().http_status(), 500);
    assert!(err.to_string().contains("out of memory"), "{err}");
    assert_eq!(failures.load(Ordering::SeqCst), 1);
}

#[test]
fn a_slow_answer_times_out_without_a_retry() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let slow = Arc::new(FnModel::new(vector_meta("slow"), move |r: &InferenceRequest| {
        counted.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(800));
        Ok(InferenceResponse { outputs: vec![r.inputs[0].clone()], ..Default::default() })
    }));
    let (backend, _repo) = backend_with("slow", slow);
    let options = RemoteOptions { timeout: Duration::from_millis(150), ..fast_options() };
    let remote = RemoteModel::connect(&backend.url(), "slow", None, options).expect("connects");
    let started = Instant::now();
    let err = remote.infer(&request(&[1.0])).expect_err("too slow");
    assert!(started.elapsed() < Duration::from_millis(700), "gave up after {:?}", started.elapsed());
    assert_eq!(err.class().http_status(), 503);
    assert!(err.to_string().contains("no answer within 150ms"), "{err}");
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a timed-out request is not sent again");
}

#[test]
fn recovers_when_a_killed_backend_comes_back() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (backend, repo) = backend_with("doubler", doubler(Arc::clone(&calls)));
    let (url, addr) = (backend.url(), backend.addr);
    let remote = RemoteModel::connect(&url, "doubler", None, fast_options()).expect("connects");
    assert!(remote.infer(&request(&[1.0])).is_ok());

    backend.kill();
    let err = remote.infer(&request(&[1.0])).expect_err("backend gone");
    assert_eq!(err.class().http_status(), 503, "{err}");
    assert!(err.to_string().contains("cannot reach"), "{err}");
    assert!(!remote.is_ready());

    let _again = Backend::start(repo, addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !remote.is_ready() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(remote.is_ready(), "the background probe saw the backend return");
    let response = remote.infer(&request(&[3.0])).expect("served again");
    assert_eq!(response.outputs[0].data().as_f32(), Some(&[6.0f32][..]));
}

#[test]
fn requests_share_pooled_connections() {
    let (backend, _repo) = backend_with("doubler", doubler(Arc::new(AtomicUsize::new(0))));
    // A TCP relay in front of the backend counts the connections opened.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let accepted = Arc::new(AtomicUsize::new(0));
    let relay = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let relay_addr = relay.local_addr().expect("addr");
    let (target, counter) = (backend.addr, Arc::clone(&accepted));
    runtime.spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let remote = RemoteModel::connect(&format!("http://{relay_addr}"), "doubler", None, fast_options()).expect("c");
    for i in 0..20 {
        let x = i as f32;
        assert_eq!(remote.infer(&request(&[x])).expect("infers").outputs[0].data().as_f32(), Some(&[2.0 * x][..]));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "21 sequential requests over one kept-alive connection");
    runtime.shutdown_background();
}

/// FP32 `x` → `x × factor`, so v2 responses chain into the next model.
fn scaler(name: &str, factor: f32) -> Arc<dyn Model> {
    let mut meta = vector_meta(name);
    meta.outputs[0].name = "x".into();
    Arc::new(FnModel::new(meta, move |r: &InferenceRequest| {
        let x: Vec<f32> = r.inputs[0].data().as_f32().unwrap_or_default().iter().map(|v| v * factor).collect();
        Ok(InferenceResponse { outputs: vec![Tensor::new("x", vec![x.len()], x)?], ..Default::default() })
    }))
}

#[test]
fn graphs_reach_service_urls_over_http_and_services_locally() {
    use crate::kserve::InferenceGraph;
    use crate::router::{GraphPlan, GraphRouter};
    use serde_json::json;

    let (backend, _repo) = backend_with("triple", scaler("triple", 3.0));
    let local = Arc::new(ModelRepository::new());
    local.insert("double", "1", scaler("double", 2.0));
    let caller = HttpCaller::new(fast_options()).expect("client").with_services(local);
    let graph = |url: String| {
        let doc = json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
            "metadata": {"name": "chain"}, "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [
                {"serviceName": "double"}, {"serviceUrl": url, "data": "$response"}]}}}});
        GraphPlan::build(&InferenceGraph::from_value(doc).expect("parses")).expect("builds")
    };
    let router = GraphRouter::new(graph(format!("{}/v2/models/triple/infer", backend.url())), Arc::new(caller));
    let request = json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, -2.0]}]});
    let answer = router.route(&request).expect("runs");
    assert_eq!(answer["model_name"], "triple", "answered by the remote server");
    assert_eq!(answer["outputs"][0]["data"], json!([6.0, -12.0]));

    let caller = Arc::new(HttpCaller::new(fast_options()).expect("client"));
    let missing = GraphRouter::new(graph(format!("{}/v2/models/nope/infer", backend.url())), caller.clone());
    let err = missing.route(&request).expect_err("no service named double without a repository");
    assert_eq!(err.class().http_status(), 404, "{err}");
    let err = caller.call(Target::Url(&format!("{}/v2/models/nope/infer", backend.url())), &request).expect_err("404");
    assert_eq!(err.class().http_status(), 404, "{err}");
    let err = caller.call(Target::Url("https://127.0.0.1:1/x"), &request).expect_err("no TLS");
    assert_eq!(err.class().http_status(), 500, "{err}");
    let addr = backend.addr;
    backend.kill();
    // Whether the pool notices the dead connection first (connect refused)
    // or sends on it (closed before an answer), the backend is unavailable.
    let err = caller.call(Target::Url(&format!("http://{addr}/v2/models/triple/infer")), &request).expect_err("gone");
    assert_eq!(err.class().http_status(), 503, "{err}");
}

#[test]
fn a_connection_lost_mid_request_is_unavailable_and_not_retried() {
    use std::io::Read;
    // A "server" that reads each request and hangs up without answering.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let hangups = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                    let _ = stream.read(&mut [0u8; 4096]);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let remote =
        RemoteModel::with_metadata(&format!("http://{addr}"), "doubler", None, vector_meta("doubler"), fast_options())
            .expect("client");
    let err = remote.infer(&request(&[1.0])).expect_err("no answer");
    assert_eq!(err.class().http_status(), 503, "{err}");
    assert!(err.to_string().contains("closed before an answer"), "{err}");
    assert!(!remote.is_ready(), "the backend counts as gone until a probe succeeds");
    hangups.join().expect("joins");
    // One connection for the request; probes may add one more, never a resend storm.
    let n = accepted.load(Ordering::SeqCst);
    assert!((1..=2).contains(&n), "{n} connections");
}
