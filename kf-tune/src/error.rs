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
        /// Dotted path of the offending field, e.g. `spec.owner.kind`.
        path: String,
        /// What was expected and what was found.
        message: String,
    },
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
