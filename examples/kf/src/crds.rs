//! `kf crds`: the CustomResourceDefinitions of the kinds kf's controllers
//! reconcile, generated from the crates' wire types (their schemars schemas,
//! made structural the way kube-derive makes them), for `kubectl apply`.
//! A cluster that already runs Kubeflow has the upstream CRDs; these are for
//! a cluster that runs only kf (`kf operator`), and are tested against the
//! upstream ones in ../shared/corpus/*/schema.

use std::process::ExitCode;

use kube::core::schema::StructuralSchemaRewriter;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::output::OutputFormat;

/// One kind: its API group, version, names, scope and schema.
struct Kind {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    schema: fn() -> anyhow::Result<Value>,
}

fn kinds() -> [Kind; 6] {
    let trainer = |kind, plural, singular, namespaced, schema| Kind {
        group: "trainer.kubeflow.org",
        version: "v1alpha1",
        kind,
        plural,
        singular,
        namespaced,
        schema,
    };
    [
        trainer("TrainJob", "trainjobs", "trainjob", true, schema::<kf_train::TrainJob>),
        trainer("TrainingRuntime", "trainingruntimes", "trainingruntime", true, schema::<kf_train::TrainingRuntime>),
        trainer(
            "ClusterTrainingRuntime",
            "clustertrainingruntimes",
            "clustertrainingruntime",
            false,
            schema::<kf_train::TrainingRuntime>,
        ),
        Kind {
            group: "kubeflow.org",
            version: "v1",
            kind: "Profile",
            plural: "profiles",
            singular: "profile",
            namespaced: false,
            schema: schema::<kf_tenancy::Profile>,
        },
        Kind {
            group: "kubeflow.org",
            version: "v1beta1",
            kind: "Experiment",
            plural: "experiments",
            singular: "experiment",
            namespaced: true,
            schema: schema::<kf_tune::Experiment>,
        },
        Kind {
            group: "serving.kserve.io",
            version: "v1beta1",
            kind: "InferenceService",
            plural: "inferenceservices",
            singular: "inferenceservice",
            namespaced: true,
            schema: schema::<kf_serve::kserve::InferenceService>,
        },
    ]
}

/// `T`'s schema as a CRD's `openAPIV3Schema`: subschemas inlined, made
/// structural (flattened maps preserve unknown fields, enums rewritten), and
/// `metadata` left to the API server as CRDs require.
fn schema<T: JsonSchema>() -> anyhow::Result<Value> {
    let settings = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(StructuralSchemaRewriter);
    // The rewriter panics on schemas it cannot restructure; that is a
    // defect of a wire type, reported as an error rather than a crash.
    let generated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.into_generator().into_root_schema_for::<T>()
    }))
    .map_err(|_| anyhow::anyhow!("the schema of {} cannot be made structural", std::any::type_name::<T>()))?;
    let mut value = generated.to_value();
    preserve_untyped(&mut value);
    if let Some(map) = value.as_object_mut() {
        for key in ["$schema", "title", "definitions", "$defs", "description"] {
            map.remove(key);
        }
        map.insert("type".into(), json!("object"));
        if let Some(properties) = map.get_mut("properties").and_then(Value::as_object_mut) {
            properties.insert("metadata".into(), json!({"type": "object"}));
            properties.insert("apiVersion".into(), json!({"type": "string"}));
            properties.insert("kind".into(), json!({"type": "string"}));
        }
        // apiVersion, kind and metadata are the API server's to require.
        if let Some(required) = map.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|r| !matches!(r.as_str(), Some("apiVersion" | "kind" | "metadata")));
            if required.is_empty() {
                map.remove("required");
            }
        }
    }
    Ok(value)
}

/// Fields kept as free-form JSON (`serde_json::Value`: pod specs, failure
/// policies) have no type in the generated schema; a structural schema says
/// so with `x-kubernetes-preserve-unknown-fields`.
fn preserve_untyped(schema: &mut Value) {
    if let Value::Bool(true) = schema {
        *schema = json!({});
    }
    let Some(map) = schema.as_object_mut() else { return };
    let typed = ["type", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string"]
        .iter()
        .any(|k| map.contains_key(*k));
    if !typed {
        map.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    if let Some(properties) = map.get_mut("properties").and_then(Value::as_object_mut) {
        properties.values_mut().for_each(preserve_untyped);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get_mut(key).filter(|s| s.is_object() || *s == &Value::Bool(true)) {
            preserve_untyped(sub);
        }
    }
}

fn crd(kind: &Kind) -> anyhow::Result<Value> {
    Ok(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", kind.plural, kind.group)},
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": format!("{}List", kind.kind),
                "plural": kind.plural,
                "singular": kind.singular,
            },
            "scope": if kind.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [{
                "name": kind.version,
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": (kind.schema)()?},
                "subresources": {"status": {}},
            }],
        },
    }))
}

/// Prints every CRD: YAML documents, or a JSON array with `--output json`.
pub fn run(output: OutputFormat) -> ExitCode {
    let crds: anyhow::Result<Vec<Value>> = kinds().iter().map(crd).collect();
    let printed = crds.and_then(|crds| {
        match output {
            OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&crds)?),
            OutputFormat::Text => out!("{}", serde_saphyr::to_string_multiple(&crds)?),
        }
        anyhow::Ok(())
    });
    match printed {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kf crds: {err:#}");
            ExitCode::FAILURE
        }
    }
}
