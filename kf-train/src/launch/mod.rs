//! Launch policies: a TrainJob and the runtime it references become a
//! [`LaunchPlan`] — every pod of the JobSet with its container's image,
//! command, env, resources and files, and each training node's rank. The
//! plan is the seam to whatever runs it: the local process backend, the
//! Kubernetes renderer, or a gang scheduler that only needs the pod list.
//!
//! Resolution runs in phases, like the upstream plugin framework:
//!
//! 1. **Runtime patches**: the TrainJob's `runtimePatches` are merged into a
//!    copy of the runtime's JobSet template (a patch naming a replicated job
//!    or container the runtime lacks is an error).
//! 2. **Overrides**: `trainer.image/command/args/env/resourcesPerNode` go to
//!    the `node` containers of the trainer replicated job (the one labelled
//!    `trainjob-ancestor-step: trainer`; also `launcher` containers when MPI
//!    runs the launcher as a node); initializer `storageUri`/`env`/`secretRef`
//!    go to the initializer containers.
//! 3. **ML policy** ([`LaunchPolicy::enforce`]): pod counts and job-wide env.
//! 4. **Pod group** (`podGroupPolicy`): the gang the pods are admitted as
//!    ([`PodGroup`]: every pod, and the sum of their requests).
//! 5. **Build**: pods are expanded with their JobSet hostnames
//!    (`<job>-<replicatedJob>-<jobIndex>-<podIndex>.<subdomain>`), or the
//!    local host when running locally.
//! 6. **Per-pod** ([`LaunchPolicy::finish`]): ranks, rank env, hostfiles.
//!
//! Everything here is pure: no IO, no clocks, no randomness. Building a plan
//! is O(P·E) for P pods and E env variables per container.

mod jax;
mod mpi;
pub(crate) mod patch;
mod plain;
mod torch;
mod xgboost;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::jobset::{ANCESTOR_LABEL, DATASET_INITIALIZER, JobSetTemplate, LAUNCHER, MODEL_INITIALIZER, NODE};
use crate::meta::{EnvVar, ResourceRequirements, quantity_of, upsert_env};
use crate::runtime::{Framework, PodGroupPolicy, TrainingRuntime};
use crate::trainjob::{InitializerSource, TrainJob};
use crate::{Error, Result};

pub use jax::JaxPolicy;
pub use mpi::MpiPolicy;
pub use plain::PlainPolicy;
pub use torch::TorchPolicy;
pub use xgboost::XGBoostPolicy;

/// The port trainer nodes rendezvous on in a cluster (torchrun master,
/// XGBoost tracker), as upstream sets it.
pub const TRAINER_PORT: u16 = 29500;
/// The JAX coordinator port in a cluster: upstream's JAX plugin uses the
/// trainer port (`constants.ContainerTrainerPort`) for it too.
pub const JAX_COORDINATOR_PORT: u16 = TRAINER_PORT;
/// Env var the initializers read their source from.
pub const STORAGE_URI_ENV: &str = "STORAGE_URI";

/// Where the pods of a plan find each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// Pods on Kubernetes: JobSet DNS hostnames and the upstream ports.
    Kubernetes,
    /// Every pod is a process group on one host; `port` is the rendezvous
    /// port the backend reserved (the master / coordinator / tracker port).
    Local {
        /// Address every node uses, e.g. `127.0.0.1`.
        host: String,
        /// Rendezvous port.
        port: u16,
    },
}

/// What a pod does for the TrainJob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Fetches the dataset before training.
    DatasetInitializer,
    /// Fetches the model before training.
    ModelInitializer,
    /// Runs training processes (has a node rank).
    Node,
    /// Starts the job (MPI `mpirun`) without training on its own.
    Launcher,
    /// Any other replicated job of the runtime.
    Other,
}

/// The container a pod runs, after overrides and policies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerLaunch {
    /// Container name in the pod template.
    pub name: String,
    /// Image reference.
    pub image: Option<String>,
    /// Entrypoint (empty: the image's).
    pub command: Vec<String>,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment, in order, names unique.
    pub env: Vec<EnvVar>,
    /// Secrets whose keys become env (`envFrom.secretRef`).
    pub env_from_secrets: Vec<String>,
    /// Compute resources.
    pub resources: Option<ResourceRequirements>,
    /// Working directory.
    pub working_dir: Option<String>,
}

impl ContainerLaunch {
    /// The value of env var `name`, if set literally.
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.env.iter().find(|e| e.name == name)?.value.as_deref()
    }
}

/// A file a pod needs at a path (e.g. the MPI hostfile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchFile {
    /// Absolute path in the container.
    pub path: String,
    /// Contents.
    pub contents: String,
}

/// A group of identical pods before they are expanded: one replicated job.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSet {
    /// Replicated job name.
    pub name: String,
    /// Its `trainjob-ancestor-step` label.
    pub ancestor: Option<String>,
    /// What its pods do.
    pub role: Role,
    /// Jobs in the replicated job.
    pub replicas: u32,
    /// Pods per Job.
    pub parallelism: u32,
    /// Training processes per pod (nodes only).
    pub processes: u32,
    /// The main container.
    pub container: ContainerLaunch,
    /// Replicated jobs this one waits for, with the status awaited.
    pub depends_on: Vec<(String, String)>,
}

impl PodSet {
    /// Pods in this set.
    pub fn count(&self) -> u32 {
        self.replicas.saturating_mul(self.parallelism)
    }
}

/// One pod of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    /// Replicated job name.
    pub replicated_job: String,
    /// What it does.
    pub role: Role,
    /// Job index within the replicated job.
    pub job_index: u32,
    /// Pod (completion) index within the Job.
    pub pod_index: u32,
    /// How the other pods reach it.
    pub hostname: String,
    /// Rank among training nodes, 0-based (nodes only).
    pub node_rank: Option<u32>,
    /// Training processes it runs (0 for non-nodes).
    pub processes: u32,
    /// The main container.
    pub container: ContainerLaunch,
    /// Files to place before start.
    pub files: Vec<LaunchFile>,
    /// Replicated jobs this pod waits for, with the status awaited.
    pub depends_on: Vec<(String, String)>,
}

/// One training process: what torchrun would spawn on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    /// The node's rank.
    pub node_rank: u32,
    /// Rank within the node.
    pub local_rank: u32,
    /// Global rank: `node_rank * processes_per_node + local_rank`.
    pub rank: u32,
}

/// The gang scheduler a runtime asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum PodGroupScheduler {
    /// scheduler-plugins coscheduling.
    Coscheduling {
        /// Seconds to wait for the whole gang.
        schedule_timeout_seconds: i32,
    },
    /// Volcano.
    Volcano {
        /// `networkTopology.mode` (`hard` or `soft`), if set.
        network_topology_mode: Option<String>,
        /// `networkTopology.highestTierAllowed`, if set.
        highest_tier_allowed: Option<i64>,
    },
}

/// The gang a plan is admitted as, all pods or none: the pod group the
/// upstream coscheduling / Volcano plugins create.
#[derive(Debug, Clone, PartialEq)]
pub struct PodGroup {
    /// Which scheduler and its settings.
    pub scheduler: PodGroupScheduler,
    /// Pods that must be placed together: every pod of the plan.
    pub min_member: u32,
    /// Sum over pods of the main container's requests (a request defaults
    /// to the limit, as Kubernetes defaults it), resource → amount in base units.
    pub min_resources: BTreeMap<String, f64>,
}

impl PodGroup {
    /// Phase 4: the pod group for `pods` under `policy`, or `None` without a
    /// policy. O(P·R) for P pods and R resources.
    pub fn for_pods(policy: Option<&PodGroupPolicy>, pods: &[Pod]) -> Option<PodGroup> {
        let policy = policy?;
        let scheduler = if let Some(c) = &policy.coscheduling {
            PodGroupScheduler::Coscheduling { schedule_timeout_seconds: c.schedule_timeout_seconds() }
        } else if let Some(v) = &policy.volcano {
            let topology = v.network_topology.as_ref();
            PodGroupScheduler::Volcano {
                network_topology_mode: topology.and_then(|t| t.mode.clone()),
                highest_tier_allowed: topology.and_then(|t| t.highest_tier_allowed),
            }
        } else {
            return None;
        };
        let mut min_resources = BTreeMap::new();
        for pod in pods {
            for (name, amount) in pod_requests(pod.container.resources.as_ref()) {
                *min_resources.entry(name).or_insert(0.0) += amount;
            }
        }
        Some(PodGroup { scheduler, min_member: pods.len() as u32, min_resources })
    }
}

/// Requests of one container, each defaulting to its limit.
pub(crate) fn pod_requests(resources: Option<&ResourceRequirements>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(r) = resources else { return out };
    for map in [&r.limits, &r.requests].into_iter().flatten() {
        for (name, q) in map {
            if let Some(amount) = quantity_of(q) {
                out.insert(name.clone(), amount);
            }
        }
    }
    out
}

/// A resolved TrainJob: every pod with its container, ranks and files.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchPlan {
    /// TrainJob name (also the JobSet name).
    pub job_name: String,
    /// The runtime's framework; `None` runs plain nodes.
    pub framework: Option<Framework>,
    /// Where pods find each other.
    pub network: Network,
    /// Whether the job is suspended.
    pub suspend: bool,
    /// Wall-clock limit.
    pub active_deadline_seconds: Option<i64>,
    /// Every pod, in template order.
    pub pods: Vec<Pod>,
    /// The gang the pods are admitted as, when the runtime has a `podGroupPolicy`.
    pub pod_group: Option<PodGroup>,
}

impl LaunchPlan {
    /// Training nodes, by rank.
    pub fn nodes(&self) -> Vec<&Pod> {
        let mut nodes: Vec<&Pod> = self.pods.iter().filter(|p| p.node_rank.is_some()).collect();
        nodes.sort_by_key(|p| p.node_rank);
        nodes
    }

    /// Number of training nodes.
    pub fn num_nodes(&self) -> u32 {
        self.pods.iter().filter(|p| p.node_rank.is_some()).count() as u32
    }

    /// Total training processes.
    pub fn world_size(&self) -> u32 {
        self.nodes().iter().map(|p| p.processes).sum()
    }

    /// Every training process with its global rank, node by node. O(world size).
    pub fn workers(&self) -> Vec<Worker> {
        let mut workers = Vec::new();
        let mut next = 0;
        for node in self.nodes() {
            let node_rank = node.node_rank.unwrap_or_default();
            for local_rank in 0..node.processes {
                workers.push(Worker { node_rank, local_rank, rank: next });
                next += 1;
            }
        }
        workers
    }

    /// Pods of one replicated job.
    pub fn pods_of(&self, replicated_job: &str) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(move |p| p.replicated_job == replicated_job)
    }
}

/// What a policy reads: the job, the runtime, the network.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    /// The TrainJob.
    pub job: &'a TrainJob,
    /// The runtime it references.
    pub runtime: &'a TrainingRuntime,
    /// The TrainJob's name.
    pub job_name: &'a str,
    /// Where pods find each other.
    pub network: &'a Network,
    /// Trainer nodes requested: `trainer.numNodes`, else `mlPolicy.numNodes`, else 1.
    pub num_nodes: u32,
    /// The trainer replicated job: labelled `trainjob-ancestor-step: trainer`, else `node`.
    pub trainer_job: &'a str,
}

impl PolicyInput<'_> {
    /// The rendezvous port: the reserved local port, or `cluster_port`.
    pub fn port(&self, cluster_port: u16) -> u16 {
        match self.network {
            Network::Kubernetes => cluster_port,
            Network::Local { port, .. } => *port,
        }
    }
}

/// One ML policy plugin: how a framework shapes the pods and their env.
pub trait LaunchPolicy {
    /// Phase 3: sets pod counts, processes per pod and job-wide env on the
    /// pod sets (template order).
    fn enforce(&self, input: &PolicyInput<'_>, pod_sets: &mut [PodSet]) -> Result<()>;

    /// Phase 5: once every pod has a hostname, sets node ranks, rank env and
    /// files.
    fn finish(&self, input: &PolicyInput<'_>, plan: &mut LaunchPlan) -> Result<()>;
}

/// The policy for a framework (`None`: plain nodes, no framework env).
pub fn policy_for(framework: Option<Framework>) -> Result<Box<dyn LaunchPolicy>> {
    Ok(match framework {
        None => Box::new(PlainPolicy),
        Some(Framework::Torch) => Box::new(TorchPolicy),
        Some(Framework::Mpi) => Box::new(MpiPolicy),
        Some(Framework::Jax) => Box::new(JaxPolicy),
        Some(Framework::XGBoost) => Box::new(XGBoostPolicy),
        Some(Framework::Flux) => {
            return Err(Error::Unlaunchable {
                path: "runtime.spec.mlPolicy.flux".into(),
                message: "the Flux policy (a Flux broker bootstrapped by an init container) has no kf launch policy"
                    .into(),
            });
        }
    })
}

/// Resolves `job` against `runtime` into a launch plan. Both should have
/// passed `validate()`; what only resolution can find (a runtime that is not
/// the referenced one, zero nodes, a patch that targets nothing, no trainer
/// job) is reported with the field's path. O(P·E).
///
/// ```
/// use kf_train::{TrainJob, TrainingRuntime, launch::{plan, Network}};
/// use serde_json::json;
///
/// let runtime = TrainingRuntime::from_value(json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
///     "metadata": {"name": "torch-distributed"},
///     "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [{
///         "name": "node",
///         "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
///                      "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "pytorch"}]}}}}}]}}},
/// }))?;
/// let job = TrainJob::from_value(json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "mnist"},
///     "spec": {"runtimeRef": {"name": "torch-distributed"},
///              "trainer": {"numNodes": 2, "numProcPerNode": 4, "command": ["torchrun", "train.py"]}},
/// }))?;
/// let plan = plan(&job, &runtime, &Network::Kubernetes)?;
/// assert_eq!(plan.world_size(), 8);
/// let node1 = plan.nodes()[1];
/// assert_eq!(node1.hostname, "mnist-node-0-1.mnist");
/// assert_eq!(node1.container.env_value("PET_NODE_RANK"), Some("1"));
/// assert_eq!(node1.container.env_value("PET_MASTER_ADDR"), Some("mnist-node-0-0.mnist"));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn plan(job: &TrainJob, runtime: &TrainingRuntime, network: &Network) -> Result<LaunchPlan> {
    let job_name =
        job.name().filter(|n| !n.is_empty()).ok_or_else(|| unlaunchable("metadata.name", "a TrainJob needs a name"))?;
    check_reference(job, runtime)?;
    let ml_policy = runtime.ml_policy();
    let frameworks = ml_policy.map(|m| m.frameworks()).unwrap_or_default();
    if frameworks.len() > 1 {
        return Err(unlaunchable("runtime.spec.mlPolicy", "only one framework policy can be configured"));
    }
    let framework = frameworks.first().copied();
    let policy = policy_for(framework)?;

    let requested = job.trainer().and_then(|t| t.num_nodes);
    let num_nodes = match (requested, ml_policy.and_then(|m| m.num_nodes)) {
        (Some(n), _) if n < 1 => {
            return Err(unlaunchable("spec.trainer.numNodes", format!("expected at least 1 node, found {n}")));
        }
        (Some(n), _) => n,
        (None, Some(n)) if n < 1 => {
            return Err(unlaunchable("runtime.spec.mlPolicy.numNodes", format!("expected at least 1 node, found {n}")));
        }
        (None, Some(n)) => n,
        (None, None) => 1,
    } as u32;

    let mut template = runtime
        .template()
        .cloned()
        .ok_or_else(|| unlaunchable("runtime.spec.template", "the runtime has no JobSet template"))?;
    patch::apply_runtime_patches(job, &mut template)?;
    let Some(trainer_job) = template.trainer_job().map(|j| j.name.clone()) else {
        return Err(unlaunchable(
            "runtime.spec.template.spec.replicatedJobs",
            format!("no replicated job labelled {ANCESTOR_LABEL}: trainer and none named {NODE:?}"),
        ));
    };

    let launcher_is_node = runtime.ml_policy().and_then(|m| m.mpi.as_ref()).is_some_and(|m| m.run_launcher_as_node());
    let mut pod_sets = pod_sets(job, &template, launcher_is_node)?;
    let input = PolicyInput { job, runtime, job_name, network, num_nodes, trainer_job: &trainer_job };
    policy.enforce(&input, &mut pod_sets)?;

    let subdomain = template
        .spec
        .as_ref()
        .and_then(|s| s.network.as_ref())
        .and_then(|n| n.subdomain.clone())
        .unwrap_or_else(|| job_name.to_string());
    let mut pods = Vec::new();
    for set in &pod_sets {
        for job_index in 0..set.replicas {
            for pod_index in 0..set.parallelism {
                let hostname = match network {
                    Network::Kubernetes => format!("{job_name}-{}-{job_index}-{pod_index}.{subdomain}", set.name),
                    Network::Local { host, .. } => host.clone(),
                };
                pods.push(Pod {
                    replicated_job: set.name.clone(),
                    role: set.role,
                    job_index,
                    pod_index,
                    hostname,
                    node_rank: None,
                    processes: if set.role == Role::Node { set.processes } else { 0 },
                    container: set.container.clone(),
                    files: Vec::new(),
                    depends_on: set.depends_on.clone(),
                });
            }
        }
    }
    let spec = job.spec.as_ref();
    let mut plan = LaunchPlan {
        job_name: job_name.to_string(),
        framework,
        network: network.clone(),
        suspend: job.suspended(),
        active_deadline_seconds: spec.and_then(|s| s.active_deadline_seconds),
        pod_group: PodGroup::for_pods(runtime.spec.as_ref().and_then(|s| s.pod_group_policy.as_ref()), &pods),
        pods,
    };
    policy.finish(&input, &mut plan)?;
    Ok(plan)
}

/// The runtime `job` references among `candidates`: matched by name and
/// kind (`spec.runtimeRef.kind`, default `ClusterTrainingRuntime`), as the
/// controller looks it up. A missing runtime is an error naming
/// `spec.runtimeRef.name` and the runtimes that were there. O(n).
///
/// ```
/// use kf_train::{TrainJob, TrainingRuntime, launch::resolve_runtime};
/// use serde_json::json;
///
/// let rt = |kind: &str, name: &str| TrainingRuntime::from_value(json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": {}})).unwrap();
/// let runtimes = [rt("TrainingRuntime", "torch"), rt("ClusterTrainingRuntime", "torch")];
/// let job = TrainJob::from_value(json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
///     "metadata": {"name": "j"}, "spec": {"runtimeRef": {"name": "torch"}}}))?;
/// assert_eq!(resolve_runtime(&job, &runtimes)?.kind, "ClusterTrainingRuntime");
/// let other = TrainJob::from_value(json!({"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
///     "metadata": {"name": "j"}, "spec": {"runtimeRef": {"name": "jax"}}}))?;
/// assert_eq!(resolve_runtime(&other, &runtimes).unwrap_err().path(), "spec.runtimeRef.name");
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn resolve_runtime<'a>(job: &TrainJob, candidates: &'a [TrainingRuntime]) -> Result<&'a TrainingRuntime> {
    let rref = job.runtime_ref().ok_or_else(|| unlaunchable("spec.runtimeRef", "required field is missing"))?;
    let name = rref.name.as_deref().unwrap_or_default();
    if let Some(found) = candidates.iter().find(|r| r.name() == Some(name) && r.kind == rref.kind()) {
        return Ok(found);
    }
    let known: Vec<String> =
        candidates.iter().map(|r| format!("{} {:?}", r.kind, r.name().unwrap_or_default())).collect();
    Err(unlaunchable(
        "spec.runtimeRef.name",
        format!(
            "no {} named {name:?} was given (given: {})",
            rref.kind(),
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        ),
    ))
}

/// The runtime must be the one `spec.runtimeRef` names.
fn check_reference(job: &TrainJob, runtime: &TrainingRuntime) -> Result<()> {
    let rref = job.runtime_ref().ok_or_else(|| unlaunchable("spec.runtimeRef", "required field is missing"))?;
    if rref.name.as_deref() != runtime.name() {
        return Err(unlaunchable(
            "spec.runtimeRef.name",
            format!(
                "the job references runtime {:?}, but the runtime given is {:?}",
                rref.name.as_deref().unwrap_or_default(),
                runtime.name().unwrap_or_default()
            ),
        ));
    }
    if rref.kind() != runtime.kind {
        return Err(unlaunchable(
            "spec.runtimeRef.kind",
            format!("the job references a {}, but the runtime given is a {}", rref.kind(), runtime.kind),
        ));
    }
    Ok(())
}

/// Phase 2: the pod sets of the (patched) template with the TrainJob's
/// trainer and initializer overrides applied.
fn pod_sets(job: &TrainJob, template: &JobSetTemplate, launcher_is_node: bool) -> Result<Vec<PodSet>> {
    let trainer_job = template.trainer_job().map(|j| j.name.clone());
    let mut sets = Vec::new();
    for (i, rjob) in template.replicated_jobs().iter().enumerate() {
        let path = format!("runtime.spec.template.spec.replicatedJobs[{i}]");
        let pod = rjob.pod_template().ok_or_else(|| unlaunchable(format!("{path}.template"), "no pod template"))?;
        let containers =
            pod.containers().map_err(|e| unlaunchable(format!("{path}.template.spec.template"), e.to_string()))?;
        let ancestor = rjob.ancestor().map(str::to_string);
        let is_trainer = trainer_job.as_deref() == Some(rjob.name.as_str());
        let role = match (ancestor.as_deref(), rjob.name.as_str()) {
            (Some(DATASET_INITIALIZER), _) | (None, DATASET_INITIALIZER) => Role::DatasetInitializer,
            (Some(MODEL_INITIALIZER), _) | (None, MODEL_INITIALIZER) => Role::ModelInitializer,
            (_, LAUNCHER) => Role::Launcher,
            _ if is_trainer || rjob.name == NODE => Role::Node,
            _ => Role::Other,
        };
        let main_name = match role {
            Role::DatasetInitializer => DATASET_INITIALIZER,
            Role::ModelInitializer => MODEL_INITIALIZER,
            _ => NODE,
        };
        let main = containers
            .iter()
            .find(|c| c.name == main_name)
            .or_else(|| containers.iter().find(|c| c.name == LAUNCHER))
            .or(containers.first())
            .ok_or_else(|| unlaunchable(format!("{path}.template.spec.template.spec.containers"), "no containers"))?;
        let mut container = ContainerLaunch {
            name: main.name.clone(),
            image: main.image.clone(),
            command: main.command.clone().unwrap_or_default(),
            args: main.args.clone().unwrap_or_default(),
            env: main.env.clone().unwrap_or_default(),
            env_from_secrets: env_from_secrets(main.extra.get("envFrom")),
            resources: main.resources.clone(),
            working_dir: main.working_dir.clone(),
        };
        let gets_trainer = ancestor.as_deref() == Some("trainer")
            && (container.name == NODE || (container.name == LAUNCHER && launcher_is_node));
        if gets_trainer && let Some(trainer) = job.trainer() {
            if let Some(image) = &trainer.image {
                container.image = Some(image.clone());
            }
            if let Some(command) = &trainer.command {
                container.command = command.clone();
            }
            if let Some(args) = &trainer.args {
                container.args = args.clone();
            }
            if let Some(r) = &trainer.resources_per_node
                && (r.limits.is_some() || r.requests.is_some())
            {
                container.resources = Some(ResourceRequirements {
                    limits: r.limits.clone(),
                    requests: r.requests.clone(),
                    ..Default::default()
                });
            }
            upsert_env(&mut container.env, trainer.env.clone().unwrap_or_default());
        }
        let initializer = job.spec.as_ref().and_then(|s| s.initializer.as_ref());
        let source = match role {
            Role::DatasetInitializer => initializer.and_then(|i| i.dataset.as_ref()),
            Role::ModelInitializer => initializer.and_then(|i| i.model.as_ref()),
            _ => None,
        };
        if let Some(source) = source
            && container.name == main_name
        {
            apply_initializer(&mut container, source);
        }
        let depends_on = rjob
            .depends_on
            .iter()
            .flatten()
            .map(|d| (d.name.clone().unwrap_or_default(), d.status.clone().unwrap_or_default()))
            .collect();
        let parallelism = rjob.template.as_ref().and_then(|t| t.spec.as_ref()).and_then(|s| s.parallelism);
        sets.push(PodSet {
            name: rjob.name.clone(),
            ancestor,
            role,
            replicas: non_negative(rjob.replicas.unwrap_or(1)),
            parallelism: non_negative(parallelism.unwrap_or(1)),
            processes: 1,
            container,
            depends_on,
        });
    }
    Ok(sets)
}

fn apply_initializer(container: &mut ContainerLaunch, source: &InitializerSource) {
    if let Some(uri) = &source.storage_uri {
        upsert_env(&mut container.env, [EnvVar::literal(STORAGE_URI_ENV, uri.clone())]);
    }
    upsert_env(&mut container.env, source.env.clone().unwrap_or_default());
    if let Some(name) = source.secret_ref.as_ref().and_then(|s| s.name.clone())
        && !container.env_from_secrets.contains(&name)
    {
        container.env_from_secrets.push(name);
    }
}

fn env_from_secrets(env_from: Option<&Value>) -> Vec<String> {
    env_from
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.pointer("/secretRef/name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn non_negative(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

pub(crate) fn unlaunchable(path: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Unlaunchable { path: path.into(), message: message.into() }
}

/// The trainer pod set: labelled `trainer`, else named `node`.
pub(crate) fn trainer_set(pod_sets: &mut [PodSet]) -> Option<&mut PodSet> {
    let index = pod_sets
        .iter()
        .position(|s| s.ancestor.as_deref() == Some("trainer"))
        .or_else(|| pod_sets.iter().position(|s| s.name == NODE))?;
    pod_sets.get_mut(index)
}

/// Numbers the pods of the trainer replicated job 0.. in (job, pod) index
/// order and returns them for per-rank env. Used by every policy but MPI.
pub(crate) fn rank_trainer_pods<'a>(plan: &'a mut LaunchPlan, trainer_job: &str) -> Vec<&'a mut Pod> {
    let mut nodes: Vec<&mut Pod> = plan.pods.iter_mut().filter(|p| p.replicated_job == trainer_job).collect();
    for (rank, pod) in nodes.iter_mut().enumerate() {
        pod.role = Role::Node;
        pod.node_rank = Some(rank as u32);
    }
    nodes
}

/// Processes per node from resources, the upstream way when nothing says
/// otherwise: the GPU count if any GPU is requested, else the CPU count
/// (rounded up, at least 1), else 1.
pub(crate) fn procs_from_resources(resources: Option<&ResourceRequirements>) -> u32 {
    let Some(r) = resources else { return 1 };
    let gpus = r.gpus();
    if gpus > 0 {
        return u32::try_from(gpus).unwrap_or(u32::MAX);
    }
    match r.amount("cpu") {
        Some(cpu) if cpu.is_finite() => (cpu.ceil() as u32).max(1),
        _ => 1,
    }
}

#[cfg(test)]
mod tests;
