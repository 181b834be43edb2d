//! The one error type of this crate.
//!
//! Every variant maps to one HTTP status of the REST API (see [`Error::status`]),
//! so the server never has to guess: bad input is 400, a missing id is 404, a
//! taken name is 409, a body over a limit is 413, and only a failing storage backend is 500.

/// Everything that can go wrong in `kf-registry`.
///
/// Messages say what was expected, what was found and where: `path` is the
/// dotted path of the offending field in the input (a registry object or API request).
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
    /// A `filterQuery` does not parse or does not type-check.
    #[error("filterQuery at byte {position}: {message}")]
    Filter {
        /// Byte offset in the query where the problem was found.
        position: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// A `nextPageToken` was not issued by this store for this query (forged,
    /// edited, truncated, or re-sent with different list parameters).
    #[error("nextPageToken: {0}")]
    PageToken(String),
    /// No object of this kind has this id (or matches this lookup).
    #[error("{kind} {key} not found")]
    NotFound {
        /// The kind of object looked up, e.g. `RegisteredModel`.
        kind: &'static str,
        /// What was looked up, e.g. `id 12` or `name "iris"`.
        key: String,
    },
    /// The object would break a uniqueness rule (a name or externalId already taken).
    #[error("{kind}: {message}")]
    Conflict {
        /// The kind of object, e.g. `RegisteredModel`.
        kind: &'static str,
        /// Which rule and which value.
        message: String,
    },
    /// A request body is larger than the server accepts.
    #[error("{what}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large, e.g. `upload of model.onnx`.
        what: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The storage backend failed (IO, SQL, corruption). Never caused by input.
    #[error("storage: {0}")]
    Storage(String),
}

impl Error {
    /// The HTTP status this error answers with in the REST API.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid { .. } | Error::Filter { .. } | Error::PageToken(_) => 400,
            Error::NotFound { .. } => 404,
            Error::Conflict { .. } => 409,
            Error::TooLarge { .. } => 413,
            Error::Storage(_) => 500,
        }
    }

    /// A short machine-readable code for the `code` field of the API's `Error` body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "bad_request",
            Error::Filter { .. } => "invalid_filter_query",
            Error::PageToken(_) => "invalid_page_token",
            Error::NotFound { .. } => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::TooLarge { .. } => "payload_too_large",
            Error::Storage(_) => "internal",
        }
    }

    pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { path: path.into(), message: message.into() }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
