//! Validation of a [`Pipeline`] into a [`Plan`]: one dependency graph per DAG,
//! checked and topologically ordered.
//!
//! [`Plan::new`] is the only way to get a `Plan`, so holding one means the
//! pipeline's references resolve, its types line up and its DAGs are acyclic.
//! The checks, in the order they run (the first problem found is returned):
//!
//! 1. executors: a container has an image, a function a name;
//! 2. components: defaults fit their declared types; a leaf's executor exists
//!    and its placeholders name inputs and outputs the component declares; an
//!    importer reads a declared input and produces the declared artifact;
//!    components do not nest themselves;
//! 3. every DAG (the root's and every DAG component's): tasks name existing
//!    components; every input is declared by the component, comes from a
//!    source visible in this DAG (a constant, an input of the enclosing
//!    component, or an output of a sibling task) and has the declared type;
//!    required inputs are given; `after` names siblings; loops iterate over a
//!    LIST input into a declared item input; conditions read the task's own
//!    inputs; DAG outputs select existing sibling outputs of a fitting type
//!    (a LIST or artifact-list output collects a loop's iterations);
//! 4. the dependency graph of each DAG has no cycle (the cycle is named).
//!
//! This module does not run anything and does not resolve values.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::ir::{
    ArtifactSource, Component, Dag, Executor, Implementation, ImporterUri, Interface, LoopItems, ParameterSource,
    ParameterType, Pipeline, Placeholder, Task, Template, TriggerStrategy,
};
use crate::{Error, Result};

/// A validated pipeline with one planned graph per DAG.
#[derive(Debug, Clone)]
pub struct Plan {
    pipeline: Pipeline,
    root: DagPlan,
    components: BTreeMap<String, DagPlan>,
}

/// The dependency graph of one DAG: nodes are task names, an edge `a → b`
/// means `b` waits for `a` (data, `after` or final-status dependency).
#[derive(Debug, Clone)]
pub struct DagPlan {
    path: String,
    graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
    order: Vec<String>,
    levels: Vec<Vec<String>>,
    /// Level of each node, by node index.
    level_of: Vec<usize>,
}

impl Plan {
    /// Validates `pipeline` and plans every DAG in it.
    ///
    /// Complexity: O(S + T log T + E) for S the total size of the spec
    /// (components, inputs, placeholders), T tasks and E dependencies; the log
    /// factor comes from ordering each topological level by task name so plans
    /// are deterministic.
    ///
    /// ```
    /// use kf_dag::ir::{Component, ContainerSpec, Executor, OutputRef, ParameterSource, ParameterSpec, ParameterType, Pipeline, Task};
    /// use kf_dag::Plan;
    ///
    /// let mut p = Pipeline::new("two-steps");
    /// p.executors.insert("exec".into(), Executor::Container(ContainerSpec::new("alpine")));
    /// let mut comp = Component::leaf("exec");
    /// comp.inputs.parameters.insert("x".into(), ParameterSpec::new(ParameterType::String).with_default("".into()));
    /// comp.outputs.parameters.insert("y".into(), ParameterSpec::new(ParameterType::String));
    /// p.components.insert("step".into(), comp);
    /// let dag = p.root.implementation.dag_mut().unwrap();
    /// dag.tasks.insert("a".into(), Task::new("step"));
    /// let mut b = Task::new("step");
    /// b.parameters.insert("x".into(), ParameterSource::TaskOutput(OutputRef::new("a", "y")));
    /// dag.tasks.insert("b".into(), b);
    ///
    /// let plan = Plan::new(p)?;
    /// assert_eq!(plan.root().order(), ["a", "b"]);
    /// assert_eq!(plan.root().critical_path_len(), 2);
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn new(pipeline: Pipeline) -> Result<Self> {
        check_executors(&pipeline)?;
        for (name, component) in &pipeline.components {
            check_component(&pipeline, &format!("components.{name}"), component)?;
        }
        check_nesting(&pipeline)?;
        check_interface_names("root", &pipeline.root.inputs, "inputDefinitions")?;
        check_interface_names("root", &pipeline.root.outputs, "outputDefinitions")?;
        check_interface_defaults("root", &pipeline.root.inputs)?;
        let Implementation::Dag(root_dag) = &pipeline.root.implementation else {
            return Err(Error::invalid("root.dag", "the root component must be a DAG of tasks, not an executor"));
        };
        let root = check_dag(&pipeline, "root.dag", &pipeline.root, root_dag)?;
        let mut components = BTreeMap::new();
        for (name, component) in &pipeline.components {
            if let Implementation::Dag(dag) = &component.implementation {
                components
                    .insert(name.clone(), check_dag(&pipeline, &format!("components.{name}.dag"), component, dag)?);
            }
        }
        Ok(Plan { pipeline, root, components })
    }

    /// The validated pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Gives back the pipeline.
    pub fn into_pipeline(self) -> Pipeline {
        self.pipeline
    }

    /// The plan of the top-level DAG.
    pub fn root(&self) -> &DagPlan {
        &self.root
    }

    /// The pipeline parameters of a run: `given` checked against the root's
    /// input definitions, with defaults filled in. Rejects unknown names,
    /// values of the wrong type and missing required parameters.
    ///
    /// ```
    /// use kf_dag::builder::PipelineBuilder;
    /// use serde_json::json;
    /// let mut p = PipelineBuilder::new("p");
    /// p.parameter_with_default::<f64>("lr", 0.1);
    /// p.parameter::<i64>("epochs");
    /// let plan = p.build()?;
    /// let given = [("epochs".to_owned(), json!(3))].into();
    /// assert_eq!(plan.resolve_parameters(given)?, [("epochs".to_owned(), json!(3)), ("lr".to_owned(), json!(0.1))].into());
    /// assert!(plan.resolve_parameters([("epochs".to_owned(), json!("3"))].into()).is_err());
    /// # Ok::<(), kf_dag::Error>(())
    /// ```
    pub fn resolve_parameters(
        &self,
        given: BTreeMap<String, serde_json::Value>,
    ) -> Result<BTreeMap<String, serde_json::Value>> {
        let declared = &self.pipeline.root.inputs.parameters;
        let path = "root.inputDefinitions.parameters";
        let mut resolved = BTreeMap::new();
        for (name, value) in given {
            let Some(spec) = declared.get(&name) else {
                return Err(unknown(path, "pipeline parameter", &name, known("parameters", declared.keys())));
            };
            if !spec.ty.accepts(&value) {
                return Err(Error::TypeMismatch {
                    path: format!("{path}.{name}"),
                    expected: format!("a {} value", spec.ty),
                    found: value.to_string(),
                });
            }
            resolved.insert(name, value);
        }
        for (name, spec) in declared {
            if resolved.contains_key(name) {
                continue;
            }
            match &spec.default {
                Some(default) => {
                    resolved.insert(name.clone(), default.clone());
                }
                None if spec.optional => {}
                None => return Err(Error::MissingInput { path: path.to_owned(), input: name.clone() }),
            }
        }
        Ok(resolved)
    }

    /// The plan of DAG component `name` (a loop body, a condition branch, a
    /// pipeline used as a component); `None` for leaves and unknown names.
    pub fn component(&self, name: &str) -> Option<&DagPlan> {
        self.components.get(name)
    }
}

impl DagPlan {
    /// Dotted path of the DAG, e.g. `root.dag` or `components.comp-for-loop-1.dag`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The dependency graph (task names as node weights).
    pub fn graph(&self) -> &DiGraph<String, ()> {
        &self.graph
    }

    /// Every task, each after all the tasks it depends on; ties broken by name.
    pub fn order(&self) -> &[String] {
        &self.order
    }

    /// Topological levels: level 0 holds the tasks with no dependency, level
    /// `n` those whose longest chain of dependencies has `n` tasks. Tasks of
    /// one level never depend on each other and may run in parallel.
    pub fn levels(&self) -> &[Vec<String>] {
        &self.levels
    }

    /// The number of tasks on the longest dependency chain: the least number
    /// of sequential steps a run needs with unbounded parallelism.
    pub fn critical_path_len(&self) -> usize {
        self.levels.len()
    }

    /// One longest dependency chain, first task first (ties broken by
    /// name); its length is [`DagPlan::critical_path_len`]. O(T + E).
    pub fn critical_path(&self) -> Vec<&str> {
        let Some(&last) = self.levels.last().and_then(|l| l.first()).and_then(|t| self.index.get(t)) else {
            return Vec::new();
        };
        let mut path = vec![self.graph[last].as_str()];
        let mut node = last;
        while self.level_of[node.index()] > 0 {
            let wanted = self.level_of[node.index()] - 1;
            let Some(previous) = self
                .graph
                .neighbors_directed(node, petgraph::Direction::Incoming)
                .filter(|n| self.level_of[n.index()] == wanted)
                .min_by_key(|n| self.graph[*n].as_str())
            else {
                break;
            };
            path.push(self.graph[previous].as_str());
            node = previous;
        }
        path.reverse();
        path
    }

    /// The graph node of task `task`.
    pub fn node_index(&self, task: &str) -> Option<NodeIndex> {
        self.index.get(task).copied()
    }

    /// The tasks `task` waits for, sorted; empty for unknown names.
    pub fn upstream(&self, task: &str) -> Vec<&str> {
        self.neighbors(task, petgraph::Direction::Incoming)
    }

    /// The tasks waiting for `task`, sorted; empty for unknown names.
    pub fn downstream(&self, task: &str) -> Vec<&str> {
        self.neighbors(task, petgraph::Direction::Outgoing)
    }

    fn neighbors(&self, task: &str, direction: petgraph::Direction) -> Vec<&str> {
        let Some(&node) = self.index.get(task) else { return Vec::new() };
        let mut names: Vec<&str> =
            self.graph.neighbors_directed(node, direction).map(|n| self.graph[n].as_str()).collect();
        names.sort_unstable();
        names
    }
}

/// Lists names for an error message, at most ten of them.
fn known<'a>(label: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    let names: Vec<&String> = names.into_iter().collect();
    if names.is_empty() {
        return format!("{label}: none");
    }
    let shown: Vec<&str> = names.iter().take(10).map(|s| s.as_str()).collect();
    let more = if names.len() > 10 { format!(" and {} more", names.len() - 10) } else { String::new() };
    format!("{label}: {}{more}", shown.join(", "))
}

fn unknown(path: impl Into<String>, what: impl Into<String>, name: &str, known: String) -> Error {
    Error::UnknownReference { path: path.into(), what: what.into(), name: name.to_owned(), known }
}

fn check_executors(pipeline: &Pipeline) -> Result<()> {
    for (label, executor) in &pipeline.executors {
        let path = format!("deploymentSpec.executors.{label}");
        match executor {
            Executor::Container(c) if c.image.trim().is_empty() => {
                return Err(Error::invalid(format!("{path}.container.image"), "a container needs an image"));
            }
            Executor::Function(f) if f.name.trim().is_empty() => {
                return Err(Error::invalid(format!("{path}.function.name"), "a function executor needs a name"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_interface_defaults(path: &str, inputs: &Interface) -> Result<()> {
    for (name, spec) in &inputs.parameters {
        if let Some(default) = &spec.default
            && !spec.ty.accepts(default)
        {
            return Err(Error::TypeMismatch {
                path: format!("{path}.inputDefinitions.parameters.{name}.defaultValue"),
                expected: format!("a {} value", spec.ty),
                found: default.to_string(),
            });
        }
    }
    Ok(())
}

/// Names become path segments of artifact locations (`<run>/<task>/<output>`),
/// so they must be usable as one segment and never climb out of the run.
fn check_name(path: &str, what: &str, name: &str) -> Result<()> {
    let problem = if name.trim().is_empty() {
        "is empty"
    } else if name == "." || name == ".." {
        "may not be \".\" or \"..\""
    } else if name.contains(['/', '\\', '\0']) {
        "may not contain '/', '\\' or NUL"
    } else {
        return Ok(());
    };
    Err(Error::invalid(path, format!("{what} name {name:?} {problem}")))
}

fn check_interface_names(path: &str, interface: &Interface, side: &str) -> Result<()> {
    for name in interface.parameters.keys() {
        check_name(&format!("{path}.{side}.parameters"), "parameter", name)?;
    }
    for name in interface.artifacts.keys() {
        check_name(&format!("{path}.{side}.artifacts"), "artifact", name)?;
    }
    Ok(())
}

fn check_component(pipeline: &Pipeline, path: &str, component: &Component) -> Result<()> {
    check_interface_names(path, &component.inputs, "inputDefinitions")?;
    check_interface_names(path, &component.outputs, "outputDefinitions")?;
    check_interface_defaults(path, &component.inputs)?;
    for name in component.outputs.parameters.keys() {
        if component.outputs.parameters[name].ty == ParameterType::TaskFinalStatus {
            return Err(Error::invalid(
                format!("{path}.outputDefinitions.parameters.{name}"),
                "TASK_FINAL_STATUS is an input type; no component can output it",
            ));
        }
    }
    let Implementation::Executor(label) = &component.implementation else { return Ok(()) };
    let Some(executor) = pipeline.executors.get(label) else {
        return Err(unknown(
            format!("{path}.executorLabel"),
            "executor",
            label,
            known("executors", pipeline.executors.keys()),
        ));
    };
    let exec_path = format!("deploymentSpec.executors.{label}");
    match executor {
        Executor::Container(c) => {
            for (field, args) in [("command", &c.command), ("args", &c.args)] {
                for (i, arg) in args.iter().enumerate() {
                    let (mut placeholders, mut tested) = (Vec::new(), Vec::new());
                    arg.visit(&mut |p| placeholders.push(p.clone()), &mut |input| tested.push(input.to_owned()));
                    let undeclared = tested.iter().find(|input| {
                        !component.inputs.parameters.contains_key(*input)
                            && !component.inputs.artifacts.contains_key(*input)
                    });
                    let problem = placeholders.iter().find_map(|p| placeholder_problem(component, p)).or_else(|| {
                        undeclared.map(|input| {
                            format!("IfPresent tests input {input:?}, which the component does not declare")
                        })
                    });
                    if let Some(message) = problem {
                        return Err(Error::invalid(
                            format!("{exec_path}.container.{field}[{i}]"),
                            format!("{message} (component {path})"),
                        ));
                    }
                }
            }
            for (field, value) in c.resources.fields() {
                if let Some(p) = value.placeholders().find(|p| !matches!(p, Placeholder::InputParameter(_))) {
                    return Err(Error::invalid(
                        format!("{exec_path}.container.resources.{field}"),
                        format!("a resource may only read input parameters, found {p}"),
                    ));
                }
            }
            for (i, (name, value)) in c.env.iter().enumerate() {
                if let Some(message) = value.placeholders().find_map(|p| placeholder_problem(component, p)) {
                    return Err(Error::invalid(
                        format!("{exec_path}.container.env[{i}].value"),
                        format!("{name}: {message} (component {path})"),
                    ));
                }
            }
        }
        Executor::Importer(importer) => {
            if let ImporterUri::InputParameter(name) = &importer.uri
                && !component.inputs.parameters.contains_key(name)
            {
                return Err(unknown(
                    format!("{exec_path}.importer.artifactUri.runtimeParameter"),
                    format!("input parameter of component {path}"),
                    name,
                    known("inputs", component.inputs.parameters.keys()),
                ));
            }
            let outputs: Vec<_> = component.outputs.artifacts.iter().collect();
            match outputs.as_slice() {
                [(_, out)] if out.ty.accepts(&importer.artifact_type) => {}
                [(name, out)] => {
                    return Err(Error::TypeMismatch {
                        path: format!("{exec_path}.importer.typeSchema"),
                        expected: format!("{} (output {name:?} of {path})", out.describe()),
                        found: importer.artifact_type.to_string(),
                    });
                }
                _ => {
                    return Err(Error::invalid(
                        format!("{path}.outputDefinitions.artifacts"),
                        format!("an importer component has exactly one output artifact, found {}", outputs.len()),
                    ));
                }
            }
        }
        Executor::Function(_) => {}
    }
    Ok(())
}

/// Why a placeholder does not fit the component using it, if it does not.
fn placeholder_problem(component: &Component, p: &Placeholder) -> Option<String> {
    let (declared, what, name) = match p {
        Placeholder::InputParameter(n) => (component.inputs.parameters.contains_key(n), "input parameter", n),
        Placeholder::InputArtifact { name, .. } => {
            (component.inputs.artifacts.contains_key(name), "input artifact", name)
        }
        Placeholder::OutputParameterFile(n) => (component.outputs.parameters.contains_key(n), "output parameter", n),
        Placeholder::OutputArtifact { name, .. } => {
            (component.outputs.artifacts.contains_key(name), "output artifact", name)
        }
        _ => return None,
    };
    (!declared).then(|| format!("placeholder {p} names {what} {name:?}, which the component does not declare"))
}

/// Rejects components whose DAGs use themselves, directly or through others:
/// such a pipeline would unfold forever.
fn check_nesting(pipeline: &Pipeline) -> Result<()> {
    let mut graph = DiGraph::<&str, ()>::new();
    let nodes: HashMap<&str, NodeIndex> =
        pipeline.components.keys().map(|name| (name.as_str(), graph.add_node(name.as_str()))).collect();
    for (name, component) in &pipeline.components {
        if let Some(dag) = component.as_dag() {
            for task in dag.tasks.values() {
                if let (Some(&from), Some(&to)) = (nodes.get(name.as_str()), nodes.get(task.component.as_str())) {
                    graph.update_edge(from, to, ());
                }
            }
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        return Err(Error::Cycle {
            path: format!("components.{}.dag", cycle[0]),
            cycle: cycle.into_iter().map(str::to_owned).collect(),
        });
    }
    Ok(())
}

/// A cycle of `graph` (first node repeated at the end), if it has one.
/// O(V + E): Kosaraju's strongly connected components (iterative, so deep
/// hostile specs cannot overflow the stack), then a breadth-first
/// search inside the first component with more than one node (or a self-loop).
fn find_cycle<N: Copy + Ord>(graph: &DiGraph<N, ()>) -> Option<Vec<N>> {
    for scc in petgraph::algo::kosaraju_scc(graph) {
        let Some(&start) = scc.iter().min_by_key(|n| graph[**n]) else { continue };
        if scc.len() == 1 && graph.find_edge(start, start).is_none() {
            continue;
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Shortest path from `start` back to `start` inside the component.
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = graph.neighbors(node).filter(|n| members.contains(n)).collect();
            next.sort_by_key(|n| graph[*n]);
            for n in next {
                if n == start {
                    let mut path = vec![graph[node]];
                    let mut cur = node;
                    while cur != start {
                        cur = parent.get(&cur).copied().unwrap_or(start);
                        path.push(graph[cur]);
                    }
                    path.reverse();
                    path.push(graph[start]);
                    return Some(path);
                }
                if !parent.contains_key(&n) && n != start {
                    parent.insert(n, node);
                    queue.push_back(n);
                }
            }
        }
    }
    None
}

/// Names of the task's parameter inputs that a string constant of the same
/// task interpolates (`"{{$.inputs.parameters['x']}} > 5"`); KFP declares
/// such inputs on the task only, not on the component.
///
/// The same holds for inputs the executor's resource fields read
/// (`set_cpu_limit(task.output)`); those must be given by the task if the
/// component does not declare them. Newer compilers (kfp ≥ 2.15) also record
/// the resource setting itself as an undeclared task input whose constant
/// interpolates other inputs (`cpu_limit: "{{$.inputs.parameters['pipelinechannel--cpu-Output']}}"`);
/// such an input is accepted too: the component never reads it.
fn interpolated_inputs(pipeline: &Pipeline, task: &Task, task_path: &str) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let declared = pipeline.components.get(&task.component).map(|c| &c.inputs.parameters);
    if let Some(Executor::Container(c)) = pipeline.executor_of(&task.component) {
        for (field, value) in c.resources.fields() {
            for p in value.placeholders() {
                let Placeholder::InputParameter(name) = p else { continue };
                if task.parameters.contains_key(name) {
                    names.insert(name.clone());
                } else if !declared.is_some_and(|d| d.contains_key(name)) {
                    return Err(unknown(
                        format!("{task_path}.inputs.parameters"),
                        format!("input that resource {field} reads"),
                        name,
                        known("inputs of this task", task.parameters.keys()),
                    ));
                }
            }
        }
    }
    for (input, source) in &task.parameters {
        if let ParameterSource::Constant(serde_json::Value::String(s)) = source {
            let template = Template::parse(s).map_err(|message| {
                Error::invalid(format!("{task_path}.inputs.parameters.{input}.runtimeValue.constant"), message)
            })?;
            if template.placeholders().next().is_some() && !declared.is_some_and(|d| d.contains_key(input)) {
                names.insert(input.clone());
            }
            for p in template.placeholders() {
                match p {
                    Placeholder::InputParameter(name) if task.parameters.contains_key(name) && name != input => {
                        names.insert(name.clone());
                    }
                    other => {
                        return Err(Error::invalid(
                            format!("{task_path}.inputs.parameters.{input}.runtimeValue.constant"),
                            format!("a constant may only interpolate other inputs of its task, found {other}"),
                        ));
                    }
                }
            }
        }
    }
    Ok(names)
}

fn check_dag(pipeline: &Pipeline, path: &str, owner: &Component, dag: &Dag) -> Result<DagPlan> {
    let sibling_hint = |name: &str| {
        // Name the DAG that does hold the task: the usual mistake is reaching
        // into a loop body, a condition branch or a nested pipeline.
        let elsewhere = std::iter::once(("root.dag".to_owned(), pipeline.root_dag()))
            .chain(pipeline.components.iter().map(|(c, comp)| (format!("components.{c}.dag"), comp.as_dag())))
            .find(|(p, d)| p != path && d.is_some_and(|d| d.tasks.contains_key(name)));
        let tasks = known("tasks of this DAG", dag.tasks.keys());
        match elsewhere {
            Some((other, _)) => {
                format!("it is a task of {other}, visible here only through that DAG's outputs; {tasks}")
            }
            None => tasks,
        }
    };
    let sibling = |task_path: &str, me: &str, name: &str| -> Result<(&Task, &Component)> {
        if name == me {
            return Err(Error::invalid(task_path, format!("task {me:?} cannot depend on itself")));
        }
        let task = dag.tasks.get(name).ok_or_else(|| unknown(task_path, "task", name, sibling_hint(name)))?;
        let component = pipeline.components.get(&task.component).ok_or_else(|| {
            unknown(
                format!("{path}.tasks.{name}.componentRef.name"),
                "component",
                &task.component,
                known("components", pipeline.components.keys()),
            )
        })?;
        Ok((task, component))
    };

    for (name, task) in &dag.tasks {
        let tpath = format!("{path}.tasks.{name}");
        check_name(&format!("{path}.tasks"), "task", name)?;
        let Some(component) = pipeline.components.get(&task.component) else {
            return Err(unknown(
                format!("{tpath}.componentRef.name"),
                "component",
                &task.component,
                known("components", pipeline.components.keys()),
            ));
        };
        let interpolated = interpolated_inputs(pipeline, task, &tpath)?;

        for (input, source) in &task.parameters {
            let ipath = format!("{tpath}.inputs.parameters.{input}");
            let declared = component.inputs.parameters.get(input);
            if declared.is_none() && !interpolated.contains(input) {
                return Err(unknown(
                    ipath,
                    format!("input parameter of component {:?}", task.component),
                    input,
                    known("inputs", component.inputs.parameters.keys()),
                ));
            }
            let expected = declared.map(|d| d.ty);
            let mismatch = |found: String| Error::TypeMismatch {
                path: ipath.clone(),
                expected: expected.map_or_else(String::new, |t| t.to_string()),
                found,
            };
            match source {
                ParameterSource::Constant(value) => {
                    if let Some(ty) = expected
                        && !ty.accepts(value)
                    {
                        return Err(mismatch(format!("constant {value}")));
                    }
                }
                ParameterSource::ComponentInput { name: from, selector } => {
                    let Some(outer) = owner.inputs.parameters.get(from) else {
                        return Err(unknown(
                            format!("{ipath}.componentInputParameter"),
                            "input parameter of the enclosing component",
                            from,
                            known("its inputs", owner.inputs.parameters.keys()),
                        ));
                    };
                    // A selector picks a field out of a loop item, whose type only the run knows.
                    if let (Some(ty), None) = (expected, selector)
                        && ty != outer.ty
                    {
                        return Err(mismatch(format!("{} (input {from:?} of the enclosing component)", outer.ty)));
                    }
                }
                ParameterSource::TaskOutput(r) => {
                    let (_, producer) = sibling(&format!("{ipath}.taskOutputParameter.producerTask"), name, &r.task)?;
                    let Some(out) = producer.outputs.parameters.get(&r.output) else {
                        return Err(unknown(
                            format!("{ipath}.taskOutputParameter.outputParameterKey"),
                            format!("output parameter of task {:?}", r.task),
                            &r.output,
                            known("its output parameters", producer.outputs.parameters.keys()),
                        ));
                    };
                    if let Some(ty) = expected
                        && ty != out.ty
                    {
                        return Err(mismatch(format!("{} (output {:?} of task {:?})", out.ty, r.output, r.task)));
                    }
                    // A task that runs after its upstream failed would find no value here:
                    // unreachable unless the input can do without (kfp's own rule).
                    if task.trigger.strategy == TriggerStrategy::AllUpstreamCompleted
                        && declared.is_some_and(|d| d.default.is_none() && !d.optional)
                    {
                        return Err(Error::invalid(
                            format!("{ipath}.taskOutputParameter"),
                            format!(
                                "the task also runs when {:?} fails (ALL_UPSTREAM_TASKS_COMPLETED), and then this \
                                 input has no value: give input {input:?} a default value",
                                r.task
                            ),
                        ));
                    }
                }
                ParameterSource::TaskFinalStatus(producer) => {
                    sibling(&format!("{ipath}.taskFinalStatus.producerTask"), name, producer)?;
                    if let Some(ty) = expected
                        && ty != ParameterType::TaskFinalStatus
                    {
                        return Err(mismatch(format!("the final status of task {producer:?}")));
                    }
                    // Otherwise the handler would never run when the task it guards fails.
                    if task.trigger.strategy != TriggerStrategy::AllUpstreamCompleted {
                        return Err(Error::invalid(
                            format!("{tpath}.triggerPolicy.strategy"),
                            format!(
                                "the task reads the final status of {producer:?} but runs only if it succeeds; \
                                 expected ALL_UPSTREAM_TASKS_COMPLETED"
                            ),
                        ));
                    }
                }
            }
        }

        for (input, source) in &task.artifacts {
            let ipath = format!("{tpath}.inputs.artifacts.{input}");
            let Some(declared) = component.inputs.artifacts.get(input) else {
                return Err(unknown(
                    ipath,
                    format!("input artifact of component {:?}", task.component),
                    input,
                    known("inputs", component.inputs.artifacts.keys()),
                ));
            };
            let (found, origin) = match source {
                ArtifactSource::ComponentInput(from) => {
                    let Some(outer) = owner.inputs.artifacts.get(from) else {
                        return Err(unknown(
                            format!("{ipath}.componentInputArtifact"),
                            "input artifact of the enclosing component",
                            from,
                            known("its inputs", owner.inputs.artifacts.keys()),
                        ));
                    };
                    (outer, format!("input {from:?} of the enclosing component"))
                }
                ArtifactSource::TaskOutput(r) => {
                    let (_, producer) = sibling(&format!("{ipath}.taskOutputArtifact.producerTask"), name, &r.task)?;
                    let Some(out) = producer.outputs.artifacts.get(&r.output) else {
                        return Err(unknown(
                            format!("{ipath}.taskOutputArtifact.outputArtifactKey"),
                            format!("output artifact of task {:?}", r.task),
                            &r.output,
                            known("its output artifacts", producer.outputs.artifacts.keys()),
                        ));
                    };
                    (out, format!("output {:?} of task {:?}", r.output, r.task))
                }
            };
            let loop_item =
                task.parallel_for.as_ref().is_some_and(|l| l.items == LoopItems::InputArtifact(input.clone()));
            if !declared.ty.accepts(&found.ty) || (declared.is_list != found.is_list && !loop_item) {
                return Err(Error::TypeMismatch {
                    path: ipath,
                    expected: declared.describe(),
                    found: format!("{} ({origin})", found.describe()),
                });
            }
        }

        if let Some(pf) = &task.parallel_for {
            let lpath = format!("{tpath}.parameterIterator");
            if component.as_dag().is_none() {
                return Err(Error::invalid(
                    format!("{tpath}.componentRef.name"),
                    format!("a loop runs a DAG component, but {:?} is run by an executor", task.component),
                ));
            }
            let declared_item = component.inputs.parameters.contains_key(&pf.item_input)
                || component.inputs.artifacts.contains_key(&pf.item_input);
            if !declared_item {
                return Err(unknown(
                    format!("{lpath}.itemInput"),
                    format!("input of loop component {:?}", task.component),
                    &pf.item_input,
                    known("its inputs", component.inputs.parameters.keys().chain(component.inputs.artifacts.keys())),
                ));
            }
            match &pf.items {
                LoopItems::Raw(items) => {
                    // A STRING item input takes any item: KFP hands items over as JSON text.
                    if let Some(spec) = component.inputs.parameters.get(&pf.item_input)
                        && spec.ty != ParameterType::String
                        && let Some((i, item)) = items.iter().enumerate().find(|(_, item)| !spec.ty.accepts(item))
                    {
                        return Err(Error::TypeMismatch {
                            path: format!("{lpath}.items.raw[{i}]"),
                            expected: format!("a {} value (the type of item input {:?})", spec.ty, pf.item_input),
                            found: item.to_string(),
                        });
                    }
                }
                LoopItems::InputParameter(list) => {
                    if !task.parameters.contains_key(list) {
                        return Err(unknown(
                            format!("{lpath}.items.inputParameter"),
                            "parameter input of this task",
                            list,
                            known("its parameter inputs", task.parameters.keys()),
                        ));
                    }
                    // KFP passes nested loop lists as JSON text, declared STRING.
                    if let Some(spec) = component.inputs.parameters.get(list)
                        && !matches!(spec.ty, ParameterType::List | ParameterType::String)
                    {
                        return Err(Error::TypeMismatch {
                            path: format!("{lpath}.items.inputParameter"),
                            expected: "LIST (or STRING holding a JSON list)".to_owned(),
                            found: spec.ty.to_string(),
                        });
                    }
                }
                LoopItems::InputArtifact(list) => {
                    if !task.artifacts.contains_key(list) {
                        return Err(unknown(
                            format!("{tpath}.artifactIterator.items.inputArtifact"),
                            "artifact input of this task",
                            list,
                            known("its artifact inputs", task.artifacts.keys()),
                        ));
                    }
                }
            }
            if pf.parallelism == Some(0) {
                return Err(Error::invalid(
                    format!("{tpath}.iteratorPolicy.parallelismLimit"),
                    "expected at least 1 (leave it unset for no limit), found 0",
                ));
            }
        }

        let item_input = task.parallel_for.as_ref().map(|l| l.item_input.as_str());
        for (input, spec) in &component.inputs.parameters {
            if spec.is_required() && !task.parameters.contains_key(input) && item_input != Some(input) {
                return Err(Error::MissingInput { path: format!("{tpath}.inputs.parameters"), input: input.clone() });
            }
        }
        for (input, spec) in &component.inputs.artifacts {
            if !spec.optional && !task.artifacts.contains_key(input) && item_input != Some(input) {
                return Err(Error::MissingInput { path: format!("{tpath}.inputs.artifacts"), input: input.clone() });
            }
        }

        for dep in &task.after {
            sibling(&format!("{tpath}.dependentTasks"), name, dep)?;
        }

        if let Some(condition) = &task.trigger.condition
            && let Some(input) = condition.inputs().into_iter().find(|i| !task.parameters.contains_key(*i))
        {
            return Err(unknown(
                format!("{tpath}.triggerPolicy.condition"),
                "parameter input of this task",
                input,
                known("its parameter inputs", task.parameters.keys()),
            ));
        }
        if let Some(retry) = &task.retry
            && !(retry.backoff_factor.is_finite() && retry.backoff_factor >= 1.0)
        {
            return Err(Error::invalid(
                format!("{tpath}.retryPolicy.backoffFactor"),
                format!("expected a finite number ≥ 1, found {}", retry.backoff_factor),
            ));
        }
        if task.caching.key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(Error::invalid(format!("{tpath}.cachingOptions.cacheKey"), "a custom cache key is empty"));
        }
    }

    check_dag_outputs(path, owner, dag, &sibling)?;
    plan_graph(path, dag)
}

type Sibling<'a> = dyn Fn(&str, &str, &str) -> Result<(&'a Task, &'a Component)> + 'a;

fn check_dag_outputs<'a>(path: &str, owner: &Component, dag: &'a Dag, sibling: &Sibling<'a>) -> Result<()> {
    for (name, selection) in &dag.outputs.parameters {
        let opath = format!("{path}.outputs.parameters.{name}");
        let Some(declared) = owner.outputs.parameters.get(name) else {
            return Err(unknown(
                opath,
                "output parameter of this component",
                name,
                known("outputs", owner.outputs.parameters.keys()),
            ));
        };
        if selection.selectors.is_empty() {
            return Err(Error::invalid(opath, "an output needs at least one source"));
        }
        for (i, r) in selection.selectors.iter().enumerate() {
            let spath = format!("{opath}.parameterSelectors[{i}]");
            let (_, producer) = sibling(&format!("{spath}.producerSubtask"), "", &r.task)?;
            let Some(out) = producer.outputs.parameters.get(&r.output) else {
                return Err(unknown(
                    format!("{spath}.outputParameterKey"),
                    format!("output parameter of task {:?}", r.task),
                    &r.output,
                    known("its output parameters", producer.outputs.parameters.keys()),
                ));
            };
            // A LIST output may collect a single value per loop iteration.
            if out.ty != declared.ty && declared.ty != ParameterType::List {
                return Err(Error::TypeMismatch {
                    path: spath,
                    expected: declared.ty.to_string(),
                    found: format!("{} (output {:?} of task {:?})", out.ty, r.output, r.task),
                });
            }
        }
    }
    for (name, selection) in &dag.outputs.artifacts {
        let opath = format!("{path}.outputs.artifacts.{name}");
        let Some(declared) = owner.outputs.artifacts.get(name) else {
            return Err(unknown(
                opath,
                "output artifact of this component",
                name,
                known("outputs", owner.outputs.artifacts.keys()),
            ));
        };
        if selection.selectors.is_empty() {
            return Err(Error::invalid(opath, "an output needs at least one source"));
        }
        for (i, r) in selection.selectors.iter().enumerate() {
            let spath = format!("{opath}.artifactSelectors[{i}]");
            let (_, producer) = sibling(&format!("{spath}.producerSubtask"), "", &r.task)?;
            let Some(out) = producer.outputs.artifacts.get(&r.output) else {
                return Err(unknown(
                    format!("{spath}.outputArtifactKey"),
                    format!("output artifact of task {:?}", r.task),
                    &r.output,
                    known("its output artifacts", producer.outputs.artifacts.keys()),
                ));
            };
            // An artifact list may collect a single artifact per loop iteration.
            if !declared.ty.accepts(&out.ty) || (out.is_list && !declared.is_list) {
                return Err(Error::TypeMismatch {
                    path: spath,
                    expected: declared.describe(),
                    found: format!("{} (output {:?} of task {:?})", out.describe(), r.output, r.task),
                });
            }
        }
    }
    for name in owner.outputs.parameters.keys() {
        if !dag.outputs.parameters.contains_key(name) {
            return Err(Error::invalid(
                format!("{path}.outputs.parameters"),
                format!("declared output {name:?} has no source"),
            ));
        }
    }
    for name in owner.outputs.artifacts.keys() {
        if !dag.outputs.artifacts.contains_key(name) {
            return Err(Error::invalid(
                format!("{path}.outputs.artifacts"),
                format!("declared output {name:?} has no source"),
            ));
        }
    }
    Ok(())
}

/// Builds the dependency graph of a checked DAG and orders it by levels
/// (Kahn's algorithm, one frontier at a time). O(T log T + E).
fn plan_graph(path: &str, dag: &Dag) -> Result<DagPlan> {
    let mut graph = DiGraph::<String, ()>::with_capacity(dag.tasks.len(), dag.tasks.len());
    let mut index = HashMap::with_capacity(dag.tasks.len());
    for name in dag.tasks.keys() {
        index.insert(name.clone(), graph.add_node(name.clone()));
    }
    let mut indegree = vec![0usize; dag.tasks.len()];
    for (name, task) in &dag.tasks {
        let to = index[name];
        for up in task.upstream() {
            // Checked before: every upstream name is a sibling.
            if let Some(&from) = index.get(up) {
                graph.add_edge(from, to, ());
                indegree[to.index()] += 1;
            }
        }
    }
    let mut levels = Vec::new();
    let mut order = Vec::with_capacity(dag.tasks.len());
    let mut level_of = vec![0usize; dag.tasks.len()];
    let mut frontier: Vec<NodeIndex> = graph.node_indices().filter(|n| indegree[n.index()] == 0).collect();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &node in &frontier {
            level_of[node.index()] = levels.len();
            for down in graph.neighbors(node) {
                indegree[down.index()] -= 1;
                if indegree[down.index()] == 0 {
                    next.push(down);
                }
            }
        }
        // Node indices follow task-name order, so sorting them sorts by name.
        next.sort_unstable();
        let level: Vec<String> = frontier.iter().map(|n| graph[*n].clone()).collect();
        order.extend(level.iter().cloned());
        levels.push(level);
        frontier = next;
    }
    if order.len() < dag.tasks.len() {
        let cycle = find_cycle(&graph.map(|_, name| name.as_str(), |_, _| ())).unwrap_or_default();
        let cycle: Vec<String> = cycle.into_iter().map(str::to_owned).collect();
        let first = cycle.first().cloned().unwrap_or_default();
        return Err(Error::Cycle { path: format!("{path}.tasks.{first}"), cycle });
    }
    Ok(DagPlan { path: path.to_owned(), graph, index, order, levels, level_of })
}

#[cfg(test)]
mod tests;
