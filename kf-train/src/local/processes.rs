//! From a launch plan to the processes the local backend starts. Pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::KF_WORKSPACE_ENV;
use crate::Result;
use crate::jobset::NODE;
use crate::launch::{LaunchPlan, Network, Pod, Role, TRAINER_PORT, unlaunchable};
use crate::runtime::Framework;

/// Where a local run keeps its files. Only paths: nothing here touches the
/// filesystem.
///
/// ```
/// let ws = kf_train::local::Workspace::new("/tmp/kf/mnist");
/// assert_eq!(ws.dataset(), std::path::Path::new("/tmp/kf/mnist/dataset"));
/// assert_eq!(ws.file("mnist-launcher-0-0", "/etc/mpi/hostfile"),
///            std::path::Path::new("/tmp/kf/mnist/files/mnist-launcher-0-0/etc/mpi/hostfile"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// A workspace rooted at `root` (one per run).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Workspace { root: root.into() }
    }
    /// The root; processes find it in `KF_WORKSPACE`.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Where the dataset initializer puts the dataset (`/workspace/dataset` on a cluster).
    pub fn dataset(&self) -> PathBuf {
        self.root.join("dataset")
    }
    /// Where the model initializer puts the model (`/workspace/model` on a cluster).
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }
    /// One log file per process.
    pub fn log(&self, process: &str) -> PathBuf {
        self.root.join("logs").join(format!("{process}.log"))
    }
    /// Where a file a pod needs at `path` (an absolute container path) is
    /// placed for the local process of `pod`.
    pub fn file(&self, pod: &str, path: &str) -> PathBuf {
        self.root.join("files").join(pod).join(path.trim_start_matches('/'))
    }
    /// The TrainJob with its latest status, rewritten at each transition.
    pub fn status(&self) -> PathBuf {
        self.root.join("trainjob.json")
    }
}

/// One process to start: a training worker, an MPI launcher, or another
/// pod of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Unique within the run: `<replicatedJob>-<jobIndex>-<podIndex>`, plus
    /// `-<localRank>` when a pod runs several workers.
    pub name: String,
    /// The pod it stands for (`<job>-<replicatedJob>-<jobIndex>-<podIndex>`).
    pub pod: String,
    /// Replicated job of the pod.
    pub replicated_job: String,
    /// Job index within the replicated job.
    pub job_index: u32,
    /// What the pod does.
    pub role: Role,
    /// The node's rank, for training nodes.
    pub node_rank: Option<u32>,
    /// Rank within the node, when kf spawns each worker itself.
    pub local_rank: Option<u32>,
    /// Global rank, when kf spawns each worker itself.
    pub rank: Option<u32>,
    /// The program (the container's `command[0]`, or `args[0]` without a command).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Env set on top of the parent's, in order.
    pub env: Vec<(String, String)>,
    /// Files to write before the start: local path → contents.
    pub files: Vec<(PathBuf, String)>,
}

impl ProcessSpec {
    /// How logs name the process: `rank 3` for ranked workers, else its name.
    pub fn label(&self) -> String {
        match self.rank {
            Some(rank) => format!("rank {rank}"),
            None => self.name.clone(),
        }
    }

    /// The value of env var `name`.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        lookup(&self.env, name)
    }
}

/// The processes a local run of `plan` starts, in plan order. Initializer
/// pods are not processes (the backend fetches their `STORAGE_URI` itself)
/// and neither are MPI node pods (they only run `sshd` on a cluster).
///
/// Torch nodes whose command is not `torchrun` (or `python -m
/// torch.distributed.run`) become one process per worker with torchrun's
/// worker env, so a plain `torch.distributed` script runs without torchrun;
/// with torchrun, one process per node and torchrun spawns the workers.
/// O(W·E) for W processes and E env variables.
///
/// ```
/// use kf_train::{TrainJob, TrainingRuntime, launch::{plan, Network}, local::{processes, Workspace}};
/// use serde_json::json;
///
/// let runtime = TrainingRuntime::from_value(json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
///     "metadata": {"name": "torch"},
///     "spec": {"mlPolicy": {"torch": {}}, "template": {"spec": {"replicatedJobs": [{"name": "node", "template": {
///         "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
///         "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "pytorch"}]}}}}}]}}},
/// }))?;
/// let job = TrainJob::from_value(json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "mnist"},
///     "spec": {"runtimeRef": {"name": "torch"},
///              "trainer": {"numNodes": 2, "numProcPerNode": 2, "command": ["python3", "train.py"]}},
/// }))?;
/// let network = Network::Local { host: "127.0.0.1".into(), port: 40000 };
/// let procs = processes(&plan(&job, &runtime, &network)?, &Workspace::new("/tmp/ws"), "default")?;
/// assert_eq!(procs.len(), 4);
/// assert_eq!(procs[3].env_value("RANK"), Some("3"));
/// assert_eq!(procs[3].env_value("GROUP_RANK"), Some("1"));
/// assert_eq!(procs[3].env_value("MASTER_PORT"), Some("40000"));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn processes(plan: &LaunchPlan, workspace: &Workspace, namespace: &str) -> Result<Vec<ProcessSpec>> {
    let world_size = plan.world_size();
    let mut first_rank = BTreeMap::new();
    let mut next = 0;
    for node in plan.nodes() {
        first_rank.insert(node.node_rank.unwrap_or_default(), next);
        next += node.processes;
    }
    let master = plan.nodes().first().map(|n| n.hostname.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for pod in &plan.pods {
        if matches!(pod.role, Role::DatasetInitializer | Role::ModelInitializer) {
            continue;
        }
        if plan.framework == Some(Framework::Mpi) && pod.replicated_job == NODE {
            continue;
        }
        let pod_name = format!("{}-{}-{}-{}", plan.job_name, pod.replicated_job, pod.job_index, pod.pod_index);
        let at = |what: &str| format!("pod {pod_name:?}, container {:?}: {what}", pod.container.name);
        if let Some(secret) = pod.container.env_from_secrets.first() {
            return Err(unlaunchable(
                at("envFrom"),
                format!("env from Secret {secret:?} needs Kubernetes; set the variables literally to run locally"),
            ));
        }
        let mut env = vec![(KF_WORKSPACE_ENV.to_string(), workspace.root().display().to_string())];
        for var in &pod.container.env {
            let value = match (&var.value, &var.value_from) {
                (_, Some(from)) => field_value(from, pod, &pod_name, namespace)
                    .ok_or_else(|| unlaunchable(at(&format!("env {}", var.name)), unsupported_source(from)))?,
                (Some(value), None) => expand_vars(value, |name| lookup(&env, name).map(str::to_string)),
                (None, None) => String::new(),
            };
            set(&mut env, &var.name, value);
        }
        let mut argv: Vec<String> = pod
            .container
            .command
            .iter()
            .chain(&pod.container.args)
            .map(|a| expand_vars(a, |name| lookup(&env, name).map(str::to_string)))
            .collect();
        let mut files = Vec::new();
        for file in &pod.files {
            let local = workspace.file(&pod_name, &file.path);
            let local_text = local.display().to_string();
            for value in env.iter_mut().map(|(_, v)| v).chain(argv.iter_mut()) {
                if *value == file.path {
                    value.clone_from(&local_text);
                }
            }
            files.push((local, file.contents.clone()));
        }
        if argv.is_empty() {
            return Err(unlaunchable(
                at("command"),
                "no command or args: a local process cannot use the image's entrypoint; set spec.trainer.command",
            ));
        }
        let program = argv.remove(0);
        let base = ProcessSpec {
            name: format!("{}-{}-{}", pod.replicated_job, pod.job_index, pod.pod_index),
            pod: pod_name.clone(),
            replicated_job: pod.replicated_job.clone(),
            job_index: pod.job_index,
            role: pod.role,
            node_rank: pod.node_rank,
            local_rank: None,
            rank: None,
            program,
            args: argv,
            env,
            files,
        };
        let spawns_workers = plan.framework == Some(Framework::Torch) && !is_torchrun(&base.program, &base.args);
        match pod.node_rank {
            Some(node_rank) if spawns_workers => {
                let port = match &plan.network {
                    Network::Local { port, .. } => port.to_string(),
                    Network::Kubernetes => TRAINER_PORT.to_string(),
                };
                let first = first_rank.get(&node_rank).copied().unwrap_or_default();
                for local_rank in 0..pod.processes {
                    let mut worker = base.clone();
                    let rank = first + local_rank;
                    if pod.processes > 1 {
                        worker.name = format!("{}-{local_rank}", base.name);
                    }
                    worker.local_rank = Some(local_rank);
                    worker.rank = Some(rank);
                    for (name, value) in [
                        ("RANK", rank.to_string()),
                        ("LOCAL_RANK", local_rank.to_string()),
                        ("WORLD_SIZE", world_size.to_string()),
                        ("LOCAL_WORLD_SIZE", pod.processes.to_string()),
                        ("GROUP_RANK", node_rank.to_string()),
                        ("ROLE_RANK", rank.to_string()),
                        ("ROLE_WORLD_SIZE", world_size.to_string()),
                        ("MASTER_ADDR", master.clone()),
                        ("MASTER_PORT", port.clone()),
                    ] {
                        set(&mut worker.env, name, value);
                    }
                    out.push(worker);
                }
            }
            _ => out.push(base),
        }
    }
    Ok(out)
}

/// Whether a command line is torchrun, which spawns the workers itself.
fn is_torchrun(program: &str, args: &[String]) -> bool {
    let base = Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or(program);
    base == "torchrun"
        || (base.starts_with("python")
            && args.windows(2).next().is_some_and(|w| w[0] == "-m" && w[1] == "torch.distributed.run"))
}

/// Kubernetes' dependent-variable expansion: `$(NAME)` becomes the value
/// `lookup` gives, `$$` becomes `$`, and a reference to an unknown variable
/// stays as written (as the kubelet leaves it). O(n) in the input length.
///
/// ```
/// let env = |name: &str| (name == "RANK").then(|| "3".to_string());
/// assert_eq!(kf_train::local::expand_vars("out-$(RANK).txt", env), "out-3.txt");
/// assert_eq!(kf_train::local::expand_vars("$$(RANK) $(NOPE)", env), "$(RANK) $(NOPE)");
/// ```
pub fn expand_vars(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match lookup(name) {
                Some(value) => out.push_str(&value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The value of `name` in an env list: the last one set, as a process sees it.
fn lookup<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn set(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

/// The downward-API fields a local process can know.
fn field_value(from: &Value, pod: &Pod, pod_name: &str, namespace: &str) -> Option<String> {
    let path = from.pointer("/fieldRef/fieldPath")?.as_str()?;
    Some(match path {
        "metadata.name" => pod_name.to_string(),
        "metadata.namespace" => namespace.to_string(),
        "status.podIP" | "status.hostIP" => pod.hostname.clone(),
        "spec.nodeName" => "localhost".to_string(),
        _ => return None,
    })
}

fn unsupported_source(from: &Value) -> String {
    let kind = from.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_else(|| "valueFrom".into());
    match from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
        Some(path) => format!(
            "valueFrom.fieldRef {path:?} has no local value (known: metadata.name, metadata.namespace, status.podIP, status.hostIP, spec.nodeName)"
        ),
        None => format!("valueFrom.{kind} needs Kubernetes; set the variable literally to run locally"),
    }
}
