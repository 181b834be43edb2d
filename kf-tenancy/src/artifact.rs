//! Where a namespace's artifacts may live, and confinement of user-supplied
//! paths and URIs to it.
//!
//! KFP once served any artifact URI to anyone who could reach the UI
//! (kubeflow/pipelines#12373). Here every namespace owns a prefix under a
//! configured root (`s3://bucket/artifacts/<namespace>/`, or a directory), and
//! a request for an artifact is answered only if its URI — after resolving
//! `.` and `..` segments and percent-escapes — lies under the caller's prefix.
//! Pure string and path logic; no IO.

use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// The artifact root: each namespace owns `<root>/<namespace>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactScope {
    root: String,
}

impl ArtifactScope {
    /// A scope rooted at a URI such as `s3://kf-artifacts/runs` or
    /// `file:///var/lib/kf/artifacts` (a trailing `/` is optional).
    pub fn new(root: &str) -> Self {
        ArtifactScope { root: root.trim_end_matches('/').to_string() }
    }

    /// The URI prefix a namespace owns, ending in `/`.
    pub fn prefix(&self, namespace: &str) -> String {
        format!("{}/{namespace}/", self.root)
    }

    /// Checks that `uri` names something inside `namespace`'s prefix. The
    /// namespace must be a plain name, and the URI may not escape with `..`,
    /// percent-encoded dots or slashes, or backslashes.
    pub fn check(&self, namespace: &str, uri: &str) -> Result<()> {
        let denied = |why: &str| Error::Invalid { path: "uri".into(), message: format!("{uri:?}: {why}") };
        if !is_plain_name(namespace) {
            return Err(denied("not a valid namespace"));
        }
        let Some(rest) = uri.strip_prefix(&self.prefix(namespace)) else {
            return Err(denied("outside the namespace's artifact prefix"));
        };
        if rest.contains('\\') || rest.contains('%') {
            return Err(denied("escaped or backslashed segments are not allowed"));
        }
        if rest.split('/').any(|segment| segment == ".." || segment == ".") {
            return Err(denied("'.' and '..' segments are not allowed"));
        }
        Ok(())
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '%'])
}

/// Joins a user-supplied relative path onto `root`, refusing anything that
/// could leave it: absolute paths, `..`, and (on any platform) prefixes.
///
/// ```
/// use std::path::Path;
/// use kf_tenancy::artifact::confine;
///
/// let root = Path::new("/srv/artifacts/team-a");
/// assert_eq!(confine(root, "runs/1/model.onnx")?, root.join("runs/1/model.onnx"));
/// assert!(confine(root, "../team-b/model.onnx").is_err());
/// assert!(confine(root, "/etc/passwd").is_err());
/// # Ok::<(), kf_tenancy::Error>(())
/// ```
pub fn confine(root: &Path, relative: &str) -> Result<PathBuf> {
    let denied = |why: &str| Error::Invalid { path: "path".into(), message: format!("{relative:?}: {why}") };
    if relative.contains('\\') || relative.contains('\0') {
        return Err(denied("backslashes and NUL are not allowed"));
    }
    let mut out = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(denied("'..' is not allowed")),
            Component::RootDir | Component::Prefix(_) => return Err(denied("absolute paths are not allowed")),
        }
    }
    if out == root {
        return Err(denied("names the root itself"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uris_must_stay_in_the_callers_prefix() {
        let scope = ArtifactScope::new("s3://kf-artifacts/runs/");
        scope.check("team-a", "s3://kf-artifacts/runs/team-a/run-1/model.onnx").unwrap();
        for uri in [
            "s3://kf-artifacts/runs/team-b/run-1/model.onnx",
            "s3://kf-artifacts/runs/team-a/../team-b/model.onnx",
            "s3://kf-artifacts/runs/team-a/%2e%2e/team-b/model.onnx",
            "s3://kf-artifacts/runs/team-a/..%2fteam-b/model.onnx",
            "s3://kf-artifacts/runs/team-a\\..\\team-b",
            "s3://kf-artifacts/runs/team-ab/x",
            "s3://other-bucket/runs/team-a/x",
            "file:///etc/passwd",
        ] {
            assert!(scope.check("team-a", uri).is_err(), "{uri} must be refused for team-a");
        }
        assert!(scope.check("..", "s3://kf-artifacts/runs/../x").is_err());
    }

    #[test]
    fn paths_are_confined_to_the_root() {
        let root = Path::new("/srv/a");
        assert_eq!(confine(root, "./x/./y").unwrap(), root.join("x/y"));
        for bad in ["..", "../b", "x/../../b", "/abs", "x\\..\\..", "", "."] {
            assert!(confine(root, bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever the input, a confined path starts with the root and has no
        /// parent components.
        #[test]
        fn confined_paths_never_escape(rel in "[a-z./\\\\]{0,20}") {
            let root = Path::new("/srv/root");
            if let Ok(path) = confine(root, &rel) {
                prop_assert!(path.starts_with(root));
                prop_assert!(path.components().all(|c| c != Component::ParentDir));
            }
        }
    }
}
