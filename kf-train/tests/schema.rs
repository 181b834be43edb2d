//! The JSON schema derived from the wire types (feature `kube`) against the
//! upstream CRDs in ../shared/corpus/trainer/schema, property by property:
//! every property the CRD defines is either modelled with the CRD's type,
//! kept whole as data (pod specs, failure policies), or kept untyped in an
//! `extra` map. The last kind, and anything else that differs, is listed in
//! `KNOWN_DIFFERENCES` below so that a new difference fails the test and a
//! fixed one must be removed from the list.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use kf_train::{TrainJob, TrainingRuntime};
use serde_json::Value;

/// Differences between our types and the CRDs, with why they are acceptable.
/// Every one of them round-trips: the `extra` maps keep these fields verbatim.
const KNOWN_DIFFERENCES: &[&str] = &[
    // A batch/v1 JobSpec: kf types the fields launches read (parallelism,
    // completions, template) and keeps the others verbatim.
    "JOB.spec.activeDeadlineSeconds: kept untyped in extra",
    "JOB.spec.backoffLimit: kept untyped in extra",
    "JOB.spec.backoffLimitPerIndex: kept untyped in extra",
    "JOB.spec.completionMode: kept untyped in extra",
    "JOB.spec.managedBy: kept untyped in extra",
    "JOB.spec.manualSelector: kept untyped in extra",
    "JOB.spec.maxFailedIndexes: kept untyped in extra",
    "JOB.spec.podFailurePolicy: kept untyped in extra",
    "JOB.spec.podReplacementPolicy: kept untyped in extra",
    "JOB.spec.selector: kept untyped in extra",
    "JOB.spec.successPolicy: kept untyped in extra",
    "JOB.spec.suspend: kept untyped in extra",
    "JOB.spec.ttlSecondsAfterFinished: kept untyped in extra",
    // Embedded ObjectMeta: finalizers are allowed but never read.
    "JOB.metadata.finalizers: kept untyped in extra",
    "JOB.spec.template.metadata.finalizers: kept untyped in extra",
    "PATCH.metadata.finalizers: kept untyped in extra",
    "PATCH_JOB.metadata.finalizers: kept untyped in extra",
    "PATCH_JOB.spec.template.metadata.finalizers: kept untyped in extra",
    "TEMPLATE.metadata.finalizers: kept untyped in extra",
    // A runtime patch reuses the runtime's JobSet template type, whose schema
    // is wider than the patch's: `TrainJob::validate` rejects these fields in
    // a patch with `Error::UnknownField`, as strict field validation does.
    "PATCH.spec.coordinator: ours models it, the CRD does not",
    "PATCH.spec.failurePolicy: ours models it, the CRD does not",
    "PATCH.spec.managedBy: ours models it, the CRD does not",
    "PATCH.spec.network: ours models it, the CRD does not",
    "PATCH.spec.replicatedJobs[].dependsOn: ours models it, the CRD does not",
    "PATCH.spec.replicatedJobs[].groupName: ours models it, the CRD does not",
    "PATCH.spec.replicatedJobs[].replicas: ours models it, the CRD does not",
    "PATCH.spec.startupPolicy: ours models it, the CRD does not",
    "PATCH.spec.successPolicy: ours models it, the CRD does not",
    "PATCH.spec.suspend: ours models it, the CRD does not",
    "PATCH.spec.ttlSecondsAfterFinished: ours models it, the CRD does not",
    "PATCH.spec.volumeClaimPolicies: ours models it, the CRD does not",
    "PATCH_JOB.spec.completions: ours models it, the CRD does not",
    "PATCH_JOB.spec.parallelism: ours models it, the CRD does not",
];

fn crd(file: &str) -> Value {
    let path = format!("{}/../../shared/corpus/trainer/schema/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Follows `$ref` and unwraps `Option` (`anyOf [T, null]` / `type: [T, "null"]`).
fn resolve<'a>(schema: &'a Value, root: &'a Value) -> &'a Value {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(&root["$defs"][name], root);
    }
    if let Some(variants) = schema.get("anyOf").and_then(Value::as_array)
        && let Some(non_null) = variants.iter().find(|v| v.get("type") != Some(&Value::from("null")))
    {
        return resolve(non_null, root);
    }
    schema
}

fn type_of(schema: &Value) -> Option<String> {
    match schema.get("type")? {
        Value::String(t) => Some(t.clone()),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").map(str::to_string),
        _ => None,
    }
}

#[derive(Default)]
struct Comparison {
    /// Properties whose name and type agree (or that ours keeps whole).
    matched: usize,
    differences: Vec<String>,
}

fn compare(upstream: &Value, ours: &Value, root: &Value, path: &str, out: &mut Comparison) {
    let ours = resolve(ours, root);
    if let (Some(expected), Some(found)) = (type_of(upstream), type_of(ours))
        && expected != found
    {
        out.differences.push(format!("{path}: CRD type {expected}, ours {found}"));
        return;
    }
    if upstream.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return; // free-form in the CRD; ours keeps it as data
    }
    if ours == &Value::Bool(true) || (type_of(ours).is_none() && ours.get("properties").is_none()) {
        return; // ours keeps this Kubernetes sub-object whole, as data (a pod spec, a failure policy)
    }
    let empty = serde_json::Map::new();
    let theirs_props = upstream.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let ours_props = ours.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    for (name, child) in theirs_props {
        let here = format!("{path}.{name}");
        match ours_props.get(name) {
            Some(mine) => {
                out.matched += 1;
                compare(child, mine, root, &here, out);
            }
            None if ours.get("additionalProperties") == Some(&Value::Bool(true)) => {
                out.differences.push(format!("{here}: kept untyped in extra"));
            }
            None => out.differences.push(format!("{here}: the CRD defines it, ours cannot hold it")),
        }
    }
    if !theirs_props.is_empty() {
        for name in ours_props.keys().filter(|k| !theirs_props.contains_key(*k)) {
            out.differences.push(format!("{path}.{name}: ours models it, the CRD does not"));
        }
    }
    if let Some(items) = upstream.get("items") {
        match ours.get("items") {
            Some(mine) => compare(items, mine, root, &format!("{path}[]"), out),
            None => out.differences.push(format!("{path}: the CRD has a list, ours does not")),
        }
    }
    if let Some(values) = upstream.get("additionalProperties").filter(|v| v.is_object())
        && let Some(mine) = ours.get("additionalProperties")
    {
        compare(values, mine, root, &format!("{path}.*"), out);
    }
}

fn compare_crd(file: &str, ours: &Value) -> Comparison {
    let crd = crd(file);
    let versions = crd["spec"]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{file}: the CRD serves one version");
    assert_eq!(versions[0]["name"], "v1alpha1");
    let mut out = Comparison::default();
    compare(&versions[0]["schema"]["openAPIV3Schema"], ours, ours, "", &mut out);
    out
}

/// Shortens the paths of the JobSet template so one list covers the places
/// it appears: `TEMPLATE`/`JOB` in a runtime (and a replicated job of it),
/// `PATCH`/`PATCH_JOB` in a TrainJob's runtime patch.
fn normalise(difference: &str) -> String {
    for (prefix, template, job) in [
        (".spec.template", "TEMPLATE", "JOB"),
        (".spec.runtimePatches[].trainingRuntimeSpec.template", "PATCH", "PATCH_JOB"),
    ] {
        if let Some(rest) = difference.strip_prefix(&format!("{prefix}.spec.replicatedJobs[].template")) {
            return format!("{job}{rest}");
        }
        if let Some(rest) = difference.strip_prefix(prefix) {
            return format!("{template}{rest}");
        }
    }
    difference.to_string()
}

fn assert_known(file: &str, comparison: &Comparison, minimum: usize) {
    assert!(comparison.matched >= minimum, "{file}: only {} properties compared", comparison.matched);
    let mut found: Vec<String> = comparison.differences.iter().map(|d| normalise(d)).collect();
    found.sort();
    found.dedup();
    let unknown: Vec<&String> = found.iter().filter(|d| !KNOWN_DIFFERENCES.contains(&d.as_str())).collect();
    assert!(unknown.is_empty(), "{file}: differences not in KNOWN_DIFFERENCES:\n{unknown:#?}");
}

#[test]
fn the_trainjob_type_matches_its_crd() {
    let ours = serde_json::to_value(schemars::schema_for!(TrainJob)).unwrap();
    let comparison = compare_crd("trainer.kubeflow.org_trainjobs.yaml", &ours);
    assert_known("trainjobs", &comparison, 60);
}

#[test]
fn the_runtime_type_matches_both_runtime_crds() {
    let ours = serde_json::to_value(schemars::schema_for!(TrainingRuntime)).unwrap();
    for file in ["trainer.kubeflow.org_trainingruntimes.yaml", "trainer.kubeflow.org_clustertrainingruntimes.yaml"] {
        let comparison = compare_crd(file, &ours);
        assert_known(file, &comparison, 40);
    }
}

/// Every listed difference still exists in at least one CRD: a fixed one
/// must leave the list.
#[test]
fn every_known_difference_is_still_real() {
    let job = serde_json::to_value(schemars::schema_for!(TrainJob)).unwrap();
    let runtime = serde_json::to_value(schemars::schema_for!(TrainingRuntime)).unwrap();
    let mut all: Vec<String> = Vec::new();
    for (file, ours) in [
        ("trainer.kubeflow.org_trainjobs.yaml", &job),
        ("trainer.kubeflow.org_trainingruntimes.yaml", &runtime),
        ("trainer.kubeflow.org_clustertrainingruntimes.yaml", &runtime),
    ] {
        all.extend(compare_crd(file, ours).differences.iter().map(|d| normalise(d)));
    }
    for known in KNOWN_DIFFERENCES {
        assert!(all.iter().any(|d| d == known), "{known}: no longer a difference; remove it from the list");
    }
}

/// The comparison itself: a wrong type, a missing property and a property
/// the CRD lacks are each reported.
#[test]
fn the_comparison_reports_each_kind_of_difference() {
    let upstream = serde_json::json!({"type": "object", "properties": {
        "a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "object", "properties": {"d": {"type": "string"}}}}});
    let ours = serde_json::json!({"type": "object", "properties": {
        "a": {"type": "string"}, "c": {"type": "object", "additionalProperties": true, "properties": {}}, "e": {"type": "string"}}});
    let mut out = Comparison::default();
    compare(&upstream, &ours, &ours, "", &mut out);
    out.differences.sort();
    assert_eq!(
        out.differences,
        [
            ".a: CRD type integer, ours string",
            ".b: the CRD defines it, ours cannot hold it",
            ".c.d: kept untyped in extra",
            ".e: ours models it, the CRD does not",
        ]
    );
}

/// The `kube::CustomResource` types: each generated CRD names the same
/// group, kind, plural, singular, scope and served version as upstream's,
/// with the status subresource where upstream has it; and corpus documents
/// read as the typed resources with the same spec as the wire types.
#[test]
fn the_custom_resource_types_match_the_upstream_crds() {
    use kf_train::{ClusterTrainingRuntimeResource, TrainJobResource, TrainingRuntimeResource};
    use kube::core::CustomResourceExt;
    let ours = [
        (serde_json::to_value(TrainJobResource::crd()).unwrap(), "trainer.kubeflow.org_trainjobs.yaml"),
        (serde_json::to_value(TrainingRuntimeResource::crd()).unwrap(), "trainer.kubeflow.org_trainingruntimes.yaml"),
        (
            serde_json::to_value(ClusterTrainingRuntimeResource::crd()).unwrap(),
            "trainer.kubeflow.org_clustertrainingruntimes.yaml",
        ),
    ];
    for (generated, file) in ours {
        let upstream = crd(file);
        for pointer in [
            "/metadata/name",
            "/spec/group",
            "/spec/scope",
            "/spec/names/kind",
            "/spec/names/plural",
            "/spec/names/singular",
        ] {
            assert_eq!(generated.pointer(pointer), upstream.pointer(pointer), "{file}: {pointer}");
        }
        let served = |crd: &Value| -> Vec<(String, bool)> {
            crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v["name"].as_str().unwrap().to_string(), v.pointer("/subresources/status").is_some()))
                .collect()
        };
        assert_eq!(served(&generated), served(&upstream), "{file}: versions and status subresource");
    }

    let corpus = |name: &str| -> Value {
        let path = format!("{}/../../shared/corpus/trainer/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let job = corpus("docs__user-guides__trainjob-lifecycle.block0.yaml");
    let typed: TrainJobResource = serde_json::from_value(job.clone()).unwrap();
    assert_eq!(Some(&typed.spec), TrainJob::from_value(job).unwrap().spec.as_ref());
    let runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    let typed: ClusterTrainingRuntimeResource = serde_json::from_value(runtime.clone()).unwrap();
    assert_eq!(Some(&typed.spec.0), TrainingRuntime::from_value(runtime).unwrap().spec.as_ref());
}
