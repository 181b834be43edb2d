//! The one error type of this crate.

/// Everything that can go wrong in `kf-tune`.
///
/// Messages say what was expected, what was found and where: `path` is the
/// dotted path of the offending field in the input (a search space or Katib Experiment).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input does not describe a valid object.
    #[error("{path}: {message}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `spec.parameters[0].feasibleSpace.min`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
    /// A search-space parameter built in code is not a valid domain.
    #[error("parameter {parameter:?}: {message}")]
    InvalidParameter {
        /// Name of the offending parameter.
        parameter: String,
        /// What was expected and what was found.
        message: String,
    },
    /// An algorithm cannot work on this search space (e.g. a grid over a continuous range).
    #[error("algorithm {algorithm:?}: {message}")]
    Unsupported {
        /// The algorithm's Katib name.
        algorithm: String,
        /// What the algorithm needs and what the space has.
        message: String,
    },
    /// An algorithm setting is unknown or has a value the algorithm cannot use.
    #[error("algorithm {algorithm:?}, setting {setting:?}: {message}")]
    InvalidSetting {
        /// The algorithm's Katib name.
        algorithm: String,
        /// The setting's name.
        setting: String,
        /// What was expected and what was found.
        message: String,
    },
    /// No algorithm of that name exists.
    #[error("unknown algorithm {name:?}: expected one of {known}")]
    UnknownAlgorithm {
        /// The name asked for.
        name: String,
        /// The names this crate knows, comma separated.
        known: String,
    },
    /// Reading or writing a file (a journal, a metrics file) failed.
    #[error("{path}: {message}")]
    Io {
        /// The file, or what was being done.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A request to the Kubernetes API server failed (the controller).
    #[error("{request}: {message}")]
    Kubernetes {
        /// What was asked, e.g. `apply Job kubeflow/random-0`.
        request: String,
        /// The HTTP status the server answered, when it answered.
        status: Option<u16>,
        /// What the server (or the client) said.
        message: String,
    },
    /// A finite algorithm (the grid) has suggested every point of the space.
    #[error("algorithm {algorithm:?}: every point of the search space has been suggested")]
    Exhausted {
        /// The algorithm's Katib name.
        algorithm: String,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
