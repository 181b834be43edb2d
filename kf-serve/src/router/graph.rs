//! Executing KServe InferenceGraphs: [`GraphPlan::build`] turns a validated
//! [`InferenceGraph`] into an executable plan (conditions compiled, node
//! references resolved to indexes) and [`GraphPlan::run`] routes one JSON
//! body through it, calling models through a [`StepCaller`].
//!
//! Like KServe's router, the graph moves JSON documents: a step receives the
//! graph's request or the previous step's response and its answer is JSON,
//! so v1 (`instances`/`predictions`) and v2 (`inputs`/`outputs`) bodies both
//! flow. What this module must not do: HTTP, or know where a service runs.
//! [`ModelRepository`] is a caller for local models by name; a remote
//! model inserted into the repository is reached the same way.
//!
//! | node | behaviour |
//! |---|---|
//! | Sequence | steps in order; `data: $response` passes the last successful response on (a v2 response's `outputs` become the next request's `inputs`; `mapPredictionsToInstances` turns v1 `predictions` into `instances`), otherwise the graph's request; a step whose `condition` does not match its input ends the sequence with the response so far |
//! | Switch | the first step whose condition matches the node's input (no condition: always) runs; none matching is a 400 |
//! | Splitter | one step, chosen at random by weight from an injectable [`RandomSource`] |
//! | Ensemble | every step at once (one thread each); the answer is `{step name or index: response}` |
//!
//! Dependencies: a `Soft` step's failure is skipped (Sequence: the next
//! `$response` step gets the last good response; Ensemble: its key is left
//! out); a `Hard` step's failure fails the node. A node that ends with no
//! response at all fails with the last error. Unlike KServe, the default is
//! `Hard`: KServe's soft default forwards error bodies to the next step and
//! answers 200 regardless (kserve/kserve#2484), which would turn a failing
//! model into a wrong answer here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

use super::condition::Condition;
use crate::kserve::InferenceGraph;
use crate::kserve::inference_graph::{Dependency, ROOT, RouterType, StepTarget};
use crate::protocol::{BinaryOutputs, InferenceRequest};
use crate::{Error, ModelRepository, Result};

/// What a step calls, once node references are resolved inside the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// An InferenceService, i.e. a model, by name.
    Service(&'a str),
    /// A URL.
    Url(&'a str),
}

/// Calls the services and URLs of a graph's steps: one JSON body in, one
/// JSON body out. Local models and remote ones both fit behind it.
pub trait StepCaller: Send + Sync {
    /// Calls `target` with `body`.
    fn call(&self, target: Target<'_>, body: &Value) -> Result<Value>;
}

/// Models in a repository, by name, over Open Inference Protocol v2 JSON
/// (`serviceName` = model name, newest ready version). URLs are not models
/// of this repository: those steps fail with a 500-class error.
impl StepCaller for ModelRepository {
    fn call(&self, target: Target<'_>, body: &Value) -> Result<Value> {
        let name = match target {
            Target::Service(name) => name,
            Target::Url(url) => {
                return Err(Error::Internal {
                    message: format!(
                        "serviceUrl {url:?}: a model repository reaches models by name; give the graph a caller that does HTTP"
                    ),
                });
            }
        };
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Internal { message: format!("{e}") })?;
        let request = InferenceRequest::decode(&bytes, None)?;
        let response = self.infer(name, None, &request)?;
        let encoded = response.encode(&BinaryOutputs::none())?;
        serde_json::from_slice(&encoded.body)
            .map_err(|e| Error::Internal { message: format!("model {name:?} answered with invalid JSON: {e}") })
    }
}

/// Uniform random numbers for Splitter nodes; inject a seeded one in tests.
pub trait RandomSource: Send + Sync {
    /// The next number, uniform over `u64`.
    fn next_u64(&self) -> u64;
}

/// SplitMix64: a small, fast, seedable generator (not for cryptography),
/// lock-free and safe to share between requests.
#[derive(Debug)]
pub struct SplitMix64(AtomicU64);

impl SplitMix64 {
    /// A generator starting from `seed`: the same seed, the same sequence.
    pub fn new(seed: u64) -> Self {
        SplitMix64(AtomicU64::new(seed))
    }

    /// A generator seeded from the standard library's per-process hash keys.
    pub fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        SplitMix64::new(hasher.finish())
    }
}

impl RandomSource for SplitMix64 {
    fn next_u64(&self) -> u64 {
        let mut z = self.0.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum PlanTarget {
    Node(usize),
    Service(String),
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
struct PlanStep {
    /// The step's name, or its index: keys Ensemble results and errors.
    label: String,
    target: PlanTarget,
    /// `$response`: take the previous response (Sequence only).
    previous_response: bool,
    map_predictions: bool,
    condition: Option<Condition>,
    weight: u64,
    hard: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct PlanNode {
    name: String,
    router: RouterType,
    steps: Vec<PlanStep>,
}

/// An InferenceGraph ready to run: every node and step checked, conditions
/// compiled, node references resolved.
///
/// ```
/// use std::sync::Arc;
/// use kf_serve::kserve::InferenceGraph;
/// use kf_serve::router::{GraphPlan, SplitMix64, StepCaller, Target};
/// use serde_json::{Value, json};
///
/// struct Echo;
/// impl StepCaller for Echo {
///     fn call(&self, target: Target<'_>, body: &Value) -> kf_serve::Result<Value> {
///         Ok(json!({"from": format!("{target:?}"), "got": body}))
///     }
/// }
///
/// let graph = InferenceGraph::from_value(json!({
///     "apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph", "metadata": {"name": "g"},
///     "spec": {"nodes": {"root": {"routerType": "Switch", "steps": [
///         {"serviceName": "cats", "condition": "[@this].#(animal==\"cat\")"},
///         {"serviceName": "others"},
///     ]}}},
/// }))?;
/// let plan = GraphPlan::build(&graph)?;
/// let answer = plan.run(&Echo, &SplitMix64::new(1), &json!({"animal": "cat"}))?;
/// assert_eq!(answer["from"], "Service(\"cats\")");
/// # Ok::<(), kf_serve::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GraphPlan {
    nodes: Vec<PlanNode>,
    root: usize,
}

fn invalid(path: String, message: impl Into<String>) -> Error {
    Error::Invalid { path, message: message.into() }
}

impl GraphPlan {
    /// Validates `graph` ([`InferenceGraph::validate`]) and compiles it, or
    /// names the field that cannot run: a node without steps, a condition
    /// outside Sequence/Switch, a condition outside the supported GJSON
    /// subset ([`Condition::parse`]), a `mapPredictionsToInstances` that is
    /// not a boolean. O(N + S + total condition length).
    pub fn build(graph: &InferenceGraph) -> Result<Self> {
        graph.validate()?;
        let Some(nodes) = graph.nodes() else {
            return Err(invalid("spec.nodes".into(), "an InferenceGraph needs nodes"));
        };
        let names: Vec<&String> = nodes.keys().collect();
        let index = |name: &str| names.binary_search_by(|n| n.as_str().cmp(name)).ok();
        let mut planned = Vec::with_capacity(nodes.len());
        for (name, node) in nodes {
            let path = format!("spec.nodes.{name}");
            let router = node.router_type.ok_or_else(|| invalid(format!("{path}.routerType"), "missing"))?;
            let steps = node.steps.as_deref().unwrap_or_default();
            if steps.is_empty() {
                return Err(invalid(format!("{path}.steps"), "a node needs at least one step to route to"));
            }
            let mut compiled = Vec::with_capacity(steps.len());
            for (i, step) in steps.iter().enumerate() {
                let step_path = format!("{path}.steps[{i}]");
                let target = match step.target() {
                    Some(StepTarget::Node(n)) => PlanTarget::Node(
                        index(n).ok_or_else(|| invalid(format!("{step_path}.nodeName"), format!("no node {n:?}")))?,
                    ),
                    Some(StepTarget::Service(s)) => PlanTarget::Service(s.to_string()),
                    Some(StepTarget::Url(u)) => PlanTarget::Url(u.to_string()),
                    None => return Err(invalid(step_path, "the step needs exactly one target")),
                };
                let condition = match step.condition.as_deref() {
                    None => None,
                    Some(_) if !matches!(router, RouterType::Sequence | RouterType::Switch) => {
                        return Err(invalid(
                            format!("{step_path}.condition"),
                            format!("only Sequence and Switch steps have conditions, this is a {router:?} node"),
                        ));
                    }
                    Some(text) => Some(Condition::parse(text).map_err(|e| match e {
                        Error::Invalid { message, .. } => invalid(format!("{step_path}.condition"), message),
                        other => other,
                    })?),
                };
                let map_predictions = match step.extra.get("mapPredictionsToInstances") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(invalid(
                            format!("{step_path}.mapPredictionsToInstances"),
                            format!("expected true or false, found {other}"),
                        ));
                    }
                };
                compiled.push(PlanStep {
                    label: step.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| i.to_string()),
                    target,
                    previous_response: router == RouterType::Sequence && step.data.as_deref() == Some("$response"),
                    map_predictions,
                    condition,
                    weight: step.weight.and_then(|w| u64::try_from(w).ok()).unwrap_or(0),
                    hard: step.dependency != Some(Dependency::Soft),
                });
            }
            planned.push(PlanNode { name: name.clone(), router, steps: compiled });
        }
        let root = index(ROOT).ok_or_else(|| invalid("spec.nodes".into(), "no root node"))?;
        Ok(GraphPlan { nodes: planned, root })
    }

    /// The services (model names) the graph calls, sorted and deduplicated:
    /// what must be loaded before the graph can serve.
    pub fn services(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .nodes
            .iter()
            .flat_map(|n| &n.steps)
            .filter_map(|s| match &s.target {
                PlanTarget::Service(name) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Routes `request` through the graph from `root`. Splitter nodes draw
    /// from `random`. Runs in O(steps visited) calls; Ensemble steps run on
    /// scoped threads of their own.
    pub fn run(&self, caller: &dyn StepCaller, random: &dyn RandomSource, request: &Value) -> Result<Value> {
        self.run_node(self.root, caller, random, request)
    }

    fn run_step(
        &self,
        node: &PlanNode,
        step: &PlanStep,
        caller: &dyn StepCaller,
        random: &dyn RandomSource,
        input: &Value,
    ) -> Result<Value> {
        let result = match &step.target {
            PlanTarget::Node(i) => self.run_node(*i, caller, random, input),
            PlanTarget::Service(name) => caller.call(Target::Service(name), input),
            PlanTarget::Url(url) => caller.call(Target::Url(url), input),
        };
        result.map_err(|e| Error::GraphStep { node: node.name.clone(), step: step.label.clone(), source: Box::new(e) })
    }

    fn run_node(
        &self,
        index: usize,
        caller: &dyn StepCaller,
        random: &dyn RandomSource,
        input: &Value,
    ) -> Result<Value> {
        let node = &self.nodes[index];
        match node.router {
            RouterType::Sequence => self.run_sequence(node, caller, random, input),
            RouterType::Switch => {
                let step = node.steps.iter().find(|s| s.condition.as_ref().is_none_or(|c| c.matches(input)));
                let step = step.ok_or_else(|| Error::BadRequest {
                    path: format!("spec.nodes.{}", node.name),
                    message: "the request matches the condition of no step of this Switch node".into(),
                })?;
                self.run_step(node, step, caller, random, input)
            }
            RouterType::Splitter => {
                let total: u64 = node.steps.iter().map(|s| s.weight).sum();
                let mut ticket = random.next_u64() % total.max(1);
                let step = node
                    .steps
                    .iter()
                    .find(|s| {
                        if ticket < s.weight {
                            return true;
                        }
                        ticket -= s.weight;
                        false
                    })
                    .or(node.steps.last())
                    .ok_or_else(|| Error::Internal { message: format!("node {:?} has no steps", node.name) })?;
                self.run_step(node, step, caller, random, input)
            }
            RouterType::Ensemble => self.run_ensemble(node, caller, random, input),
        }
    }

    fn run_sequence(
        &self,
        node: &PlanNode,
        caller: &dyn StepCaller,
        random: &dyn RandomSource,
        request: &Value,
    ) -> Result<Value> {
        let mut last: Option<Value> = None;
        let mut soft_error = None;
        for (i, step) in node.steps.iter().enumerate() {
            let input = match (&last, step.previous_response) {
                (Some(previous), true) => next_request(previous, step.map_predictions),
                _ => request.clone(),
            };
            if step.condition.as_ref().is_some_and(|c| !c.matches(&input)) {
                if last.is_none() {
                    return Err(Error::BadRequest {
                        path: format!("spec.nodes.{}.steps[{i}].condition", node.name),
                        message: "the input does not match the condition of the sequence's first step".into(),
                    });
                }
                break;
            }
            match self.run_step(node, step, caller, random, &input) {
                Ok(response) => last = Some(response),
                Err(e) if !step.hard => soft_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        match (last, soft_error) {
            (Some(response), _) => Ok(response),
            (None, Some(e)) => Err(e),
            (None, None) => Err(Error::Internal { message: format!("node {:?} ran no step", node.name) }),
        }
    }

    fn run_ensemble(
        &self,
        node: &PlanNode,
        caller: &dyn StepCaller,
        random: &dyn RandomSource,
        input: &Value,
    ) -> Result<Value> {
        let results: Vec<Result<Value>> = std::thread::scope(|scope| {
            let running: Vec<_> = node
                .steps
                .iter()
                .map(|step| scope.spawn(move || self.run_step(node, step, caller, random, input)))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Err(Error::Internal { message: "an ensemble step panicked".into() }))
                })
                .collect()
        });
        let mut merged = Map::new();
        let mut soft_error = None;
        for (step, result) in node.steps.iter().zip(results) {
            match result {
                Ok(response) => {
                    merged.insert(step.label.clone(), response);
                }
                Err(e) if !step.hard => soft_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        match soft_error {
            Some(e) if merged.is_empty() => Err(e),
            _ => Ok(Value::Object(merged)),
        }
    }
}

/// The request a `$response` step receives: v1 `predictions` as
/// `instances` when asked, a v2 response's `outputs` as `inputs` (the id
/// kept, the answering model's name and version dropped), anything else as is.
fn next_request(previous: &Value, map_predictions: bool) -> Value {
    if map_predictions && let Some(predictions) = previous.get("predictions") {
        return serde_json::json!({ "instances": predictions });
    }
    match (previous.get("outputs"), previous.get("inputs")) {
        (Some(outputs @ Value::Array(_)), None) => {
            let mut request = Map::new();
            if let Some(id) = previous.get("id") {
                request.insert("id".into(), id.clone());
            }
            request.insert("inputs".into(), outputs.clone());
            Value::Object(request)
        }
        _ => previous.clone(),
    }
}

/// A graph with the caller and random source it runs with: what a server
/// route or an embedding application holds.
pub struct GraphRouter {
    plan: GraphPlan,
    caller: std::sync::Arc<dyn StepCaller>,
    random: Box<dyn RandomSource>,
}

impl std::fmt::Debug for GraphRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphRouter").field("plan", &self.plan).finish_non_exhaustive()
    }
}

impl GraphRouter {
    /// Runs `plan` against `caller`, splitting with an entropy-seeded
    /// [`SplitMix64`].
    pub fn new(plan: GraphPlan, caller: std::sync::Arc<dyn StepCaller>) -> Self {
        GraphRouter { plan, caller, random: Box::new(SplitMix64::from_entropy()) }
    }

    /// The same with Splitter draws from `random` (seeded, for tests).
    pub fn with_random(mut self, random: impl RandomSource + 'static) -> Self {
        self.random = Box::new(random);
        self
    }

    /// The plan.
    pub fn plan(&self) -> &GraphPlan {
        &self.plan
    }

    /// Routes one request.
    pub fn route(&self, request: &Value) -> Result<Value> {
        self.plan.run(self.caller.as_ref(), self.random.as_ref(), request)
    }
}

#[cfg(test)]
mod tests;
