//! Invariants of the workspace's shape (docs/ARCHITECTURE.md, rules 1 and 3),
//! checked from `cargo metadata` so they cannot rot silently.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--no-deps"])
        .current_dir(kf_tests::workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

const LIBRARIES: [&str; 6] = ["kf-dag", "kf-train", "kf-tune", "kf-registry", "kf-serve", "kf-tenancy"];

fn package<'a>(meta: &'a Value, name: &str) -> &'a Value {
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("workspace member {name} is missing"))
}

fn dependencies(pkg: &Value) -> &[Value] {
    pkg["dependencies"].as_array().map(Vec::as_slice).unwrap_or_default()
}

#[test]
fn every_library_crate_is_a_workspace_member() {
    let meta = metadata();
    let members: BTreeSet<&str> =
        meta["packages"].as_array().expect("packages").iter().filter_map(|p| p["name"].as_str()).collect();
    for lib in LIBRARIES.iter().chain(&["kf", "kf-tests"]) {
        assert!(members.contains(lib), "{lib} is not a workspace member: {members:?}");
    }
}

/// Rule 1: a kf-* crate never depends on another kf-* crate, in any
/// dependency kind (normal, dev, build), so each can be used and tested alone.
#[test]
fn library_crates_never_depend_on_each_other() {
    let meta = metadata();
    for lib in LIBRARIES {
        let offending: Vec<String> = dependencies(package(&meta, lib))
            .iter()
            .filter_map(|d| d["name"].as_str())
            .filter(|name| name.starts_with("kf-") || *name == "kf")
            .map(str::to_string)
            .collect();
        assert!(offending.is_empty(), "{lib} depends on {offending:?}; only examples/kf and tests/ may join crates");
    }
}

/// Rule 3: libraries never pick a Kubernetes version for their users; only the
/// assembly and dev-dependencies enable a k8s-openapi version feature.
#[test]
fn libraries_never_pick_a_kubernetes_version() {
    let meta = metadata();
    for lib in LIBRARIES {
        for dep in dependencies(package(&meta, lib)) {
            if dep["name"] != "k8s-openapi" || dep["kind"] == "dev" {
                continue;
            }
            let features: Vec<&str> =
                dep["features"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let version_features: Vec<&&str> =
                features.iter().filter(|f| f.starts_with("v1_") || **f == "latest" || **f == "earliest").collect();
            assert!(version_features.is_empty(), "{lib} enables k8s-openapi {version_features:?}");
        }
    }
}

/// The assembly is where the crates meet: it depends on every one of them.
#[test]
fn the_assembly_composes_every_crate() {
    let meta = metadata();
    let deps: BTreeSet<&str> = dependencies(package(&meta, "kf")).iter().filter_map(|d| d["name"].as_str()).collect();
    for lib in LIBRARIES {
        assert!(deps.contains(lib), "examples/kf does not use {lib}");
    }
}
