//! Reading manifest files and routing each document to the crate that owns its
//! kind. This is the only place that knows every kind kf understands; parsing
//! and validation themselves belong to the owning crates.

use std::fmt;
use std::path::Path;

use serde_json::Value;

/// A problem with a document, located by a dotted field path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Where: a field path (`spec.owner.kind`) or a source position.
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a file could not be turned into documents.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read.
    Read(std::io::Error),
    /// The file is not valid YAML; `line`/`column` are 1-based when known.
    Syntax { line: Option<u64>, column: Option<u64>, message: String },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Read(err) => write!(f, "cannot read file: {err}"),
            LoadError::Syntax { line: Some(line), column: Some(column), message } => {
                write!(f, "line {line}, column {column}: invalid YAML: {message}")
            }
            LoadError::Syntax { message, .. } => write!(f, "invalid YAML: {message}"),
        }
    }
}

/// One unit of validation: a document, plus the documents that belong to it
/// (a KFP pipeline's second document, its `platforms` spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// 1-based position of the document's first YAML document in the file.
    pub index: usize,
    /// The YAML documents making up this unit, in file order.
    pub parts: Vec<Value>,
}

/// Reads a file and splits it into documents. Empty YAML documents are skipped.
pub fn load(path: &Path) -> Result<Vec<Document>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(LoadError::Read)?;
    parse(&text)
}

/// Parses YAML text (one or more documents) into values with YAML 1.2's
/// booleans: only `true`/`false` are booleans, so a parameter named `n` or
/// `on` stays a string, as PyYAML (which kfp and kubectl users write with)
/// reads it.
pub fn yaml_values(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(text, serde_saphyr::options! { strict_booleans: true })
}

/// Parses YAML text (one or more documents) into units of validation.
pub fn parse(text: &str) -> Result<Vec<Document>, LoadError> {
    let values: Vec<Value> = yaml_values(text).map_err(|err| {
        let location = err.location();
        LoadError::Syntax {
            line: location.map(|l| l.line()).filter(|&l| l > 0),
            column: location.map(|l| l.column()).filter(|&c| c > 0),
            message: first_line(&err.without_snippet().to_string()),
        }
    })?;
    let mut documents: Vec<Document> = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let belongs_to_previous = is_kfp_platform_spec(&value)
            && documents.last().is_some_and(|d| d.parts.len() == 1 && is_kfp_pipeline(&d.parts[0]));
        match documents.last_mut() {
            Some(previous) if belongs_to_previous => previous.parts.push(value),
            _ => documents.push(Document { index: i + 1, parts: vec![value] }),
        }
    }
    Ok(documents)
}

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

/// What kind of document this is, and which crate owns it.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    /// API group (for KFP, the pseudo-group of the pipeline IR).
    pub group: &'static str,
    /// Kind name.
    pub kind: &'static str,
    /// The crate that parses and validates it.
    pub owner: &'static str,
    codec: Codec,
}

/// The owning crate's parser, validator and serialiser for one kind.
#[derive(Debug, Clone, Copy)]
struct Codec {
    /// Parses and validates semantically.
    validate: fn(&[Value]) -> Result<(), Problem>,
    /// Parses into the typed model and writes it back.
    format: fn(&[Value]) -> Result<Vec<Value>, Problem>,
}

const KFP_GROUP: &str = "pipelines.kubeflow.org";
const KFP_KIND: &str = "PipelineSpec";

const fn owned<T: Manifest>(group: &'static str, kind: &'static str, owner: &'static str) -> KindSpec {
    KindSpec { group, kind, owner, codec: Codec { validate: validate_as::<T>, format: format_as::<T> } }
}

/// Every kind kf knows, with its owner.
pub const KINDS: &[KindSpec] = &[
    KindSpec {
        group: KFP_GROUP,
        kind: KFP_KIND,
        owner: "kf-dag",
        codec: Codec { validate: kfp::validate, format: kfp::format },
    },
    owned::<kf_tune::Experiment>(kf_tune::katib::API_GROUP, kf_tune::katib::KIND, "kf-tune"),
    owned::<kf_train::TrainJob>(kf_train::trainjob::API_GROUP, kf_train::trainjob::TRAINJOB_KIND, "kf-train"),
    owned::<kf_train::TrainingRuntime>(
        kf_train::trainjob::API_GROUP,
        kf_train::runtime::TRAINING_RUNTIME_KIND,
        "kf-train",
    ),
    owned::<kf_train::ClusterTrainingRuntime>(
        kf_train::trainjob::API_GROUP,
        kf_train::runtime::CLUSTER_TRAINING_RUNTIME_KIND,
        "kf-train",
    ),
    owned::<kf_serve::kserve::InferenceService>(KSERVE_GROUP, "InferenceService", "kf-serve"),
    owned::<kf_serve::kserve::InferenceGraph>(KSERVE_GROUP, "InferenceGraph", "kf-serve"),
    owned::<kf_serve::kserve::ServingRuntime>(KSERVE_GROUP, "ServingRuntime", "kf-serve"),
    owned::<kf_serve::kserve::ServingRuntime>(KSERVE_GROUP, "ClusterServingRuntime", "kf-serve"),
    owned::<kf_tenancy::Profile>(kf_tenancy::profile::API_GROUP, kf_tenancy::profile::KIND, "kf-tenancy"),
];

const KSERVE_GROUP: &str = "serving.kserve.io";

/// Finds the kind of a document, or says why it has none kf knows.
pub fn classify(doc: &Document) -> Result<&'static KindSpec, Problem> {
    let head = &doc.parts[0];
    let (group, kind) = if is_kfp_pipeline(head) {
        (KFP_GROUP, KFP_KIND)
    } else {
        let Value::Object(map) = head else {
            return Err(problem(
                "",
                format!("expected a mapping (a manifest or a pipeline spec), found {}", type_name(head)),
            ));
        };
        let api_version = match map.get("apiVersion") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(problem("apiVersion", format!("expected a string, found {}", type_name(other)))),
            None => {
                return Err(problem(
                    "apiVersion",
                    "missing: neither a Kubernetes manifest (apiVersion/kind) nor a KFP pipeline spec (pipelineInfo/root)",
                ));
            }
        };
        let kind = match map.get("kind") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(problem("kind", format!("expected a string, found {}", type_name(other)))),
            None => return Err(problem("kind", "missing")),
        };
        let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
        return KINDS.iter().find(|k| k.group == group && k.kind == kind).ok_or_else(|| {
            problem("kind", format!("unknown kind {kind:?} (apiVersion {api_version:?}); kf knows {}", known_kinds()))
        });
    };
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
        .ok_or_else(|| problem("kind", format!("no owner registered for {kind}")))
}

/// Classifies and validates one document with its owning crate.
pub fn validate(doc: &Document) -> Result<(), Problem> {
    (classify(doc)?.codec.validate)(&doc.parts)
}

/// Classifies one document and round-trips it through the owner's typed model.
pub fn format(doc: &Document) -> Result<Vec<Value>, Problem> {
    (classify(doc)?.codec.format)(&doc.parts)
}

fn known_kinds() -> String {
    KINDS.iter().map(|k| format!("{} ({})", k.kind, k.owner)).collect::<Vec<_>>().join(", ")
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { path: path.into(), message: message.into() }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// A KFP v2 PipelineSpec, as `kfp.compiler.Compiler` writes it.
fn is_kfp_pipeline(value: &Value) -> bool {
    value.get("pipelineInfo").is_some() && value.get("root").is_some()
}

/// The second document of a compiled KFP pipeline: its platform-specific config.
fn is_kfp_platform_spec(value: &Value) -> bool {
    value.as_object().is_some_and(|m| m.contains_key("platforms") && !m.contains_key("apiVersion"))
}

/// A crate's typed model of one document kind: parse losslessly, check,
/// write back. Each crate exposes the same three calls; this trait only names
/// them so one generic codec serves every kind.
trait Manifest: Sized {
    fn parse(doc: Value) -> Result<Self, Problem>;
    fn check(&self) -> Result<(), Problem>;
    fn write(&self) -> Value;
}

fn validate_as<T: Manifest>(parts: &[Value]) -> Result<(), Problem> {
    T::parse(parts[0].clone())?.check()
}

fn format_as<T: Manifest>(parts: &[Value]) -> Result<Vec<Value>, Problem> {
    Ok(vec![T::parse(parts[0].clone())?.write()])
}

macro_rules! manifest {
    ($($ty:ty),* $(,)?) => {$(
        impl Manifest for $ty {
            fn parse(doc: Value) -> Result<Self, Problem> {
                <$ty>::from_value(doc).map_err(Problem::from)
            }
            fn check(&self) -> Result<(), Problem> {
                self.validate().map_err(Problem::from)
            }
            fn write(&self) -> Value {
                self.to_value()
            }
        }
    )*};
}

manifest!(
    kf_tenancy::Profile,
    kf_tune::Experiment,
    kf_train::TrainJob,
    kf_train::TrainingRuntime,
    kf_serve::kserve::InferenceService,
    kf_serve::kserve::InferenceGraph,
    kf_serve::kserve::ServingRuntime,
);

/// kf-dag's KFP PipelineSpec codec: one or two YAML documents (the pipeline
/// and its `platforms` spec) make one pipeline.
mod kfp {
    use super::{Problem, Value, problem};
    use kf_dag::kfp::KfpPipeline;

    pub fn validate(parts: &[Value]) -> Result<(), Problem> {
        KfpPipeline::from_values(parts)?.validate().map_err(Problem::from)
    }

    pub fn format(parts: &[Value]) -> Result<Vec<Value>, Problem> {
        Ok(KfpPipeline::from_values(parts)?.to_values())
    }

    impl From<kf_dag::Error> for Problem {
        fn from(err: kf_dag::Error) -> Self {
            problem(err.path().unwrap_or_default(), err.message())
        }
    }
}

impl From<kf_tenancy::Error> for Problem {
    fn from(err: kf_tenancy::Error) -> Self {
        match err {
            kf_tenancy::Error::Invalid { path, message } => problem(path, message),
            other => problem("", other.to_string()),
        }
    }
}

impl From<kf_tune::Error> for Problem {
    fn from(err: kf_tune::Error) -> Self {
        match err {
            kf_tune::Error::Invalid { path, message } => problem(path, message),
            other => problem("", other.to_string()),
        }
    }
}

impl From<kf_train::Error> for Problem {
    fn from(err: kf_train::Error) -> Self {
        match err {
            kf_train::Error::Invalid { path, message } => problem(path, message),
            kf_train::Error::UnknownField { path, expected } => {
                problem(path, format!("unknown field (strict field validation); expected one of: {expected}"))
            }
            other => problem(other.path().to_string(), other.to_string()),
        }
    }
}

impl From<kf_serve::Error> for Problem {
    fn from(err: kf_serve::Error) -> Self {
        match err {
            kf_serve::Error::Invalid { path, message } => problem(path, message),
            other => problem("", other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_kfp_platform_document_joins_its_pipeline() {
        let docs = parse("pipelineInfo: {name: p}\nroot: {}\n---\nplatforms: {kubernetes: {}}\n").expect("parses");
        let values = yaml_values("a: n\nb: on\nc: yes\nd: true\n").expect("parses");
        assert_eq!(values[0], serde_json::json!({"a": "n", "b": "on", "c": "yes", "d": true}));
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].parts.len(), 2);
        assert_eq!(classify(&docs[0]).expect("kfp").kind, KFP_KIND);
    }

    #[test]
    fn documents_are_numbered_by_their_place_in_the_file() {
        let docs = parse("a: 1\n---\n---\nb: 2\n").expect("parses");
        assert_eq!(docs.iter().map(|d| d.parts.len()).collect::<Vec<_>>(), vec![1, 1]);
        assert_eq!(docs[0].index, 1);
        assert!(docs[1].index > 1);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let Err(LoadError::Syntax { line, column, .. }) = parse("a: 1\nb: [unclosed\n") else {
            panic!("expected a syntax error");
        };
        assert!(line.is_some() && column.is_some(), "line {line:?} column {column:?}");
    }

    #[test]
    fn every_kind_is_routed_by_group_and_kind() {
        for spec in KINDS.iter().filter(|k| k.group != KFP_GROUP) {
            let doc = Document {
                index: 1,
                parts: vec![json!({"apiVersion": format!("{}/v1", spec.group), "kind": spec.kind})],
            };
            let found = classify(&doc).expect("known");
            assert_eq!((found.group, found.kind), (spec.group, spec.kind));
        }
    }

    #[test]
    fn unknown_and_malformed_heads_are_named() {
        let unknown = Document { index: 1, parts: vec![json!({"apiVersion": "v1", "kind": "ConfigMap"})] };
        let err = classify(&unknown).expect_err("unknown");
        assert_eq!(err.path, "kind");
        assert!(err.message.contains("\"ConfigMap\""), "{err}");
        let scalar = Document { index: 1, parts: vec![json!(3)] };
        assert!(classify(&scalar).expect_err("scalar").message.contains("found a number"));
        let no_version = Document { index: 1, parts: vec![json!({"kind": "Profile"})] };
        assert_eq!(classify(&no_version).expect_err("no apiVersion").path, "apiVersion");
    }
}
