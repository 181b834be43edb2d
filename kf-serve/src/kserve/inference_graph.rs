//! The `InferenceGraph` custom resource (serving.kserve.io/v1alpha1): named
//! router nodes (`Sequence`, `Splitter`, `Ensemble`, `Switch`) whose steps
//! call an InferenceService, a URL or another node, entered at the node `root`.
//!
//! What this module owns: the wire type, lossless conversion, and the checks
//! of KServe's validating webhook (root node, unique step names, exactly one
//! target per step, splitter weights summing to 100) plus what a router needs
//! to run the graph at all (node references resolve, no node cycles). It does
//! not route requests: the router reads these types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Extra, ObjectMeta, check_fields, check_metadata, check_resources, check_type, from_value, invalid, to_value,
};
use crate::Result;

/// Kind of the InferenceGraph CRD.
pub const KIND: &str = "InferenceGraph";
/// The only `apiVersion` the CRD serves.
pub const API_VERSION: &str = "serving.kserve.io/v1alpha1";
/// The node a request enters the graph at.
pub const ROOT: &str = "root";

/// `spec` fields besides the typed ones (from the CRD).
const SPEC_FIELDS: &[&str] =
    &["affinity", "nodeName", "nodeSelector", "resources", "routerTimeouts", "serviceAccountName", "tolerations"];

/// An InferenceGraph: a routing graph over InferenceServices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceGraph {
    /// Always `serving.kserve.io/v1alpha1`.
    pub api_version: String,
    /// Always `InferenceGraph`.
    pub kind: String,
    /// Object metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<InferenceGraphSpec>,
    /// The observed state, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of an InferenceGraph.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceGraphSpec {
    /// Router nodes by name; `root` is the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, RouterNode>>,
    /// Minimum router replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i64>,
    /// Maximum router replicas (0: no bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i64>,
    /// Target value of the scale metric per router replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target: Option<i64>,
    /// The router's scale metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_metric: Option<String>,
    /// Request timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Spec fields kf does not model (pod placement, router timeouts, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// How a node routes a request over its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RouterType {
    /// Steps run in order; a step gets the request or the previous response.
    Sequence,
    /// One step, picked at random by weight (weights sum to 100).
    Splitter,
    /// Every step runs on the request; the responses are merged by step name.
    Ensemble,
    /// The first step whose condition matches the request runs; a step
    /// without a condition always matches.
    Switch,
}

/// Whether a failing step fails the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dependency {
    /// The node continues without the step's response.
    Soft,
    /// The node fails when the step fails.
    Hard,
}

/// A router node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterNode {
    /// How the node routes (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_type: Option<RouterType>,
    /// The node's steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Node fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One step of a node: a target plus how to call it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Step name, unique within the node (keys Ensemble responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Target: another node of this graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Target: an InferenceService in the graph's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Target: any URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_url: Option<String>,
    /// `$request` or `$response`: what a Sequence step receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Traffic weight in a Splitter node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// GJSON condition on the request, for Switch nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Soft or hard dependency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<Dependency>,
    /// Step fields kf does not model (`mapPredictionsToInstances`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// What a step calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTarget<'a> {
    /// Another node of the graph.
    Node(&'a str),
    /// An InferenceService by name.
    Service(&'a str),
    /// A URL.
    Url(&'a str),
}

impl Step {
    /// The step's target, when it names exactly one (always, once validated).
    pub fn target(&self) -> Option<StepTarget<'_>> {
        match (self.node_name.as_deref(), self.service_name.as_deref(), self.service_url.as_deref()) {
            (Some(n), None, None) if !n.is_empty() => Some(StepTarget::Node(n)),
            (None, Some(s), None) if !s.is_empty() => Some(StepTarget::Service(s)),
            (None, None, Some(u)) if !u.is_empty() => Some(StepTarget::Url(u)),
            _ => None,
        }
    }

    fn target_count(&self) -> usize {
        [&self.node_name, &self.service_name, &self.service_url]
            .into_iter()
            .filter(|t| t.as_deref().is_some_and(|s| !s.is_empty()))
            .count()
    }
}

impl InferenceGraph {
    /// Reads an InferenceGraph from a parsed JSON/YAML document. Type errors
    /// name the field path, e.g. `spec.nodes.root.routerType: unknown variant …`.
    pub fn from_value(doc: Value) -> Result<Self> {
        from_value(doc)
    }

    /// Writes the graph back as a document: the fields read, no others.
    pub fn to_value(&self) -> Value {
        to_value(self)
    }

    /// The nodes, by name.
    pub fn nodes(&self) -> Option<&BTreeMap<String, RouterNode>> {
        self.spec.as_ref()?.nodes.as_ref()
    }

    /// The entry node.
    pub fn root(&self) -> Option<&RouterNode> {
        self.nodes()?.get(ROOT)
    }

    /// Checks what the API server and KServe's webhook would reject, and what
    /// would make the graph unroutable, returning the first problem with the
    /// dotted path of the field:
    ///
    /// - apiVersion, kind, a DNS-1035 name, no unknown fields at the levels kf types;
    /// - a `root` node; every node has a routerType;
    /// - in each node, unique step names and exactly one target per step
    ///   (nodeName, serviceName or serviceUrl); a `nodeName` names a node of
    ///   the graph, and no chain of `nodeName`s comes back to its start;
    /// - Splitter steps all have a weight in 0–100 and the weights sum to 100;
    /// - `data` is `$request` or `$response`; replicas are consistent;
    ///   resources are quantities.
    ///
    /// Runs in O(N + S) for N nodes and S steps (the cycle check is one
    /// depth-first search).
    pub fn validate(&self) -> Result<()> {
        check_type(&self.api_version, &self.kind, API_VERSION, &[KIND])?;
        check_metadata(self.metadata.as_ref(), KIND, true)?;
        check_fields(self.extra.keys(), &[], "")?;
        let Some(spec) = &self.spec else {
            return invalid("spec", "an InferenceGraph needs a spec with nodes");
        };
        check_fields(spec.extra.keys(), SPEC_FIELDS, "spec")?;
        if let Some(resources) = spec.extra.get("resources") {
            check_resources(resources, "spec.resources")?;
        }
        check_replicas(spec.min_replicas, spec.max_replicas)?;
        let nodes = spec.nodes.as_ref().filter(|n| !n.is_empty());
        let Some(nodes) = nodes else {
            return invalid("spec.nodes", "an InferenceGraph needs nodes, one of them named 'root'");
        };
        if !nodes.contains_key(ROOT) {
            return invalid("spec.nodes", "root node not found: an InferenceGraph needs a node named 'root'");
        }
        for (name, node) in nodes {
            validate_node(name, node, nodes)?;
        }
        check_node_cycles(nodes)
    }
}

fn check_replicas(min: Option<i64>, max: Option<i64>) -> Result<()> {
    let (min, max) = (min.unwrap_or(1), max.unwrap_or(0));
    if min < 0 {
        return invalid("spec.minReplicas", format!("cannot be less than 0, found {min}"));
    }
    if max < 0 {
        return invalid("spec.maxReplicas", format!("cannot be less than 0, found {max}"));
    }
    if max != 0 && min > max {
        return invalid("spec.minReplicas", format!("{min} is greater than maxReplicas {max}"));
    }
    Ok(())
}

fn validate_node(name: &str, node: &RouterNode, nodes: &BTreeMap<String, RouterNode>) -> Result<()> {
    let path = format!("spec.nodes.{name}");
    check_fields(node.extra.keys(), &[], &path)?;
    let Some(router_type) = node.router_type else {
        return invalid(format!("{path}.routerType"), "expected Sequence, Splitter, Ensemble or Switch, found nothing");
    };
    let steps = node.steps.as_deref().unwrap_or_default();
    let mut names = std::collections::BTreeSet::new();
    let mut weight_sum: i64 = 0;
    for (i, step) in steps.iter().enumerate() {
        let step_path = format!("{path}.steps[{i}]");
        check_fields(step.extra.keys(), &["mapPredictionsToInstances"], &step_path)?;
        if let Some(step_name) = step.name.as_deref().filter(|n| !n.is_empty())
            && !names.insert(step_name)
        {
            return invalid(
                format!("{step_path}.name"),
                format!("node {name:?} has more than one step named {step_name:?}"),
            );
        }
        match step.target_count() {
            0 => return invalid(&step_path, "the step has no target: set one of nodeName, serviceName, serviceUrl"),
            1 => {}
            _ => return invalid(&step_path, "the step sets more than one of nodeName, serviceName, serviceUrl"),
        }
        if let Some(StepTarget::Node(target)) = step.target()
            && !nodes.contains_key(target)
        {
            return invalid(format!("{step_path}.nodeName"), format!("no node named {target:?} in this graph"));
        }
        if let Some(data) = step.data.as_deref()
            && !matches!(data, "$request" | "$response")
        {
            return invalid(format!("{step_path}.data"), format!("expected $request or $response, found {data:?}"));
        }
        if router_type == RouterType::Splitter {
            let Some(weight) = step.weight else {
                return invalid(format!("{step_path}.weight"), "every step of a Splitter node needs a weight");
            };
            if !(0..=100).contains(&weight) {
                return invalid(format!("{step_path}.weight"), format!("must be between 0 and 100, found {weight}"));
            }
            weight_sum += weight;
        }
    }
    if router_type == RouterType::Splitter && weight_sum != 100 {
        return invalid(
            format!("{path}.steps"),
            format!("the weights of a Splitter node must sum to 100, found {weight_sum}"),
        );
    }
    Ok(())
}

/// Rejects a chain of `nodeName` steps that returns to a node it left: the
/// router would recurse forever. Iterative depth-first search, O(N + S).
fn check_node_cycles(nodes: &BTreeMap<String, RouterNode>) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    let names: Vec<&String> = nodes.keys().collect();
    let index = |name: &str| names.binary_search_by(|n| n.as_str().cmp(name)).ok();
    let edges: Vec<Vec<(usize, usize)>> = nodes
        .values()
        .map(|node| {
            let steps = node.steps.as_deref().unwrap_or_default();
            steps
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match s.target() {
                    Some(StepTarget::Node(t)) => index(t).map(|j| (i, j)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let mut mark = vec![Mark::Unseen; names.len()];
    for start in 0..names.len() {
        if mark[start] != Mark::Unseen {
            continue;
        }
        // Stack of (node, next edge to follow).
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(step, target)) = edges[node].get(*next) {
                *next += 1;
                match mark[target] {
                    Mark::OnPath => {
                        let from = stack.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| names[*n].as_str()).collect();
                        cycle.push(names[target].as_str());
                        return invalid(
                            format!("spec.nodes.{}.steps[{step}].nodeName", names[node]),
                            format!("node cycle {}: the router would never finish", cycle.join(" -> ")),
                        );
                    }
                    Mark::Unseen => {
                        mark[target] = Mark::OnPath;
                        stack.push((target, 0));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn graph(nodes: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "g"}, "spec": {"nodes": nodes}})
    }

    fn check(doc: Value) -> Result<()> {
        InferenceGraph::from_value(doc).and_then(|g| g.validate())
    }

    fn problem(doc: Value) -> String {
        check(doc).expect_err("should be rejected").to_string()
    }

    #[test]
    fn every_router_type_parses_and_validates() {
        let doc = graph(json!({
            "root": {"routerType": "Sequence", "steps": [
                {"name": "pre", "serviceName": "transformer"},
                {"name": "split", "nodeName": "split", "data": "$response", "dependency": "Hard"},
            ]},
            "split": {"routerType": "Splitter", "steps": [
                {"serviceName": "a", "weight": 80}, {"serviceName": "b", "weight": 20},
            ]},
            "switch": {"routerType": "Switch", "steps": [
                {"serviceName": "cat", "condition": "[@this].#(animal==\"cat\")"},
                {"serviceUrl": "http://fallback"},
            ]},
            "ensemble": {"routerType": "Ensemble", "steps": [
                {"name": "x", "serviceName": "x", "dependency": "Soft"}, {"name": "y", "serviceName": "y"},
            ]},
        }));
        let g = InferenceGraph::from_value(doc.clone()).expect("parses");
        g.validate().expect("valid");
        assert_eq!(g.to_value(), doc);
        let root = g.root().expect("root");
        assert_eq!(root.router_type, Some(RouterType::Sequence));
        let steps = root.steps.as_deref().expect("steps");
        assert_eq!(steps[1].target(), Some(StepTarget::Node("split")));
        assert_eq!(steps[0].target(), Some(StepTarget::Service("transformer")));
    }

    #[test]
    fn webhook_rules() {
        assert!(
            problem(graph(json!({"main": {"routerType": "Sequence"}}))).starts_with("spec.nodes: root node not found")
        );
        let dup = graph(
            json!({"root": {"routerType": "Ensemble", "steps": [{"name": "a", "serviceName": "x"}, {"name": "a", "serviceName": "y"}]}}),
        );
        assert!(
            problem(dup).starts_with("spec.nodes.root.steps[1].name: node \"root\" has more than one step named \"a\"")
        );
        let no_target = graph(json!({"root": {"routerType": "Sequence", "steps": [{"name": "a"}]}}));
        assert!(problem(no_target).starts_with("spec.nodes.root.steps[0]: the step has no target"));
        let two = graph(
            json!({"root": {"routerType": "Sequence", "steps": [{"serviceName": "a", "serviceUrl": "http://b"}]}}),
        );
        assert!(problem(two).starts_with("spec.nodes.root.steps[0]: the step sets more than one"));
        let no_weight = graph(
            json!({"root": {"routerType": "Splitter", "steps": [{"serviceName": "a", "weight": 50}, {"serviceName": "b"}]}}),
        );
        assert!(problem(no_weight).starts_with("spec.nodes.root.steps[1].weight: every step of a Splitter"));
        let sum = graph(
            json!({"root": {"routerType": "Splitter", "steps": [{"serviceName": "a", "weight": 50}, {"serviceName": "b", "weight": 40}]}}),
        );
        assert!(
            problem(sum).starts_with("spec.nodes.root.steps: the weights of a Splitter node must sum to 100, found 90")
        );
        let negative = graph(
            json!({"root": {"routerType": "Splitter", "steps": [{"serviceName": "a", "weight": 150}, {"serviceName": "b", "weight": -50}]}}),
        );
        assert!(problem(negative).starts_with("spec.nodes.root.steps[0].weight: must be between 0 and 100"));
        let dangling = graph(json!({"root": {"routerType": "Sequence", "steps": [{"nodeName": "missing"}]}}));
        assert!(problem(dangling).starts_with("spec.nodes.root.steps[0].nodeName: no node named \"missing\""));
        let cycle = graph(json!({"root": {"routerType": "Sequence", "steps": [{"nodeName": "a"}]},
                                 "a": {"routerType": "Switch", "steps": [{"nodeName": "root", "condition": "x"}]}}));
        assert!(problem(cycle).contains("node cycle"), "cycle");
        let no_type = graph(json!({"root": {"steps": []}}));
        assert!(problem(no_type).starts_with("spec.nodes.root.routerType:"));
        let bad_data =
            graph(json!({"root": {"routerType": "Sequence", "steps": [{"serviceName": "a", "data": "$body"}]}}));
        assert!(problem(bad_data).starts_with("spec.nodes.root.steps[0].data:"));
        let unknown_type =
            InferenceGraph::from_value(graph(json!({"root": {"routerType": "Broadcast"}}))).expect_err("enum");
        assert!(
            unknown_type.to_string().starts_with("spec.nodes.root.routerType: unknown variant `Broadcast`"),
            "{unknown_type}"
        );
        let mut bad_name = graph(json!({"root": {"routerType": "Sequence", "steps": [{"serviceName": "a"}]}}));
        bad_name["metadata"]["name"] = json!("Graph");
        assert!(problem(bad_name).starts_with("metadata.name:"));
    }

    /// A random graph of `n` nodes whose steps point at nodes by index.
    fn random_graph(edges: &[(usize, usize)], n: usize) -> Value {
        let mut nodes = serde_json::Map::new();
        for i in 0..n {
            let name = if i == 0 { ROOT.to_string() } else { format!("n{i}") };
            let steps: Vec<Value> = edges
                .iter()
                .filter(|(from, _)| *from == i)
                .map(|(_, to)| {
                    let target = if *to == 0 { ROOT.to_string() } else { format!("n{to}") };
                    json!({"nodeName": target})
                })
                .collect();
            nodes.insert(name, json!({"routerType": "Sequence", "steps": steps}));
        }
        graph(Value::Object(nodes))
    }

    /// Whether the directed graph has a cycle, by repeatedly removing sinks (Kahn).
    fn has_cycle(edges: &[(usize, usize)], n: usize) -> bool {
        let mut alive = vec![true; n];
        loop {
            let sink = (0..n).find(|&v| alive[v] && !edges.iter().any(|(f, t)| *f == v && alive[*t]));
            match sink {
                Some(v) => alive[v] = false,
                None => return alive.iter().any(|a| *a),
            }
        }
    }

    proptest! {
        #[test]
        fn cycles_are_rejected_exactly_when_present(
            n in 1usize..6,
            raw in prop::collection::vec((0usize..6, 0usize..6), 0..10),
        ) {
            let edges: Vec<(usize, usize)> = raw.into_iter().map(|(f, t)| (f % n, t % n)).collect();
            let result = check(random_graph(&edges, n));
            prop_assert_eq!(result.is_err(), has_cycle(&edges, n), "{:?}", result);
        }

        #[test]
        fn splitters_are_valid_exactly_when_weights_sum_to_100(weights in prop::collection::vec(0i64..=100, 1..5)) {
            let steps: Vec<Value> = weights.iter().map(|w| json!({"serviceName": "s", "weight": w})).collect();
            let result = check(graph(json!({"root": {"routerType": "Splitter", "steps": steps}})));
            prop_assert_eq!(result.is_ok(), weights.iter().sum::<i64>() == 100);
        }
    }
}
