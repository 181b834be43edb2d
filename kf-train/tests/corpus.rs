//! Every document of the shared Trainer corpus parses, round-trips and
//! validates; every document of its `invalid/` folder is rejected with the
//! error its README describes.

use std::path::{Path, PathBuf};

use kf_train::{Error, TrainJob, TrainingRuntime};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/trainer");

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("readable");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses, validates and writes back one document of any Trainer kind.
fn check(doc: &Value) -> Result<Value, Error> {
    match doc["kind"].as_str() {
        Some("TrainJob") => {
            let job = TrainJob::from_value(doc.clone())?;
            job.validate()?;
            Ok(job.to_value())
        }
        _ => {
            let runtime = TrainingRuntime::from_value(doc.clone())?;
            runtime.validate()?;
            Ok(runtime.to_value())
        }
    }
}

#[test]
fn every_public_document_parses_validates_and_round_trips() {
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for path in yaml_files(Path::new(CORPUS)) {
        let doc = read(&path);
        let written = check(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(written, doc, "{} must round-trip", path.display());
        *kinds.entry(doc["kind"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    let expected: std::collections::BTreeMap<String, usize> =
        [("ClusterTrainingRuntime", 9), ("TrainJob", 10)].map(|(k, n)| (k.to_string(), n)).into();
    // The README counts 23 documents: these 19 plus the 4 runtimes in invalid/ (one of them namespaced).
    assert_eq!(kinds, expected);
}

#[test]
fn invalid_documents_parse_and_round_trip_but_are_rejected_naming_the_field() {
    let cases = [
        ("docs__operator-guides__job-scheduling__kai.block0.yaml", "spec.mlPolicy.torch.numNodes"),
        ("docs__operator-guides__runtime.block0.yaml", "spec.mlPolicy.torch.numProcPerNode"),
        ("docs__operator-guides__runtime.block2.yaml", "spec.mlPolicy.torch.numProcPerNode"),
        ("docs__user-guides__pytorch-rocm.block2.yaml", "spec.mlPolicy.torch.numProcPerNode"),
    ];
    let dir = Path::new(CORPUS).join("invalid");
    assert_eq!(yaml_files(&dir).len(), cases.len(), "one case per invalid file");
    for (file, field) in cases {
        let doc = read(&dir.join(file));
        let runtime = TrainingRuntime::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(runtime.to_value(), doc, "{file}: unknown fields must survive a round-trip");
        let err = runtime.validate().expect_err(file);
        assert!(matches!(err, Error::UnknownField { .. }), "{file}: {err}");
        assert_eq!(err.path(), field, "{file}: {err}");
    }
}

#[test]
fn kai_sample_also_misplaces_pod_fields_in_the_jobset_template() {
    // With the torch policy fixed, the next problem is the Pod fields placed
    // directly under the JobSet spec.
    let mut doc = read(&Path::new(CORPUS).join("invalid/docs__operator-guides__job-scheduling__kai.block0.yaml"));
    doc["spec"]["mlPolicy"] = serde_json::json!({"numNodes": 1, "torch": {}});
    let err = TrainingRuntime::from_value(doc).unwrap().validate().unwrap_err();
    assert!(["spec.template.spec.containers", "spec.template.spec.schedulerName"].contains(&err.path()), "{err}");
}
