//! The one error type of this crate.

/// Everything that can go wrong in `kf-serve`.
///
/// Messages say what was expected, what was found and where: `path` is the
/// dotted path of the offending field in the input (an inference request or
/// serving manifest), `tensor` the name of the offending tensor.
///
/// [`Error::class`] sorts every error into the HTTP status class the Open
/// Inference Protocol answers with, without this crate doing any HTTP.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A serving manifest (InferenceService, InferenceGraph, ServingRuntime)
    /// does not describe a valid object.
    #[error("{path}: {message}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `spec.predictor.minReplicas`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// An inference request or response body is malformed (bad JSON, a missing
    /// field, a binary section that does not add up).
    #[error("{path}: {message}")]
    BadRequest {
        /// Where in the body: a dotted JSON path such as `inputs[0].shape`, or
        /// the header `Inference-Header-Content-Length`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A tensor's shape, datatype and data do not agree.
    #[error("tensor {tensor:?}: {message}")]
    Tensor {
        /// The tensor's name as sent.
        tensor: String,
        /// What was expected and what was found.
        message: String,
    },
    /// No model (or no such version of it) is known.
    #[error("{}", not_found_message(.model, .version.as_deref()))]
    ModelNotFound {
        /// The model name asked for.
        model: String,
        /// The version asked for, if any.
        version: Option<String>,
    },
    /// The model exists but cannot serve yet (loading, unloading, failed).
    #[error("model {model:?} is not ready: {reason}")]
    ModelNotReady {
        /// The model name.
        model: String,
        /// Why it is not ready.
        reason: String,
    },
    /// A model file could not be loaded (unreadable, not a model, or using an
    /// operator the runtime does not implement). Loading fails before serving,
    /// so this is the server's problem, never a wrong answer.
    #[error("cannot load model {model:?}: {message}")]
    ModelLoad {
        /// The model's name, or the path when no name is known yet.
        model: String,
        /// What went wrong, naming the unsupported operator when that is why.
        message: String,
    },
    /// A model failed while running on a request that passed its checks.
    #[error("model {model:?} failed: {message}")]
    Inference {
        /// The model's name.
        model: String,
        /// The runtime's error.
        message: String,
    },
    /// A request body is larger than the server accepts.
    #[error("request body of {found} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// The size sent (or the part read before giving up).
        found: usize,
    },
    /// A step of an inference graph failed; the class is the step's own.
    #[error("inference graph node {node:?} step {step}: {source}")]
    GraphStep {
        /// The node whose step failed.
        node: String,
        /// The step's name, or its index when it has none.
        step: String,
        /// What the step's target answered.
        source: Box<Error>,
    },
    /// A Kubernetes API request of the controller (feature `controller`)
    /// that failed: the reconcile stops there and is retried with backoff.
    #[error("{request}: {message}")]
    Kubernetes {
        /// What was asked, e.g. `apply Deployment team-a/iris-predictor`.
        request: String,
        /// The HTTP status of the API server's answer, when there was one.
        status: Option<u16>,
        /// What the API server (or the client) said.
        message: String,
    },
    /// The server produced something it cannot encode (e.g. non-UTF-8 `BYTES`
    /// for a JSON output). The client did nothing wrong.
    #[error("internal error: {message}")]
    Internal {
        /// What went wrong.
        message: String,
    },
}

fn not_found_message(model: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("model {model:?} has no version {v:?}"),
        None => format!("unknown model {model:?}"),
    }
}

/// The status class of an [`Error`], as the Open Inference Protocol maps it to
/// HTTP: the server adapter turns it into a status code, this crate never does HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The client sent something invalid: 400.
    BadRequest,
    /// The model or version does not exist: 404.
    NotFound,
    /// The model exists but is not ready: 503.
    Unavailable,
    /// The request body is too large: 413.
    PayloadTooLarge,
    /// The server failed: 500.
    Internal,
}

impl ErrorClass {
    /// The HTTP status code of this class.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorClass::BadRequest => 400,
            ErrorClass::NotFound => 404,
            ErrorClass::Unavailable => 503,
            ErrorClass::PayloadTooLarge => 413,
            ErrorClass::Internal => 500,
        }
    }
}

impl Error {
    /// The status class this error is answered with.
    ///
    /// ```
    /// use kf_serve::{Error, ErrorClass};
    /// let err = Error::ModelNotFound { model: "iris".into(), version: None };
    /// assert_eq!(err.class(), ErrorClass::NotFound);
    /// assert_eq!(err.class().http_status(), 404);
    /// ```
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::Invalid { .. } | Error::BadRequest { .. } | Error::Tensor { .. } => ErrorClass::BadRequest,
            Error::ModelNotFound { .. } => ErrorClass::NotFound,
            Error::ModelNotReady { .. } => ErrorClass::Unavailable,
            Error::PayloadTooLarge { .. } => ErrorClass::PayloadTooLarge,
            Error::ModelLoad { .. } | Error::Inference { .. } | Error::Kubernetes { .. } | Error::Internal { .. } => {
                ErrorClass::Internal
            }
            Error::GraphStep { source, .. } => source.class(),
        }
    }

    /// The protocol's error body, `{"error": "<message>"}`.
    ///
    /// ```
    /// use kf_serve::Error;
    /// let err = Error::ModelNotReady { model: "iris".into(), reason: "loading".into() };
    /// assert_eq!(err.to_body(), serde_json::json!({"error": "model \"iris\" is not ready: loading"}));
    /// ```
    pub fn to_body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.to_string() })
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
