use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::launch::{Network, plan};
use crate::{Error, TrainJob, TrainingRuntime};

fn runtime(policy: Value, jobs: Value) -> TrainingRuntime {
    TrainingRuntime::from_value(json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
        "metadata": {"name": "rt"},
        "spec": {"mlPolicy": policy, "template": {"spec": {"replicatedJobs": jobs}}},
    }))
    .unwrap()
}

fn node_job(container: Value) -> Value {
    json!([{"name": "node",
            "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                         "spec": {"template": {"spec": {"containers": [container]}}}}}])
}

fn torch_runtime() -> TrainingRuntime {
    runtime(json!({"torch": {}}), node_job(json!({"name": "node", "image": "pytorch"})))
}

fn job(trainer: Value) -> TrainJob {
    TrainJob::from_value(json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "j"},
        "spec": {"runtimeRef": {"name": "rt"}, "trainer": trainer},
    }))
    .unwrap()
}

fn local() -> Network {
    Network::Local { host: "127.0.0.1".into(), port: 41000 }
}

fn specs(job: &TrainJob, runtime: &TrainingRuntime) -> crate::Result<Vec<ProcessSpec>> {
    processes(&plan(job, runtime, &local())?, &Workspace::new("/ws"), "team-a")
}

proptest! {
    /// Whatever the shape, torch workers get the ranks 0..world exactly
    /// once, consistent with their node and local ranks and torchrun's env.
    #[test]
    fn torch_ranks_are_a_permutation_of_the_world(nodes in 1i32..5, procs in 1i32..5) {
        let job = job(json!({"numNodes": nodes, "numProcPerNode": procs, "command": ["python3", "train.py"]}));
        let specs = specs(&job, &torch_runtime()).unwrap();
        let world = (nodes * procs) as u32;
        prop_assert_eq!(specs.len() as u32, world);
        let ranks: BTreeSet<u32> = specs.iter().filter_map(|s| s.rank).collect();
        prop_assert_eq!(ranks, (0..world).collect::<BTreeSet<_>>());
        let names: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        prop_assert_eq!(names.len(), specs.len());
        for s in &specs {
            let (rank, local, node) = (s.rank.unwrap(), s.local_rank.unwrap(), s.node_rank.unwrap());
            prop_assert_eq!(rank, node * procs as u32 + local);
            let world_text = world.to_string();
            prop_assert_eq!(s.env_value("WORLD_SIZE"), Some(world_text.as_str()));
            prop_assert_eq!(s.env_value("MASTER_PORT"), Some("41000"));
            prop_assert_eq!(s.env_value("PET_MASTER_PORT"), Some("41000"));
            prop_assert_eq!(s.env_value("MASTER_ADDR"), Some("127.0.0.1"));
            let node_text = node.to_string();
            prop_assert_eq!(s.env_value("PET_NODE_RANK"), Some(node_text.as_str()));
            prop_assert_eq!(s.env_value(KF_WORKSPACE_ENV), Some("/ws"));
        }
    }

    /// Text without `$` is never changed; `$$` always becomes `$`.
    #[test]
    fn expansion_leaves_plain_text_alone(text in "[^$]{0,40}", name in "[A-Z_]{1,8}") {
        let lookup = |n: &str| (n == name).then(|| "v".to_string());
        prop_assert_eq!(expand_vars(&text, lookup), text.clone());
        let escaped = format!("{text}$$({name})");
        prop_assert_eq!(expand_vars(&escaped, lookup), format!("{text}$({name})"));
        let referenced = format!("{text}$({name})");
        prop_assert_eq!(expand_vars(&referenced, lookup), format!("{text}v"));
    }

    /// The outcome is `Complete` exactly when every task exits 0, and a
    /// failure is blamed on the first task that failed, whatever the order.
    #[test]
    fn the_first_failure_decides_and_success_needs_everyone(codes in prop::collection::vec(0i32..3, 1..8), order in any::<prop::sample::Index>()) {
        let mut t = JobTracker::new("t0");
        let ids: Vec<usize> = (0..codes.len()).map(|i| t.add_task("node", 0, &format!("rank {i}"), i == 0)).collect();
        for &id in &ids { t.start(id); }
        let rotate = order.index(codes.len());
        let sequence: Vec<usize> = ids.iter().cycle().skip(rotate).take(ids.len()).copied().collect();
        let first_failure = sequence.iter().find(|&&i| codes[i] != 0).copied();
        for &id in &sequence {
            t.exited(id, Some(codes[id]), "t1");
        }
        let outcome = t.outcome().unwrap();
        match first_failure {
            None => prop_assert_eq!(outcome.reason, Reason::AllJobsCompleted),
            Some(i) => {
                prop_assert_eq!(outcome.reason, Reason::FailedJobs);
                let rank_label = format!("rank {i} ");
                prop_assert!(outcome.message.starts_with(&rank_label), "{}", outcome.message);
            }
        }
        prop_assert!(t.all_over());
        prop_assert!(t.to_kill().is_empty());
    }

    /// Metric parsing never panics on arbitrary text and only returns
    /// finite numbers.
    #[test]
    fn metric_parsing_is_total(line in ".{0,80}") {
        for (name, value) in parse_metrics(&line) {
            prop_assert!(!name.is_empty() && name.len() <= 64);
            prop_assert!(value.parse::<f64>().unwrap().is_finite());
        }
    }
}

#[test]
fn torchrun_spawns_its_own_workers() {
    for command in [json!(["torchrun", "train.py"]), json!(["python3", "-m", "torch.distributed.run", "train.py"])] {
        let job = job(json!({"numNodes": 2, "numProcPerNode": 4, "command": command}));
        let specs = specs(&job, &torch_runtime()).unwrap();
        assert_eq!(specs.len(), 2, "one torchrun per node");
        assert_eq!(specs[1].env_value("PET_NODE_RANK"), Some("1"));
        assert_eq!(specs[1].env_value("PET_NPROC_PER_NODE"), Some("4"));
        assert_eq!(specs[1].env_value("RANK"), None, "torchrun sets the worker env itself");
    }
}

#[test]
fn variables_expand_in_args_and_env_like_the_kubelet() {
    let job = job(json!({
        "command": ["python3", "train.py"], "args": ["--out=$(KF_WORKSPACE)/model-$(LR)", "$$(LR)"],
        "env": [{"name": "LR", "value": "0.1"}, {"name": "TAG", "value": "lr-$(LR)-$(UNSET)"}],
    }));
    let specs = specs(&job, &torch_runtime()).unwrap();
    assert_eq!(specs[0].args, ["train.py", "--out=/ws/model-0.1", "$(LR)"]);
    assert_eq!(specs[0].env_value("TAG"), Some("lr-0.1-$(UNSET)"));
}

#[test]
fn the_downward_api_has_local_values() {
    let container = json!({"name": "node", "image": "x", "env": [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]});
    let rt = runtime(json!({"torch": {}}), node_job(container));
    let specs = specs(&job(json!({"numNodes": 2, "command": ["train"]})), &rt).unwrap();
    assert_eq!(specs[1].env_value("POD"), Some("j-node-0-1"));
    assert_eq!(specs[1].env_value("NS"), Some("team-a"));
}

#[test]
fn what_needs_kubernetes_is_refused_by_name() {
    let secret = json!({"name": "node", "image": "x", "env": [
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]});
    let err = specs(&job(json!({"command": ["train"]})), &runtime(json!({"torch": {}}), node_job(secret))).unwrap_err();
    assert!(
        matches!(&err, Error::Unlaunchable { path, message }
        if path.contains("env TOKEN") && message.contains("secretKeyRef")),
        "{err}"
    );

    let env_from = json!({"name": "node", "image": "x", "envFrom": [{"secretRef": {"name": "creds"}}]});
    let err =
        specs(&job(json!({"command": ["train"]})), &runtime(json!({"torch": {}}), node_job(env_from))).unwrap_err();
    assert!(err.to_string().contains("creds"), "{err}");

    let err = specs(&job(json!({})), &torch_runtime()).unwrap_err();
    assert!(err.to_string().contains("spec.trainer.command"), "{err}");
}

#[test]
fn mpi_runs_the_launcher_with_a_local_hostfile() {
    let jobs = json!([
        {"name": "launcher", "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"containers": [{"name": "launcher", "image": "mpi", "command": ["mpirun", "python3", "train.py"]}]}}}}},
        {"name": "node", "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "mpi", "command": ["/usr/sbin/sshd", "-De"]}]}}}}},
    ]);
    let rt = runtime(json!({"numNodes": 2, "mpi": {"numProcPerNode": 2}}), jobs);
    let job = TrainJob::from_value(json!({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "j"},
        "spec": {"runtimeRef": {"name": "rt"}},
    }))
    .unwrap();
    let specs = specs(&job, &rt).unwrap();
    assert_eq!(specs.len(), 1, "{specs:#?}");
    assert_eq!(specs[0].program, "mpirun");
    let hostfile = "/ws/files/j-launcher-0-0/etc/mpi/hostfile";
    assert_eq!(specs[0].env_value("OMPI_MCA_orte_default_hostfile"), Some(hostfile));
    assert_eq!(specs[0].files[0].0.display().to_string(), hostfile);
    assert_eq!(specs[0].files[0].1, "127.0.0.1 slots=2\n127.0.0.1 slots=2\n");
}

#[test]
fn status_counts_jobs_and_reports_the_reporter_only() {
    let mut t = JobTracker::new("t0");
    let init = t.add_task("dataset-initializer", 0, "dataset-initializer", false);
    let r0 = t.add_task("node", 0, "rank 0", true);
    let r1 = t.add_task("node", 0, "rank 1", false);
    t.start(init);
    t.exited(init, Some(0), "t1");
    t.start(r0);
    t.observe(r1, "loss=9", "t2", 1.0);
    assert!(t.status().trainer_status.is_none(), "only the reporter's lines count");
    t.start(r1);
    t.observe(r0, "step 10 loss=0.5 progress=25", "t3", 10.0);
    let s = t.status();
    let trainer = s.trainer_status.unwrap();
    assert_eq!(trainer.progress_percentage, Some(25));
    assert_eq!(trainer.estimated_remaining_seconds, Some(30));
    assert_eq!(trainer.last_updated_time.as_deref(), Some("t3"));
    let jobs = s.jobs_status.unwrap();
    let counts: Vec<_> = jobs.iter().map(|j| (j.name.clone().unwrap(), j.succeeded, j.active, j.ready)).collect();
    assert_eq!(
        counts,
        [("dataset-initializer".into(), Some(1), Some(0), Some(0)), ("node".into(), Some(0), Some(1), Some(1))]
    );

    t.exited(r0, Some(0), "t4");
    assert!(t.outcome().is_none());
    t.deadline_exceeded(60, "t5");
    assert_eq!(t.to_kill(), vec![r1]);
    t.exited(r1, None, "t6");
    let s = t.status();
    let last = s.conditions.unwrap().pop().unwrap();
    assert_eq!((last.type_.as_deref(), last.reason.as_deref()), (Some("Failed"), Some("DeadlineExceeded")));
    assert_eq!(t.state(r1), Some(&TaskState::Killed));
}

#[test]
fn a_suspended_status_holds_every_job() {
    let mut t = JobTracker::new("t0");
    t.add_task("node", 0, "rank 0", true);
    t.add_task("node", 1, "rank 1", false);
    t.suspend("t0");
    let s = t.status();
    let conditions = s.conditions.unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_.as_deref(), Some("Suspended"));
    assert_eq!(s.jobs_status.unwrap()[0].suspended, Some(2));
    assert!(t.all_over());
}

#[test]
fn metrics_read_like_katib() {
    let found = parse_metrics("loss = 0.5, accuracy=9.5e-1 1=2 =3 v=.5 w=- x=1e y=+2");
    assert_eq!(
        found,
        [("loss", "0.5"), ("accuracy", "9.5e-1"), ("v", ".5"), ("x", "1"), ("y", "+2")]
            .map(|(n, v)| (n.to_string(), v.to_string()))
    );
}
