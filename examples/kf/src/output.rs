//! How commands print results: human-readable lines or JSON.

/// The `--output` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per result.
    Text,
    /// One JSON document on stdout.
    Json,
}
