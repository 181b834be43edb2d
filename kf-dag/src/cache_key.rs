//! [`CacheKey`]: the content digest that decides whether a task's earlier
//! result can replace running it.
//!
//! The key is a SHA-256 over a canonical encoding of everything that
//! determines a task's outputs: the component's signature, its executor
//! (image, command, args, env; a function's name; an importer's URI), the
//! resolved parameter values and the *content digests* of the input artifacts
//! (not their URIs, so the same data stored twice hits the cache). The
//! encoding is tagged and length-prefixed, so no two different inputs encode
//! alike, and JSON objects are encoded with sorted keys, so map order never
//! matters. Descriptions and display names are left out: they do not change
//! what a task computes. This module is pure; the cache store is elsewhere.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ir::{
    Arg, ArtifactSpec, Component, Executor, Implementation, ImporterUri, Interface, ParameterSpec, Pipeline, Segment,
    Task,
};

/// A task's inputs with every value resolved: what the cache key digests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedInputs {
    /// Parameter values by input name.
    pub parameters: BTreeMap<String, Value>,
    /// Content digests of the input artifacts by input name (several for an
    /// artifact list), e.g. `sha256:…`.
    pub artifacts: BTreeMap<String, Vec<String>>,
}

/// A 256-bit content digest identifying a task's result.
///
/// ```
/// use kf_dag::CacheKey;
/// use kf_dag::cache_key::ResolvedInputs;
/// use kf_dag::ir::{Component, ContainerSpec, Executor};
/// use serde_json::json;
///
/// let component = Component::leaf("exec-train");
/// let executor = Executor::Container(ContainerSpec::new("python:3.11"));
/// let mut inputs = ResolvedInputs::default();
/// inputs.parameters.insert("lr".into(), json!(0.1));
/// let a = CacheKey::compute(&component, Some(&executor), &inputs);
/// inputs.parameters.insert("lr".into(), json!(0.2));
/// let b = CacheKey::compute(&component, Some(&executor), &inputs);
/// assert_ne!(a, b);
/// assert_eq!(a.to_string().len(), 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of running `component` (on `executor`, for a leaf) with `inputs`.
    ///
    /// Complexity: linear in the size of the component, the executor and the
    /// inputs, plus sorting the keys of each JSON object in the values.
    pub fn compute(component: &Component, executor: Option<&Executor>, inputs: &ResolvedInputs) -> CacheKey {
        let mut e = Encoder::new(b"kf-dag/cache-key/v1");
        e.interface(&component.inputs);
        e.interface(&component.outputs);
        match (&component.implementation, executor) {
            (Implementation::Executor(_), Some(executor)) => e.executor(executor),
            (Implementation::Executor(_), None) => e.tag(0),
            (Implementation::Dag(_), _) => e.tag(1),
        }
        e.len(inputs.parameters.len());
        for (name, value) in &inputs.parameters {
            e.str(name);
            e.value(value);
        }
        e.len(inputs.artifacts.len());
        for (name, digests) in &inputs.artifacts {
            e.str(name);
            e.len(digests.len());
            digests.iter().for_each(|d| e.str(d));
        }
        e.finish()
    }

    /// The key of a user-chosen cache key string (KFP's `cachingOptions.cacheKey`).
    pub fn custom(key: &str) -> CacheKey {
        let mut e = Encoder::new(b"kf-dag/custom-cache-key/v1");
        e.str(key);
        e.finish()
    }

    /// The key of `task` of `pipeline` with `inputs`: its custom key if it has
    /// one, else [`CacheKey::compute`] over its component and executor.
    /// `None` when caching is off for the task, or the task runs a DAG (DAGs
    /// are not cached; their tasks are).
    pub fn for_task(pipeline: &Pipeline, task: &Task, inputs: &ResolvedInputs) -> Option<CacheKey> {
        if !task.caching.enabled {
            return None;
        }
        let component = pipeline.components.get(&task.component)?;
        let Implementation::Executor(_) = &component.implementation else { return None };
        Some(match &task.caching.key {
            Some(key) => CacheKey::custom(key),
            None => CacheKey::compute(component, pipeline.executor_of(&task.component), inputs),
        })
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for CacheKey {
    /// Lower-case hex, 64 characters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Feeds a tagged, length-prefixed encoding straight into the hasher.
struct Encoder(Sha256);

impl Encoder {
    fn new(domain: &[u8]) -> Self {
        let mut e = Encoder(Sha256::new());
        e.bytes(domain);
        e
    }

    fn finish(self) -> CacheKey {
        CacheKey(self.0.finalize().into())
    }

    fn tag(&mut self, t: u8) {
        self.0.update([t]);
    }

    fn len(&mut self, n: usize) {
        self.0.update((n as u64).to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.update(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.tag(1);
                self.str(s);
            }
            None => self.tag(0),
        }
    }

    fn interface(&mut self, interface: &Interface) {
        self.len(interface.parameters.len());
        for (name, ParameterSpec { ty, default, optional, description: _ }) in &interface.parameters {
            self.str(name);
            self.str(ty.as_kfp_str());
            match default {
                Some(v) => {
                    self.tag(1);
                    self.value(v);
                }
                None => self.tag(0),
            }
            self.tag(u8::from(*optional));
        }
        self.len(interface.artifacts.len());
        for (name, ArtifactSpec { ty, is_list, optional, description: _ }) in &interface.artifacts {
            self.str(name);
            self.str(&ty.schema_title);
            self.opt_str(ty.schema_version.as_deref());
            self.tag(u8::from(*is_list));
            self.tag(u8::from(*optional));
        }
    }

    fn executor(&mut self, executor: &Executor) {
        match executor {
            Executor::Container(c) => {
                self.tag(b'c');
                self.str(&c.image);
                for args in [&c.command, &c.args] {
                    self.len(args.len());
                    args.iter().for_each(|a| self.arg(a));
                }
                self.len(c.env.len());
                for (name, value) in &c.env {
                    self.str(name);
                    self.str(&value.to_string());
                }
            }
            Executor::Function(f) => {
                self.tag(b'f');
                self.str(&f.name);
            }
            Executor::Importer(i) => {
                self.tag(b'i');
                match &i.uri {
                    ImporterUri::Constant(u) => {
                        self.tag(0);
                        self.str(u);
                    }
                    ImporterUri::InputParameter(p) => {
                        self.tag(1);
                        self.str(p);
                    }
                }
                self.str(&i.artifact_type.schema_title);
                self.opt_str(i.artifact_type.schema_version.as_deref());
                self.len(i.metadata.len());
                for (k, v) in &i.metadata {
                    self.str(k);
                    self.value(v);
                }
                self.tag(u8::from(i.reimport));
            }
        }
    }

    fn arg(&mut self, arg: &Arg) {
        // Explicit stack: structured placeholders may nest deeply in hostile specs.
        let mut stack = vec![arg];
        while let Some(arg) = stack.pop() {
            match arg {
                Arg::Template(t) => {
                    self.tag(b't');
                    self.len(t.segments().len());
                    for segment in t.segments() {
                        match segment {
                            Segment::Text(s) => {
                                self.tag(0);
                                self.str(s);
                            }
                            Segment::Placeholder(p) => {
                                self.tag(1);
                                self.str(&p.to_string());
                            }
                        }
                    }
                }
                Arg::IfPresent { input, then, otherwise } => {
                    self.tag(b'?');
                    self.str(input);
                    self.len(then.len());
                    self.len(otherwise.len());
                    stack.extend(otherwise.iter().rev());
                    stack.extend(then.iter().rev());
                }
                Arg::Concat(parts) => {
                    self.tag(b'+');
                    self.len(parts.len());
                    stack.extend(parts.iter().rev());
                }
            }
        }
    }

    /// JSON with object keys sorted and numbers normalised: an integral
    /// double encodes like the integer (protobuf `Value` has doubles only).
    fn value(&mut self, value: &Value) {
        let mut stack = vec![value];
        while let Some(v) = stack.pop() {
            match v {
                Value::Null => self.tag(b'n'),
                Value::Bool(b) => self.tag(if *b { b'T' } else { b'F' }),
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        self.integer(i128::from(i));
                    } else if let Some(u) = n.as_u64() {
                        self.integer(i128::from(u));
                    } else {
                        let f = n.as_f64().unwrap_or(f64::NAN);
                        if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e18 {
                            self.integer(f as i128);
                        } else {
                            self.tag(b'd');
                            self.0.update(f.to_bits().to_le_bytes());
                        }
                    }
                }
                Value::String(s) => {
                    self.tag(b's');
                    self.str(s);
                }
                Value::Array(items) => {
                    self.tag(b'a');
                    self.len(items.len());
                    stack.extend(items.iter().rev());
                }
                Value::Object(map) => {
                    self.tag(b'o');
                    self.len(map.len());
                    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    // Keys are hashed now, values when popped: push them so the
                    // first key's value is encoded first, right after all keys.
                    entries.iter().for_each(|(k, _)| self.str(k));
                    stack.extend(entries.iter().rev().map(|(_, v)| *v));
                }
            }
        }
    }

    fn integer(&mut self, i: i128) {
        self.tag(b'i');
        self.0.update(i.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{ArtifactType, ContainerSpec, ParameterType};
    use proptest::prelude::*;
    use serde_json::json;

    fn component() -> Component {
        let mut c = Component::leaf("exec");
        c.inputs.parameters.insert("p".into(), ParameterSpec::new(ParameterType::String));
        c.outputs.artifacts.insert("m".into(), ArtifactSpec::new(ArtifactType::model()));
        c
    }

    fn container() -> Executor {
        let mut spec = ContainerSpec::new("python:3.11");
        spec.command = vec![Arg::from("python"), Arg::parse("{{$.inputs.parameters['p']}}").unwrap()];
        Executor::Container(spec)
    }

    fn key(inputs: &ResolvedInputs) -> CacheKey {
        CacheKey::compute(&component(), Some(&container()), inputs)
    }

    /// JSON values up to three levels deep, object keys from a small alphabet.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-d]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The same JSON with every object's entries inserted in reverse order.
    fn reorder(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut entries: Vec<_> = m.iter().map(|(k, v)| (k.clone(), reorder(v))).collect();
                entries.reverse();
                Value::Object(entries.into_iter().collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(reorder).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn every_part_of_the_definition_changes_the_key() {
        let inputs = ResolvedInputs::default();
        let base = key(&inputs);
        let mut other = component();
        other.outputs.artifacts.insert("m".into(), ArtifactSpec::new(ArtifactType::dataset()));
        assert_ne!(CacheKey::compute(&other, Some(&container()), &inputs), base);
        let Executor::Container(mut c) = container() else { unreachable!() };
        c.image = "python:3.12".into();
        assert_ne!(CacheKey::compute(&component(), Some(&Executor::Container(c.clone())), &inputs), base);
        c.image = "python:3.11".into();
        c.env.push(("A".into(), crate::ir::Template::text("1")));
        assert_ne!(CacheKey::compute(&component(), Some(&Executor::Container(c)), &inputs), base);
        assert_ne!(CacheKey::compute(&component(), None, &inputs), base);
    }

    #[test]
    fn artifacts_count_by_content_digest_and_integral_doubles_equal_integers() {
        let mut a = ResolvedInputs::default();
        a.artifacts.insert("data".into(), vec!["sha256:aa".into()]);
        let mut b = a.clone();
        assert_eq!(key(&a), key(&b));
        b.artifacts.insert("data".into(), vec!["sha256:ab".into()]);
        assert_ne!(key(&a), key(&b));
        let (mut x, mut y) = (ResolvedInputs::default(), ResolvedInputs::default());
        x.parameters.insert("n".into(), json!(3));
        y.parameters.insert("n".into(), json!(3.0));
        assert_eq!(key(&x), key(&y));
        y.parameters.insert("n".into(), json!(3.5));
        assert_ne!(key(&x), key(&y));
        y.parameters.insert("n".into(), json!("3"));
        assert_ne!(key(&x), key(&y), "a string is not a number");
    }

    #[test]
    fn custom_keys_differ_from_computed_ones_and_each_other() {
        assert_eq!(CacheKey::custom("a"), CacheKey::custom("a"));
        assert_ne!(CacheKey::custom("a"), CacheKey::custom("b"));
        assert_ne!(CacheKey::custom(""), key(&ResolvedInputs::default()));
    }

    #[test]
    fn for_task_honours_the_caching_options() {
        let mut pipeline = Pipeline::new("p");
        pipeline.executors.insert("exec".into(), container());
        pipeline.components.insert("c".into(), component());
        let inputs = ResolvedInputs::default();
        let mut task = Task::new("c");
        assert_eq!(CacheKey::for_task(&pipeline, &task, &inputs), Some(key(&inputs)));
        task.caching.key = Some("mine".into());
        assert_eq!(CacheKey::for_task(&pipeline, &task, &inputs), Some(CacheKey::custom("mine")));
        task.caching.enabled = false;
        assert_eq!(CacheKey::for_task(&pipeline, &task, &inputs), None);
    }

    proptest! {
        #[test]
        fn stable_under_map_reordering(params in proptest::collection::btree_map("[a-z]{1,4}", json_value(), 0..8)) {
            let a = ResolvedInputs { parameters: params.clone(), ..ResolvedInputs::default() };
            let b = ResolvedInputs {
                parameters: params.iter().rev().map(|(k, v)| (k.clone(), reorder(v))).collect(),
                ..ResolvedInputs::default()
            };
            prop_assert_eq!(key(&a), key(&b));
        }

        #[test]
        fn changes_with_any_input(
            params in proptest::collection::btree_map("[a-z]{1,4}", json_value(), 1..8),
            pick in any::<prop::sample::Index>(),
            replacement in json_value(),
        ) {
            let a = ResolvedInputs { parameters: params.clone(), ..ResolvedInputs::default() };
            let name = params.keys().nth(pick.index(params.len())).unwrap().clone();
            let mut changed = a.clone();
            prop_assume!(changed.parameters[&name] != replacement);
            changed.parameters.insert(name.clone(), replacement);
            prop_assert_ne!(key(&a), key(&changed));
            let mut renamed = a.clone();
            let value = renamed.parameters.remove(&name).unwrap();
            renamed.parameters.insert(format!("{name}_"), value);
            prop_assert_ne!(key(&a), key(&renamed));
        }
    }
}
