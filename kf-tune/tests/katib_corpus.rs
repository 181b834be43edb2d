//! Every Katib Experiment in the shared corpus parses, validates, converts to a
//! search space (or is a NAS experiment) and round-trips through YAML.

use std::path::PathBuf;

use kf_tune::algorithm::{Algorithm, IMPLEMENTED};
use kf_tune::early_stopping::MedianStop;
use kf_tune::{Error, Experiment};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/katib");

fn corpus() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .expect("corpus folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("readable");
            let doc: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, doc)
        })
        .collect()
}

#[test]
fn every_corpus_experiment_parses_validates_and_round_trips() {
    let files = corpus();
    assert_eq!(files.len(), 20, "the public corpus holds 20 experiments");
    for (path, doc) in files {
        let experiment = Experiment::from_value(doc.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        experiment.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value = experiment.to_value();
        assert_eq!(value, doc, "{} must round-trip to the same value", path.display());
        // typed → YAML → typed gives an equal value.
        let yaml = serde_saphyr::to_string(&value).expect("serialisable");
        let again: Value = serde_saphyr::from_str(&yaml).expect("re-readable");
        assert_eq!(Experiment::from_value(again).expect("parses again"), experiment, "{}", path.display());
        let spec = experiment.spec.as_ref().expect("spec");
        if spec.nas_config.is_none() {
            let space = experiment.search_space().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(space.len(), spec.parameters.as_ref().map_or(0, Vec::len));
        }
    }
}

#[test]
fn nas_input_sizes_with_repeated_entries_are_kept_and_accepted() {
    for name in ["examples__v1beta1__nas__enas-cpu.yaml", "examples__v1beta1__nas__enas-gpu.yaml"] {
        let (_, doc) = corpus().into_iter().find(|(p, _)| p.ends_with(name)).expect("file present");
        let experiment = Experiment::from_value(doc).expect("parses");
        experiment.validate().expect("duplicates in a listType=set are not an error");
        let graph = experiment.spec.and_then(|s| s.nas_config).and_then(|n| n.graph_config).expect("graph config");
        assert_eq!(graph.input_sizes, Some(vec![32, 32, 3]));
    }
}

#[test]
fn quoted_numbers_are_written_back_quoted() {
    let (_, doc) = corpus()
        .into_iter()
        .find(|(p, _)| p.ends_with("examples__v1beta1__hp-tuning__optuna-distribution.yaml"))
        .expect("file present");
    let experiment = Experiment::from_value(doc).expect("parses");
    let out = experiment.to_value();
    assert_eq!(out["spec"]["parameters"][0]["feasibleSpace"]["step"], Value::String("0.1".into()));
    let space = experiment.search_space().expect("valid space");
    assert_eq!(space.params()[3].name(), "batch_size");
}

#[test]
fn corpus_algorithms_build_or_are_reported_as_not_yet_implemented() {
    let mut built = 0;
    for (path, doc) in corpus() {
        let experiment = Experiment::from_value(doc).expect("parses");
        let spec = experiment.spec.expect("spec");
        let algorithm = spec.algorithm.expect("algorithm");
        let name = algorithm.algorithm_name.clone().unwrap_or_default();
        match Algorithm::from_katib(&algorithm) {
            Ok(a) => {
                assert_eq!(a.sampler.name(), name, "{}", path.display());
                built += 1;
            }
            Err(Error::Unsupported { .. }) => assert!(!IMPLEMENTED.contains(&name.as_str()), "{}", path.display()),
            Err(other) => panic!("{}: {other}", path.display()),
        }
        if let Some(early) = spec.early_stopping {
            MedianStop::from_katib(&early).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
    assert_eq!(
        built, 17,
        "the 15 random, tpe and sobol experiments, the bayesianoptimization one and the pbt one build"
    );
}
