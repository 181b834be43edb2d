//! `kf crds` against the upstream CRDs in ../shared/corpus/*/schema: the
//! same names, group, scope and version; the same required fields; every
//! field our types read exists upstream with the same type; and every
//! schema is structural (what the API server demands of a CRD).

use std::process::Command;

use serde_json::Value;

/// Differences that are known and acceptable, by path prefix and kind.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    // A runtime patch reuses the runtime's JobSet template type, whose schema
    // is wider than the patch's; `TrainJob::validate` rejects these fields in
    // a patch, as strict field validation does (see kf-train/tests/schema.rs).
    (
        "trainjobs.trainer.kubeflow.org.spec.runtimePatches[].trainingRuntimeSpec.template.spec.",
        "not in the upstream CRD",
    ),
    // KServe's predictor, transformer and explainer share one ComponentSpec in
    // kf-serve (the roles differ only in the implementations they allow);
    // `InferenceService::validate` rejects an implementation in a role that
    // does not allow it, as KServe's webhook does.
    ("inferenceservices.serving.kserve.io.spec.transformer.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.explainer.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.art", "not in the upstream CRD"),
    // The framework specs (sklearn, onnx, …) and `model` share one ModelSpec;
    // modelFormat and runtime exist only under `model` upstream, and
    // `validate` rejects them elsewhere.
    ("inferenceservices.serving.kserve.io.spec.predictor.sklearn.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.xgboost.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.tensorflow.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.pytorch.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.triton.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.onnx.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.huggingface.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.pmml.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.lightgbm.", "not in the upstream CRD"),
    ("inferenceservices.serving.kserve.io.spec.predictor.paddle.", "not in the upstream CRD"),
];

fn known(problem: &str) -> bool {
    KNOWN_DIFFERENCES.iter().any(|(prefix, what)| problem.starts_with(prefix) && problem.ends_with(what))
}

fn generated() -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_kf")).args(["--output", "json", "crds"]).output().expect("kf runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("a JSON array")
}

fn upstream(crd: &Value) -> Value {
    let group = crd["spec"]["group"].as_str().expect("group");
    let plural = crd["spec"]["names"]["plural"].as_str().expect("plural");
    let folder = match (group, plural) {
        ("kubeflow.org", "profiles") => "profiles",
        ("kubeflow.org", "experiments") => "katib",
        ("serving.kserve.io", _) => "kserve",
        _ => "trainer",
    };
    let path = format!("{}/../../../shared/corpus/{folder}/schema/{group}_{plural}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_saphyr::from_str(&text).expect("YAML")
}

/// Every problem that makes `schema` non-structural, by path.
fn structural_problems(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(map) = schema.as_object() else {
        out.push(format!("{path}: not an object"));
        return;
    };
    for key in ["$ref", "anyOf", "oneOf", "allOf", "definitions", "$defs"] {
        if map.contains_key(key) {
            out.push(format!("{path}: has {key}"));
        }
    }
    let typed = map.contains_key("type")
        || map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if !typed {
        out.push(format!("{path}: no type"));
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            structural_problems(sub, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = map.get("items") {
        structural_problems(items, &format!("{path}[]"), out);
    }
    if let Some(additional) = map.get("additionalProperties").filter(|a| a.is_object()) {
        structural_problems(additional, &format!("{path}{{}}"), out);
    }
}

/// Properties of ours that upstream lacks or types differently.
fn field_differences(ours: &Value, theirs: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(ours_props), theirs_props) =
        (ours.get("properties").and_then(Value::as_object), theirs.get("properties"))
    else {
        return;
    };
    for (name, sub) in ours_props {
        let at = format!("{path}.{name}");
        match theirs_props.and_then(|p| p.get(name)) {
            None if theirs.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {}
            None => out.push(format!("{at}: not in the upstream CRD")),
            Some(upstream) => {
                let (a, b) = (sub.get("type"), upstream.get("type"));
                if a.is_some() && b.is_some() && a != b {
                    out.push(format!("{at}: type {a:?} upstream {b:?}"));
                }
                field_differences(sub, upstream, &at, out);
                if let (Some(a), Some(b)) = (sub.get("items"), upstream.get("items")) {
                    field_differences(a, b, &format!("{at}[]"), out);
                }
            }
        }
    }
}

fn required(schema: &Value) -> Vec<String> {
    let mut r: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    r.sort();
    r
}

#[test]
fn generated_crds_match_the_upstream_ones() {
    let crds = generated();
    let names: Vec<&str> = crds.iter().filter_map(|c| c["metadata"]["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "trainjobs.trainer.kubeflow.org",
            "trainingruntimes.trainer.kubeflow.org",
            "clustertrainingruntimes.trainer.kubeflow.org",
            "profiles.kubeflow.org",
            "experiments.kubeflow.org",
            "inferenceservices.serving.kserve.io",
        ]
    );
    let mut problems = Vec::new();
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let theirs = upstream(crd);
        assert_eq!(crd["metadata"]["name"], theirs["metadata"]["name"]);
        for field in ["group", "scope"] {
            assert_eq!(crd["spec"][field], theirs["spec"][field], "{name}: {field}");
        }
        for field in ["kind", "plural", "singular"] {
            assert_eq!(crd["spec"]["names"][field], theirs["spec"]["names"][field], "{name}: names.{field}");
        }
        // Katib's CRD leaves listKind to the API server, which defaults it to `<kind>List`.
        let their_list_kind = match &theirs["spec"]["names"]["listKind"] {
            Value::Null => {
                Value::String(format!("{}List", theirs["spec"]["names"]["kind"].as_str().unwrap_or_default()))
            }
            list_kind => list_kind.clone(),
        };
        assert_eq!(crd["spec"]["names"]["listKind"], their_list_kind, "{name}: names.listKind");
        let version = &crd["spec"]["versions"][0];
        let their_version = theirs["spec"]["versions"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["name"] == version["name"]))
            .unwrap_or_else(|| panic!("{name}: upstream has no version {}", version["name"]));
        assert_eq!(their_version["storage"], true, "{name}: ours is upstream's storage version");
        let ours = &version["schema"]["openAPIV3Schema"];
        let upstream_schema = &their_version["schema"]["openAPIV3Schema"];
        structural_problems(ours, name, &mut problems);
        for part in ["spec", "status"] {
            let (a, b) = (&ours["properties"][part], &upstream_schema["properties"][part]);
            if required(a) != required(b) {
                problems.push(format!("{name}.{part}: required {:?}, upstream {:?}", required(a), required(b)));
            }
        }
        field_differences(ours, upstream_schema, name, &mut problems);
        if !their_version["subresources"]["status"].is_null() {
            assert!(version["subresources"]["status"].is_object(), "{name}: the status subresource");
        }
    }
    problems.retain(|p| !known(p));
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}
