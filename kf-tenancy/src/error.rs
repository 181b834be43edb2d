//! The one error type of this crate.

/// Everything that can go wrong in `kf-tenancy`.
///
/// Messages say what was expected, what was found and where: `path` is the
/// dotted path of the offending field in the input (a Profile or an
/// authorization request).
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
    /// A referenced object does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `namespace "team-a"`.
        what: String,
    },
    /// A request does not fit in its namespace's quota.
    #[error(
        "quota exceeded in namespace {namespace:?}: {resource} requested {requested}, \
         {used} already used of {limit}"
    )]
    QuotaExceeded {
        /// The namespace charged.
        namespace: String,
        /// The first resource that did not fit.
        resource: String,
        /// The amount requested.
        requested: String,
        /// The amount already in use.
        used: String,
        /// The hard limit.
        limit: String,
    },
    /// The actor may not make this change.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why, from the authorizer.
        reason: String,
    },
    /// The change conflicts with what exists.
    #[error("conflict: {what}")]
    Conflict {
        /// What exists.
        what: String,
    },
    /// A Kubernetes API request failed (feature `controller`).
    #[cfg(feature = "controller")]
    #[error("kubernetes: {action}: {source}")]
    Kubernetes {
        /// What the controller was doing, e.g. `apply RoleBinding "x"`.
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A storage backend failed.
    #[error("policy store: {0}")]
    Storage(String),
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
