//! Kubernetes rendering (feature `kube`): snapshot tests of the manifests a
//! TrainJob becomes, with corpus runtimes and jobs from
//! ../shared/corpus/trainer, plus offline shape checks (every Job template
//! re-read as k8s-openapi's `JobTemplateSpec`, PodGroups against the fields
//! of their CRDs) and the invariants between a plan and its manifests.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::api::core::v1::ConfigMap;
use kf_train::launch::{LaunchPlan, Network, plan};
use kf_train::render::{COMPLETION_INDEX_FIELD_PATH, Manifests, render};
use kf_train::{Error, TrainJob, TrainingRuntime};
use proptest::prelude::*;
use serde_json::{Value, json};

fn corpus(name: &str) -> Value {
    let path = format!("{}/../../shared/corpus/trainer/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resolve(job: Value, runtime: Value) -> (TrainJob, TrainingRuntime, LaunchPlan) {
    let job = TrainJob::from_value(job).unwrap();
    let runtime = TrainingRuntime::from_value(runtime).unwrap();
    job.validate().unwrap();
    runtime.validate().unwrap();
    let plan = plan(&job, &runtime, &Network::Kubernetes).unwrap();
    (job, runtime, plan)
}

fn render_docs(job: Value, runtime: Value) -> (LaunchPlan, Manifests) {
    let (job, runtime, plan) = resolve(job, runtime);
    let manifests = render(&job, &runtime, &plan).unwrap();
    check_invariants(&plan, &manifests);
    check_offline(&manifests);
    (plan, manifests)
}

/// Compares with tests/snapshots/NAME.yaml, text for text;
/// KF_UPDATE_SNAPSHOTS=1 rewrites it.
fn assert_snapshot(name: &str, manifests: &Manifests) {
    let objects = manifests.to_values().unwrap();
    let rendered = serde_saphyr::to_string_multiple(&objects).unwrap();
    let path = format!("{}/tests/snapshots/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("KF_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} missing; run with KF_UPDATE_SNAPSHOTS=1"));
    assert_eq!(rendered, text, "rendering changed; review the diff and rerun with KF_UPDATE_SNAPSHOTS=1");
    // The snapshot is the manifests, not just similar text.
    let reread: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(objects, reread);
}

fn replicated_jobs(manifests: &Manifests) -> Vec<Value> {
    let job_set = serde_json::to_value(&manifests.job_set).unwrap();
    job_set["spec"]["replicatedJobs"].as_array().unwrap().clone()
}

fn replicated_job(manifests: &Manifests, name: &str) -> Value {
    replicated_jobs(manifests).into_iter().find(|j| j["name"] == name).unwrap()
}

fn container<'a>(rjob: &'a Value, name: &str) -> &'a Value {
    let containers = rjob["template"]["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    containers.iter().find(|c| c["name"] == name).unwrap()
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap_or(&Value::Null)
}

/// What holds between any plan and its manifests.
fn check_invariants(plan: &LaunchPlan, manifests: &Manifests) {
    let mut pods = 0;
    for rjob in replicated_jobs(manifests) {
        let name = rjob["name"].as_str().unwrap();
        let spec = &rjob["template"]["spec"];
        let in_plan = plan.pods_of(name).count() as u64;
        if in_plan == 0 {
            continue;
        }
        let (replicas, parallelism) = (rjob["replicas"].as_u64().unwrap(), spec["parallelism"].as_u64().unwrap());
        assert_eq!(spec["completions"], spec["parallelism"], "{name}: every pod must complete");
        assert_eq!(replicas * parallelism, in_plan, "{name}: the JobSet runs the plan's pods");
        pods += in_plan;
        // Every rank variable is the completion index, never a literal.
        for c in spec["template"]["spec"]["containers"].as_array().unwrap() {
            for e in c["env"].as_array().into_iter().flatten() {
                if ["PET_NODE_RANK", "JAX_PROCESS_ID", "DMLC_TASK_ID"].contains(&e["name"].as_str().unwrap()) {
                    assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], COMPLETION_INDEX_FIELD_PATH, "{e}");
                }
            }
        }
    }
    assert_eq!(pods, plan.pods.len() as u64, "every pod of the plan is rendered once");
    // The JobSet's DNS names are the hostnames the plan hands out.
    let network = &manifests.job_set.spec.network.as_ref().unwrap();
    assert_eq!(network.enable_dns_hostnames, Some(true));
    let subdomain = network.subdomain.as_deref().unwrap();
    for pod in &plan.pods {
        let name = format!("{}-{}-{}-{}.{subdomain}", plan.job_name, pod.replicated_job, pod.job_index, pod.pod_index);
        assert_eq!(pod.hostname, name);
    }
    if let Some(group) = &manifests.pod_group {
        assert_eq!(group.spec.min_member as usize, plan.pods.len(), "the gang is every pod");
        assert_eq!(plan.pod_group.as_ref().unwrap().min_member as usize, plan.pods.len());
    }
}

/// The offline stand-in for an API server: typed core objects must read back
/// unchanged, PodGroups must use only their CRD's fields.
fn check_offline(manifests: &Manifests) {
    for rjob in replicated_jobs(manifests) {
        let template = &rjob["template"];
        let typed: JobTemplateSpec = serde_json::from_value(template.clone()).unwrap();
        assert_eq!(&serde_json::to_value(typed).unwrap(), template, "{}: not a batch/v1 JobTemplateSpec", rjob["name"]);
    }
    for config_map in &manifests.config_maps {
        let value = serde_json::to_value(config_map).unwrap();
        let typed: ConfigMap = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(&typed, config_map);
    }
    if let Some(group) = &manifests.pod_group {
        let value = serde_json::to_value(group).unwrap();
        let allowed: &[&str] = match group.api_version.as_str() {
            // sigs.k8s.io/scheduler-plugins apis/scheduling/v1alpha1 PodGroupSpec
            "scheduling.x-k8s.io/v1alpha1" => &["minMember", "minResources", "scheduleTimeoutSeconds"],
            // volcano.sh/apis scheduling/v1beta1 PodGroupSpec
            "scheduling.volcano.sh/v1beta1" => {
                &["minMember", "minTaskMember", "queue", "priorityClassName", "minResources", "networkTopology"]
            }
            other => panic!("unexpected PodGroup apiVersion {other}"),
        };
        for key in value["spec"].as_object().unwrap().keys() {
            assert!(allowed.contains(&key.as_str()), "PodGroup spec.{key} is not in its CRD");
        }
        for q in value["spec"]["minResources"].as_object().into_iter().flatten().map(|(_, q)| q) {
            assert!(kf_train::parse_quantity(q.as_str().unwrap()).is_some(), "{q} is not a quantity");
        }
    }
}

#[test]
fn torch_on_two_nodes() {
    let mut job = corpus("docs__operator-guides__migration.block1.yaml");
    job["metadata"]["namespace"] = json!("team-a");
    job["metadata"]["uid"] = json!("7d3f2c1e-0000-4000-8000-000000000001"); // as the API server sets it
    let (_, manifests) = render_docs(job, corpus("manifests__base__runtimes__torch_distributed.yaml"));
    let node = replicated_job(&manifests, "node");
    assert_eq!(node["replicas"], 1);
    assert_eq!(node["template"]["spec"]["parallelism"], 2);
    assert_eq!(node["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"], "trainer");
    let main = container(&node, "node");
    assert_eq!(main["image"], "docker.io/kubeflowkatib/pytorch-mnist:v1beta1-45c5727");
    assert_eq!(main["command"][1], "/opt/pytorch-mnist/mnist.py");
    assert_eq!(env(main, "PET_NNODES")["value"], "2");
    assert_eq!(env(main, "PET_MASTER_ADDR")["value"], "pytorch-simple-node-0-0.pytorch-simple");
    assert_eq!(env(main, "PET_MASTER_PORT")["value"], "29500");
    assert_eq!(main["ports"], json!([{"containerPort": 29500}]));
    let meta = &manifests.job_set.metadata;
    assert_eq!((meta.name.as_deref(), meta.namespace.as_deref()), (Some("pytorch-simple"), Some("team-a")));
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.controller), ("TrainJob", Some(true)));
    assert!(manifests.pod_group.is_none() && manifests.config_maps.is_empty());
    assert_snapshot("torch-two-nodes", &manifests);
}

#[test]
fn mpi_with_a_hostfile() {
    let job = json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": "mlx-job", "namespace": "ml"},
        "spec": {"runtimeRef": {"name": "mlx-distributed"},
                 "trainer": {"numNodes": 3, "command": ["mpirun", "python3", "train.py"]}},
    });
    let (plan, manifests) = render_docs(job, corpus("manifests__base__runtimes__mlx_distributed.yaml"));
    assert_eq!(replicated_job(&manifests, "node")["template"]["spec"]["parallelism"], 2);
    let launcher = replicated_job(&manifests, "launcher");
    assert_eq!(launcher["template"]["spec"]["parallelism"], 1);
    assert_eq!(launcher["dependsOn"], json!([{"name": "node", "status": "Ready"}]), "dependsOn is kept");
    let main = container(&launcher, "node");
    assert_eq!(main["command"], json!(["mpirun", "python3", "train.py"]), "the launcher runs as a node");
    assert_eq!(env(main, "OMPI_MCA_orte_default_hostfile")["value"], "/etc/mpi/hostfile");
    let mounts: Vec<(&str, &str)> = main["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["mountPath"].as_str().unwrap()))
        .collect();
    assert_eq!(mounts, [("mpi-ssh-auth", "/home/mpiuser/.ssh"), ("mpi-hostfile", "/etc/mpi")]);

    let hostfile = manifests.config_maps[0].data.as_ref().unwrap()["hostfile"].clone();
    let expected = &plan.pods_of("launcher").next().unwrap().files[0].contents;
    assert_eq!(&hostfile, expected, "the ConfigMap carries the plan's hostfile");
    assert_eq!(
        hostfile,
        "mlx-job-node-0-0.mlx-job slots=1\nmlx-job-node-0-1.mlx-job slots=1\nmlx-job-launcher-0-0.mlx-job slots=1\n",
        "hosts in template order, as upstream writes them"
    );
    assert_eq!(manifests.config_maps[0].metadata.name.as_deref(), Some("mlx-job-mpi-hostfile"));
    assert_eq!(manifests.ssh_auth_secret.as_deref(), Some("mlx-job-mpi-ssh-auth"));
    let spec = &manifests.job_set.spec;
    assert_eq!(spec.success_policy.as_ref().unwrap().target_replicated_jobs, Some(vec!["launcher".to_string()]));
    assert_eq!(spec.network.as_ref().unwrap().publish_not_ready_addresses, Some(true));
    assert_snapshot("mpi-hostfile", &manifests);
}

/// The corpus has no coscheduling runtime: the corpus torch runtime gets the
/// policy the coscheduling guide shows, and the corpus Kueue job runs on it.
#[test]
fn coscheduling_gang() {
    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    runtime["spec"]["podGroupPolicy"] = json!({"coscheduling": {"scheduleTimeoutSeconds": 120}});
    let (_, manifests) = render_docs(corpus("examples__yaml__03-kueue-integration.doc0.yaml"), runtime);
    let group = manifests.pod_group.as_ref().unwrap();
    assert_eq!(group.api_version, "scheduling.x-k8s.io/v1alpha1");
    assert_eq!((group.spec.min_member, group.spec.schedule_timeout_seconds), (3, Some(120)));
    // requests of 3 nodes × (2 CPU, 4Gi)
    assert_eq!(group.spec.min_resources["cpu"], "6");
    assert_eq!(group.spec.min_resources["memory"], "12Gi");
    let node = replicated_job(&manifests, "node");
    assert_eq!(
        node["template"]["spec"]["template"]["metadata"]["labels"]["scheduling.x-k8s.io/pod-group"],
        "kueue-example"
    );
    assert_eq!(manifests.job_set.spec.suspend, Some(true), "the suspended TrainJob suspends its JobSet");
    assert_eq!(container(&node, "node")["resources"]["limits"]["memory"], "8Gi");
    assert_snapshot("coscheduling", &manifests);
}

/// The gang's minResources count every container of a pod, as the
/// scheduler does: a sidecar adds to the trainer, an init container only
/// raises the floor when it needs more than the pod's containers together,
/// and the pod's overhead is added.
#[test]
fn gang_resources_count_every_container_of_a_pod() {
    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    runtime["spec"]["podGroupPolicy"] = json!({"coscheduling": {}});
    let pod = &mut runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    pod["containers"].as_array_mut().unwrap().push(json!({
        "name": "log-shipper", "image": "fluent-bit", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}));
    pod["initContainers"] = json!([
        {"name": "proxy", "image": "envoy", "restartPolicy": "Always", "resources": {"limits": {"cpu": "250m"}}},
        {"name": "warm-cache", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": "64Gi"}}},
    ]);
    pod["overhead"] = json!({"memory": "128Mi"});
    let (_, manifests) = render_docs(corpus("examples__yaml__03-kueue-integration.doc0.yaml"), runtime);
    let group = manifests.pod_group.as_ref().unwrap();
    // 3 pods × (trainer 2 + shipper 0.25 + proxy sidecar 0.25) CPU; memory:
    // the init container's 64Gi (with the proxy, which sets no memory) is
    // more than trainer 4Gi + shipper 256Mi, plus 128Mi overhead.
    assert_eq!(group.spec.min_resources["cpu"], "7500m");
    assert_eq!(
        kf_train::parse_quantity(&group.spec.min_resources["memory"]).unwrap(),
        3.0 * (64.0 * 1024f64.powi(3) + 128.0 * 1024f64.powi(2))
    );
}

#[test]
fn volcano_gang() {
    let (_, manifests) = render_docs(
        corpus("examples__yaml__04-volcano-integration.doc1.yaml"),
        corpus("examples__yaml__04-volcano-integration.doc0.yaml"),
    );
    let group = manifests.pod_group.as_ref().unwrap();
    assert_eq!(group.api_version, "scheduling.volcano.sh/v1beta1");
    assert_eq!(group.spec.min_member, 4);
    assert_eq!((group.spec.min_resources["cpu"].as_str(), group.spec.min_resources["memory"].as_str()), ("4", "8Gi"));
    assert!(group.spec.network_topology.is_none() && group.spec.queue.is_none());
    let pod = &replicated_job(&manifests, "node")["template"]["spec"]["template"];
    assert_eq!(pod["metadata"]["annotations"]["scheduling.k8s.io/group-name"], "volcano-example");
    assert_eq!(pod["spec"]["schedulerName"], "volcano");
    assert_snapshot("volcano", &manifests);
}

#[test]
fn volcano_queue_priority_and_topology() {
    let mut runtime = corpus("examples__yaml__04-volcano-integration.doc0.yaml");
    runtime["spec"]["podGroupPolicy"] = json!({"volcano": {"networkTopology": {"mode": "soft"}}});
    runtime["spec"]["template"]["metadata"] = json!({"annotations": {"scheduling.volcano.sh/queue-name": "research"}});
    let pod_spec =
        &mut runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    pod_spec["priorityClassName"] = json!("high");
    pod_spec["schedulerName"] = json!("volcano-secondary");
    let (_, manifests) = render_docs(corpus("examples__yaml__04-volcano-integration.doc1.yaml"), runtime);
    let spec = &manifests.pod_group.as_ref().unwrap().spec;
    assert_eq!(spec.queue.as_deref(), Some("research"));
    assert_eq!(spec.priority_class_name.as_deref(), Some("high"));
    let topology = spec.network_topology.as_ref().unwrap();
    assert_eq!((topology.mode.as_str(), topology.highest_tier_allowed), ("soft", 1), "the CRD default tier");
    let pod = &replicated_job(&manifests, "node")["template"]["spec"]["template"];
    assert_eq!(pod["spec"]["schedulerName"], "volcano-secondary", "an explicit scheduler wins");
    let annotations = manifests.job_set.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["scheduling.volcano.sh/queue-name"], "research", "template annotations reach the JobSet");
}

#[test]
fn runtime_patches_reach_the_pods_and_the_jobset_metadata() {
    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    runtime["metadata"]["name"] = json!("pytorch-distributed-gpu");
    let mut job = corpus("docs__operator-guides__runtime-patches.block0.yaml");
    job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["metadata"] =
        json!({"labels": {"team": "vision"}, "annotations": {"cost-center": "42"}});
    let (_, manifests) = render_docs(job, runtime);
    let pod = &replicated_job(&manifests, "node")["template"]["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["accelerator"], "nvidia-tesla-v100");
    let meta = &manifests.job_set.metadata;
    assert_eq!(meta.labels.as_ref().unwrap()["team"], "vision");
    assert!(
        !meta.labels.as_ref().unwrap().contains_key("trainer.kubeflow.org/framework"),
        "the runtime object's own labels stay on the runtime; only its template's propagate"
    );
    assert_eq!(meta.annotations.as_ref().unwrap()["cost-center"], "42");
    assert!(meta.owner_references.is_none(), "no uid yet, so no owner reference");
}

#[test]
fn initializers_get_their_source_and_secret() {
    let runtime = corpus("docs__operator-guides__job-template.block4.yaml");
    let job = json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "llm"},
        "spec": {"runtimeRef": {"name": "example-runtime"},
                 "initializer": {"dataset": {"storageUri": "hf://tatsu-lab/alpaca", "secretRef": {"name": "hf-token"}},
                                 "model": {"storageUri": "hf://meta-llama/Llama-3.2-1B"}}},
    });
    let (_, manifests) = render_docs(job, runtime);
    let dataset = replicated_job(&manifests, "dataset-initializer");
    let main = container(&dataset, "dataset-initializer");
    assert_eq!(env(main, "STORAGE_URI")["value"], "hf://tatsu-lab/alpaca");
    assert_eq!(main["envFrom"], json!([{"secretRef": {"name": "hf-token"}}]));
    let model = replicated_job(&manifests, "model-initializer");
    assert_eq!(model["dependsOn"], json!([{"name": "dataset-initializer", "status": "Complete"}]));
    assert_eq!(env(container(&model, "model-initializer"), "STORAGE_URI")["value"], "hf://meta-llama/Llama-3.2-1B");
}

fn torch_job(name: &str, nodes: i32) -> Value {
    json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": name},
           "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": nodes}}})
}

#[test]
fn a_plan_for_another_job_or_for_local_processes_is_refused() {
    let (job, runtime, plan) = resolve(torch_job("a", 2), corpus("manifests__base__runtimes__torch_distributed.yaml"));
    let (other, _, _) = resolve(torch_job("b", 2), corpus("manifests__base__runtimes__torch_distributed.yaml"));
    let err = render(&other, &runtime, &plan).unwrap_err();
    assert!(matches!(err, Error::Unrenderable { .. }) && err.path() == "plan.job_name", "{err}");
    let local =
        kf_train::launch::plan(&job, &runtime, &Network::Local { host: "127.0.0.1".into(), port: 4000 }).unwrap();
    assert_eq!(render(&job, &runtime, &local).unwrap_err().path(), "plan.network");
    let mut shrunk = plan.clone();
    shrunk.pods[1].hostname = "elsewhere".into();
    assert_eq!(render(&job, &runtime, &shrunk).unwrap_err().path(), "plan.pods");
}

#[test]
fn per_pod_values_one_template_cannot_say_are_errors() {
    let (job, runtime, mut plan) =
        resolve(torch_job("a", 2), corpus("manifests__base__runtimes__torch_distributed.yaml"));
    let extra = kf_train::meta::EnvVar::literal("SEED", "1");
    plan.pods[1].container.env.push(extra.clone());
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert!(err.to_string().contains("other env vars"), "{err}");
    plan.pods[0].container.env.push(kf_train::meta::EnvVar::literal("SEED", "0"));
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert!(err.path().ends_with("env[SEED]"), "{err}");
    plan.pods[1].container.image = Some("other".into());
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert!(err.path().ends_with(".containers"), "{err}");
}

#[test]
fn templates_the_api_would_reject_name_the_field() {
    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    let pod_spec =
        &mut runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    pod_spec["volumes"] = json!([{"name": "scratch", "emptyDir": {"sizeLimt": "1Gi"}}]);
    let (job, runtime, plan) = resolve(torch_job("a", 1), runtime);
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert!(matches!(err, Error::UnknownField { .. }), "{err}");
    assert_eq!(err.path(), "jobset.spec.replicatedJobs[0].template.spec.template.spec.volumes[0].emptyDir.sizeLimt");

    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    let pod_spec =
        &mut runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    pod_spec["terminationGracePeriodSeconds"] = json!("soon");
    let (job, runtime, plan) = resolve(torch_job("a", 1), runtime);
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert_eq!(err.path(), "jobset.spec.replicatedJobs[0].template.spec.template.spec.terminationGracePeriodSeconds");

    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    runtime["spec"]["template"]["spec"]["network"] = json!({"enableDNSHostnames": false});
    let (job, runtime, plan) = resolve(torch_job("a", 2), runtime);
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert_eq!(err.path(), "runtime.spec.template.spec.network.enableDNSHostnames");
}

/// Every TrainJob of the corpus whose runtime is in the corpus renders (or,
/// for Flux, fails to plan as documented).
#[test]
fn every_corpus_pair_renders() {
    let dir = format!("{}/../../shared/corpus/trainer", env!("CARGO_MANIFEST_DIR"));
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            docs.push(serde_saphyr::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()).unwrap());
        }
    }
    let mut rendered = 0;
    for job in docs.iter().filter(|d| d["kind"] == "TrainJob") {
        let job = TrainJob::from_value(job.clone()).unwrap();
        let reference = job.runtime_ref().unwrap();
        let Some(runtime) = docs
            .iter()
            .find(|d| d["kind"] == reference.kind() && d["metadata"]["name"] == reference.name.as_deref().unwrap())
        else {
            continue;
        };
        let runtime = TrainingRuntime::from_value(runtime.clone()).unwrap();
        match plan(&job, &runtime, &Network::Kubernetes) {
            Ok(plan) => {
                let manifests = render(&job, &runtime, &plan).unwrap_or_else(|e| panic!("{:?}: {e}", job.name()));
                check_invariants(&plan, &manifests);
                check_offline(&manifests);
                rendered += 1;
            }
            Err(err) => assert_eq!(err.path(), "runtime.spec.mlPolicy.flux", "{:?}: {err}", job.name()),
        }
    }
    assert!(rendered >= 6, "only {rendered} corpus jobs rendered");
}

fn runtime_for(framework: usize, launcher_as_node: bool, group: usize) -> Value {
    let node = |name: &str, ancestor: bool| {
        let mut job = json!({"name": name, "template": {"spec": {"template": {"spec": {"containers": [
            {"name": "node", "image": "trainer", "resources": {"limits": {"cpu": 2, "memory": "1Gi"}}}]}}}}});
        if ancestor {
            job["template"]["metadata"] = json!({"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}});
        }
        job
    };
    let (policy, jobs) = match framework {
        0 => (json!({"torch": {}}), vec![node("node", true)]),
        1 => (json!({"jax": {}}), vec![node("node", true)]),
        2 => (json!({"xgboost": {}}), vec![node("node", true)]),
        _ => {
            (json!({"mpi": {"runLauncherAsNode": launcher_as_node}}), vec![node("launcher", true), node("node", false)])
        }
    };
    let mut spec = json!({"mlPolicy": policy, "template": {"spec": {"replicatedJobs": jobs}}});
    match group {
        1 => spec["podGroupPolicy"] = json!({"coscheduling": {}}),
        2 => spec["podGroupPolicy"] = json!({"volcano": {"networkTopology": {"highestTierAllowed": 2}}}),
        _ => {}
    }
    json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
           "metadata": {"name": "rt"}, "spec": spec})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For every framework and gang policy: the JobSet runs exactly the
    /// plan's pods, ranks come from the completion index, hostnames match,
    /// minMember is the pod count, and the templates pass the schema.
    #[test]
    fn manifests_run_exactly_the_planned_pods(
        framework in 0usize..4, nodes in 1i32..7, launcher_as_node: bool, group in 0usize..3,
    ) {
        let job = json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": "job"}, "spec": {"runtimeRef": {"name": "rt"}, "trainer": {"numNodes": nodes}}});
        let (plan, manifests) = render_docs(job, runtime_for(framework, launcher_as_node, group));
        prop_assert_eq!(manifests.pod_group.is_some(), group > 0);
        prop_assert_eq!(manifests.config_maps.len(), usize::from(framework == 3));
        if let Some(group) = &manifests.pod_group {
            let cpu = kf_train::parse_quantity(&group.spec.min_resources["cpu"]).unwrap();
            prop_assert_eq!(cpu, 2.0 * plan.pods.len() as f64);
        }
    }
}

#[test]
fn the_ssh_secret_matches_what_the_pods_mount() {
    let mut job = json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
        "metadata": {"name": "mlx-job", "namespace": "ml"},
        "spec": {"runtimeRef": {"name": "mlx-distributed"}, "trainer": {"numNodes": 2}},
    });
    job["metadata"]["uid"] = json!("7d3f2c1e-0000-4000-8000-000000000002");
    let (typed, runtime, plan) = resolve(job, corpus("manifests__base__runtimes__mlx_distributed.yaml"));
    let manifests = render(&typed, &runtime, &plan).unwrap();
    let secret = kf_train::render::ssh_auth_secret(&typed, "PRIVATE", "ssh-ed25519 PUBLIC");
    assert_eq!(secret.metadata.name, manifests.ssh_auth_secret);
    let node = replicated_job(&manifests, "node");
    let volume = &node["template"]["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(volume["secret"]["secretName"].as_str(), secret.metadata.name.as_deref());
    let data = secret.data.as_ref().unwrap();
    for item in volume["secret"]["items"].as_array().unwrap() {
        assert!(data.contains_key(item["key"].as_str().unwrap()), "{item} mounts a key the Secret lacks");
    }
    assert_eq!(secret.metadata.owner_references.as_ref().unwrap()[0].name, "mlx-job");
    assert_eq!(manifests.config_maps[0].metadata.owner_references, secret.metadata.owner_references);
}

/// Torch `envInjection`: an init container of the node job (a preflight
/// check) gets the same `PET_*` variables as the trainer.
#[test]
fn torch_env_injection_reaches_init_containers() {
    let mut runtime = corpus("manifests__base__runtimes__torch_distributed.yaml");
    runtime["spec"]["mlPolicy"]["torch"] =
        json!({"envInjection": {"targets": [{"jobName": "node", "containerNames": ["preflight"]}]}});
    let pod_spec =
        &mut runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"];
    pod_spec["initContainers"] =
        json!([{"name": "preflight", "image": "busybox", "env": [{"name": "MODE", "value": "check"}]}]);
    let (_, manifests) = render_docs(torch_job("inj", 3), runtime.clone());
    let node = replicated_job(&manifests, "node");
    let init = &node["template"]["spec"]["template"]["spec"]["initContainers"][0];
    let names: Vec<&str> = init["env"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["MODE", "PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"]
    );
    assert_eq!(env(init, "PET_NNODES")["value"], "3");
    assert_eq!(env(init, "PET_NODE_RANK"), env(container(&node, "node"), "PET_NODE_RANK"));

    runtime["spec"]["mlPolicy"]["torch"]["envInjection"]["targets"][0]["containerNames"] = json!(["preflite"]);
    let (job, runtime, plan) = resolve(torch_job("inj", 3), runtime);
    let err = render(&job, &runtime, &plan).unwrap_err();
    assert_eq!(err.path(), "runtime.spec.mlPolicy.torch.envInjection.targets[0].containerNames[0]");
}

#[test]
fn jax_publishes_its_coordinator_port() {
    let job = json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "jx"},
                     "spec": {"runtimeRef": {"name": "jax-distributed"}, "trainer": {"numNodes": 2}}});
    let (_, manifests) = render_docs(job, corpus("manifests__base__runtimes__jax_distributed.yaml"));
    let node = replicated_job(&manifests, "node");
    let main = container(&node, "node");
    let port: u64 = env(main, "JAX_COORDINATOR_PORT")["value"].as_str().unwrap().parse().unwrap();
    assert_eq!(main["ports"], json!([{"containerPort": port}]));
    assert_eq!(env(main, "JAX_NUM_PROCESSES")["value"], "2");
}
