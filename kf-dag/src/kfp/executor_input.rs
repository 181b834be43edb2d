//! The executor contract KFP's containers speak, as pure functions: the
//! `ExecutorInput` JSON a component reads (`{{$}}`), the command line with
//! every placeholder substituted, the `ExecutorOutput` and output-parameter
//! files a component writes, read back into output values and artifacts, and
//! the mapping of remote pipeline roots (`gs://`, `minio://`, `s3://`) to a
//! local directory.
//!
//! Values follow kfp.local (kfp 2.17) so a component sees exactly what it
//! would see there: parameter values pass through `google.protobuf.Value`,
//! so every number is a double except top-level `NUMBER_INTEGER` inputs and
//! outputs; a placeholder renders a string as itself and anything else as
//! Python's `json.dumps` would; an absent input renders as `null`; output
//! artifacts start with empty metadata at `<task root>/<name>`; an output
//! parameter file holds a string as text and any other type as JSON.
//!
//! This module never touches the filesystem or spawns a process: the caller
//! (the executor) creates directories, runs the command, and hands back the
//! text of the files the component wrote.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::spec::Extra;
use crate::ir::{
    Arg, ArtifactField, ArtifactType, Component, ContainerSpec, Interface, ParameterType, Placeholder, RunField,
    Segment, Template,
};
use crate::{Error, Result};

/// The file, in the task root, a component writes its `ExecutorOutput` to.
pub const EXECUTOR_OUTPUT_FILE: &str = "executor_output.json";

/// `ExecutorInput`: what a component is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorInput {
    /// Input values and artifacts.
    #[serde(default)]
    pub inputs: ExecutorInputs,
    /// Where outputs go.
    #[serde(default)]
    pub outputs: ExecutorOutputs,
}

/// `ExecutorInput.inputs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorInputs {
    /// Parameter values by input name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameter_values: BTreeMap<String, Value>,
    /// Artifacts by input name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, ArtifactList>,
}

/// `ExecutorInput.outputs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorOutputs {
    /// Output parameters by name, with the file each is written to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, OutputParameter>,
    /// Output artifacts by name, with their URIs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, ArtifactList>,
    /// The file the component writes its `ExecutorOutput` JSON to.
    #[serde(default)]
    pub output_file: String,
}

/// `ExecutorInput.outputs.parameters[x]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParameter {
    /// The file the component writes the value to.
    pub output_file: String,
}

/// `ArtifactList`: one artifact, or the items of an artifact list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactList {
    /// The artifacts.
    #[serde(default)]
    pub artifacts: Vec<RuntimeArtifact>,
}

/// `RuntimeArtifact`: an artifact a task reads or writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeArtifact {
    /// The artifact's name (the output name for a fresh output).
    #[serde(default)]
    pub name: String,
    /// Its type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<super::spec::ArtifactTypeSchema>,
    /// Where it is: a local path, or a `gs://`, `minio://`, `s3://` URI.
    #[serde(default)]
    pub uri: String,
    /// Metadata (metrics are metadata of a `system.Metrics` artifact).
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Fields kf does not model (`custom_path`, …), kept.
    #[serde(flatten)]
    pub extra: Extra,
}

impl RuntimeArtifact {
    /// An artifact at `uri` of type `ty`, with empty metadata.
    pub fn new(name: impl Into<String>, ty: &ArtifactType, uri: impl Into<String>) -> Self {
        RuntimeArtifact {
            name: name.into(),
            artifact_type: Some(type_schema(ty)),
            uri: uri.into(),
            metadata: Map::new(),
            extra: Extra::new(),
        }
    }
}

fn type_schema(ty: &ArtifactType) -> super::spec::ArtifactTypeSchema {
    super::spec::ArtifactTypeSchema {
        schema_title: Some(ty.schema_title.clone()),
        schema_version: ty.schema_version.clone(),
        extra: Extra::new(),
    }
}

/// `ExecutorOutput`: what a component wrote to `outputs.outputFile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorOutput {
    /// Output parameter values by name.
    #[serde(default)]
    pub parameter_values: BTreeMap<String, Value>,
    /// Output artifacts by name (with the metadata the component set).
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactList>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ExecutorOutput {
    /// Parses the text of an `ExecutorOutput` file. Malformed output is an
    /// error naming the field (`executor output: parameterValues: invalid
    /// type: …`).
    pub fn parse(text: &str) -> Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|err| {
            let path = err.path().to_string();
            // `.` is the document itself, `?` a syntax error before any field.
            let path = if path == "." || path == "?" {
                "executor output".to_owned()
            } else {
                format!("executor output: {path}")
            };
            Error::invalid(path, format!("malformed ExecutorOutput JSON: {}", err.inner()))
        })
    }
}

/// What one task produced: its output values and artifacts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskOutputs {
    /// Output parameter values by name (only those the task wrote).
    pub parameters: BTreeMap<String, Value>,
    /// Output artifacts by name; a list for an artifact-list output.
    pub artifacts: BTreeMap<String, Vec<RuntimeArtifact>>,
}

/// Facts about the run that `{{$.pipeline_job_name}}` and friends read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFacts {
    /// `{{$.pipeline_job_name}}` (kfp.local: `<pipeline name>-<timestamp>`).
    pub job_name: String,
    /// `{{$.pipeline_job_resource_name}}`.
    pub job_resource_name: String,
    /// `{{$.pipeline_job_uuid}}`.
    pub job_uuid: String,
    /// `{{$.pipeline_job_create_time_utc}}`.
    pub job_create_time_utc: String,
    /// `{{$.pipeline_job_schedule_time_utc}}`.
    pub job_schedule_time_utc: String,
    /// `{{$.pipeline_task_name}}`.
    pub task_name: String,
    /// `{{$.pipeline_task_uuid}}`.
    pub task_uuid: String,
    /// `{{$.pipeline_root}}`.
    pub pipeline_root: String,
}

impl RunFacts {
    fn get(&self, field: RunField) -> &str {
        match field {
            RunField::JobName => &self.job_name,
            RunField::JobResourceName => &self.job_resource_name,
            RunField::JobUuid => &self.job_uuid,
            RunField::JobCreateTimeUtc => &self.job_create_time_utc,
            RunField::JobScheduleTimeUtc => &self.job_schedule_time_utc,
            RunField::TaskName => &self.task_name,
            RunField::TaskUuid => &self.task_uuid,
            RunField::PipelineRoot => &self.pipeline_root,
        }
    }
}

/// The value of a `PipelineTaskFinalStatus` input (an exit handler's view
/// of the task it guards), with the fields kfp.local fills and kfp's
/// executor reads: `state` (`SUCCEEDED` or `FAILED`), the job resource name,
/// the task name, and on failure `error: {code: 1, message}`.
///
/// ```
/// use kf_dag::kfp::executor_input::task_final_status;
/// use serde_json::json;
/// let status = task_final_status("local-pipeline-train", "train", Some("Task train failed."));
/// assert_eq!(status["state"], "FAILED");
/// assert_eq!(status["error"], json!({"code": 1, "message": "Task train failed."}));
/// assert_eq!(task_final_status("run-1", "train", None)["error"], json!({}));
/// ```
pub fn task_final_status(job_resource_name: &str, task: &str, failure: Option<&str>) -> Value {
    let (state, error) = match failure {
        Some(message) => ("FAILED", serde_json::json!({"code": 1, "message": message})),
        None => ("SUCCEEDED", serde_json::json!({})),
    };
    serde_json::json!({
        "state": state,
        "pipeline_job_resource_name": job_resource_name,
        "pipeline_task_name": task,
        "error": error,
    })
}

/// A value as it comes out of a `google.protobuf.Value`: every number a
/// double (KFP stores parameters that way; kfp.local hands them on as such).
pub fn protobuf_value(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number),
        Value::Array(items) => Value::Array(items.iter().map(protobuf_value).collect()),
        Value::Object(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), protobuf_value(v))).collect()),
        other => other.clone(),
    }
}

/// A parameter value of type `ty` as KFP hands it to a component: through
/// protobuf, then a `NUMBER_INTEGER` made an integer again. Errors when the
/// value does not have the declared type.
fn typed_value(value: &Value, ty: ParameterType, path: &str) -> Result<Value> {
    if !ty.accepts(value) {
        return Err(Error::TypeMismatch { path: path.to_owned(), expected: ty.to_string(), found: value.to_string() });
    }
    let value = protobuf_value(value);
    if ty == ParameterType::NumberInteger
        && let Some(f) = value.as_f64()
    {
        // `accepts` guaranteed an integral, finite value; beyond ±2^63 keep the double.
        if f.abs() < 9.2e18 {
            return Ok(Value::from(f as i64));
        }
    }
    Ok(value)
}

/// Builds the `ExecutorInput` of one task run, as kfp.local does.
///
/// `parameters` are the task's resolved input values (declared inputs and the
/// extra `pipelinechannel--…` inputs KFP adds for f-strings); a declared input
/// without a value takes its default, or is left out when it is optional.
/// `artifacts` are the resolved input artifacts. Outputs are laid out under
/// `task_root`: output parameter `x` at `<task_root>/x`, output artifact `y`
/// at `<task_root>/y`, the executor output at `<task_root>/executor_output.json`.
/// String values holding `{{$.inputs.parameters['x']}}` (f-strings over
/// other inputs) are resolved against the other values.
///
/// Errors: a required input without a value, a value of the wrong type, an
/// artifact input the component does not declare, a list where one artifact
/// is expected. Linear in the size of the inputs.
///
/// ```
/// use kf_dag::ir::{Component, ParameterSpec, ParameterType};
/// use kf_dag::kfp::executor_input::executor_input;
/// use serde_json::json;
///
/// let mut add = Component::leaf("exec-add");
/// add.inputs.parameters.insert("first".into(), ParameterSpec::new(ParameterType::NumberInteger));
/// add.outputs.parameters.insert("Output".into(), ParameterSpec::new(ParameterType::NumberInteger));
/// let given = [("first".to_owned(), json!(1.0))].into();
/// let input = executor_input(&add, &given, &Default::default(), "/runs/r1/add")?;
/// assert_eq!(input.inputs.parameter_values["first"], json!(1));
/// assert_eq!(input.outputs.parameters["Output"].output_file, "/runs/r1/add/Output");
/// assert_eq!(input.outputs.output_file, "/runs/r1/add/executor_output.json");
/// # Ok::<(), kf_dag::Error>(())
/// ```
pub fn executor_input(
    component: &Component,
    parameters: &BTreeMap<String, Value>,
    artifacts: &BTreeMap<String, Vec<RuntimeArtifact>>,
    task_root: &str,
) -> Result<ExecutorInput> {
    let mut input = ExecutorInput::default();
    let declared = &component.inputs;
    for (name, spec) in &declared.parameters {
        let path = format!("inputs.parameters.{name}");
        match parameters.get(name).or(spec.default.as_ref()) {
            // An explicit null on an optional input means "not given".
            Some(Value::Null) if spec.optional => {}
            Some(value) => {
                input.inputs.parameter_values.insert(name.clone(), typed_value(value, spec.ty, &path)?);
            }
            None if spec.optional => {}
            None => return Err(Error::MissingInput { path: "inputs.parameters".to_owned(), input: name.clone() }),
        }
    }
    for (name, value) in parameters {
        if !declared.parameters.contains_key(name) {
            input.inputs.parameter_values.insert(name.clone(), protobuf_value(value));
        }
    }
    resolve_self_references(&mut input.inputs.parameter_values)?;
    for (name, list) in artifacts {
        let spec = declared.artifacts.get(name).ok_or_else(|| Error::UnknownReference {
            path: "inputs.artifacts".to_owned(),
            what: "input artifact".to_owned(),
            name: name.clone(),
            known: known(declared.artifacts.keys()),
        })?;
        if !spec.is_list && list.len() != 1 {
            return Err(Error::TypeMismatch {
                path: format!("inputs.artifacts.{name}"),
                expected: format!("one {}", spec.ty),
                found: format!("{} artifacts", list.len()),
            });
        }
        input.inputs.artifacts.insert(name.clone(), ArtifactList { artifacts: list.clone() });
    }
    for (name, spec) in &declared.artifacts {
        if !spec.optional && !artifacts.contains_key(name) {
            return Err(Error::MissingInput { path: "inputs.artifacts".to_owned(), input: name.clone() });
        }
    }
    let root = task_root.trim_end_matches('/');
    for name in component.outputs.parameters.keys() {
        input.outputs.parameters.insert(name.clone(), OutputParameter { output_file: format!("{root}/{name}") });
    }
    for (name, spec) in &component.outputs.artifacts {
        let artifact = RuntimeArtifact::new(name.clone(), &spec.ty, format!("{root}/{name}"));
        input.outputs.artifacts.insert(name.clone(), ArtifactList { artifacts: vec![artifact] });
    }
    input.outputs.output_file = format!("{root}/{EXECUTOR_OUTPUT_FILE}");
    Ok(input)
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() { "none is declared".to_owned() } else { format!("declared: {}", names.join(", ")) }
}

/// Resolves `{{$.inputs.parameters['x']}}` inside string values against the
/// other (unresolved) values, as kfp.local does for f-strings.
fn resolve_self_references(values: &mut BTreeMap<String, Value>) -> Result<()> {
    let originals = values.clone();
    for (name, value) in values.iter_mut() {
        let Value::String(text) = value else { continue };
        if !text.contains("{{$") {
            continue;
        }
        let template = Template::parse(text).map_err(|m| Error::invalid(format!("inputs.parameters.{name}"), m))?;
        let mut out = String::new();
        for segment in template.segments() {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Placeholder(Placeholder::InputParameter(other)) => {
                    out.push_str(&render(originals.get(other).unwrap_or(&Value::Null)));
                }
                // Only references to other inputs are resolved here; anything else is kept as written.
                Segment::Placeholder(p) => out.push_str(&p.to_string()),
            }
        }
        *text = out;
    }
    Ok(())
}

/// A value as a placeholder renders it: a string as itself, anything else as
/// Python's `json.dumps` writes it.
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_json(other),
    }
}

/// JSON text exactly as Python's `json.dumps` writes it (separators `", "`
/// and `": "`, non-ASCII escaped, floats in `repr` form such as `1.0` and
/// `1e-05`), so command lines match kfp's byte for byte. Linear in the size
/// of the value.
///
/// ```
/// use kf_dag::kfp::executor_input::python_json;
/// use serde_json::json;
/// assert_eq!(python_json(&json!({"a": [1, 2.5, "é"], "b": null})), r#"{"a": [1, 2.5, "\u00e9"], "b": null}"#);
/// assert_eq!(python_json(&json!(1e16)), "1e+16");
/// assert_eq!(python_json(&json!(0.00001)), "1e-05");
/// ```
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_python_json(value, &mut out);
    out
}

fn write_python_json(value: &Value, out: &mut String) {
    // An explicit stack: values come from components and may nest deeply.
    enum Step<'a> {
        Value(&'a Value),
        Text(&'static str),
        Key(&'a str),
    }
    let mut stack = vec![Step::Value(value)];
    while let Some(step) = stack.pop() {
        match step {
            Step::Text(t) => out.push_str(t),
            Step::Key(k) => {
                write_python_string(k, out);
                out.push_str(": ");
            }
            Step::Value(Value::Null) => out.push_str("null"),
            Step::Value(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Step::Value(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => out.push_str(&i.to_string()),
                (_, Some(u), _) => out.push_str(&u.to_string()),
                (_, _, Some(f)) => out.push_str(&python_float(f)),
                _ => out.push_str(&n.to_string()),
            },
            Step::Value(Value::String(s)) => write_python_string(s, out),
            Step::Value(Value::Array(items)) => {
                out.push('[');
                stack.push(Step::Text("]"));
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push(Step::Value(item));
                    if i > 0 {
                        stack.push(Step::Text(", "));
                    }
                }
            }
            Step::Value(Value::Object(fields)) => {
                out.push('{');
                stack.push(Step::Text("}"));
                for (i, (k, v)) in fields.iter().enumerate().rev() {
                    stack.push(Step::Value(v));
                    stack.push(Step::Key(k));
                    if i > 0 {
                        stack.push(Step::Text(", "));
                    }
                }
            }
        }
    }
}

fn write_python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that read back to the same
/// double, in positional notation for exponents -4..16, else scientific.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let esign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{esign}{:02}", exponent.unsigned_abs())
    }
}

/// Everything a placeholder can read while one task's command line is built.
#[derive(Debug, Clone, Copy)]
pub struct Substitution<'a> {
    /// The task's executor input.
    pub input: &'a ExecutorInput,
    /// Facts about the run.
    pub run: &'a RunFacts,
    /// Maps artifact URIs to local paths (`.path` placeholders).
    pub root: &'a PipelineRoot,
}

impl Substitution<'_> {
    fn artifact(&self, list: Option<&ArtifactList>, field: ArtifactField) -> Result<String> {
        let Some(artifact) = list.and_then(|l| l.artifacts.first()) else { return Ok("null".to_owned()) };
        Ok(match field {
            ArtifactField::Uri => artifact.uri.clone(),
            ArtifactField::Path => self.root.local_path(&artifact.uri)?,
            ArtifactField::Metadata => python_json(&Value::Object(artifact.metadata.clone())),
        })
    }

    fn placeholder(&self, p: &Placeholder) -> Result<String> {
        let input = self.input;
        Ok(match p {
            Placeholder::ExecutorInput => python_json(&serde_json::to_value(input).unwrap_or(Value::Null)),
            Placeholder::InputParameter(name) => {
                render(input.inputs.parameter_values.get(name).unwrap_or(&Value::Null))
            }
            Placeholder::InputArtifact { name, field } => self.artifact(input.inputs.artifacts.get(name), *field)?,
            Placeholder::OutputParameterFile(name) => match input.outputs.parameters.get(name) {
                Some(p) => p.output_file.clone(),
                None => "null".to_owned(),
            },
            Placeholder::OutputArtifact { name, field } => self.artifact(input.outputs.artifacts.get(name), *field)?,
            Placeholder::ExecutorOutputFile => input.outputs.output_file.clone(),
            Placeholder::Run(field) => self.run.get(*field).to_owned(),
        })
    }

    /// A template with every placeholder substituted.
    pub fn template(&self, template: &Template) -> Result<String> {
        let mut out = String::new();
        for segment in template.segments() {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Placeholder(p) => out.push_str(&self.placeholder(p)?),
            }
        }
        Ok(out)
    }

    /// Whether `IfPresent` sees input `name`: a parameter with a non-null value or an artifact.
    fn is_present(&self, name: &str) -> bool {
        let inputs = &self.input.inputs;
        inputs.parameter_values.get(name).is_some_and(|v| !v.is_null()) || inputs.artifacts.contains_key(name)
    }

    /// The strings one argument expands to: a template gives one, `IfPresent`
    /// zero or more, `Concat` one.
    pub fn arg(&self, arg: &Arg, out: &mut Vec<String>) -> Result<()> {
        // Explicit stack of pending items: IfPresent/Concat may nest deeply.
        enum Item<'a> {
            Arg(&'a Arg),
            EndConcat(Vec<String>),
        }
        let mut stack = vec![Item::Arg(arg)];
        let mut current: Vec<String> = Vec::new();
        while let Some(item) = stack.pop() {
            match item {
                Item::Arg(Arg::Template(t)) => current.push(self.template(t)?),
                Item::Arg(Arg::IfPresent { input, then, otherwise }) => {
                    let branch = if self.is_present(input) { then } else { otherwise };
                    stack.extend(branch.iter().rev().map(Item::Arg));
                }
                Item::Arg(Arg::Concat(parts)) => {
                    stack.push(Item::EndConcat(std::mem::take(&mut current)));
                    stack.extend(parts.iter().rev().map(Item::Arg));
                }
                Item::EndConcat(mut outer) => {
                    outer.push(current.concat());
                    current = outer;
                }
            }
        }
        out.extend(current);
        Ok(())
    }

    /// The full command line of a container: command then args, every
    /// placeholder substituted, structured placeholders expanded.
    ///
    /// ```
    /// use kf_dag::ir::{Arg, ContainerSpec};
    /// use kf_dag::kfp::executor_input::{ExecutorInput, PipelineRoot, RunFacts, Substitution};
    /// use serde_json::json;
    ///
    /// let mut input = ExecutorInput::default();
    /// input.inputs.parameter_values.insert("n".into(), json!([1.0, 2.0]));
    /// let mut c = ContainerSpec::new("python:3.11");
    /// c.command = vec![Arg::from("echo"), Arg::parse("n={{$.inputs.parameters['n']}}").unwrap()];
    /// c.args = vec![Arg::IfPresent { input: "m".into(), then: vec![Arg::from("--m")], otherwise: vec![] }];
    /// let root = PipelineRoot::new("/tmp/kf");
    /// let s = Substitution { input: &input, run: &RunFacts::default(), root: &root };
    /// assert_eq!(s.command_line(&c)?, ["echo", "n=[1.0, 2.0]"]);
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn command_line(&self, container: &ContainerSpec) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for arg in container.command.iter().chain(&container.args) {
            self.arg(arg, &mut out)?;
        }
        Ok(out)
    }

    /// The container's environment, placeholders substituted.
    pub fn environment(&self, container: &ContainerSpec) -> Result<Vec<(String, String)>> {
        container.env.iter().map(|(name, value)| Ok((name.clone(), self.template(value)?))).collect()
    }
}

/// Reads what a task produced: its `ExecutorOutput` (when it wrote one) and
/// its output-parameter files, checked against the component's outputs.
///
/// `executor_output` is the text of `outputs.outputFile`, `None` when the
/// component wrote none (container components usually don't).
/// `parameter_files` maps an output parameter name to the text of its
/// `outputFile`, for the files that exist; a file wins over the executor
/// output, as in kfp.local. A file holds a `STRING` as plain text, a
/// `BOOLEAN` as `true`/`True`, anything else as JSON. A declared output
/// artifact the executor output does not mention is the one laid out in the
/// executor input (its URI, empty metadata), as the KFP launcher records it.
///
/// Errors (naming the output): malformed JSON, a value of the wrong type,
/// an output the component does not declare. Linear in the output size.
///
/// ```
/// use kf_dag::ir::{ArtifactSpec, ArtifactType, Component, ParameterSpec, ParameterType};
/// use kf_dag::kfp::executor_input::{executor_input, task_outputs};
/// use serde_json::json;
///
/// let mut c = Component::leaf("exec");
/// c.outputs.parameters.insert("Output".into(), ParameterSpec::new(ParameterType::NumberInteger));
/// c.outputs.artifacts.insert("model".into(), ArtifactSpec::new(ArtifactType::model()));
/// let input = executor_input(&c, &Default::default(), &Default::default(), "/r/t")?;
/// let written = r#"{"parameterValues": {"Output": 3.0}, "artifacts": {"model": {"artifacts": [
///     {"name": "model", "uri": "/r/t/model", "metadata": {"accuracy": 0.9}}]}}}"#;
/// let out = task_outputs(&c, &input, Some(written), &Default::default())?;
/// assert_eq!(out.parameters["Output"], json!(3));
/// assert_eq!(out.artifacts["model"][0].metadata["accuracy"], json!(0.9));
/// assert_eq!(out.artifacts["model"][0].artifact_type.as_ref().unwrap().schema_title.as_deref(), Some("system.Model"));
/// assert!(task_outputs(&c, &input, Some("{\"parameterValues\": 3}"), &Default::default()).is_err());
/// # Ok::<(), kf_dag::Error>(())
/// ```
pub fn task_outputs(
    component: &Component,
    input: &ExecutorInput,
    executor_output: Option<&str>,
    parameter_files: &BTreeMap<String, String>,
) -> Result<TaskOutputs> {
    let written = executor_output.map(ExecutorOutput::parse).transpose()?.unwrap_or_default();
    let declared: &Interface = &component.outputs;
    let mut outputs = TaskOutputs::default();
    for (name, value) in &written.parameter_values {
        let spec = declared.parameters.get(name).ok_or_else(|| Error::UnknownReference {
            path: "executor output: parameterValues".to_owned(),
            what: "output parameter".to_owned(),
            name: name.clone(),
            known: known(declared.parameters.keys()),
        })?;
        let path = format!("executor output: parameterValues.{name}");
        outputs.parameters.insert(name.clone(), typed_value(value, spec.ty, &path)?);
    }
    for (name, text) in parameter_files {
        let spec = declared.parameters.get(name).ok_or_else(|| Error::UnknownReference {
            path: "outputs.parameters".to_owned(),
            what: "output parameter".to_owned(),
            name: name.clone(),
            known: known(declared.parameters.keys()),
        })?;
        let file = input.outputs.parameters.get(name).map_or("its output file", |p| p.output_file.as_str());
        let path = format!("outputs.parameters.{name}");
        let value = match spec.ty {
            ParameterType::String => Value::String(text.clone()),
            ParameterType::Boolean => serde_json::from_str(&text.trim().to_lowercase()).map_err(|e| {
                Error::invalid(&path, format!("cannot read a BOOLEAN from {file}: {e} (found {text:?})"))
            })?,
            ty => serde_json::from_str(text).map_err(|e| {
                Error::invalid(&path, format!("cannot read a {ty} as JSON from {file}: {e} (found {text:?})"))
            })?,
        };
        outputs.parameters.insert(name.clone(), typed_value(&value, spec.ty, &path)?);
    }
    for (name, list) in &written.artifacts {
        let spec = declared.artifacts.get(name).ok_or_else(|| Error::UnknownReference {
            path: "executor output: artifacts".to_owned(),
            what: "output artifact".to_owned(),
            name: name.clone(),
            known: known(declared.artifacts.keys()),
        })?;
        if list.artifacts.is_empty() || (!spec.is_list && list.artifacts.len() != 1) {
            return Err(Error::TypeMismatch {
                path: format!("executor output: artifacts.{name}.artifacts"),
                expected: spec.describe(),
                found: format!("{} artifacts", list.artifacts.len()),
            });
        }
        // Components do not write types back; KFP takes them from the declaration.
        let artifacts = list
            .artifacts
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a.artifact_type.get_or_insert_with(|| type_schema(&spec.ty));
                a
            })
            .collect();
        outputs.artifacts.insert(name.clone(), artifacts);
    }
    for (name, list) in &input.outputs.artifacts {
        if !outputs.artifacts.contains_key(name) {
            outputs.artifacts.insert(name.clone(), list.artifacts.clone());
        }
    }
    Ok(outputs)
}

/// Where a run's artifacts live: a local directory, standing in for a remote
/// pipeline root. As kfp does inside its containers (`gs://b/x` is read at
/// `/gcs/b/x`), a remote URI maps to a path under a per-scheme folder —
/// here of the local root instead of `/`: `gs://b/x` ↔ `<local>/gcs/b/x`,
/// `minio://b/x` ↔ `<local>/minio/b/x`, `s3://b/x` ↔ `<local>/s3/b/x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineRoot {
    local: String,
    remote: Option<String>,
}

/// The remote schemes a pipeline root may use, with their local folder.
pub const REMOTE_SCHEMES: [(&str, &str); 3] = [("gs://", "gcs"), ("minio://", "minio"), ("s3://", "s3")];

impl PipelineRoot {
    /// A purely local root: artifacts go under `local` (an absolute directory).
    pub fn new(local: impl Into<String>) -> Self {
        let local: String = local.into();
        // Kept without a trailing slash: `/` becomes "" so `gs://b/x` maps to
        // `/gcs/b/x`, exactly kfp's in-container layout.
        PipelineRoot { local: local.trim_end_matches('/').to_owned(), remote: None }
    }

    /// A remote pipeline root (a pipeline's `defaultPipelineRoot`, e.g.
    /// `gs://bucket/root`) stood in for by the local directory `local`.
    /// Errors for a scheme kf cannot map.
    ///
    /// ```
    /// use kf_dag::kfp::PipelineRoot;
    /// let root = PipelineRoot::remote("/tmp/kf", "minio://mlpipeline/v2/artifacts")?;
    /// assert_eq!(root.task_root("run-1", "train")?, "/tmp/kf/minio/mlpipeline/v2/artifacts/run-1/train");
    /// assert_eq!(root.local_path("gs://b/data.csv")?, "/tmp/kf/gcs/b/data.csv");
    /// assert_eq!(root.remote_uri("/tmp/kf/gcs/b/data.csv").as_deref(), Some("gs://b/data.csv"));
    /// assert!(root.local_path("gs://b/../../etc/passwd").is_err());
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn remote(local: impl Into<String>, remote: &str) -> Result<Self> {
        let mut root = PipelineRoot::new(local);
        root.local_path(remote)?;
        root.remote = Some(remote.trim_end_matches('/').to_owned());
        Ok(root)
    }

    /// The pipeline root URI placeholders see (`{{$.pipeline_root}}`): the
    /// remote root if there is one, else the local directory.
    pub fn uri(&self) -> &str {
        match (&self.remote, self.local.as_str()) {
            (Some(remote), _) => remote,
            (None, "") => "/",
            (None, local) => local,
        }
    }

    /// The local directory of one task's outputs: `<root>/<run>/<task>`
    /// mapped to a local path. Errors when a name would leave the root.
    pub fn task_root(&self, run: &str, task: &str) -> Result<String> {
        for (what, name) in [("run", run), ("task", task)] {
            if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                return Err(Error::invalid(
                    "pipelineRoot",
                    format!("{what} name {name:?} is not a single path segment"),
                ));
            }
        }
        self.local_path(&format!("{}/{run}/{task}", self.uri().trim_end_matches('/')))
    }

    /// The local path of an artifact URI: a remote URI under its scheme's
    /// folder of the local root, `file:///p` as `/p`, an absolute path as
    /// itself. Errors for other schemes, relative paths, and `..` segments
    /// (a URI may not escape its folder).
    pub fn local_path(&self, uri: &str) -> Result<String> {
        let bad = |message: String| Error::invalid("uri", message);
        let (folder, rest) = if let Some((scheme, folder)) = REMOTE_SCHEMES.iter().find(|(s, _)| uri.starts_with(s)) {
            (Some(*folder), &uri[scheme.len()..])
        } else if let Some(path) = uri.strip_prefix("file://") {
            (None, path)
        } else if uri.contains("://") {
            let schemes: Vec<&str> = REMOTE_SCHEMES.iter().map(|(s, _)| *s).collect();
            return Err(bad(format!("cannot map {uri:?} to a local path: expected {schemes:?}, file:// or a path")));
        } else {
            (None, uri)
        };
        if rest.split('/').any(|segment| segment == "..") {
            return Err(bad(format!("{uri:?} has a '..' segment")));
        }
        match folder {
            Some(folder) => Ok(format!("{}/{folder}/{}", self.local, rest.trim_start_matches('/'))),
            None if rest.starts_with('/') => Ok(rest.to_owned()),
            None => Err(bad(format!("{uri:?} is a relative path; expected an absolute path or a URI"))),
        }
    }

    /// The remote URI a local path under a scheme folder stands for, if any
    /// (the inverse of [`PipelineRoot::local_path`]).
    pub fn remote_uri(&self, path: &str) -> Option<String> {
        let rest = path.strip_prefix(&self.local)?.strip_prefix('/')?;
        REMOTE_SCHEMES.iter().find_map(|(scheme, folder)| {
            rest.strip_prefix(folder).and_then(|r| r.strip_prefix('/')).map(|r| format!("{scheme}{r}"))
        })
    }
}

#[cfg(test)]
mod tests;
