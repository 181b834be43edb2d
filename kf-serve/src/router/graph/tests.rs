//! Graph execution over recording callers and a real model repository, and
//! every graph of the shared KServe corpus.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::kserve::corpus;
use crate::protocol::{DataType, InferenceResponse, MetadataTensor, ModelMetadata, Tensor};
use crate::{FnModel, Model};

type Service = Box<dyn Fn(&Value) -> Result<Value> + Send + Sync>;

/// Named services answering with closures, recording every call in order.
#[derive(Default)]
struct Recorder {
    services: BTreeMap<String, Service>,
    calls: Mutex<Vec<(String, Value)>>,
}

impl Recorder {
    fn with(mut self, name: &str, f: impl Fn(&Value) -> Result<Value> + Send + Sync + 'static) -> Self {
        self.services.insert(name.to_string(), Box::new(f));
        self
    }

    fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().expect("lock").clone()
    }
}

impl StepCaller for Recorder {
    fn call(&self, target: Target<'_>, body: &Value) -> Result<Value> {
        let name = match target {
            Target::Service(s) => s.to_string(),
            Target::Url(u) => format!("url:{u}"),
        };
        self.calls.lock().expect("lock").push((name.clone(), body.clone()));
        let service = self.services.get(&name).ok_or(Error::ModelNotFound { model: name.clone(), version: None })?;
        service(body)
    }
}

fn tagged(tag: &'static str) -> impl Fn(&Value) -> Result<Value> + Send + Sync {
    move |body| Ok(json!({"by": tag, "got": body}))
}

fn failing(body: &Value) -> Result<Value> {
    Err(Error::Inference { model: "broken".into(), message: format!("cannot handle {body}") })
}

fn plan(nodes: Value) -> Result<GraphPlan> {
    let doc = json!({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
                     "metadata": {"name": "g"}, "spec": {"nodes": nodes}});
    GraphPlan::build(&InferenceGraph::from_value(doc)?)
}

fn run(nodes: Value, caller: &Recorder, request: Value) -> Result<Value> {
    plan(nodes).expect("builds").run(caller, &SplitMix64::new(7), &request)
}

/// A v2 model `name`: FP32 input `x` → output `x` scaled by `factor`, so
/// `$response` chains feed it to the next model.
fn scale(name: &str, factor: f32) -> Arc<dyn Model> {
    let meta = ModelMetadata {
        name: name.into(),
        versions: None,
        platform: "closure".into(),
        inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1] }],
        outputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Fp32, shape: vec![-1] }],
    };
    Arc::new(FnModel::new(meta, move |r: &InferenceRequest| {
        let x: Vec<f32> = r.inputs[0].data().as_f32().unwrap_or_default().iter().map(|v| v * factor).collect();
        Ok(InferenceResponse { outputs: vec![Tensor::new("x", vec![x.len()], x)?], ..Default::default() })
    }))
}

fn v2_request(x: &[f32]) -> Value {
    json!({"id": "r1", "inputs": [{"name": "x", "shape": [x.len()], "datatype": "FP32", "data": x}]})
}

#[test]
fn every_corpus_graph_builds_or_is_rejected_naming_the_field() {
    let mut graphs = 0;
    for dir in [corpus::DIR.to_string(), format!("{}/invalid", corpus::DIR)] {
        for (path, doc) in corpus::documents(&dir) {
            if doc.get("kind").and_then(Value::as_str) != Some("InferenceGraph") {
                continue;
            }
            graphs += 1;
            match InferenceGraph::from_value(doc).and_then(|g| GraphPlan::build(&g)) {
                Ok(plan) => assert!(!plan.services().is_empty(), "{}", path.display()),
                Err(Error::Invalid { path: field, message }) => {
                    assert!(field.starts_with("spec") || field.starts_with("metadata"), "{}: {field}", path.display());
                    assert!(!message.is_empty());
                }
                Err(other) => panic!("{}: rejected without a field: {other}", path.display()),
            }
        }
    }
    assert!(graphs >= 1, "the corpus holds an InferenceGraph");
}

#[test]
fn the_corpus_sequence_runs_on_local_models() {
    let dir = corpus::DIR;
    let (_, doc) = corpus::documents(dir)
        .into_iter()
        .find(|(p, _)| p.ends_with("docs__samples__graph__sequence.doc3.yaml"))
        .expect("the sequence sample");
    let plan = GraphPlan::build(&InferenceGraph::from_value(doc).expect("parses")).expect("builds");
    assert_eq!(plan.services(), ["sklearn-iris", "xgboost-iris"]);
    let repo = ModelRepository::new();
    repo.insert("sklearn-iris", "1", scale("sklearn-iris", 2.0));
    repo.insert("xgboost-iris", "1", scale("xgboost-iris", 10.0));
    // The second step takes `$request`: it sees the original input.
    let answer = plan.run(&repo, &SplitMix64::new(1), &v2_request(&[1.0, 2.0])).expect("runs");
    assert_eq!(answer["model_name"], "xgboost-iris");
    assert_eq!(answer["outputs"][0]["data"], json!([10.0, 20.0]));
    assert_eq!(answer["id"], "r1");
}

#[test]
fn sequence_passes_responses_on_as_v2_inputs() {
    let repo = ModelRepository::new();
    repo.insert("double", "1", scale("double", 2.0));
    repo.insert("triple", "1", scale("triple", 3.0));
    let nodes = json!({"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "double"},
        {"serviceName": "triple", "data": "$response"},
        {"serviceName": "double", "data": "$response"},
    ]}});
    let answer = plan(nodes).expect("builds").run(&repo, &SplitMix64::new(1), &v2_request(&[1.0, -0.5])).expect("runs");
    assert_eq!(answer["outputs"][0]["data"], json!([12.0, -6.0]));
    assert_eq!(answer["id"], "r1", "the id travels along the chain");
    // A model error keeps its class through the graph and names the step.
    let err = plan(json!({"root": {"routerType": "Sequence", "steps": [{"serviceName": "double"}]}}))
        .expect("builds")
        .run(&repo, &SplitMix64::new(1), &json!({"inputs": []}))
        .expect_err("no inputs");
    assert_eq!(err.class().http_status(), 400, "{err}");
    assert!(err.to_string().starts_with("inference graph node \"root\" step 0: "), "{err}");
    let url = plan(json!({"root": {"routerType": "Sequence", "steps": [{"serviceUrl": "http://elsewhere/v2"}]}}))
        .expect("builds")
        .run(&repo, &SplitMix64::new(1), &v2_request(&[1.0]))
        .expect_err("no HTTP in a repository");
    assert!(url.to_string().contains("give the graph a caller that does HTTP"), "{url}");
}

#[test]
fn sequence_conditions_stop_the_chain_and_v1_predictions_map_to_instances() {
    let caller =
        Recorder::default().with("classify", |_| Ok(json!({"predictions": ["dog"]}))).with("dogs", tagged("dogs"));
    let nodes = json!({"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "classify"},
        {"serviceName": "dogs", "data": "$response", "mapPredictionsToInstances": true,
         "condition": "[@this].#(instances.0==\"dog\")"},
    ]}});
    let answer = run(nodes.clone(), &caller, json!({"instances": [[1, 2]]})).expect("runs");
    assert_eq!(answer, json!({"by": "dogs", "got": {"instances": ["dog"]}}));
    let cats =
        Recorder::default().with("classify", |_| Ok(json!({"predictions": ["cat"]}))).with("dogs", tagged("dogs"));
    let answer = run(nodes, &cats, json!({"instances": [[1, 2]]})).expect("runs");
    assert_eq!(answer, json!({"predictions": ["cat"]}), "the chain ends where the condition fails");
    assert_eq!(cats.calls().len(), 1);
}

#[test]
fn switch_takes_the_first_matching_step() {
    let caller =
        Recorder::default().with("upper", tagged("upper")).with("lower", tagged("lower")).with("mid", tagged("mid"));
    let nodes = json!({
        "root": {"routerType": "Switch", "steps": [
            {"serviceName": "upper", "condition": "[@this].#(instances.0.data>0.9)"},
            {"serviceName": "lower", "condition": "[@this].#(instances.0.data<=0.5)"},
            {"nodeName": "middle", "condition": "[@this].#(instances.0.data>0.5 && instances.0.data<=0.9)"},
        ]},
        "middle": {"routerType": "Sequence", "steps": [{"serviceName": "mid"}]},
    });
    for (x, want) in [(0.95, "upper"), (0.2, "lower"), (0.7, "mid"), (0.5, "lower")] {
        let answer = run(nodes.clone(), &caller, json!({"instances": [{"data": x}]})).expect("runs");
        assert_eq!(answer["by"], want, "x = {x}");
    }
    let err = run(nodes, &caller, json!({"instances": []})).expect_err("no branch");
    assert_eq!(err.class().http_status(), 400);
    assert!(err.to_string().contains("matches the condition of no step"), "{err}");
    // A step without a condition is the default branch.
    let fallback = json!({"root": {"routerType": "Switch", "steps": [
        {"serviceName": "upper", "condition": "[@this].#(animal==\"cat\")"}, {"serviceName": "lower"},
    ]}});
    assert_eq!(run(fallback, &caller, json!({"animal": "dog"})).expect("runs")["by"], "lower");
}

#[test]
fn splitter_follows_the_weights_with_a_seeded_source() {
    let caller = Recorder::default().with("a", tagged("a")).with("b", tagged("b")).with("never", tagged("never"));
    let plan = plan(json!({"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 20}, {"serviceName": "never", "weight": 0}, {"serviceName": "b", "weight": 80},
    ]}}))
    .expect("builds");
    let draw = |seed: u64, n: usize| -> Vec<String> {
        let random = SplitMix64::new(seed);
        (0..n)
            .map(|_| plan.run(&caller, &random, &json!({})).expect("runs")["by"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let picks = draw(42, 5000);
    let a = picks.iter().filter(|p| *p == "a").count();
    assert!((900..=1100).contains(&a), "20 % of 5000 within 2 points, found {a}");
    assert!(!picks.iter().any(|p| p == "never"), "weight 0 is never chosen");
    assert_eq!(draw(42, 50), picks[..50], "the same seed replays the same choices");
    assert_ne!(draw(43, 50), picks[..50]);
}

#[test]
fn ensemble_runs_steps_concurrently_and_merges_by_name() {
    // Each step waits for the other: run one after the other, they would time out.
    let (to_b, from_a) = std::sync::mpsc::channel::<()>();
    let (to_a, from_b) = std::sync::mpsc::channel::<()>();
    let (from_a, from_b) = (Mutex::new(from_a), Mutex::new(from_b));
    let (to_a, to_b) = (Mutex::new(to_a), Mutex::new(to_b));
    let meet = |tx: &Mutex<std::sync::mpsc::Sender<()>>, rx: &Mutex<std::sync::mpsc::Receiver<()>>| {
        let _ = tx.lock().expect("lock").send(());
        rx.lock().expect("lock").recv_timeout(Duration::from_secs(5)).is_ok()
    };
    let a = move |_: &Value| Ok(json!({"met": meet(&to_b, &from_b)}));
    let b = move |_: &Value| Ok(json!({"met": meet(&to_a, &from_a)}));
    let caller = Recorder::default().with("sklearn", a).with("xgboost", b).with("third", tagged("third"));
    let nodes = json!({"root": {"routerType": "Ensemble", "steps": [
        {"name": "left", "serviceName": "sklearn"}, {"name": "right", "serviceName": "xgboost"}, {"serviceName": "third"},
    ]}});
    let answer = run(nodes, &caller, json!({"instances": [1]})).expect("runs");
    assert_eq!(answer["left"], json!({"met": true}));
    assert_eq!(answer["right"], json!({"met": true}));
    assert_eq!(answer["2"]["got"], json!({"instances": [1]}), "an unnamed step is keyed by its index");
}

#[test]
fn soft_failures_are_skipped_and_hard_ones_fail_the_graph() {
    let caller = Recorder::default().with("ok", tagged("ok")).with("broken", failing).with("last", tagged("last"));
    let sequence = |dependency: &str| {
        json!({"root": {"routerType": "Sequence", "steps": [
            {"serviceName": "ok"},
            {"serviceName": "broken", "data": "$response", "dependency": dependency},
            {"serviceName": "last", "data": "$response"},
        ]}})
    };
    let answer = run(sequence("Soft"), &caller, json!({"q": 1})).expect("a soft failure is skipped");
    assert_eq!(answer["by"], "last");
    assert_eq!(answer["got"]["by"], "ok", "the next step gets the last good response");
    let err = run(sequence("Hard"), &caller, json!({"q": 1})).expect_err("a hard failure fails");
    assert_eq!(err.class().http_status(), 500);
    assert!(err.to_string().contains("step 1: model \"broken\" failed"), "{err}");
    let default = json!({"root": {"routerType": "Sequence", "steps": [{"serviceName": "broken"}]}});
    assert!(run(default, &caller, json!({})).is_err(), "steps are hard unless marked Soft");

    let ensemble = |dependency: &str| {
        json!({"root": {"routerType": "Ensemble", "steps": [
            {"name": "good", "serviceName": "ok"}, {"name": "bad", "serviceName": "broken", "dependency": dependency},
        ]}})
    };
    let merged = run(ensemble("Soft"), &caller, json!({})).expect("soft");
    assert_eq!(merged.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>()), Some(vec!["good".to_string()]));
    assert!(run(ensemble("Hard"), &caller, json!({})).is_err());
    // Nothing answered at all: the node fails even when the step was soft.
    let only_soft = json!({"root": {"routerType": "Ensemble", "steps": [
        {"serviceName": "broken", "dependency": "Soft"}]}});
    assert!(run(only_soft, &caller, json!({})).is_err());
}

#[test]
fn nodes_nest() {
    let caller =
        Recorder::default().with("pre", |_| Ok(json!({"features": [3]}))).with("a", tagged("a")).with("b", tagged("b"));
    let nodes = json!({
        "root": {"routerType": "Sequence", "steps": [
            {"serviceName": "pre"}, {"nodeName": "ensemble", "data": "$response"},
        ]},
        "ensemble": {"routerType": "Ensemble", "steps": [{"name": "a", "serviceName": "a"}, {"name": "b", "serviceName": "b"}]},
    });
    let answer = run(nodes, &caller, json!({"raw": true})).expect("runs");
    assert_eq!(answer, json!({"a": {"by": "a", "got": {"features": [3]}}, "b": {"by": "b", "got": {"features": [3]}}}));
}

#[test]
fn what_cannot_run_is_rejected_at_load_naming_the_field() {
    for (nodes, field) in [
        (
            json!({"root": {"routerType": "Switch", "steps": [{"serviceName": "a", "condition": "{.target == \"blue\"}"}]}}),
            "spec.nodes.root.steps[0].condition",
        ),
        (
            json!({"root": {"routerType": "Switch", "steps": [{"serviceName": "a", "condition": "x"},
                                                            {"serviceName": "b", "condition": "target == blue"}]}}),
            "spec.nodes.root.steps[1].condition",
        ),
        (
            json!({"root": {"routerType": "Ensemble", "steps": [{"serviceName": "a", "condition": "x"}]}}),
            "spec.nodes.root.steps[0].condition",
        ),
        (json!({"root": {"routerType": "Sequence", "steps": []}}), "spec.nodes.root.steps"),
        (
            json!({"root": {"routerType": "Sequence", "steps": [{"serviceName": "a", "mapPredictionsToInstances": "yes"}]}}),
            "spec.nodes.root.steps[0].mapPredictionsToInstances",
        ),
        (
            json!({"root": {"routerType": "Splitter", "steps": [{"serviceName": "a", "weight": 60}, {"serviceName": "b", "weight": 30}]}}),
            "spec.nodes.root.steps",
        ),
    ] {
        match plan(nodes) {
            Err(Error::Invalid { path, .. }) => assert_eq!(path, field),
            other => panic!("expected a rejection at {field}, got {other:?}"),
        }
    }
}

#[test]
fn a_router_bundles_plan_caller_and_random_source() {
    let caller: Arc<dyn StepCaller> = Arc::new(Recorder::default().with("a", tagged("a")).with("b", tagged("b")));
    let graph = plan(json!({"root": {"routerType": "Splitter", "steps": [
        {"serviceName": "a", "weight": 50}, {"serviceName": "b", "weight": 50}]}}))
    .expect("builds");
    let router = GraphRouter::new(graph.clone(), Arc::clone(&caller)).with_random(SplitMix64::new(5));
    let replay = GraphRouter::new(graph, caller).with_random(SplitMix64::new(5));
    for _ in 0..20 {
        assert_eq!(router.route(&json!({})).expect("runs"), replay.route(&json!({})).expect("runs"));
    }
    assert_eq!(router.plan().services(), ["a", "b"]);
}
