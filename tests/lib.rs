//! Cross-crate tests of the kf workspace. The tests themselves are the
//! `[[test]]` targets listed in this package's Cargo.toml; this library only
//! holds what they share.

use std::path::PathBuf;

/// The workspace root (the folder holding the virtual `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".."))
}
