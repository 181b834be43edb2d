//! The one error type of this crate.
//!
//! Every variant carries `path`: the dotted path of the offending field, spelled
//! the way a KFP PipelineSpec spells it (`root.dag.tasks.train.inputs.parameters.lr`,
//! `components.comp-train.inputDefinitions.parameters.lr`,
//! `deploymentSpec.executors.exec-train.container.args[2]`), so an error found in
//! the IR points at the same place in the YAML the IR was imported from.

/// Everything that can go wrong in `kf-dag`.
///
/// Messages say what was expected, what was found and where: `path` is the
/// dotted path of the offending field in the input (a pipeline spec or builder call).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not describe a valid object.
    #[error("{path}: {message}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `spec.owner.kind`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A name refers to something that does not exist (a component, executor,
    /// task, input or output).
    #[error("{path}: no {what} named {name:?} ({known})")]
    UnknownReference {
        /// Dotted path of the field holding the reference.
        path: String,
        /// What kind of thing was looked up, e.g. `component` or `output parameter of task "prep"`.
        what: String,
        /// The name that was not found.
        name: String,
        /// The names that do exist, or why none is visible from here.
        known: String,
    },
    /// A value or an upstream output does not have the type the consumer declares.
    #[error("{path}: expected {expected}, found {found}")]
    TypeMismatch {
        /// Dotted path of the consuming field.
        path: String,
        /// The type the consumer declares.
        expected: String,
        /// The type (or value) it is given.
        found: String,
    },
    /// Tasks of a DAG (or components nesting each other) depend on each other in a circle.
    #[error("{path}: dependency cycle {}", cycle.join(" -> "))]
    Cycle {
        /// Dotted path of the DAG (or `components`) holding the cycle.
        path: String,
        /// The names on the cycle, first name repeated at the end.
        cycle: Vec<String>,
    },
    /// A required input is given no value.
    #[error("{path}: required input {input:?} is not given (it has no default and is not optional)")]
    MissingInput {
        /// Dotted path of the task's inputs.
        path: String,
        /// Name of the missing input.
        input: String,
    },
    /// Two things that must have distinct names share one.
    #[error("{path}: {name:?} is defined twice")]
    Duplicate {
        /// Dotted path where the second definition was attempted.
        path: String,
        /// The name used twice.
        name: String,
    },
    /// A run store refused an operation or is unusable.
    #[error("run store: {message}")]
    Store {
        /// What was attempted and why it failed.
        message: String,
    },
    /// The artifact store (object_store) refused an operation, or an
    /// artifact location would leave the run's prefix.
    #[error("artifact store: {location}: {message}")]
    Artifact {
        /// The object location (or URI) involved.
        location: String,
        /// What was attempted and why it failed.
        message: String,
    },
    /// The executor could not carry on with a run (not a task failure: a
    /// failed task fails the run, it does not make `run` return an error).
    #[error("run {run}: {message}")]
    Run {
        /// The run id.
        run: String,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// The dotted path of the offending field, when the error has one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Error::Invalid { path, .. }
            | Error::UnknownReference { path, .. }
            | Error::TypeMismatch { path, .. }
            | Error::Cycle { path, .. }
            | Error::MissingInput { path, .. }
            | Error::Duplicate { path, .. } => Some(path),
            Error::Store { .. } | Error::Artifact { .. } | Error::Run { .. } => None,
        }
    }

    /// What is wrong, without the path: the display text minus its
    /// `path: ` prefix, for callers that show the path separately.
    ///
    /// ```
    /// use kf_dag::Error;
    /// let err = Error::MissingInput { path: "root.dag.tasks.a.inputs".into(), input: "lr".into() };
    /// assert_eq!(err.path(), Some("root.dag.tasks.a.inputs"));
    /// assert!(err.message().starts_with("required input \"lr\" is not given"));
    /// assert_eq!(format!("{}: {}", err.path().unwrap(), err.message()), err.to_string());
    /// ```
    pub fn message(&self) -> String {
        let text = self.to_string();
        match self.path() {
            Some(path) => text.strip_prefix(path).and_then(|t| t.strip_prefix(": ")).unwrap_or(&text).to_owned(),
            None => text,
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { path: path.into(), message: message.into() }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
