//! The KFP importer against the real KFP corpus: every compiled pipeline
//! imports, validates and round-trips (both documents, nothing lost or
//! invented); every broken one is rejected at the YAML path its README names;
//! every valid one survives export → import unchanged as IR.

use std::path::{Path, PathBuf};

use kf_dag::ir::Pipeline;
use kf_dag::kfp::KfpPipeline;
use kf_dag::{Error, Plan};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kfp");

fn load(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_pipeline_imports_validates_and_round_trips() {
    let files = yaml_files(CORPUS);
    assert_eq!(files.len(), 25, "the public corpus holds 25 pipelines");
    let mut with_platforms = 0;
    for path in files {
        let docs = load(&path);
        let name = path.display();
        let kfp = KfpPipeline::from_values(&docs).unwrap_or_else(|e| panic!("{name}: {e}"));
        kfp.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kfp.to_values(), docs, "{name}: kf fmt must give back the same documents");
        let plan = kfp.plan().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!plan.root().order().is_empty(), "{name}");
        with_platforms += usize::from(kfp.platforms.is_some());
    }
    assert_eq!(with_platforms, 2, "pipeline_with_volume and pipeline_with_secret_as_env carry platforms");
}

/// Gives every task a display name, as KFP export does (taskInfo.name is always written).
fn named_tasks(mut p: Pipeline) -> Pipeline {
    let dags = std::iter::once(&mut p.root).chain(p.components.values_mut());
    for component in dags {
        if let Some(dag) = component.implementation.dag_mut() {
            for (name, task) in &mut dag.tasks {
                task.display_name.get_or_insert_with(|| name.clone());
            }
        }
    }
    p
}

#[test]
fn every_corpus_pipeline_exports_back_to_the_same_ir() {
    for path in yaml_files(CORPUS) {
        let name = path.display();
        let ir = KfpPipeline::from_values(&load(&path)).and_then(|k| k.to_pipeline()).unwrap();
        let exported = KfpPipeline::from_pipeline(&ir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let reread = KfpPipeline::from_values(&exported.to_values()).unwrap();
        let again = reread.to_pipeline().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(named_tasks(again), named_tasks(ir.clone()), "{name}");
        Plan::new(ir).unwrap();
    }
}

#[test]
fn every_invalid_corpus_pipeline_is_rejected_at_the_named_path() {
    let expected = [
        ("missing_component.yaml", "root.dag.tasks.print-text-2.componentRef.name"),
        ("missing_dependent_task.yaml", "root.dag.tasks.print-text-2.dependentTasks"),
        (
            "missing_output_parameter.yaml",
            "root.dag.tasks.print-op.inputs.parameters.message.taskOutputParameter.outputParameterKey",
        ),
        ("task_cycle.yaml", "root.dag.tasks.print-text"),
        ("unknown_executor_kind.yaml", "deploymentSpec.executors.exec-write-to-gcs"),
    ];
    let files = yaml_files(&format!("{CORPUS}/invalid"));
    assert_eq!(files.len(), expected.len());
    for (file, path) in expected {
        let docs = load(&PathBuf::from(format!("{CORPUS}/invalid/{file}")));
        // Broken files still read and write back losslessly; validation rejects them.
        let kfp = KfpPipeline::from_values(&docs).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(kfp.to_values(), docs, "{file}");
        let err = kfp.validate().expect_err(file);
        assert_eq!(err.path(), Some(path), "{file}: {err}");
        match file {
            "task_cycle.yaml" => assert!(
                matches!(&err, Error::Cycle { cycle, .. } if cycle == &["print-text", "print-text-3", "print-text"]),
                "{err}"
            ),
            "unknown_executor_kind.yaml" => assert!(err.to_string().contains("shellScript"), "{err}"),
            "missing_component.yaml" => assert!(err.to_string().contains("comp-print-text-missing"), "{err}"),
            "missing_dependent_task.yaml" => assert!(err.to_string().contains("print-txt"), "{err}"),
            _ => {}
        }
    }
}
