use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::launch::mpi::HOSTFILE_PATH;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus/trainer");

fn corpus(file: &str) -> Value {
    let text = std::fs::read_to_string(format!("{CORPUS}/{file}")).expect("corpus file");
    serde_saphyr::from_str(&text).expect("yaml")
}

fn runtime(file: &str) -> TrainingRuntime {
    let rt = TrainingRuntime::from_value(corpus(file)).unwrap();
    rt.validate().unwrap();
    rt
}

fn job(doc: Value) -> TrainJob {
    let job = TrainJob::from_value(doc).unwrap();
    job.validate().unwrap();
    job
}

fn trainjob(name: &str, runtime: &str, trainer: Value) -> TrainJob {
    job(json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": name},
               "spec": {"runtimeRef": {"name": runtime}, "trainer": trainer}}))
}

fn env(pod: &Pod, name: &str) -> String {
    pod.container.env_value(name).unwrap_or_else(|| panic!("{} has no {name}", pod.hostname)).to_string()
}

#[test]
fn torch_on_the_corpus_runtime_with_the_migration_job() {
    let rt = runtime("manifests__base__runtimes__torch_distributed.yaml");
    let job = job(corpus("docs__operator-guides__migration.block1.yaml"));
    let plan = plan(&job, &rt, &Network::Kubernetes).unwrap();
    assert_eq!(plan.framework, Some(Framework::Torch));
    assert_eq!(plan.num_nodes(), 2);
    assert_eq!(plan.world_size(), 2, "no resources: one process per node");
    for (rank, node) in plan.nodes().iter().enumerate() {
        assert_eq!(node.hostname, format!("pytorch-simple-node-0-{rank}.pytorch-simple"));
        assert_eq!(node.container.image.as_deref(), Some("docker.io/kubeflowkatib/pytorch-mnist:v1beta1-45c5727"));
        assert_eq!(node.container.command, ["python3", "/opt/pytorch-mnist/mnist.py", "--epochs=1"]);
        let names: Vec<_> = node.container.env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, torch::RESERVED, "upstream order");
        assert_eq!(env(node, "PET_NNODES"), "2");
        assert_eq!(env(node, "PET_NPROC_PER_NODE"), "1");
        assert_eq!(env(node, "PET_NODE_RANK"), rank.to_string());
        assert_eq!(env(node, "PET_MASTER_ADDR"), "pytorch-simple-node-0-0.pytorch-simple");
        assert_eq!(env(node, "PET_MASTER_PORT"), "29500");
    }
}

#[test]
fn torch_takes_processes_from_cpu_resources_and_keeps_the_runtime_image() {
    let rt = runtime("examples__yaml__04-volcano-integration.doc0.yaml");
    let job = job(corpus("examples__yaml__04-volcano-integration.doc1.yaml"));
    let plan = plan(&job, &rt, &Network::Kubernetes).unwrap();
    assert_eq!(plan.num_nodes(), 4);
    let node = plan.nodes()[3];
    assert_eq!(env(node, "PET_NPROC_PER_NODE"), "2", "cpu limit 2");
    assert_eq!(plan.world_size(), 8);
    assert_eq!(node.container.image.as_deref(), Some("pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"));
    let limits = node.container.resources.as_ref().and_then(|r| r.limits.as_ref()).unwrap();
    assert_eq!(limits["memory"], json!("4Gi"), "resourcesPerNode replaces the container's");
}

#[test]
fn torch_processes_prefer_explicit_then_gpus() {
    let rt = runtime("manifests__base__runtimes__torch_distributed.yaml");
    let gpus =
        trainjob("g", "torch-distributed", json!({"resourcesPerNode": {"limits": {"nvidia.com/gpu": 4, "cpu": 16}}}));
    assert_eq!(env(plan(&gpus, &rt, &Network::Kubernetes).unwrap().nodes()[0], "PET_NPROC_PER_NODE"), "4");
    let explicit = trainjob(
        "e",
        "torch-distributed",
        json!({"numProcPerNode": 3, "resourcesPerNode": {"limits": {"nvidia.com/gpu": 4}}}),
    );
    assert_eq!(env(plan(&explicit, &rt, &Network::Kubernetes).unwrap().nodes()[0], "PET_NPROC_PER_NODE"), "3");
    let millis = trainjob("m", "torch-distributed", json!({"resourcesPerNode": {"requests": {"cpu": "500m"}}}));
    assert_eq!(env(plan(&millis, &rt, &Network::Kubernetes).unwrap().nodes()[0], "PET_NPROC_PER_NODE"), "1");
}

#[test]
fn trainer_env_is_upserted_and_reserved_names_are_rejected() {
    let rt = runtime("manifests__base__runtimes__torch_distributed.yaml");
    let j = trainjob("e", "torch-distributed", json!({"env": [{"name": "LR", "value": "0.1"}]}));
    let plan = plan(&j, &rt, &Network::Kubernetes).unwrap();
    assert_eq!(env(plan.nodes()[0], "LR"), "0.1");
    let bad = trainjob("e", "torch-distributed", json!({"env": [{"name": "PET_NNODES", "value": "9"}]}));
    let err = super::plan(&bad, &rt, &Network::Kubernetes).unwrap_err();
    assert_eq!(err.path(), "spec.trainer.env[0].name", "{err}");
}

#[test]
fn volcano_runtime_gives_a_pod_group_of_every_pod_and_their_requests() {
    let rt = runtime("examples__yaml__04-volcano-integration.doc0.yaml");
    let job = job(corpus("examples__yaml__04-volcano-integration.doc1.yaml"));
    let plan = plan(&job, &rt, &Network::Kubernetes).unwrap();
    let group = plan.pod_group.unwrap();
    assert_eq!(group.scheduler, PodGroupScheduler::Volcano { network_topology_mode: None, highest_tier_allowed: None });
    assert_eq!(group.min_member, 4);
    assert_eq!(group.min_resources["cpu"], 4.0, "4 pods × request 1");
    assert_eq!(group.min_resources["memory"], 4.0 * 2.0 * 1024f64.powi(3));

    let mut doc = corpus("manifests__base__runtimes__torchtune__qwen2_5__qwen2_5_1.5B.yaml");
    doc["spec"]["podGroupPolicy"] = json!({"coscheduling": {"scheduleTimeoutSeconds": 120}});
    let rt = TrainingRuntime::from_value(doc).unwrap();
    let plan = super::plan(&trainjob("t", "torchtune-qwen2.5-1.5b", json!({"numNodes": 2})), &rt, &Network::Kubernetes)
        .unwrap();
    let group = plan.pod_group.unwrap();
    assert_eq!(group.scheduler, PodGroupScheduler::Coscheduling { schedule_timeout_seconds: 120 });
    assert_eq!(group.min_member, 4, "both initializers and both nodes");
    assert_eq!(group.min_resources["nvidia.com/gpu"], 4.0, "limits stand in for requests");
    let no_policy = runtime("manifests__base__runtimes__torch_distributed.yaml");
    assert!(
        super::plan(&trainjob("n", "torch-distributed", json!({})), &no_policy, &Network::Kubernetes)
            .unwrap()
            .pod_group
            .is_none()
    );
}

#[test]
fn torch_env_injection_reaches_the_listed_containers() {
    let mut doc = corpus("manifests__base__runtimes__torchtune__qwen2_5__qwen2_5_1.5B.yaml");
    doc["spec"]["mlPolicy"]["torch"] = json!({"envInjection": {"targets": [{"jobName": "model-initializer", "containerNames": ["model-initializer"]}]}});
    let rt = TrainingRuntime::from_value(doc).unwrap();
    rt.validate().unwrap();
    let plan =
        plan(&trainjob("inj", "torchtune-qwen2.5-1.5b", json!({"numNodes": 2})), &rt, &Network::Kubernetes).unwrap();
    let model = plan.pods_of("model-initializer").next().unwrap();
    assert_eq!(env(model, "PET_NNODES"), "2");
    assert_eq!(env(model, "PET_MASTER_ADDR"), "inj-node-0-0.inj");
    let dataset = plan.pods_of("dataset-initializer").next().unwrap();
    assert!(dataset.container.env_value("PET_NNODES").is_none(), "only targets get the variables");
}

#[test]
fn local_network_uses_the_host_and_the_reserved_port() {
    let rt = runtime("manifests__base__runtimes__torch_distributed.yaml");
    let j = trainjob("local", "torch-distributed", json!({"numNodes": 2, "numProcPerNode": 2}));
    let network = Network::Local { host: "127.0.0.1".into(), port: 40123 };
    let plan = plan(&j, &rt, &network).unwrap();
    for node in plan.nodes() {
        assert_eq!(node.hostname, "127.0.0.1");
        assert_eq!(env(node, "PET_MASTER_ADDR"), "127.0.0.1");
        assert_eq!(env(node, "PET_MASTER_PORT"), "40123");
    }
    let ranks: Vec<_> = plan.workers().iter().map(|w| (w.node_rank, w.local_rank, w.rank)).collect();
    assert_eq!(ranks, [(0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3)]);
}

#[test]
fn jax_on_the_corpus_runtimes() {
    for (file, name) in [
        ("manifests__base__runtimes__jax_distributed.yaml", "jax-distributed"),
        ("docs__user-guides__jax-tpu.block3.yaml", "jax-tpu-v5-8"),
    ] {
        let rt = runtime(file);
        let default_nodes = rt.ml_policy().and_then(|m| m.num_nodes).unwrap() as u32;
        let plan = plan(&trainjob("jx", name, json!({})), &rt, &Network::Kubernetes).unwrap();
        assert_eq!(plan.num_nodes(), default_nodes, "{file}: mlPolicy.numNodes applies when the job sets none");
        let plan = super::plan(&trainjob("jx", name, json!({"numNodes": 3})), &rt, &Network::Kubernetes).unwrap();
        assert_eq!(plan.world_size(), 3);
        for (rank, node) in plan.nodes().iter().enumerate() {
            assert_eq!(env(node, "JAX_NUM_PROCESSES"), "3");
            assert_eq!(env(node, "JAX_PROCESS_ID"), rank.to_string());
            assert_eq!(env(node, "JAX_COORDINATOR_ADDRESS"), "jx-node-0-0.jx:29500");
            assert_eq!(env(node, "JAX_COORDINATOR_PORT"), "29500");
        }
        let err =
            super::plan(&trainjob("jx", name, json!({"numProcPerNode": 2})), &rt, &Network::Kubernetes).unwrap_err();
        assert_eq!(err.path(), "spec.trainer.numProcPerNode");
    }
}

#[test]
fn mpi_with_the_launcher_as_a_node_on_the_mlx_runtime() {
    let rt = runtime("manifests__base__runtimes__mlx_distributed.yaml");
    let j = trainjob("mlx", "mlx-distributed", json!({"numNodes": 3, "command": ["mpirun", "python", "train.py"]}));
    let plan = plan(&j, &rt, &Network::Kubernetes).unwrap();
    assert_eq!(plan.num_nodes(), 3);
    assert_eq!(plan.pods_of("node").count(), 2, "one node is the launcher");
    let launcher = plan.pods_of("launcher").next().unwrap();
    assert_eq!(launcher.role, Role::Node);
    assert_eq!(
        launcher.container.command,
        ["mpirun", "python", "train.py"],
        "the trainer command goes to the launcher"
    );
    let node = plan.pods_of("node").next().unwrap();
    assert_eq!(node.container.command, ["/usr/sbin/sshd"], "node pods keep running sshd");
    let hostfile = &launcher.files.iter().find(|f| f.path == HOSTFILE_PATH).unwrap().contents;
    assert_eq!(hostfile, "mlx-node-0-0.mlx slots=1\nmlx-node-0-1.mlx slots=1\nmlx-launcher-0-0.mlx slots=1\n");
    assert_eq!(env(launcher, "OMPI_MCA_orte_default_hostfile"), "/etc/mpi/hostfile");
    assert_eq!(env(launcher, "OMPI_MCA_orte_keep_fqdn_hostnames"), "true");
    assert_eq!(env(launcher, "OMPI_MCA_orte_set_default_slots"), "1");
    assert_eq!(env(launcher, "OMPI_MCA_plm_rsh_args"), "-o ConnectionAttempts=10");
    assert!(node.files.is_empty() && node.container.env_value("OMPI_MCA_orte_default_hostfile").is_none());
}

#[test]
fn mpi_slots_follow_gpus_and_a_separate_launcher_has_no_rank() {
    let mut doc = corpus("manifests__base__runtimes__mlx_distributed.yaml");
    doc["spec"]["mlPolicy"]["mpi"]["runLauncherAsNode"] = json!(false);
    let rt = TrainingRuntime::from_value(doc).unwrap();
    let j =
        trainjob("m", "mlx-distributed", json!({"numNodes": 2, "resourcesPerNode": {"limits": {"nvidia.com/gpu": 4}}}));
    let plan = plan(&j, &rt, &Network::Kubernetes).unwrap();
    let launcher = plan.pods_of("launcher").next().unwrap();
    assert_eq!((launcher.role, launcher.node_rank, launcher.processes), (Role::Launcher, None, 0));
    assert_eq!(plan.world_size(), 8);
    assert_eq!(launcher.files[0].contents, "m-node-0-0.m slots=4\nm-node-0-1.m slots=4\n");
}

#[test]
fn xgboost_workers_follow_gpus() {
    let mut doc = corpus("manifests__base__runtimes__torch_distributed.yaml");
    doc["spec"]["mlPolicy"] = json!({"numNodes": 1, "xgboost": {}});
    let rt = TrainingRuntime::from_value(doc).unwrap();
    let j = trainjob(
        "xgb",
        "torch-distributed",
        json!({"numNodes": 2, "resourcesPerNode": {"limits": {"nvidia.com/gpu": 2}}}),
    );
    let plan = plan(&j, &rt, &Network::Kubernetes).unwrap();
    for (rank, node) in plan.nodes().iter().enumerate() {
        assert_eq!(env(node, "DMLC_TRACKER_URI"), "xgb-node-0-0.xgb");
        assert_eq!(env(node, "DMLC_TRACKER_PORT"), "29500");
        assert_eq!(env(node, "DMLC_TASK_ID"), rank.to_string());
        assert_eq!(env(node, "DMLC_NUM_WORKER"), "4");
    }
    let cpu = trainjob("xgb", "torch-distributed", json!({"numNodes": 3}));
    assert_eq!(env(super::plan(&cpu, &rt, &Network::Kubernetes).unwrap().nodes()[0], "DMLC_NUM_WORKER"), "3");
    let conflict = trainjob("xgb", "torch-distributed", json!({"numProcPerNode": 2}));
    assert_eq!(super::plan(&conflict, &rt, &Network::Kubernetes).unwrap_err().path(), "spec.trainer.numProcPerNode");
    let reserved = trainjob("xgb", "torch-distributed", json!({"env": [{"name": "DMLC_TASK_ID", "value": "1"}]}));
    assert_eq!(super::plan(&reserved, &rt, &Network::Kubernetes).unwrap_err().path(), "spec.trainer.env[0]");
}

#[test]
fn initializers_get_the_storage_uri_env_and_secret() {
    let rt = runtime("manifests__base__runtimes__torchtune__qwen2_5__qwen2_5_1.5B.yaml");
    let j = job(
        json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "tune"},
        "spec": {"runtimeRef": {"name": "torchtune-qwen2.5-1.5b"}, "initializer": {
            "dataset": {"storageUri": "hf://my/dataset", "env": [{"name": "SPLIT", "value": "train"}], "secretRef": {"name": "hf-token"}}}}}),
    );
    let plan = plan(&j, &rt, &Network::Kubernetes).unwrap();
    let dataset = plan.pods_of("dataset-initializer").next().unwrap();
    assert_eq!(dataset.role, Role::DatasetInitializer);
    assert_eq!(env(dataset, "STORAGE_URI"), "hf://my/dataset");
    assert_eq!(env(dataset, "SPLIT"), "train");
    assert_eq!(dataset.container.env_from_secrets, ["hf-token"]);
    let model = plan.pods_of("model-initializer").next().unwrap();
    assert_eq!(env(model, "STORAGE_URI"), "hf://Qwen/Qwen2.5-1.5B-Instruct", "runtime default kept");
    let node = plan.nodes()[0];
    assert_eq!(env(node, "PET_NPROC_PER_NODE"), "2", "the runtime container asks for 2 GPUs");
    assert_eq!(node.depends_on.len(), 2);
}

#[test]
fn runtime_patches_merge_into_the_template_and_must_target_something() {
    let rt = runtime("manifests__base__runtimes__torch_distributed.yaml");
    let patched = |pod: Value, job_name: &str| {
        job(json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "p"},
            "spec": {"runtimeRef": {"name": "torch-distributed"}, "runtimePatches": [{"manager": "sdk", "trainingRuntimeSpec":
                {"template": {"spec": {"replicatedJobs": [{"name": job_name, "template": {"spec": {"template": {"spec": pod}}}}]}}}}]}}))
    };
    let ok =
        patched(json!({"containers": [{"name": "node", "env": [{"name": "NCCL_DEBUG", "value": "INFO"}]}]}), "node");
    let plan = plan(&ok, &rt, &Network::Kubernetes).unwrap();
    assert_eq!(env(plan.nodes()[0], "NCCL_DEBUG"), "INFO");
    assert_eq!(env(plan.nodes()[0], "PET_NNODES"), "1", "policy env still applies");

    let no_job = patched(json!({"nodeSelector": {"a": "b"}}), "worker");
    let err = super::plan(&no_job, &rt, &Network::Kubernetes).unwrap_err();
    assert_eq!(err.path(), "spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0].name", "{err}");
    let no_container = patched(json!({"containers": [{"name": "sidecar", "env": []}]}), "node");
    let err = super::plan(&no_container, &rt, &Network::Kubernetes).unwrap_err();
    assert!(err.path().ends_with("template.spec.template.spec.containers[0].name"), "{err}");
}

#[test]
fn merge_semantics() {
    let mut target = json!({"nodeSelector": {"a": "1"}, "tolerations": [{"key": "x"}],
        "containers": [{"name": "node", "image": "i", "env": [{"name": "A", "value": "1"}]}]});
    let patch = json!({"nodeSelector": {"b": "2"}, "tolerations": [{"key": "y"}],
        "containers": [{"name": "node", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]});
    patch::merge(&mut target, &patch, "");
    assert_eq!(
        target,
        json!({"nodeSelector": {"a": "1", "b": "2"}, "tolerations": [{"key": "y"}],
        "containers": [{"name": "node", "image": "i", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]})
    );
}

#[test]
fn bad_input_names_the_field() {
    let rt = runtime("manifests__base__runtimes__torch_distributed.yaml");
    let wrong_runtime = trainjob("w", "jax-distributed", json!({}));
    assert_eq!(plan(&wrong_runtime, &rt, &Network::Kubernetes).unwrap_err().path(), "spec.runtimeRef.name");
    let wrong_kind =
        job(json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "w"},
        "spec": {"runtimeRef": {"name": "torch-distributed", "kind": "TrainingRuntime"}}}));
    assert_eq!(plan(&wrong_kind, &rt, &Network::Kubernetes).unwrap_err().path(), "spec.runtimeRef.kind");
    let zero = trainjob("z", "torch-distributed", json!({"numNodes": 0}));
    assert_eq!(plan(&zero, &rt, &Network::Kubernetes).unwrap_err().path(), "spec.trainer.numNodes");
    let flux = runtime("examples__flux__flux-runtime.yaml");
    let flux_job = job(corpus("examples__flux__flux-interactive.yaml"));
    assert_eq!(plan(&flux_job, &flux, &Network::Kubernetes).unwrap_err().path(), "runtime.spec.mlPolicy.flux");
    let mut no_trainer = corpus("manifests__base__runtimes__torch_distributed.yaml");
    no_trainer["spec"]["template"]["spec"]["replicatedJobs"][0]["name"] = json!("worker");
    no_trainer["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["metadata"] = json!({});
    let rt = TrainingRuntime::from_value(no_trainer).unwrap();
    let err = plan(&trainjob("n", "torch-distributed", json!({})), &rt, &Network::Kubernetes).unwrap_err();
    assert_eq!(err.path(), "runtime.spec.template.spec.replicatedJobs");
}

#[test]
fn runtimes_without_a_framework_run_plain_nodes() {
    let rt = runtime("docs__operator-guides__job-template.block4.yaml");
    let plan = plan(&trainjob("plain", "example-runtime", json!({"numNodes": 1})), &rt, &Network::Kubernetes).unwrap();
    assert_eq!(plan.framework, None);
    // The launcher carries the trainer ancestor label, so it is the trainer job here.
    let nodes = plan.nodes();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].replicated_job, "launcher");
    assert_eq!(plan.pods.len(), 4, "dataset, model, launcher, node");
}

fn synthetic_runtime(framework: &str, launcher_as_node: bool) -> TrainingRuntime {
    let job = |name: &str, labelled: bool| {
        let meta = if labelled {
            json!({"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}})
        } else {
            json!({})
        };
        json!({"name": name, "template": {"metadata": meta, "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "img"}]}}}}})
    };
    let (policy, jobs) = match framework {
        "mpi" => (
            json!({"mpi": {"runLauncherAsNode": launcher_as_node}}),
            json!([job("node", false), job("launcher", true)]),
        ),
        "plain" => (json!({}), json!([job("node", true)])),
        other => (json!({other: {}}), json!([job("node", true)])),
    };
    let mut ml = policy;
    ml["numNodes"] = json!(1);
    TrainingRuntime::from_value(json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
        "metadata": {"name": "rt"}, "spec": {"mlPolicy": ml, "template": {"spec": {"replicatedJobs": jobs}}}}))
    .unwrap()
}

proptest! {
    #[test]
    fn ranks_are_unique_and_cover_the_world(
        framework in prop::sample::select(vec!["torch", "mpi", "jax", "xgboost", "plain"]),
        launcher_as_node in any::<bool>(),
        nodes in 1i32..12,
        procs in 1i32..6,
        local in any::<bool>(),
    ) {
        let rt = synthetic_runtime(framework, launcher_as_node);
        rt.validate().unwrap();
        let procs = match framework { "jax" | "xgboost" => None, _ => Some(procs) };
        let mut trainer = json!({"numNodes": nodes});
        if let Some(p) = procs { trainer["numProcPerNode"] = json!(p); }
        let job = trainjob("job", "rt", trainer);
        let network = if local { Network::Local { host: "127.0.0.1".into(), port: 30000 } } else { Network::Kubernetes };
        let plan = plan(&job, &rt, &network).unwrap();
        let expected_nodes = if framework == "mpi" && launcher_as_node { nodes.max(2) } else { nodes } as u32;
        prop_assert_eq!(plan.num_nodes(), expected_nodes);
        let mut ranks: Vec<u32> = plan.nodes().iter().filter_map(|p| p.node_rank).collect();
        ranks.sort_unstable();
        prop_assert_eq!(ranks, (0..expected_nodes).collect::<Vec<_>>());
        let workers = plan.workers();
        prop_assert_eq!(workers.len() as u32, plan.world_size());
        let global: Vec<u32> = workers.iter().map(|w| w.rank).collect();
        prop_assert_eq!(global, (0..plan.world_size()).collect::<Vec<_>>());
        let per_node = procs.unwrap_or(1) as u32;
        prop_assert_eq!(plan.world_size(), expected_nodes * per_node);
        if !local {
            let mut hosts: Vec<&str> = plan.pods.iter().map(|p| p.hostname.as_str()).collect();
            hosts.sort_unstable();
            hosts.dedup();
            prop_assert_eq!(hosts.len(), plan.pods.len(), "hostnames are unique on Kubernetes");
        }
        if framework == "mpi" {
            let hostfile = &plan.pods_of("launcher").next().unwrap().files[0].contents;
            prop_assert_eq!(hostfile.lines().count() as u32, expected_nodes);
        }
    }
}

proptest! {
    #[test]
    fn a_pod_group_holds_every_pod_and_sums_their_requests(nodes in 1i32..10, cpu_milli in 1u32..8000, gpus in 0u32..8) {
        let mut doc = corpus("manifests__base__runtimes__torch_distributed.yaml");
        doc["spec"]["podGroupPolicy"] = json!({"coscheduling": {}});
        let rt = TrainingRuntime::from_value(doc).unwrap();
        let j = trainjob("g", "torch-distributed", json!({"numNodes": nodes,
            "resourcesPerNode": {"requests": {"cpu": format!("{cpu_milli}m")}, "limits": {"nvidia.com/gpu": gpus}}}));
        let plan = plan(&j, &rt, &Network::Kubernetes).unwrap();
        let group = plan.pod_group.unwrap();
        prop_assert_eq!(group.scheduler, PodGroupScheduler::Coscheduling { schedule_timeout_seconds: 60 });
        prop_assert_eq!(group.min_member as usize, plan.pods.len());
        let cpu = group.min_resources["cpu"];
        prop_assert!((cpu - f64::from(nodes as u32 * cpu_milli) / 1000.0).abs() < 1e-6);
        prop_assert_eq!(group.min_resources["nvidia.com/gpu"], f64::from(nodes as u32 * gpus));
    }
}

#[test]
fn each_trainer_override_rule() {
    let rt = TrainingRuntime::from_value(json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime", "metadata": {"name": "rt"},
        "spec": {"mlPolicy": {"numNodes": 3, "torch": {}}, "template": {"spec": {"replicatedJobs": [{"name": "node",
            "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "base", "command": ["python"],
                    "args": ["a.py"], "env": [{"name": "KEEP", "value": "1"}, {"name": "OVER", "value": "old"}],
                    "resources": {"limits": {"cpu": "8", "memory": "1Gi"}}}]}}}}}]}}},
    }))
    .unwrap();
    rt.validate().unwrap();
    let untouched = plan(&trainjob("j", "rt", json!({})), &rt, &Network::Kubernetes).unwrap();
    let node = untouched.nodes()[0];
    assert_eq!(untouched.num_nodes(), 3, "mlPolicy.numNodes when the job sets none");
    assert_eq!(
        (node.container.image.as_deref(), node.container.command.as_slice(), node.container.args.as_slice()),
        (Some("base"), &["python".to_string()][..], &["a.py".to_string()][..])
    );
    assert_eq!(env(node, "PET_NPROC_PER_NODE"), "8", "runtime CPU limit when the job has no resourcesPerNode");

    let overridden = trainjob(
        "j",
        "rt",
        json!({"numNodes": 2, "image": "mine", "command": ["torchrun"], "args": ["b.py"],
        "env": [{"name": "OVER", "value": "new"}, {"name": "ADDED", "value": "2"}],
        "resourcesPerNode": {"requests": {"cpu": "2"}}}),
    );
    let plan = super::plan(&overridden, &rt, &Network::Kubernetes).unwrap();
    let node = plan.nodes()[0];
    assert_eq!(plan.num_nodes(), 2);
    assert_eq!(node.container.image.as_deref(), Some("mine"));
    assert_eq!(node.container.command, ["torchrun"]);
    assert_eq!(node.container.args, ["b.py"]);
    assert_eq!((env(node, "KEEP"), env(node, "OVER"), env(node, "ADDED")), ("1".into(), "new".into(), "2".into()));
    let resources = node.container.resources.as_ref().unwrap();
    assert!(resources.limits.is_none(), "resourcesPerNode replaces the runtime's resources wholesale");
    assert_eq!(env(node, "PET_NPROC_PER_NODE"), "2");
}
