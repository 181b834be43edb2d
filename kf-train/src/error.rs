//! The one error type of this crate.

/// Everything that can go wrong in `kf-train`.
///
/// Messages say what was expected, what was found and where: `path` is the
/// dotted path of the offending field in the input (a TrainJob or training runtime).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// A field the CRD schema does not define. The API server drops such fields
    /// silently; strict field validation (`kubectl apply --validate=strict`),
    /// which kf follows, rejects them.
    #[error("{path}: unknown field (strict field validation); expected one of: {expected}")]
    UnknownField {
        /// Dotted path of the unknown field, e.g. `spec.mlPolicy.torch.numProcPerNode`.
        path: String,
        /// The fields the schema defines at that place, comma-separated.
        expected: String,
    },
    /// A valid TrainJob and runtime that cannot be turned into a launch plan
    /// (no trainer replicated job, a patch that targets nothing, zero nodes…).
    #[error("{path}: cannot build the launch plan: {message}")]
    Unlaunchable {
        /// Dotted path of the field that blocks the plan, in the TrainJob
        /// (`spec.…`) or in the runtime (`runtime.spec.…`).
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A launch plan that cannot become Kubernetes manifests (feature
    /// `kube`): it belongs to another job, or its pods differ in a way one
    /// pod template per replicated job cannot express.
    #[error("{path}: cannot render the Kubernetes manifests: {message}")]
    Unrenderable {
        /// Dotted path of the field that blocks rendering (`plan.…`,
        /// `runtime.spec.…` or `jobset.spec.…` in the rendered JobSet).
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A job trace (CSV) that cannot be read: a missing column, a field
    /// that does not parse, a row with the wrong number of fields.
    #[error("trace line {line}, column {column}: {message}")]
    Trace {
        /// 1-based line in the file (the header is line 1).
        line: usize,
        /// Column name as the format defines it.
        column: String,
        /// What was expected and what was found.
        message: String,
    },
    /// Data an initializer should fetch (`storageUri`) that cannot be read.
    #[error("storage {uri}: {message}")]
    Storage {
        /// The URI as given.
        uri: String,
        /// What went wrong.
        message: String,
    },
    /// A local process that cannot be started or supervised, or a
    /// workspace file that cannot be written.
    #[error("{process}: {message}")]
    Process {
        /// The process (or file) concerned.
        process: String,
        /// What went wrong.
        message: String,
    },
    /// A Kubernetes API request of the controller (feature `controller`)
    /// that failed: the reconcile stops there and is retried with backoff.
    #[error("{request}: {message}")]
    Kubernetes {
        /// What was asked, e.g. `apply JobSet team-a/mnist`.
        request: String,
        /// The HTTP status of the API server's answer, when there was one.
        status: Option<u16>,
        /// What the API server (or the client) said.
        message: String,
    },
    /// A simulation that cannot run or did not finish (e.g. an event budget
    /// exhausted, which would otherwise be an endless loop).
    #[error("simulation: {message}")]
    Simulation {
        /// What went wrong and with what input.
        message: String,
    },
}

impl Error {
    /// The dotted path of the offending field.
    pub fn path(&self) -> &str {
        match self {
            Error::Invalid { path, .. } | Error::UnknownField { path, .. } | Error::Unlaunchable { path, .. } => path,
            Error::Unrenderable { path, .. } => path,
            Error::Trace { column, .. } => column,
            Error::Storage { uri, .. } => uri,
            Error::Process { process, .. } => process,
            Error::Kubernetes { request, .. } => request,
            Error::Simulation { .. } => "",
        }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
