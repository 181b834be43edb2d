//! [`PipelineBuilder`]: building a pipeline in Rust with typed handles, so
//! wiring mistakes fail to compile where the type system can see them and
//! fail [`PipelineBuilder::build`] otherwise.
//!
//! Declaring a component gives typed handles for its inputs and outputs
//! ([`Input<f64>`], [`ArtifactOutput<Model>`], …). Wiring a task takes an input
//! handle and a value handle of the same type, so feeding a `Model` into a
//! `Dataset` input, or a `String` into an `i64` input, is a compile error:
//!
//! ```compile_fail
//! use kf_dag::builder::{Dataset, Model, PipelineBuilder};
//! use kf_dag::ir::ContainerSpec;
//! let mut p = PipelineBuilder::new("p");
//! let mut train = p.container_component("train", ContainerSpec::new("img"));
//! let model = train.output_artifact::<Model>("model");
//! let train = p.add_component(train);
//! let mut eval = p.container_component("eval", ContainerSpec::new("img"));
//! let data = eval.input_artifact::<Dataset>("data");
//! let eval = p.add_component(eval);
//! let t = p.task("train", &train).done();
//! p.task("eval", &eval).set_artifact(&data, &t.output_artifact(&model)); // Model into Dataset: does not compile
//! ```
//!
//! ```compile_fail
//! use kf_dag::builder::PipelineBuilder;
//! use kf_dag::ir::ContainerSpec;
//! let mut p = PipelineBuilder::new("p");
//! let name = p.parameter::<String>("name");
//! let mut c = p.container_component("c", ContainerSpec::new("img"));
//! let epochs = c.input::<i64>("epochs");
//! let c = p.add_component(c);
//! p.task("c", &c).set(&epochs, &name); // a String into an i64 input: does not compile
//! ```
//!
//! What types cannot see is checked when the handle is used and reported by
//! `build`: an input handle of one component used on a task of another, a
//! handle from another DAG (data enters a nested DAG through its inputs, as in
//! KFP), duplicate names, malformed placeholders and conditions. `build` then
//! runs the full [`Plan`] validation (cycles, required inputs, …).
//!
//! The builder records the first problem and keeps going, so wiring code reads
//! as a straight list of statements with one `?` at the end.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use crate::ir::{
    Arg, ArtifactField, ArtifactSource, ArtifactSpec, ArtifactType, CachingOptions, Component, Condition,
    ContainerSpec, Dag, Executor, FunctionSpec, Implementation, ImporterSpec, ImporterUri, Interface, LoopItems,
    OutputRef, OutputSelection, ParallelFor, ParameterSource, ParameterSpec, ParameterType, Pipeline, Placeholder,
    RetryPolicy, Task, Template, TriggerStrategy,
};
use crate::{Error, Plan, Result};

/// A Rust type that stands for a parameter type.
pub trait ParameterKind {
    /// The parameter type it stands for.
    const TYPE: ParameterType;
    /// The value as JSON.
    fn into_value(self) -> Value;
}

/// A LIST parameter: a JSON array.
pub type List = Vec<Value>;
/// A STRUCT parameter: a JSON object.
pub type Struct = serde_json::Map<String, Value>;

/// The final status of a task, read by exit handlers (`TASK_FINAL_STATUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalStatus;

macro_rules! parameter_kind {
    ($t:ty, $kind:ident) => {
        impl ParameterKind for $t {
            const TYPE: ParameterType = ParameterType::$kind;
            fn into_value(self) -> Value {
                Value::from(self)
            }
        }
    };
}
parameter_kind!(String, String);
parameter_kind!(i64, NumberInteger);
parameter_kind!(f64, NumberDouble);
parameter_kind!(bool, Boolean);
parameter_kind!(List, List);

impl ParameterKind for Struct {
    const TYPE: ParameterType = ParameterType::Struct;
    fn into_value(self) -> Value {
        Value::Object(self)
    }
}

impl ParameterKind for FinalStatus {
    const TYPE: ParameterType = ParameterType::TaskFinalStatus;
    fn into_value(self) -> Value {
        Value::Object(Struct::new())
    }
}

/// A Rust type that stands for an artifact type.
pub trait ArtifactKind {
    /// The schema title, e.g. `system.Model`.
    const TITLE: &'static str;
    /// Whether it is a list of artifacts.
    const IS_LIST: bool = false;
}

macro_rules! artifact_kind {
    ($(#[$doc:meta] $name:ident = $title:literal),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name;
        impl ArtifactKind for $name {
            const TITLE: &'static str = $title;
        }
    )*};
}
artifact_kind! {
    /// `system.Artifact`: any artifact.
    Artifact = "system.Artifact",
    /// `system.Dataset`.
    Dataset = "system.Dataset",
    /// `system.Model`.
    Model = "system.Model",
    /// `system.Metrics`: scalar metrics.
    Metrics = "system.Metrics",
    /// `system.ClassificationMetrics`: confusion matrix, ROC curve.
    ClassificationMetrics = "system.ClassificationMetrics",
    /// `system.HTML`.
    Html = "system.HTML",
    /// `system.Markdown`.
    Markdown = "system.Markdown",
}

/// A list of artifacts of kind `A` (a loop's collected outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifacts<A>(PhantomData<A>);

impl<A: ArtifactKind> ArtifactKind for Artifacts<A> {
    const TITLE: &'static str = A::TITLE;
    const IS_LIST: bool = true;
}

fn artifact_spec<A: ArtifactKind>() -> ArtifactSpec {
    ArtifactSpec { ty: ArtifactType::new(A::TITLE), is_list: A::IS_LIST, optional: false, description: None }
}

/// Tells builders and DAGs apart, so a handle used outside its DAG is caught.
static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

fn new_scope() -> u64 {
    NEXT_SCOPE.fetch_add(1, Ordering::Relaxed)
}

/// A parameter value available inside one DAG: a pipeline parameter, an input
/// of the DAG component, or a task output.
#[derive(Debug, Clone)]
pub struct Param<T> {
    scope: u64,
    source: ParameterSource,
    problem: Option<String>,
    kind: PhantomData<fn() -> T>,
}

/// An artifact available inside one DAG.
#[derive(Debug, Clone)]
pub struct Art<A> {
    scope: u64,
    source: ArtifactSource,
    problem: Option<String>,
    kind: PhantomData<fn() -> A>,
}

macro_rules! slot {
    ($(#[$doc:meta])* $name:ident, $bound:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<T> {
            component: String,
            name: String,
            kind: PhantomData<fn() -> T>,
        }
        impl<T: $bound> $name<T> {
            fn new(component: &str, name: &str) -> Self {
                $name { component: component.to_owned(), name: name.to_owned(), kind: PhantomData }
            }
            /// The name of the input or output.
            pub fn name(&self) -> &str {
                &self.name
            }
        }
    };
}
slot!(
    /// A typed parameter input of a component.
    Input, ParameterKind
);
slot!(
    /// A typed parameter output of a component.
    Output, ParameterKind
);
slot!(
    /// A typed artifact input of a component.
    ArtifactInput, ArtifactKind
);
slot!(
    /// A typed artifact output of a component.
    ArtifactOutput, ArtifactKind
);

impl<T: ParameterKind> Input<T> {
    /// `{{$.inputs.parameters['name']}}`, for a command line.
    pub fn placeholder(&self) -> String {
        Placeholder::InputParameter(self.name.clone()).to_string()
    }
}

impl<T: ParameterKind> Output<T> {
    /// `{{$.outputs.parameters['name'].output_file}}`: the file the task writes the value to.
    pub fn file(&self) -> String {
        Placeholder::OutputParameterFile(self.name.clone()).to_string()
    }
}

impl<A: ArtifactKind> ArtifactInput<A> {
    /// `{{$.inputs.artifacts['name'].path}}`: where the task reads the artifact.
    pub fn path(&self) -> String {
        Placeholder::InputArtifact { name: self.name.clone(), field: ArtifactField::Path }.to_string()
    }
    /// `{{$.inputs.artifacts['name'].uri}}`.
    pub fn uri(&self) -> String {
        Placeholder::InputArtifact { name: self.name.clone(), field: ArtifactField::Uri }.to_string()
    }
}

impl<A: ArtifactKind> ArtifactOutput<A> {
    /// `{{$.outputs.artifacts['name'].path}}`: where the task writes the artifact.
    pub fn path(&self) -> String {
        Placeholder::OutputArtifact { name: self.name.clone(), field: ArtifactField::Path }.to_string()
    }
    /// `{{$.outputs.artifacts['name'].uri}}`.
    pub fn uri(&self) -> String {
        Placeholder::OutputArtifact { name: self.name.clone(), field: ArtifactField::Uri }.to_string()
    }
}

/// A component added to the pipeline, ready to be used by tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentRef {
    name: String,
}

impl ComponentRef {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A task added to a DAG: the handle to its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    scope: u64,
    name: String,
    component: String,
}

impl TaskRef {
    /// The task's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task's output parameter `output`.
    pub fn output<T: ParameterKind>(&self, output: &Output<T>) -> Param<T> {
        Param {
            scope: self.scope,
            source: ParameterSource::TaskOutput(OutputRef::new(&self.name, &output.name)),
            problem: self.foreign(&output.component, &output.name),
            kind: PhantomData,
        }
    }

    /// The task's output artifact `output`.
    pub fn output_artifact<A: ArtifactKind>(&self, output: &ArtifactOutput<A>) -> Art<A> {
        Art {
            scope: self.scope,
            source: ArtifactSource::TaskOutput(OutputRef::new(&self.name, &output.name)),
            problem: self.foreign(&output.component, &output.name),
            kind: PhantomData,
        }
    }

    /// Why `output` cannot be read from this task, if it cannot: a handle of
    /// another component. Reported where the value is used.
    fn foreign(&self, component: &str, output: &str) -> Option<String> {
        (component != self.component).then(|| {
            format!(
                "output {output:?} belongs to component {component:?}, but task {:?} runs {:?}",
                self.name, self.component
            )
        })
    }
}

/// A leaf component being declared: its signature and executor.
#[derive(Debug)]
pub struct ComponentDraft {
    name: String,
    inputs: Interface,
    outputs: Interface,
    executor: Executor,
    problem: Option<Error>,
}

impl ComponentDraft {
    fn record(&mut self, error: Error) {
        self.problem.get_or_insert(error);
    }

    fn declare_parameter(&mut self, outputs: bool, name: &str, spec: ParameterSpec) {
        let (side, kfp) =
            if outputs { (&mut self.outputs, "outputDefinitions") } else { (&mut self.inputs, "inputDefinitions") };
        if side.parameters.insert(name.to_owned(), spec).is_some() || side.artifacts.contains_key(name) {
            let path = format!("components.{}.{kfp}.parameters", self.name);
            self.record(Error::Duplicate { path, name: name.to_owned() });
        }
    }

    fn declare_artifact(&mut self, outputs: bool, name: &str, spec: ArtifactSpec) {
        let (side, kfp) =
            if outputs { (&mut self.outputs, "outputDefinitions") } else { (&mut self.inputs, "inputDefinitions") };
        if side.artifacts.insert(name.to_owned(), spec).is_some() || side.parameters.contains_key(name) {
            let path = format!("components.{}.{kfp}.artifacts", self.name);
            self.record(Error::Duplicate { path, name: name.to_owned() });
        }
    }

    /// Declares a required parameter input.
    pub fn input<T: ParameterKind>(&mut self, name: &str) -> Input<T> {
        self.declare_parameter(false, name, ParameterSpec::new(T::TYPE));
        Input::new(&self.name, name)
    }

    /// Declares a parameter input with a default.
    pub fn input_with_default<T: ParameterKind>(&mut self, name: &str, default: T) -> Input<T> {
        self.declare_parameter(false, name, ParameterSpec::new(T::TYPE).with_default(default.into_value()));
        Input::new(&self.name, name)
    }

    /// Declares a parameter output.
    pub fn output<T: ParameterKind>(&mut self, name: &str) -> Output<T> {
        self.declare_parameter(true, name, ParameterSpec::new(T::TYPE));
        Output::new(&self.name, name)
    }

    /// Declares a required artifact input.
    pub fn input_artifact<A: ArtifactKind>(&mut self, name: &str) -> ArtifactInput<A> {
        self.declare_artifact(false, name, artifact_spec::<A>());
        ArtifactInput::new(&self.name, name)
    }

    /// Declares an optional artifact input.
    pub fn optional_input_artifact<A: ArtifactKind>(&mut self, name: &str) -> ArtifactInput<A> {
        self.declare_artifact(false, name, ArtifactSpec { optional: true, ..artifact_spec::<A>() });
        ArtifactInput::new(&self.name, name)
    }

    /// Declares an artifact output.
    pub fn output_artifact<A: ArtifactKind>(&mut self, name: &str) -> ArtifactOutput<A> {
        self.declare_artifact(true, name, artifact_spec::<A>());
        ArtifactOutput::new(&self.name, name)
    }

    fn parse_args<'a>(&mut self, field: &str, args: impl IntoIterator<Item = &'a str>) -> Vec<Arg> {
        let mut parsed = Vec::new();
        for (i, arg) in args.into_iter().enumerate() {
            match Arg::parse(arg) {
                Ok(a) => parsed.push(a),
                Err(message) => {
                    let path = format!("deploymentSpec.executors.exec-{}.container.{field}[{i}]", self.name);
                    self.record(Error::Invalid { path, message });
                }
            }
        }
        parsed
    }

    /// Sets the container command; placeholders such as
    /// [`Input::placeholder`] are parsed (errors are reported by `build`).
    pub fn command<'a>(&mut self, command: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let parsed = self.parse_args("command", command);
        if let Executor::Container(c) = &mut self.executor {
            c.command = parsed;
        }
        self
    }

    /// Sets the container args, parsed like [`ComponentDraft::command`].
    pub fn args<'a>(&mut self, args: impl IntoIterator<Item = &'a str>) -> &mut Self {
        let parsed = self.parse_args("args", args);
        if let Executor::Container(c) = &mut self.executor {
            c.args = parsed;
        }
        self
    }

    /// Adds an environment variable; its value may hold placeholders.
    pub fn env(&mut self, name: &str, value: &str) -> &mut Self {
        match Template::parse(value) {
            Ok(t) => {
                if let Executor::Container(c) = &mut self.executor {
                    c.env.push((name.to_owned(), t));
                }
            }
            Err(message) => {
                let path = format!("deploymentSpec.executors.exec-{}.container.env.{name}", self.name);
                self.record(Error::Invalid { path, message });
            }
        }
        self
    }
}

/// A DAG being built: the root of a pipeline, or a DAG component (a pipeline
/// used as a component, a loop body).
#[derive(Debug)]
pub struct DagBuilder {
    scope: u64,
    component: String,
    path: String,
    inputs: Interface,
    outputs: Interface,
    dag: Dag,
    problem: Option<Error>,
}

impl DagBuilder {
    fn new(component: &str, path: String) -> Self {
        DagBuilder {
            scope: new_scope(),
            component: component.to_owned(),
            path,
            inputs: Interface::default(),
            outputs: Interface::default(),
            dag: Dag::default(),
            problem: None,
        }
    }

    fn record(&mut self, error: Error) {
        self.problem.get_or_insert(error);
    }

    fn declare_input(&mut self, name: &str, spec: Option<ParameterSpec>, artifact: Option<ArtifactSpec>) {
        let taken = self.inputs.parameters.contains_key(name) || self.inputs.artifacts.contains_key(name);
        if taken {
            let path = format!("{}.inputDefinitions", self.path.trim_end_matches(".dag"));
            self.record(Error::Duplicate { path, name: name.to_owned() });
            return;
        }
        if let Some(spec) = spec {
            self.inputs.parameters.insert(name.to_owned(), spec);
        }
        if let Some(spec) = artifact {
            self.inputs.artifacts.insert(name.to_owned(), spec);
        }
    }

    fn input_param<T>(&self, name: &str) -> Param<T> {
        Param {
            scope: self.scope,
            source: ParameterSource::ComponentInput { name: name.to_owned(), selector: None },
            problem: None,
            kind: PhantomData,
        }
    }

    /// Declares a required parameter input of this DAG (a pipeline parameter
    /// at the root) and gives its value inside the DAG.
    pub fn parameter<T: ParameterKind>(&mut self, name: &str) -> Param<T> {
        self.declare_input(name, Some(ParameterSpec::new(T::TYPE)), None);
        self.input_param(name)
    }

    /// Declares a parameter input with a default.
    pub fn parameter_with_default<T: ParameterKind>(&mut self, name: &str, default: T) -> Param<T> {
        self.declare_input(name, Some(ParameterSpec::new(T::TYPE).with_default(default.into_value())), None);
        self.input_param(name)
    }

    /// Declares an artifact input of this DAG and gives it inside the DAG.
    pub fn artifact<A: ArtifactKind>(&mut self, name: &str) -> Art<A> {
        self.declare_input(name, None, Some(artifact_spec::<A>()));
        Art {
            scope: self.scope,
            source: ArtifactSource::ComponentInput(name.to_owned()),
            problem: None,
            kind: PhantomData,
        }
    }

    /// The handle tasks of the parent DAG use to set the input of this DAG
    /// component that `value` reads (declared with [`DagBuilder::parameter`]).
    pub fn input_slot<T: ParameterKind>(&mut self, value: &Param<T>) -> Input<T> {
        let name = match &value.source {
            ParameterSource::ComponentInput { name, .. } if value.scope == self.scope => name.clone(),
            _ => {
                let path = format!("{}.inputDefinitions", self.path.trim_end_matches(".dag"));
                self.record(Error::invalid(path, "input_slot takes a value declared with .parameter() on this DAG"));
                String::new()
            }
        };
        Input::new(&self.component, &name)
    }

    /// The handle for the artifact input `value` reads (declared with [`DagBuilder::artifact`]).
    pub fn artifact_slot<A: ArtifactKind>(&mut self, value: &Art<A>) -> ArtifactInput<A> {
        let name = match &value.source {
            ArtifactSource::ComponentInput(name) if value.scope == self.scope => name.clone(),
            _ => {
                let path = format!("{}.inputDefinitions", self.path.trim_end_matches(".dag"));
                self.record(Error::invalid(path, "artifact_slot takes a value declared with .artifact() on this DAG"));
                String::new()
            }
        };
        ArtifactInput::new(&self.component, &name)
    }

    /// Exposes `value` as output `name` of this DAG.
    pub fn output<T: ParameterKind>(&mut self, name: &str, value: &Param<T>) -> Output<T> {
        self.expose(name, value, T::TYPE);
        Output::new(&self.component, name)
    }

    /// Exposes the values `value` takes in every iteration of a loop running
    /// this DAG, as a LIST in iteration order (KFP's `dsl.Collected`).
    pub fn collect<T: ParameterKind>(&mut self, name: &str, value: &Param<T>) -> Output<List> {
        self.expose(name, value, ParameterType::List);
        Output::new(&self.component, name)
    }

    fn expose<T>(&mut self, name: &str, value: &Param<T>, ty: ParameterType) {
        let path = format!("{}.outputs.parameters.{name}", self.path);
        let Some(r) = self.task_output(&path, value.scope, &value.problem, &value.source) else { return };
        if self.outputs.parameters.insert(name.to_owned(), ParameterSpec::new(ty)).is_some() {
            self.record(Error::Duplicate { path, name: name.to_owned() });
        }
        self.dag.outputs.parameters.insert(name.to_owned(), OutputSelection { selectors: vec![r] });
    }

    /// Exposes artifact `value` as output `name`. With `A = Artifacts<K>`
    /// and a single-artifact `value`, collects it over a loop's iterations.
    pub fn output_artifact<A: ArtifactKind, B: ArtifactKind>(
        &mut self,
        name: &str,
        value: &Art<B>,
    ) -> ArtifactOutput<A> {
        let path = format!("{}.outputs.artifacts.{name}", self.path);
        if A::TITLE != B::TITLE || (B::IS_LIST && !A::IS_LIST) {
            let expected = artifact_spec::<A>().describe();
            let found = artifact_spec::<B>().describe();
            self.record(Error::TypeMismatch { path: path.clone(), expected, found });
        }
        if let Some(r) = self.task_output(&path, value.scope, &value.problem, &source_of(&value.source)) {
            if self.outputs.artifacts.insert(name.to_owned(), artifact_spec::<A>()).is_some() {
                self.record(Error::Duplicate { path, name: name.to_owned() });
            }
            self.dag.outputs.artifacts.insert(name.to_owned(), OutputSelection { selectors: vec![r] });
        }
        ArtifactOutput::new(&self.component, name)
    }

    /// The task output a DAG output selects; DAG outputs can only come from tasks.
    fn task_output(
        &mut self,
        path: &str,
        scope: u64,
        problem: &Option<String>,
        source: &ParameterSource,
    ) -> Option<OutputRef> {
        if let Some(message) = problem {
            self.record(Error::invalid(path, message.clone()));
            return None;
        }
        if scope != self.scope {
            self.record(foreign_scope(path));
            return None;
        }
        match source {
            ParameterSource::TaskOutput(r) => Some(r.clone()),
            _ => {
                self.record(Error::invalid(path, "a DAG output must be an output of one of its tasks"));
                None
            }
        }
    }

    /// Adds task `name` running `component`; wire it with the returned builder.
    pub fn task(&mut self, name: &str, component: &ComponentRef) -> TaskBuilder<'_> {
        let path = format!("{}.tasks.{name}", self.path);
        if self.dag.tasks.insert(name.to_owned(), Task::new(&component.name)).is_some() {
            self.record(Error::Duplicate { path: format!("{}.tasks", self.path), name: name.to_owned() });
        }
        TaskBuilder { dag: self, name: name.to_owned(), component: component.name.clone(), path }
    }
}

/// Wraps an artifact source as a parameter-shaped source so output checks are shared.
fn source_of(source: &ArtifactSource) -> ParameterSource {
    match source {
        ArtifactSource::TaskOutput(r) => ParameterSource::TaskOutput(r.clone()),
        ArtifactSource::ComponentInput(n) => ParameterSource::ComponentInput { name: n.clone(), selector: None },
    }
}

fn foreign_scope(path: &str) -> Error {
    Error::invalid(
        path,
        "this value belongs to another DAG; pass it in through an input of this DAG's component (as KFP does)",
    )
}

/// Wires one task. Every method records the first problem for `build`.
#[must_use = "call .done() to get the handle to the task's outputs"]
pub struct TaskBuilder<'a> {
    dag: &'a mut DagBuilder,
    name: String,
    component: String,
    path: String,
}

impl TaskBuilder<'_> {
    fn task(&mut self) -> Option<&mut Task> {
        self.dag.dag.tasks.get_mut(&self.name)
    }

    fn check_slot(&mut self, component: &str, kind: &str, name: &str) -> bool {
        if component == self.component {
            return true;
        }
        let message =
            format!("input {name:?} belongs to component {component:?}, but this task runs {:?}", self.component);
        self.dag.record(Error::invalid(format!("{}.inputs.{kind}.{name}", self.path), message));
        false
    }

    fn check_value(&mut self, path: String, scope: u64, problem: &Option<String>) -> bool {
        if let Some(message) = problem {
            self.dag.record(Error::invalid(path, message.clone()));
            return false;
        }
        if scope != self.dag.scope {
            self.dag.record(foreign_scope(&path));
            return false;
        }
        true
    }

    /// Sets parameter input `input` from `value` (a pipeline parameter, DAG
    /// input or upstream output of the same type).
    pub fn set<T: ParameterKind>(mut self, input: &Input<T>, value: &Param<T>) -> Self {
        let path = format!("{}.inputs.parameters.{}", self.path, input.name);
        if self.check_slot(&input.component, "parameters", &input.name)
            && self.check_value(path, value.scope, &value.problem)
            && let Some(task) = self.task()
        {
            task.parameters.insert(input.name.clone(), value.source.clone());
        }
        self
    }

    /// Sets parameter input `input` to a constant.
    pub fn set_value<T: ParameterKind>(mut self, input: &Input<T>, value: T) -> Self {
        if self.check_slot(&input.component, "parameters", &input.name)
            && let Some(task) = self.task()
        {
            task.parameters.insert(input.name.clone(), ParameterSource::Constant(value.into_value()));
        }
        self
    }

    /// Sets artifact input `input` from `value`.
    pub fn set_artifact<A: ArtifactKind>(mut self, input: &ArtifactInput<A>, value: &Art<A>) -> Self {
        let path = format!("{}.inputs.artifacts.{}", self.path, input.name);
        if self.check_slot(&input.component, "artifacts", &input.name)
            && self.check_value(path, value.scope, &value.problem)
            && let Some(task) = self.task()
        {
            task.artifacts.insert(input.name.clone(), value.source.clone());
        }
        self
    }

    /// Gives input `input` the final status of `task` (for exit handlers);
    /// the task then runs once `task` has finished, whatever its outcome.
    pub fn final_status_of(mut self, input: &Input<FinalStatus>, task: &TaskRef) -> Self {
        let path = format!("{}.inputs.parameters.{}", self.path, input.name);
        if self.check_slot(&input.component, "parameters", &input.name)
            && self.check_value(path, task.scope, &None)
            && let Some(t) = self.task()
        {
            t.parameters.insert(input.name.clone(), ParameterSource::TaskFinalStatus(task.name.clone()));
            t.trigger.strategy = TriggerStrategy::AllUpstreamCompleted;
        }
        self
    }

    /// Runs after `task` even without a data dependency.
    pub fn after(mut self, task: &TaskRef) -> Self {
        let path = format!("{}.dependentTasks", self.path);
        if self.check_value(path, task.scope, &None)
            && let Some(t) = self.task()
        {
            t.after.insert(task.name.clone());
        }
        self
    }

    /// Runs once every upstream task has finished, even if some failed
    /// (KFP's `.ignore_upstream_failure()`).
    pub fn ignore_upstream_failure(mut self) -> Self {
        if let Some(t) = self.task() {
            t.trigger.strategy = TriggerStrategy::AllUpstreamCompleted;
        }
        self
    }

    /// Runs only when `condition` holds over this task's parameter inputs,
    /// e.g. `inputs.parameter_values['accuracy'] > 0.9`.
    pub fn when(mut self, condition: &str) -> Self {
        match Condition::parse(condition) {
            Ok(c) => {
                if let Some(t) = self.task() {
                    t.trigger.condition = Some(c);
                }
            }
            Err(message) => {
                let path = format!("{}.triggerPolicy.condition", self.path);
                self.dag.record(Error::Invalid { path, message });
            }
        }
        self
    }

    /// Runs this task's DAG component once per element of the LIST input
    /// `over`, each element going to input `item`; at most `parallelism`
    /// iterations at once (`None`: no limit).
    pub fn parallel_for<T: ParameterKind>(
        mut self,
        item: &Input<T>,
        over: &Input<List>,
        parallelism: Option<u32>,
    ) -> Self {
        if self.check_slot(&item.component, "parameters", &item.name)
            && self.check_slot(&over.component, "parameters", &over.name)
            && let Some(t) = self.task()
        {
            let items = LoopItems::InputParameter(over.name.clone());
            t.parallel_for = Some(ParallelFor { items, item_input: item.name.clone(), parallelism });
        }
        self
    }

    /// Runs this task's DAG component once per element of `items`.
    pub fn parallel_for_items<T: ParameterKind>(
        mut self,
        item: &Input<T>,
        items: impl IntoIterator<Item = T>,
        parallelism: Option<u32>,
    ) -> Self {
        if self.check_slot(&item.component, "parameters", &item.name)
            && let Some(t) = self.task()
        {
            let items = LoopItems::Raw(items.into_iter().map(ParameterKind::into_value).collect());
            t.parallel_for = Some(ParallelFor { items, item_input: item.name.clone(), parallelism });
        }
        self
    }

    /// Retries failures according to `policy`.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        if let Some(t) = self.task() {
            t.retry = Some(policy);
        }
        self
    }

    /// Sets the caching options (caching is on by default).
    pub fn caching(mut self, caching: CachingOptions) -> Self {
        if let Some(t) = self.task() {
            t.caching = caching;
        }
        self
    }

    /// Sets the human-readable name.
    pub fn display_name(mut self, name: &str) -> Self {
        if let Some(t) = self.task() {
            t.display_name = Some(name.to_owned());
        }
        self
    }

    /// Finishes wiring; the handle gives the task's outputs.
    pub fn done(self) -> TaskRef {
        TaskRef { scope: self.dag.scope, name: self.name, component: self.component }
    }
}

/// Builds a [`Pipeline`] and validates it into a [`Plan`].
///
/// The pipeline's root DAG is built through the builder itself (it derefs to
/// a [`DagBuilder`]); components are declared with
/// [`PipelineBuilder::container_component`] and friends, then added with
/// [`PipelineBuilder::add_component`].
///
/// ```
/// use kf_dag::builder::{Model, PipelineBuilder};
/// use kf_dag::ir::ContainerSpec;
///
/// let mut p = PipelineBuilder::new("train");
/// let lr = p.parameter_with_default::<f64>("lr", 0.01);
/// let mut train = p.container_component("train", ContainerSpec::new("python:3.11"));
/// let lr_in = train.input::<f64>("lr");
/// let model = train.output_artifact::<Model>("model");
/// train.command(["python", "train.py", "--lr", &lr_in.placeholder(), "--out", &model.path()]);
/// let train = p.add_component(train);
/// let t = p.task("train", &train).set(&lr_in, &lr).done();
/// let _trained = t.output_artifact(&model);
/// let plan = p.build()?;
/// assert_eq!(plan.pipeline().components.len(), 1);
/// # Ok::<(), kf_dag::Error>(())
/// ```
#[derive(Debug)]
pub struct PipelineBuilder {
    name: String,
    description: Option<String>,
    root: DagBuilder,
    components: BTreeMap<String, Component>,
    executors: BTreeMap<String, Executor>,
    problem: Option<Error>,
}

impl std::ops::Deref for PipelineBuilder {
    type Target = DagBuilder;
    fn deref(&self) -> &DagBuilder {
        &self.root
    }
}

impl std::ops::DerefMut for PipelineBuilder {
    fn deref_mut(&mut self) -> &mut DagBuilder {
        &mut self.root
    }
}

impl PipelineBuilder {
    /// An empty pipeline named `name`.
    pub fn new(name: &str) -> Self {
        PipelineBuilder {
            name: name.to_owned(),
            description: None,
            root: DagBuilder::new("root", "root.dag".to_owned()),
            components: BTreeMap::new(),
            executors: BTreeMap::new(),
            problem: None,
        }
    }

    /// Sets the description.
    pub fn description(&mut self, description: &str) -> &mut Self {
        self.description = Some(description.to_owned());
        self
    }

    fn draft(&self, name: &str, executor: Executor) -> ComponentDraft {
        ComponentDraft {
            name: name.to_owned(),
            inputs: Interface::default(),
            outputs: Interface::default(),
            executor,
            problem: None,
        }
    }

    /// Starts a component run as a container (or local process).
    pub fn container_component(&self, name: &str, container: ContainerSpec) -> ComponentDraft {
        self.draft(name, Executor::Container(container))
    }

    /// Starts a component run by the Rust function registered as `function`.
    pub fn function_component(&self, name: &str, function: &str) -> ComponentDraft {
        self.draft(name, Executor::Function(FunctionSpec { name: function.to_owned() }))
    }

    /// Adds an importer component bringing the artifact at `uri` into the
    /// pipeline as its output `artifact`.
    pub fn importer<A: ArtifactKind>(&mut self, name: &str, uri: &str) -> (ComponentRef, ArtifactOutput<A>) {
        let importer = ImporterSpec {
            uri: ImporterUri::Constant(uri.to_owned()),
            artifact_type: ArtifactType::new(A::TITLE),
            metadata: BTreeMap::new(),
            reimport: false,
        };
        let mut draft = self.draft(name, Executor::Importer(importer));
        let out = draft.output_artifact::<A>("artifact");
        (self.add_component(draft), out)
    }

    fn record(&mut self, error: Error) {
        self.problem.get_or_insert(error);
    }

    fn insert_component(&mut self, name: &str, component: Component) -> ComponentRef {
        if self.components.insert(name.to_owned(), component).is_some() {
            self.record(Error::Duplicate { path: "components".to_owned(), name: name.to_owned() });
        }
        ComponentRef { name: name.to_owned() }
    }

    /// Adds a declared leaf component (its executor is labelled `exec-<name>`).
    pub fn add_component(&mut self, draft: ComponentDraft) -> ComponentRef {
        if let Some(problem) = draft.problem {
            self.record(problem);
        }
        let label = format!("exec-{}", draft.name);
        self.executors.insert(label.clone(), draft.executor);
        let component =
            Component { inputs: draft.inputs, outputs: draft.outputs, implementation: Implementation::Executor(label) };
        self.insert_component(&draft.name, component)
    }

    /// Starts a DAG component (a pipeline used as a component, a loop body,
    /// a condition branch). Build it like the root, then [`PipelineBuilder::add_dag`].
    pub fn dag_component(&self, name: &str) -> DagBuilder {
        DagBuilder::new(name, format!("components.{name}.dag"))
    }

    /// Adds a finished DAG component.
    pub fn add_dag(&mut self, dag: DagBuilder) -> ComponentRef {
        if let Some(problem) = dag.problem {
            self.record(problem);
        }
        let component =
            Component { inputs: dag.inputs, outputs: dag.outputs, implementation: Implementation::Dag(dag.dag) };
        self.insert_component(&dag.component, component)
    }

    /// Assembles the pipeline without validating it.
    pub fn into_pipeline(self) -> Result<Pipeline> {
        if let Some(problem) = self.problem.or(self.root.problem) {
            return Err(problem);
        }
        let root = Component {
            inputs: self.root.inputs,
            outputs: self.root.outputs,
            implementation: Implementation::Dag(self.root.dag),
        };
        Ok(Pipeline {
            name: self.name,
            description: self.description,
            components: self.components,
            executors: self.executors,
            root,
        })
    }

    /// Assembles the pipeline and validates it: the first problem recorded
    /// while building, or the first [`Plan::new`] finds.
    pub fn build(self) -> Result<Plan> {
        Plan::new(self.into_pipeline()?)
    }
}

#[cfg(test)]
mod tests;
