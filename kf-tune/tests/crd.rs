//! The `kube::CustomResource` type of an Experiment (feature `kube`): its
//! generated CRD names the same group, kind, plural, singular, scope,
//! version and status subresource as Katib's in
//! ../shared/corpus/katib/schema, and every corpus Experiment reads as it
//! with the same spec as the lossless wire type.
#![cfg(feature = "kube")]
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use kf_tune::Experiment;
use kf_tune::katib::ExperimentResource;
use kube::core::CustomResourceExt;
use serde_json::Value;

fn shared(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/katib").join(path)
}

#[test]
fn the_experiment_resource_matches_katibs_crd() {
    let generated = serde_json::to_value(ExperimentResource::crd()).unwrap();
    let upstream: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(shared("schema/kubeflow.org_experiments.yaml")).unwrap())
            .unwrap();
    for pointer in [
        "/metadata/name",
        "/spec/group",
        "/spec/scope",
        "/spec/names/kind",
        "/spec/names/plural",
        "/spec/names/singular",
    ] {
        assert_eq!(generated.pointer(pointer), upstream.pointer(pointer), "{pointer}");
    }
    let served = |crd: &Value| -> Vec<(String, bool)> {
        crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["name"].as_str().unwrap().to_string(), v.pointer("/subresources/status").is_some()))
            .collect()
    };
    assert_eq!(served(&generated), served(&upstream));
}

#[test]
fn corpus_experiments_read_as_the_typed_resource() {
    let mut read = 0;
    for entry in std::fs::read_dir(shared("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else { continue };
        if doc.get("kind").and_then(Value::as_str) != Some("Experiment") {
            continue;
        }
        let typed: ExperimentResource =
            serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let wire = Experiment::from_value(doc).unwrap();
        assert_eq!(Some(&typed.spec), wire.spec.as_ref(), "{}", path.display());
        read += 1;
    }
    assert!(read > 5, "the corpus has Experiments: read {read}");
}
