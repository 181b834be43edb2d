//! Reads KServe manifests, validates them and says what each one serves.
//!
//! ```text
//! cargo run -p kf-serve --example serving_manifests -- FILE.yaml...
//! ```
//!
//! Without arguments it reads the shared corpus (../shared/corpus/kserve).

use std::path::PathBuf;

use kf_serve::kserve::{Manifest, inference_graph::StepTarget};

fn describe(manifest: &Manifest) -> String {
    match manifest {
        Manifest::InferenceService(isvc) => {
            let format = match isvc.model_format() {
                Some((name, Some(version))) => format!("{name} v{version}"),
                Some((name, None)) => name.to_string(),
                None => "custom container".to_string(),
            };
            let predictor = isvc.predictor();
            let canary = predictor.and_then(|p| p.canary_traffic_percent).map(|p| format!(", canary {p}%"));
            let storage = predictor.and_then(|p| p.storage_uri()).map(|s| format!(" from {s}"));
            format!(
                "InferenceService {}: {format}{}{}{}{}",
                isvc.name().unwrap_or("?"),
                storage.unwrap_or_default(),
                canary.unwrap_or_default(),
                if isvc.has_transformer() { ", with transformer" } else { "" },
                if isvc.has_explainer() { ", with explainer" } else { "" },
            )
        }
        Manifest::InferenceGraph(graph) => {
            let root = graph.root().and_then(|r| r.router_type).map(|t| format!("{t:?}")).unwrap_or_default();
            let targets: Vec<String> = graph
                .root()
                .and_then(|r| r.steps.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|s| match s.target()? {
                    StepTarget::Node(n) => Some(format!("node {n}")),
                    StepTarget::Service(s) => Some(s.to_string()),
                    StepTarget::Url(u) => Some(u.to_string()),
                })
                .collect();
            format!("InferenceGraph: {root} over {}", targets.join(", "))
        }
        Manifest::ServingRuntime(runtime) => {
            let spec = runtime.spec.as_ref();
            let formats: Vec<String> = spec
                .and_then(|s| s.supported_model_formats.as_ref())
                .into_iter()
                .flatten()
                .map(|f| f.name.clone() + f.version.as_deref().map(|v| format!(" v{v}")).as_deref().unwrap_or(""))
                .collect();
            let protocols = spec.and_then(|s| s.protocol_versions.clone()).unwrap_or_default();
            format!(
                "{} {}: {} over {}",
                runtime.kind,
                runtime.name().unwrap_or("?"),
                formats.join(", "),
                protocols.join("/")
            )
        }
        _ => "another kind".to_string(),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kserve");
        files = std::fs::read_dir(dir)?
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
    }
    let mut failed = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)?;
        let doc: serde_json::Value = serde_saphyr::from_str(&text)?;
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        match Manifest::from_value(doc).and_then(|m| m.validate().map(|()| m)) {
            Ok(manifest) => println!("ok    {name}: {}", describe(&manifest)),
            Err(err) => {
                failed += 1;
                println!("FAIL  {name}: {err}");
            }
        }
    }
    println!("{} of {} documents valid", files.len() - failed, files.len());
    Ok(())
}
