use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::ir::{
    Arg, CachingOptions, Component, Condition, ContainerSpec, Executor, FunctionSpec, LoopItems, OutputRef,
    ParallelFor, ParameterSource, ParameterSpec, ParameterType, RetryPolicy, Task, Template, TriggerStrategy,
};

/// A small valid pipeline: `comp-echo` (input `text`, output `out`) run by two tasks.
fn base() -> Value {
    json!({
        "pipelineInfo": {"name": "p"},
        "components": {"comp-echo": {
            "executorLabel": "exec-echo",
            "inputDefinitions": {"parameters": {"text": {"parameterType": "STRING"}}},
            "outputDefinitions": {"parameters": {"out": {"parameterType": "STRING"}}},
        }},
        "deploymentSpec": {"executors": {"exec-echo": {"container": {
            "image": "python:3.11",
            "command": ["echo", "{{$.inputs.parameters['text']}}", "{{$.outputs.parameters['out'].output_file}}"],
        }}}},
        "root": {"dag": {"tasks": {
            "a": {"componentRef": {"name": "comp-echo"}, "taskInfo": {"name": "a"},
                  "inputs": {"parameters": {"text": {"runtimeValue": {"constant": "hi"}}}}},
            "b": {"componentRef": {"name": "comp-echo"}, "taskInfo": {"name": "b"}, "dependentTasks": ["a"],
                  "inputs": {"parameters": {"text": {"taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}}}}},
        }}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.14.3",
    })
}

fn error_of(doc: Value) -> Error {
    KfpPipeline::from_values(&[doc]).and_then(|k| k.validate()).expect_err("rejected")
}

#[test]
fn the_base_pipeline_validates() {
    let kfp = KfpPipeline::from_values(&[base()]).unwrap();
    kfp.validate().unwrap();
    let ir = kfp.to_pipeline().unwrap();
    // `a` is a data dependency of `b`: not an ordering-only `after`.
    assert!(ir.root_dag().unwrap().tasks["b"].after.is_empty());
}

#[test]
fn a_wrong_schema_version_is_rejected() {
    let mut doc = base();
    doc["schemaVersion"] = json!("3.0.0");
    let err = error_of(doc.clone());
    assert_eq!(err.path(), Some("schemaVersion"));
    assert!(err.to_string().contains("\"3.0.0\""), "{err}");
    doc.as_object_mut().unwrap().remove("schemaVersion");
    assert_eq!(error_of(doc).path(), Some("schemaVersion"));
}

#[test]
fn type_errors_name_the_field_path() {
    let mut doc = base();
    doc["root"]["dag"]["tasks"]["b"]["dependentTasks"] = json!("a");
    let err = KfpPipeline::from_values(&[doc]).unwrap_err();
    assert_eq!(err.path(), Some("root.dag.tasks.b.dependentTasks"), "{err}");
    let mut doc = base();
    doc["root"]["dag"]["tasks"]["a"]["componentRef"] = json!({});
    let err = KfpPipeline::from_values(&[doc]).unwrap_err();
    assert_eq!(err.path(), Some("root.dag.tasks.a.componentRef"), "{err}");
    assert!(err.to_string().contains("name"), "{err}");
}

#[test]
fn executor_kinds_are_checked() {
    let path = Some("deploymentSpec.executors.exec-echo");
    let mut doc = base();
    doc["deploymentSpec"]["executors"]["exec-echo"] = json!({});
    assert_eq!(error_of(doc).path(), path);
    let mut doc = base();
    doc["deploymentSpec"]["executors"]["exec-echo"]["importer"] = json!({"artifactUri": {"constant": "gs://x"}});
    let err = error_of(doc);
    assert_eq!(err.path(), path);
    assert!(err.to_string().contains("exactly one"), "{err}");
    let mut doc = base();
    doc["deploymentSpec"]["executors"]["exec-echo"] = json!({"resolver": {"outputArtifactQueries": {}}});
    let err = error_of(doc);
    assert_eq!(err.path(), Some("deploymentSpec.executors.exec-echo.resolver"), "{err}");
}

#[test]
fn wire_level_defects_name_their_path() {
    let cases: [(&str, Value, &str); 8] = [
        (
            "/components/comp-echo/inputDefinitions/parameters/text/parameterType",
            json!("TEXT"),
            "components.comp-echo.inputDefinitions.parameters.text.parameterType",
        ),
        ("/root/dag/tasks/a/inputs/parameters/text", json!({}), "root.dag.tasks.a.inputs.parameters.text"),
        (
            "/root/dag/tasks/a/inputs/parameters/text",
            json!({"runtimeValue": {"constant": 1}, "componentInputParameter": "x"}),
            "root.dag.tasks.a.inputs.parameters.text",
        ),
        (
            "/root/dag/tasks/a/triggerPolicy",
            json!({"strategy": "SOMETIMES"}),
            "root.dag.tasks.a.triggerPolicy.strategy",
        ),
        (
            "/root/dag/tasks/a/triggerPolicy",
            json!({"condition": "inputs.parameter_values['text'] =="}),
            "root.dag.tasks.a.triggerPolicy.condition",
        ),
        (
            "/root/dag/tasks/a/retryPolicy",
            json!({"maxRetryCount": 2, "backoffDuration": "soon"}),
            "root.dag.tasks.a.retryPolicy.backoffDuration",
        ),
        (
            "/deploymentSpec/executors/exec-echo/container/args",
            json!(["ok", "{{$.inputs.nonsense}}"]),
            "deploymentSpec.executors.exec-echo.container.args[1]",
        ),
        (
            "/deploymentSpec/executors/exec-echo/container/args",
            json!(["{\"IfPresent\": {\"Then\": []}}"]),
            "deploymentSpec.executors.exec-echo.container.args[0]",
        ),
    ];
    for (pointer, value, path) in cases {
        let mut doc = base();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(key.to_owned(), value);
        let err = error_of(doc);
        assert_eq!(err.path(), Some(path), "{pointer}: {err}");
    }
}

#[test]
fn a_loop_over_malformed_raw_items_is_rejected() {
    let mut doc = base();
    doc["root"]["dag"]["tasks"]["a"]["parameterIterator"] = json!({"items": {"raw": "[1, 2"}, "itemInput": "text"});
    let err = error_of(doc);
    assert_eq!(err.path(), Some("root.dag.tasks.a.parameterIterator.items.raw"), "{err}");
}

#[test]
fn documents_are_one_spec_and_at_most_one_platform_spec() {
    assert!(KfpPipeline::from_values(&[]).is_err());
    let err = KfpPipeline::from_values(&[base(), json!({"kind": "Pod"})]).unwrap_err();
    assert_eq!(err.path(), Some("platforms"));
    let three = [base(), json!({"platforms": {}}), json!({"platforms": {}})];
    assert!(KfpPipeline::from_values(&three).is_err());
}

#[test]
fn the_platform_document_round_trips_and_names_existing_executors() {
    let platforms = json!({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {
        "exec-echo": {"secretAsEnv": [{"secretName": "s", "keyToEnv": [{"envVar": "E", "secretKey": "k"}]}]},
    }}, "pipelineConfig": {"x": 1}}}});
    let docs = [base(), platforms.clone()];
    let kfp = KfpPipeline::from_values(&docs).unwrap();
    kfp.validate().unwrap();
    assert_eq!(kfp.to_values(), docs);

    let mut wrong = platforms;
    let executors = wrong.pointer_mut("/platforms/kubernetes/deploymentSpec/executors").unwrap();
    executors["exec-missing"] = json!({});
    let err = KfpPipeline::from_values(&[base(), wrong]).unwrap().validate().unwrap_err();
    assert_eq!(err.path(), Some("platforms.kubernetes.deploymentSpec.executors.exec-missing"), "{err}");
}

#[test]
fn nulls_and_number_forms_are_written_back_as_read() {
    let mut doc = base();
    doc["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]["extra"] = json!({"runtimeValue": {"constant": null}});
    doc["root"]["dag"]["tasks"]["a"]["retryPolicy"] = json!({"maxRetryCount": 1, "backoffFactor": 2});
    doc["root"]["dag"]["tasks"]["b"]["retryPolicy"] = json!({"maxRetryCount": 1, "backoffFactor": 2.0});
    doc["components"]["comp-echo"]["inputDefinitions"]["parameters"]["text"]["defaultValue"] = Value::Null;
    let kfp = KfpPipeline::from_values(std::slice::from_ref(&doc)).unwrap();
    assert_eq!(kfp.to_values(), [doc]);
    let ir = kfp.to_pipeline().unwrap();
    assert_eq!(ir.root_dag().unwrap().tasks["a"].parameters["extra"], ParameterSource::Constant(Value::Null));
}

#[test]
fn structured_placeholders_import_and_export_as_kfp_writes_them() {
    let if_present = r#"{"IfPresent": {"InputName": "text", "Then": ["--text", "{{$.inputs.parameters['text']}}"], "Else": "none"}}"#;
    let concat =
        r#"{"Concat": ["--x=", {"IfPresent": {"InputName": "text", "Then": ["{{$.inputs.parameters['text']}}"]}}]}"#;
    let mut doc = base();
    doc["deploymentSpec"]["executors"]["exec-echo"]["container"]["args"] = json!([if_present, concat]);
    let ir = KfpPipeline::from_values(&[doc]).unwrap().to_pipeline().unwrap();
    let Executor::Container(c) = &ir.executors["exec-echo"] else { panic!("a container") };
    let text = || Arg::parse("{{$.inputs.parameters['text']}}").unwrap();
    assert_eq!(
        c.args[0],
        Arg::IfPresent {
            input: "text".into(),
            then: vec![Arg::from("--text"), text()],
            otherwise: vec![Arg::from("none")]
        }
    );
    assert_eq!(
        c.args[1],
        Arg::Concat(vec![
            Arg::from("--x="),
            Arg::IfPresent { input: "text".into(), then: vec![text()], otherwise: vec![] }
        ])
    );
    let exported = KfpPipeline::from_pipeline(&ir).unwrap();
    let args = exported.to_values()[0]["deploymentSpec"]["executors"]["exec-echo"]["container"]["args"].clone();
    let first: Value = serde_json::from_str(args[0].as_str().unwrap()).unwrap();
    assert_eq!(
        first,
        json!({"IfPresent": {"InputName": "text", "Then": ["--text", "{{$.inputs.parameters['text']}}"], "Else": ["none"]}})
    );
    let reimported = KfpPipeline::from_values(&exported.to_values()).unwrap().to_pipeline().unwrap();
    assert_eq!(reimported.executors, ir.executors);
}

#[test]
fn function_executors_do_not_export() {
    let mut p = Pipeline::new("p");
    p.executors.insert("exec-f".into(), Executor::Function(FunctionSpec { name: "train".into() }));
    let err = KfpPipeline::from_pipeline(&p).unwrap_err();
    assert_eq!(err.path(), Some("deploymentSpec.executors.exec-f"));
}

#[test]
fn builder_pipelines_export_to_valid_kfp_and_back() {
    use crate::builder::{Dataset, Model, PipelineBuilder};
    let mut p = PipelineBuilder::new("train");
    let lr = p.parameter_with_default::<f64>("lr", 0.1);
    let mut prep = p.container_component("prep", ContainerSpec::new("python:3.11"));
    let data = prep.output_artifact::<Dataset>("data");
    prep.command(["python", "-c", "print(1)", &data.path()]);
    let prep = p.add_component(prep);
    let mut train = p.container_component("train", ContainerSpec::new("python:3.11"));
    let train_lr = train.input::<f64>("lr");
    let train_data = train.input_artifact::<Dataset>("data");
    let model = train.output_artifact::<Model>("model");
    train.args(["--lr", &train_lr.placeholder(), &train_data.path(), &model.path()]);
    let train = p.add_component(train);
    let prep_task = p.task("prep", &prep).done();
    let prepared = prep_task.output_artifact(&data);
    p.task("train", &train)
        .set(&train_lr, &lr)
        .set_artifact(&train_data, &prepared)
        .retry(RetryPolicy { max_retry_count: 2, backoff: Duration::from_millis(1500), ..RetryPolicy::default() })
        .caching(CachingOptions { enabled: false, key: None })
        .done();
    let ir = p.build().unwrap().into_pipeline();
    let kfp = KfpPipeline::from_pipeline(&ir).unwrap();
    kfp.validate().unwrap();
    let doc = &kfp.to_values()[0];
    assert_eq!(doc["schemaVersion"], json!("2.1.0"));
    let task = &doc["root"]["dag"]["tasks"]["train"];
    assert_eq!(task["dependentTasks"], json!(["prep"]));
    assert_eq!(task["cachingOptions"], json!({}));
    assert_eq!(task["retryPolicy"]["backoffDuration"], json!("1.5s"));
    assert_eq!(task["inputs"]["artifacts"]["data"]["taskOutputArtifact"]["producerTask"], json!("prep"));
    assert_eq!(doc["root"]["inputDefinitions"]["parameters"]["lr"]["defaultValue"], json!(0.1));
}

proptest! {
    #[test]
    fn durations_print_as_protobuf_durations_and_read_back(millis in 0u64..10_000_000, nanos in 0u32..1_000_000) {
        let d = Duration::from_millis(millis) + Duration::from_nanos(u64::from(nanos));
        let text = export::duration(d);
        prop_assert!(text.ends_with('s'));
        let back = import::duration(&text, "x").unwrap();
        // f64 seconds keep nanoseconds for durations up to ~100 days.
        prop_assert!(back.abs_diff(d) <= Duration::from_nanos(1), "{text}: {back:?} vs {d:?}");
    }

    #[test]
    fn unknown_fields_survive_at_every_level(
        key in "[a-z][a-zA-Z]{0,8}",
        value in prop_oneof![Just(Value::Null), any::<i64>().prop_map(Value::from), any::<bool>().prop_map(Value::from), "[ -~]{0,12}".prop_map(Value::from)],
        level in 0usize..8,
    ) {
        let pointers = [
            "", "/pipelineInfo", "/components/comp-echo", "/components/comp-echo/inputDefinitions/parameters/text",
            "/deploymentSpec/executors/exec-echo/container", "/root/dag", "/root/dag/tasks/a", "/root/dag/tasks/b/taskInfo",
        ];
        let mut doc = base();
        let target = doc.pointer_mut(pointers[level]).unwrap().as_object_mut().unwrap();
        // Only fields the wire types do not model count as unknown.
        prop_assume!(!target.contains_key(&key));
        let key = format!("x{key}");
        target.insert(key, value);
        let kfp = KfpPipeline::from_values(std::slice::from_ref(&doc)).unwrap();
        prop_assert_eq!(kfp.to_values(), vec![doc]);
    }

    #[test]
    fn exported_pipelines_import_to_the_same_ir(pipeline in random_pipeline()) {
        let exported = KfpPipeline::from_pipeline(&pipeline).unwrap();
        let values = exported.to_values();
        let reread = KfpPipeline::from_values(&values).unwrap();
        prop_assert_eq!(&reread, &exported);
        prop_assert_eq!(reread.to_pipeline().unwrap(), pipeline.clone());
        reread.validate().unwrap();
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e9f64..1e9).prop_map(Value::from),
        "[ -~]{0,8}".prop_map(Value::from),
        Just(Value::from("1")),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A chain-with-shortcuts DAG of tasks running one relay component, with
/// random constants, ordering edges, retries, caching, conditions and a loop.
fn random_pipeline() -> impl Strategy<Value = Pipeline> {
    let task = (
        any::<Option<prop::sample::Index>>(),
        any::<bool>(),
        json_value(),
        any::<(bool, Option<u8>)>(),
        proptest::option::of((0u32..5, 0u64..100_000, 1u32..4)),
        any::<(bool, bool, bool)>(),
    );
    proptest::collection::vec(task, 1..8).prop_map(|tasks| {
        let mut p = Pipeline::new("random");
        let mut exec = ContainerSpec::new("python:3.11");
        exec.command = vec![
            Arg::parse("{{$.inputs.parameters['text']}}").unwrap(),
            Arg::IfPresent { input: "extra".into(), then: vec![Arg::from("--extra")], otherwise: vec![] },
        ];
        exec.args = vec![Arg::parse("{{$.outputs.parameters['text'].output_file}}").unwrap()];
        exec.env = vec![("LEVEL".into(), Template::text("3"))];
        exec.resources.cpu_limit = Some(Template::text("500m"));
        p.executors.insert("exec-relay".into(), Executor::Container(exec));
        let mut relay = Component::leaf("exec-relay");
        relay
            .inputs
            .parameters
            .insert("text".into(), ParameterSpec::new(ParameterType::String).with_default(json!("")));
        let mut extra = ParameterSpec::new(ParameterType::Struct);
        extra.optional = true;
        extra.description = Some("anything".into());
        relay.inputs.parameters.insert("extra".into(), extra);
        relay.outputs.parameters.insert("text".into(), ParameterSpec::new(ParameterType::String));
        p.components.insert("comp-relay".into(), relay);
        let mut body = Component::dag(Default::default());
        body.inputs.parameters.insert("item".into(), ParameterSpec::new(ParameterType::String));
        let mut inner = Task::new("comp-relay");
        inner.display_name = Some("inner".into());
        inner.parameters.insert("text".into(), ParameterSource::ComponentInput { name: "item".into(), selector: None });
        body.implementation.dag_mut().unwrap().tasks.insert("inner".into(), inner);
        p.components.insert("comp-for-loop-1".into(), body);
        p.root
            .inputs
            .parameters
            .insert("greeting".into(), ParameterSpec::new(ParameterType::String).with_default(json!("hi")));
        let dag = p.root.implementation.dag_mut().unwrap();
        for (i, (upstream, data, constant, (cache, key), retry, (named, completed, conditional))) in
            tasks.into_iter().enumerate()
        {
            let name = format!("t{i}");
            let mut t = Task::new("comp-relay");
            t.display_name = Some(if named { format!("step {i}") } else { name.clone() });
            t.parameters.insert("extra".into(), ParameterSource::Constant(json!({ "v": constant })));
            match upstream.filter(|_| i > 0).map(|ix| format!("t{}", ix.index(i))) {
                Some(up) if data => {
                    t.parameters.insert("text".into(), ParameterSource::TaskOutput(OutputRef::new(up, "text")));
                }
                Some(up) => {
                    t.after.insert(up);
                    t.parameters.insert(
                        "text".into(),
                        ParameterSource::ComponentInput { name: "greeting".into(), selector: None },
                    );
                }
                None => {}
            }
            t.caching = CachingOptions { enabled: cache, key: key.map(|k| format!("key-{k}")) };
            t.retry = retry.map(|(count, millis, factor)| RetryPolicy {
                max_retry_count: count,
                backoff: Duration::from_millis(millis),
                backoff_factor: f64::from(factor),
                backoff_max: Duration::from_secs(600),
            });
            if completed {
                t.trigger.strategy = TriggerStrategy::AllUpstreamCompleted;
            }
            if conditional && t.parameters.contains_key("text") {
                t.trigger.condition = Some(Condition::parse("inputs.parameter_values['text'] != 'stop'").unwrap());
            }
            dag.tasks.insert(name, t);
        }
        let mut looped = Task::new("comp-for-loop-1");
        looped.display_name = Some("loop".into());
        looped.parallel_for = Some(ParallelFor {
            items: LoopItems::Raw(vec![json!("a"), json!("b")]),
            item_input: "item".into(),
            parallelism: Some(1),
        });
        dag.tasks.insert("for-loop-1".into(), looped);
        p
    })
}

#[test]
fn fields_the_protobuf_does_not_define_are_rejected_with_a_suggestion() {
    let mut doc = base();
    let b = doc.pointer_mut("/root/dag/tasks/b").unwrap().as_object_mut().unwrap();
    let deps = b.remove("dependentTasks").unwrap();
    b.insert("dependentTask".into(), deps);
    let err = error_of(doc.clone());
    assert_eq!(err.path(), Some("root.dag.tasks.b.dependentTask"), "{err}");
    assert!(err.to_string().contains("did you mean \"dependentTasks\""), "{err}");
    // Still read and written back losslessly: only validation refuses it.
    assert_eq!(KfpPipeline::from_values(std::slice::from_ref(&doc)).unwrap().to_values(), [doc]);

    let cases = [
        (
            "/deploymentSpec/executors/exec-echo/container",
            "imageName",
            "deploymentSpec.executors.exec-echo.container.imageName",
        ),
        (
            "/components/comp-echo/inputDefinitions/parameters/text",
            "default",
            "components.comp-echo.inputDefinitions.parameters.text.default",
        ),
        ("", "pipelineRoot", "pipelineRoot"),
    ];
    for (pointer, key, path) in cases {
        let mut doc = base();
        doc.pointer_mut(pointer).unwrap().as_object_mut().unwrap().insert(key.into(), json!(1));
        assert_eq!(error_of(doc).path(), Some(path));
    }
}

#[test]
fn protobuf_fields_kf_does_not_model_are_accepted() {
    let mut doc = base();
    doc["components"]["comp-echo"]["singlePlatformSpecs"] = json!([{"platform": "x"}]);
    doc["deploymentSpec"]["executors"]["exec-echo"]["container"]["lifecycle"] = json!({"preCacheCheck": {}});
    doc["deploymentSpec"]["executors"]["exec-echo"]["container"]["resources"] = json!({"cpuLimit": 1.0});
    doc["components"]["comp-echo"]["outputDefinitions"]["parameters"]["out"]["description"] = json!("x");
    KfpPipeline::from_values(&[doc]).unwrap().validate().unwrap();
}

#[test]
fn deprecated_constant_value_and_primitive_type_forms_import() {
    let mut doc = base();
    doc["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]["text"] =
        json!({"runtimeValue": {"constantValue": {"stringValue": "hi"}}});
    let text = doc.pointer_mut("/components/comp-echo/inputDefinitions/parameters/text").unwrap();
    *text = json!({"type": "STRING"});
    let kfp = KfpPipeline::from_values(&[doc]).unwrap();
    kfp.validate().unwrap();
    let ir = kfp.to_pipeline().unwrap();
    assert_eq!(ir.root_dag().unwrap().tasks["a"].parameters["text"], ParameterSource::Constant(json!("hi")));
    assert_eq!(ir.components["comp-echo"].inputs.parameters["text"].ty, ParameterType::String);
    let mut doc = base();
    doc["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]["text"] =
        json!({"runtimeValue": {"constantValue": {"intValue": "x"}}});
    let err = error_of(doc);
    assert_eq!(
        err.path(),
        Some("root.dag.tasks.a.inputs.parameters.text.runtimeValue.constantValue.intValue"),
        "{err}"
    );
}

/// kfp 2.17's shape for `.set_cpu_limit(task.output)`: the resource reads a
/// `pipelinechannel--` input, and the setting itself is an undeclared input
/// whose constant interpolates it.
#[test]
fn resources_set_from_a_task_output_validate() {
    let mut doc = base();
    doc["deploymentSpec"]["executors"]["exec-echo"]["container"]["resources"] = json!({
        "accelerator": {"count": "1", "resourceCount": "1", "resourceType": "nvidia.com/gpu", "type": "nvidia.com/gpu"},
        "memoryLimit": 1.0,
        "resourceCpuLimit": "{{$.inputs.parameters['pipelinechannel--a-out']}}",
        "resourceMemoryLimit": "1G",
    });
    let b = &mut doc["root"]["dag"]["tasks"]["b"]["inputs"]["parameters"];
    b["cpu_limit"] = json!({"runtimeValue": {"constant": "{{$.inputs.parameters['pipelinechannel--a-out']}}"}});
    b["pipelinechannel--a-out"] = json!({"taskOutputParameter": {"producerTask": "a", "outputParameterKey": "out"}});
    // `a` must also have one: its executor reads the channel.
    doc["root"]["dag"]["tasks"]["a"]["inputs"]["parameters"]["pipelinechannel--a-out"] =
        json!({"runtimeValue": {"constant": "1"}});
    let kfp = KfpPipeline::from_values(std::slice::from_ref(&doc)).unwrap();
    kfp.validate().unwrap();
    assert_eq!(kfp.to_values(), [doc.clone()]);
    // A plain undeclared constant is still a mistake.
    doc["root"]["dag"]["tasks"]["b"]["inputs"]["parameters"]["cpu_limit"] = json!({"runtimeValue": {"constant": "2"}});
    assert_eq!(error_of(doc).path(), Some("root.dag.tasks.b.inputs.parameters.cpu_limit"));
}

/// `dsl.ParallelFor` over a `List[Dataset]` input of a nested pipeline (kfp 2.17).
#[test]
fn artifact_iterators_import_validate_and_export() {
    let dataset = json!({"schemaTitle": "system.Dataset", "schemaVersion": "0.0.1"});
    let doc = json!({
        "pipelineInfo": {"name": "artifact-iter"},
        "components": {
            "comp-use": {"executorLabel": "exec-use", "inputDefinitions": {"artifacts": {"d": {"artifactType": dataset}}}},
            "comp-make": {"executorLabel": "exec-make", "outputDefinitions": {"artifacts": {"out": {"artifactType": dataset}}}},
            "comp-fan": {
                "dag": {"tasks": {"for-loop-1": {
                    "artifactIterator": {"itemInput": "pipelinechannel--xs-loop-item", "items": {"inputArtifact": "pipelinechannel--xs"}},
                    "componentRef": {"name": "comp-for-loop-1"},
                    "inputs": {"artifacts": {"pipelinechannel--xs": {"componentInputArtifact": "xs"}}},
                    "iteratorPolicy": {"parallelismLimit": 2},
                    "taskInfo": {"name": "for-loop-1"},
                }}},
                "inputDefinitions": {"artifacts": {"xs": {"artifactType": dataset, "isArtifactList": true}}},
            },
            "comp-for-loop-1": {
                "dag": {"tasks": {"use": {
                    "cachingOptions": {"enableCache": true},
                    "componentRef": {"name": "comp-use"},
                    "inputs": {"artifacts": {"d": {"componentInputArtifact": "pipelinechannel--xs-loop-item"}}},
                    "taskInfo": {"name": "use"},
                }}},
                "inputDefinitions": {"artifacts": {
                    "pipelinechannel--xs": {"artifactType": dataset, "isArtifactList": true},
                    "pipelinechannel--xs-loop-item": {"artifactType": dataset},
                }},
            },
            "comp-for-loop-2": {
                "dag": {
                    "outputs": {"artifacts": {"pipelinechannel--make-out": {"artifactSelectors": [{"outputArtifactKey": "out", "producerSubtask": "make"}]}}},
                    "tasks": {"make": {"componentRef": {"name": "comp-make"}, "taskInfo": {"name": "make"}}},
                },
                "inputDefinitions": {"parameters": {"pipelinechannel--loop-item-param-1": {"parameterType": "NUMBER_INTEGER"}}},
                "outputDefinitions": {"artifacts": {"pipelinechannel--make-out": {"artifactType": dataset, "isArtifactList": true}}},
            },
        },
        "deploymentSpec": {"executors": {
            "exec-use": {"container": {"image": "python:3.11", "args": ["{{$.inputs.artifacts['d'].path}}"]}},
            "exec-make": {"container": {"image": "python:3.11", "args": ["{{$.outputs.artifacts['out'].path}}"]}},
        }},
        "root": {"dag": {"tasks": {
            "fan": {
                "componentRef": {"name": "comp-fan"}, "dependentTasks": ["for-loop-2"], "taskInfo": {"name": "fan"},
                "inputs": {"artifacts": {"xs": {"taskOutputArtifact": {"outputArtifactKey": "pipelinechannel--make-out", "producerTask": "for-loop-2"}}}},
            },
            "for-loop-2": {
                "componentRef": {"name": "comp-for-loop-2"}, "taskInfo": {"name": "for-loop-2"},
                "parameterIterator": {"itemInput": "pipelinechannel--loop-item-param-1", "items": {"raw": "[1, 2, 3]"}},
            },
        }}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.3",
    });
    let kfp = KfpPipeline::from_values(std::slice::from_ref(&doc)).unwrap();
    kfp.validate().unwrap();
    assert_eq!(kfp.to_values(), [doc]);
    let ir = kfp.to_pipeline().unwrap();
    let pf = ir.components["comp-fan"].as_dag().unwrap().tasks["for-loop-1"].parallel_for.clone().unwrap();
    assert_eq!(pf.items, LoopItems::InputArtifact("pipelinechannel--xs".into()));
    assert_eq!(pf.parallelism, Some(2));
    let back = KfpPipeline::from_pipeline(&ir).unwrap();
    let reread = KfpPipeline::from_values(&back.to_values()).unwrap();
    reread.validate().unwrap();
    assert_eq!(reread.to_pipeline().unwrap(), ir);
}
