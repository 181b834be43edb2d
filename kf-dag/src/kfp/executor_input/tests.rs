use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::ir::{ArtifactSpec, ParameterSpec, Pipeline};
use crate::kfp::KfpPipeline;

const LIGHTWEIGHT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/kfp/lightweight_python_functions_with_outputs.yaml");

fn lightweight() -> Pipeline {
    let text = std::fs::read_to_string(LIGHTWEIGHT).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    KfpPipeline::from_values(&docs).unwrap().to_pipeline().unwrap()
}

fn container<'a>(p: &'a Pipeline, component: &str) -> &'a ContainerSpec {
    match p.executor_of(component) {
        Some(crate::ir::Executor::Container(c)) => c,
        other => panic!("{component}: {other:?}"),
    }
}

fn facts() -> RunFacts {
    RunFacts { job_name: "functions-with-outputs-1".into(), task_name: "add-numbers".into(), ..RunFacts::default() }
}

/// The argument after `--executor_input`, parsed.
fn executor_input_arg(line: &[String]) -> Value {
    let at = line.iter().position(|a| a == "--executor_input").unwrap();
    serde_json::from_str(&line[at + 1]).unwrap()
}

#[test]
fn a_lightweight_component_gets_the_executor_input_kfp_reads() {
    let p = lightweight();
    let add = &p.components["comp-add-numbers"];
    let given = [("first".to_owned(), json!(1.0)), ("second".to_owned(), json!(2))].into();
    let input = executor_input(add, &given, &BTreeMap::new(), "/root/run/add-numbers/").unwrap();
    let root = PipelineRoot::new("/root");
    let s = Substitution { input: &input, run: &facts(), root: &root };
    let line = s.command_line(container(&p, "comp-add-numbers")).unwrap();
    // command (7) + args (4): sh -c <pip>, sh -ec <runner>, <source>, --executor_input {{$}} --function_to_execute f
    assert_eq!(line.len(), 11);
    assert_eq!(&line[9..], ["--function_to_execute", "add_numbers"]);
    assert!(line[6].contains("def add_numbers(first: int, second: int) -> int:"));
    // What kfp.dsl.executor.Executor reads: ints for NUMBER_INTEGER, the output file layout.
    assert_eq!(
        executor_input_arg(&line),
        json!({
            "inputs": {"parameterValues": {"first": 1, "second": 2}},
            "outputs": {
                "parameters": {"Output": {"outputFile": "/root/run/add-numbers/Output"}},
                "outputFile": "/root/run/add-numbers/executor_output.json",
            },
        })
    );
    // Python's json.dumps spacing, as kfp.local passes it.
    assert!(line[8].starts_with(r#"{"inputs": {"parameterValues": {"first": 1, "second": 2}}"#), "{}", line[8]);
}

#[test]
fn artifacts_travel_in_and_out_as_kfp_lays_them_out() {
    let p = lightweight();
    let tuple = &p.components["comp-output-named-tuple"];
    let upstream = RuntimeArtifact::new("Output", &ArtifactType::dataset(), "/root/run/output-artifact/Output");
    let artifacts = [("artifact".to_owned(), vec![upstream])].into();
    let input = executor_input(tuple, &BTreeMap::new(), &artifacts, "/root/run/output-named-tuple").unwrap();
    let root = PipelineRoot::new("/root");
    let s = Substitution { input: &input, run: &facts(), root: &root };
    let json = executor_input_arg(&s.command_line(container(&p, "comp-output-named-tuple")).unwrap());
    let dataset = &json["inputs"]["artifacts"]["artifact"]["artifacts"][0];
    assert_eq!(dataset["uri"], "/root/run/output-artifact/Output");
    assert_eq!(dataset["type"]["schemaTitle"], "system.Dataset");
    for (name, title) in [("metrics", "system.Metrics"), ("model", "system.Model")] {
        let out = &json["outputs"]["artifacts"][name]["artifacts"][0];
        assert_eq!(out["name"], name);
        assert_eq!(out["uri"], format!("/root/run/output-named-tuple/{name}"));
        assert_eq!(out["type"], json!({"schemaTitle": title, "schemaVersion": "0.0.1"}));
        assert_eq!(out["metadata"], json!({}));
    }
    assert_eq!(json["outputs"]["parameters"]["scalar"]["outputFile"], "/root/run/output-named-tuple/scalar");

    // What kfp's executor writes back (Executor.write_executor_output).
    let written = r#"{"parameterValues": {"scalar": "123"}, "artifacts": {
        "metrics": {"artifacts": [{"name": "metrics", "uri": "/root/run/output-named-tuple/metrics", "metadata": {}}]},
        "model": {"artifacts": [{"name": "model", "uri": "/root/run/output-named-tuple/model", "metadata": {"framework": "none"}}]}}}"#;
    let out = task_outputs(tuple, &input, Some(written), &BTreeMap::new()).unwrap();
    assert_eq!(out.parameters, [("scalar".to_owned(), json!("123"))].into());
    assert_eq!(out.artifacts["model"][0].metadata["framework"], json!("none"));
    assert_eq!(
        out.artifacts["metrics"][0].artifact_type.as_ref().unwrap().schema_title.as_deref(),
        Some("system.Metrics")
    );
}

#[test]
fn container_components_write_output_files_instead() {
    let mut c = Component::leaf("exec");
    for (name, ty) in [
        ("text", ParameterType::String),
        ("n", ParameterType::NumberInteger),
        ("ok", ParameterType::Boolean),
        ("items", ParameterType::List),
    ] {
        c.outputs.parameters.insert(name.into(), ParameterSpec::new(ty));
    }
    c.outputs.artifacts.insert("data".into(), ArtifactSpec::new(ArtifactType::dataset()));
    let input = executor_input(&c, &BTreeMap::new(), &BTreeMap::new(), "/r/t").unwrap();
    let files = [
        ("text".to_owned(), "hello\n".to_owned()),
        ("n".to_owned(), "3".to_owned()),
        ("ok".to_owned(), "True".to_owned()),
        ("items".to_owned(), "[1, \"a\"]".to_owned()),
    ]
    .into();
    let out = task_outputs(&c, &input, None, &files).unwrap();
    assert_eq!(out.parameters["text"], json!("hello\n"));
    assert_eq!(out.parameters["n"], json!(3));
    assert_eq!(out.parameters["ok"], json!(true));
    assert_eq!(out.parameters["items"], json!([1.0, "a"]));
    // No executor output: the artifact is where the executor input put it.
    assert_eq!(out.artifacts["data"][0].uri, "/r/t/data");
}

#[test]
fn malformed_output_is_a_clear_error() {
    let mut c = Component::leaf("exec");
    c.outputs.parameters.insert("n".into(), ParameterSpec::new(ParameterType::NumberInteger));
    c.outputs.parameters.insert("items".into(), ParameterSpec::new(ParameterType::List));
    c.outputs.artifacts.insert("model".into(), ArtifactSpec::new(ArtifactType::model()));
    let input = executor_input(&c, &BTreeMap::new(), &BTreeMap::new(), "/r/t").unwrap();
    let none = BTreeMap::new();
    let cases: [(&str, Option<&str>, BTreeMap<String, String>); 7] = [
        ("executor output", Some("{not json"), none.clone()),
        ("executor output: parameterValues", Some(r#"{"parameterValues": [1]}"#), none.clone()),
        ("executor output: parameterValues.n", Some(r#"{"parameterValues": {"n": "three"}}"#), none.clone()),
        ("executor output: parameterValues.n", Some(r#"{"parameterValues": {"n": 2.5}}"#), none.clone()),
        ("executor output: parameterValues", Some(r#"{"parameterValues": {"m": 1}}"#), none.clone()),
        (
            "executor output: artifacts.model.artifacts",
            Some(r#"{"artifacts": {"model": {"artifacts": []}}}"#),
            none.clone(),
        ),
        ("outputs.parameters.items", None, [("items".to_owned(), "[1, 2".to_owned())].into()),
    ];
    for (path, written, files) in cases {
        let err = task_outputs(&c, &input, written, &files).unwrap_err();
        assert_eq!(err.path(), Some(path), "{written:?}: {err}");
    }
    let err = task_outputs(&c, &input, None, &[("items".to_owned(), "[1, 2".to_owned())].into()).unwrap_err();
    assert!(err.to_string().contains("/r/t/items"), "the file is named: {err}");
}

#[test]
fn inputs_are_checked_defaulted_and_resolved() {
    let mut c = Component::leaf("exec");
    c.inputs.parameters.insert("lr".into(), ParameterSpec::new(ParameterType::NumberDouble).with_default(json!(1)));
    c.inputs.parameters.insert("name".into(), ParameterSpec::new(ParameterType::String));
    let mut maybe = ParameterSpec::new(ParameterType::String);
    maybe.optional = true;
    c.inputs.parameters.insert("maybe".into(), maybe);
    c.inputs.artifacts.insert("data".into(), ArtifactSpec::new(ArtifactType::dataset()));
    let data = [("data".to_owned(), vec![RuntimeArtifact::new("data", &ArtifactType::dataset(), "/d")])].into();
    let given: BTreeMap<String, Value> = [
        ("name".to_owned(), json!("run-{{$.inputs.parameters['pipelinechannel--n']}}")),
        ("pipelinechannel--n".to_owned(), json!(7)),
    ]
    .into();
    let input = executor_input(&c, &given, &data, "/r/t").unwrap();
    let values = &input.inputs.parameter_values;
    assert_eq!(values["lr"], json!(1.0), "a default goes through protobuf: a double");
    assert_eq!(values["name"], json!("run-7.0"), "f-strings resolve, numbers are doubles as in kfp.local");
    assert!(!values.contains_key("maybe"));

    let missing = executor_input(&c, &BTreeMap::new(), &data, "/r/t").unwrap_err();
    assert!(matches!(&missing, Error::MissingInput { input, .. } if input == "name"), "{missing}");
    let wrong = executor_input(&c, &[("name".to_owned(), json!(3))].into(), &data, "/r/t").unwrap_err();
    assert_eq!(wrong.path(), Some("inputs.parameters.name"));
    let no_data = executor_input(&c, &given, &BTreeMap::new(), "/r/t").unwrap_err();
    assert!(matches!(&no_data, Error::MissingInput { input, .. } if input == "data"), "{no_data}");
    let two = [("data".to_owned(), vec![RuntimeArtifact::default(), RuntimeArtifact::default()])].into();
    assert_eq!(executor_input(&c, &given, &two, "/r/t").unwrap_err().path(), Some("inputs.artifacts.data"));
}

#[test]
fn structured_placeholders_expand_like_kfp_local() {
    let text = || Arg::parse("{{$.inputs.parameters['text']}}").unwrap();
    let mut c = ContainerSpec::new("x");
    c.command = vec![
        Arg::IfPresent {
            input: "text".into(),
            then: vec![Arg::from("--text"), text()],
            otherwise: vec![Arg::from("none")],
        },
        Arg::IfPresent { input: "other".into(), then: vec![Arg::from("--other")], otherwise: vec![] },
        Arg::Concat(vec![
            Arg::from("a="),
            Arg::IfPresent { input: "text".into(), then: vec![text(), Arg::from("!")], otherwise: vec![] },
            Arg::Concat(vec![Arg::from("-"), Arg::parse("{{$.pipeline_task_name}}").unwrap()]),
        ]),
        Arg::parse("{{$.inputs.parameters['absent']}} {{$.outputs.output_file}} {{$.pipeline_root}}").unwrap(),
    ];
    let mut input = ExecutorInput::default();
    input.inputs.parameter_values.insert("text".into(), json!("hi"));
    input.inputs.parameter_values.insert("other".into(), Value::Null);
    input.outputs.output_file = "/r/out.json".into();
    let run = RunFacts { task_name: "t".into(), pipeline_root: "gs://b/root".into(), ..RunFacts::default() };
    let root = PipelineRoot::new("/r");
    let s = Substitution { input: &input, run: &run, root: &root };
    assert_eq!(s.command_line(&c).unwrap(), ["--text", "hi", "a=hi!-t", "null /r/out.json gs://b/root"]);
}

#[test]
fn artifact_paths_of_remote_uris_map_under_the_local_root() {
    let mut input = ExecutorInput::default();
    let mut model = RuntimeArtifact::new("m", &ArtifactType::model(), "gs://bucket/models/m");
    model.metadata.insert("accuracy".into(), json!(0.5));
    input.inputs.artifacts.insert("m".into(), ArtifactList { artifacts: vec![model] });
    let mut c = ContainerSpec::new("x");
    c.args = ["uri", "path", "metadata"]
        .iter()
        .map(|f| Arg::parse(&format!("{{{{$.inputs.artifacts['m'].{f}}}}}")).unwrap())
        .collect();
    let root = PipelineRoot::new("/tmp/kf");
    let s = Substitution { input: &input, run: &RunFacts::default(), root: &root };
    assert_eq!(
        s.command_line(&c).unwrap(),
        ["gs://bucket/models/m", "/tmp/kf/gcs/bucket/models/m", "{\"accuracy\": 0.5}"]
    );
    input.inputs.artifacts.get_mut("m").unwrap().artifacts[0].uri = "https://example.com/m".into();
    let s = Substitution { input: &input, run: &RunFacts::default(), root: &root };
    assert_eq!(s.command_line(&c).unwrap_err().path(), Some("uri"));
}

#[test]
fn pipeline_roots_map_like_kfp_mounts() {
    let root = PipelineRoot::new("/");
    assert_eq!(root.local_path("gs://b/x").unwrap(), "/gcs/b/x", "kfp's own in-container layout");
    assert_eq!(root.uri(), "/");
    assert_eq!(root.task_root("r", "t").unwrap(), "/r/t");
    let local = PipelineRoot::new("/tmp/out/");
    assert_eq!(local.task_root("r", "t").unwrap(), "/tmp/out/r/t");
    assert_eq!(local.local_path("file:///data/x").unwrap(), "/data/x");
    assert!(local.local_path("data/x").is_err());
    assert!(local.task_root("..", "t").is_err());
    assert!(local.task_root("r", "a/b").is_err());
    assert!(PipelineRoot::remote("/tmp", "oci://x").is_err());
    let s3 = PipelineRoot::remote("/tmp", "s3://bucket/p/").unwrap();
    assert_eq!(s3.uri(), "s3://bucket/p");
    assert_eq!(s3.task_root("r", "t").unwrap(), "/tmp/s3/bucket/p/r/t");
    assert_eq!(s3.remote_uri("/tmp/s3/bucket/p/r/t/model").as_deref(), Some("s3://bucket/p/r/t/model"));
    assert_eq!(s3.remote_uri("/elsewhere/x"), None);
}

#[test]
fn floats_print_as_python_repr() {
    let cases = [
        (0.1, "0.1"),
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (1.5e-5, "1.5e-05"),
        (0.0001, "0.0001"),
        (123456789.123, "123456789.123"),
        (1e22, "1e+22"),
        (5e-324, "5e-324"),
        (-2.5e-100, "-2.5e-100"),
        (f64::MAX, "1.7976931348623157e+308"),
    ];
    for (f, python) in cases {
        assert_eq!(python_float(f), python, "{f:e}");
    }
}

fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            // An i64 beyond 2^53 becomes the nearest double.
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && same_json(a, b))
        }
        _ => a == b,
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn python_json_reads_back_as_the_same_value(value in json_value()) {
        let text = python_json(&value);
        prop_assert!(text.is_ascii(), "ensure_ascii: {text}");
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, value);
    }

    #[test]
    fn python_floats_read_back_exactly(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let text = python_float(f);
        prop_assert_eq!(text.parse::<f64>().unwrap().to_bits(), f.to_bits(), "{}", text);
        prop_assert!(text.contains('.') || text.contains('e'), "a float never prints as an integer: {}", text);
    }

    #[test]
    fn remote_uris_map_to_local_paths_and_back(
        scheme in 0usize..3,
        segments in proptest::collection::vec("[a-zA-Z0-9_.-]{1,8}", 1..5),
    ) {
        prop_assume!(segments.iter().all(|s| s != ".."));
        let root = PipelineRoot::new("/tmp/kf");
        let uri = format!("{}{}", REMOTE_SCHEMES[scheme].0, segments.join("/"));
        let path = root.local_path(&uri).unwrap();
        prop_assert!(path.starts_with("/tmp/kf/"));
        prop_assert_eq!(root.remote_uri(&path), Some(uri));
    }

    #[test]
    fn protobuf_values_keep_their_shape(value in json_value()) {
        let pb = protobuf_value(&value);
        // Same JSON up to number representation; every number a double.
        fn all_doubles(v: &Value) -> bool {
            match v {
                Value::Number(n) => n.is_f64(),
                Value::Array(items) => items.iter().all(all_doubles),
                Value::Object(fields) => fields.values().all(all_doubles),
                _ => true,
            }
        }
        prop_assert!(all_doubles(&pb));
        prop_assert!(same_json(&pb, &value));
        prop_assert_eq!(serde_json::from_str::<Value>(&python_json(&pb)).unwrap(), pb.clone());
        prop_assert_eq!(protobuf_value(&pb), pb.clone(), "idempotent");
    }
}

#[test]
fn an_exit_handler_gets_the_final_status_kfp_reads() {
    let mut notify = Component::leaf("exec");
    notify.inputs.parameters.insert("status".into(), ParameterSpec::new(ParameterType::TaskFinalStatus));
    let status = task_final_status("local-pipeline-fail-op", "fail-op", Some("Task fail-op failed."));
    let input = executor_input(&notify, &[("status".to_owned(), status)].into(), &BTreeMap::new(), "/r/t").unwrap();
    // As kfp.local hands it over: through protobuf, so the error code is a double.
    assert_eq!(
        input.inputs.parameter_values["status"],
        json!({
            "state": "FAILED",
            "pipeline_job_resource_name": "local-pipeline-fail-op",
            "pipeline_task_name": "fail-op",
            "error": {"code": 1.0, "message": "Task fail-op failed."},
        })
    );
    let wrong = executor_input(&notify, &[("status".to_owned(), json!("FAILED"))].into(), &BTreeMap::new(), "/r/t");
    assert_eq!(wrong.unwrap_err().path(), Some("inputs.parameters.status"));
}
