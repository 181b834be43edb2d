//! Kubernetes rendering (feature `kube`): a resolved [`LaunchPlan`] becomes
//! the objects the upstream Trainer controller creates for the TrainJob — the
//! JobSet (`jobset.x-k8s.io/v1alpha2`), the MPI hostfile ConfigMap, and the
//! PodGroup of the runtime's gang scheduler (scheduler-plugins coscheduling
//! `scheduling.x-k8s.io/v1alpha1` or Volcano `scheduling.volcano.sh/v1beta1`).
//!
//! The plan says what every pod runs; a JobSet says it once per replicated
//! job, in one pod template. Rendering folds the pods back: values shared by
//! every pod of a replicated job are written literally, the node rank
//! (`PET_NODE_RANK`, `JAX_PROCESS_ID`, `DMLC_TASK_ID`) becomes a reference to
//! the Job completion index, as upstream writes it, and anything else that
//! differs between pods is an error ([`Error::Unrenderable`]) rather than a
//! silently wrong template.
//!
//! Every rendered Job template is checked offline before it is returned: it
//! must read back as the `batch/v1` `JobTemplateSpec` of k8s-openapi without
//! losing a field (strict field validation, as `kubectl apply
//! --validate=strict` does), and the JobSet spec passes the same validator as a
//! runtime's template. There is no API server here; this module applies
//! nothing and does no IO. The MPI SSH Secret is not rendered: its keys must
//! be fresh random material, which a pure function cannot make; its name is
//! [`Manifests::ssh_auth_secret`].

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::JobTemplateSpec;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::jobset::{JobSetSpec, JobSetTemplate, ReplicatedJob, Shape};
use crate::launch::{LaunchPlan, Network, Pod, PodGroupScheduler, TRAINER_PORT};
use crate::meta::ResourceRequirements;
use crate::runtime::{Framework, TrainingRuntime};
use crate::trainjob::{API_VERSION, TRAINJOB_KIND, TrainJob};
use crate::{Error, Result};

/// `apiVersion` of a JobSet.
pub const JOBSET_API_VERSION: &str = "jobset.x-k8s.io/v1alpha2";
/// `apiVersion` of a scheduler-plugins (coscheduling) PodGroup.
pub const COSCHEDULING_API_VERSION: &str = "scheduling.x-k8s.io/v1alpha1";
/// `apiVersion` of a Volcano PodGroup.
pub const VOLCANO_API_VERSION: &str = "scheduling.volcano.sh/v1beta1";
/// Pod label that puts a pod into a coscheduling PodGroup.
pub const COSCHEDULING_POD_GROUP_LABEL: &str = "scheduling.x-k8s.io/pod-group";
/// Pod annotation that puts a pod into a Volcano PodGroup.
pub const VOLCANO_GROUP_NAME_ANNOTATION: &str = "scheduling.k8s.io/group-name";
/// JobSet annotation naming the Volcano queue of the PodGroup.
pub const VOLCANO_QUEUE_ANNOTATION: &str = "scheduling.volcano.sh/queue-name";
/// Scheduler name of Volcano.
pub const VOLCANO_SCHEDULER_NAME: &str = "volcano";
/// Where a pod of an Indexed Job reads its completion index.
pub const COMPLETION_INDEX_FIELD_PATH: &str = "metadata.annotations['batch.kubernetes.io/job-completion-index']";
/// Suffix of the MPI hostfile ConfigMap's name (after the TrainJob's name).
pub const MPI_HOSTFILE_CONFIG_MAP_SUFFIX: &str = "-mpi-hostfile";
/// Volume that mounts the MPI hostfile ConfigMap.
pub const MPI_HOSTFILE_VOLUME: &str = "mpi-hostfile";
/// Suffix of the MPI SSH auth Secret's name (after the TrainJob's name).
pub const MPI_SSH_AUTH_SECRET_SUFFIX: &str = "-mpi-ssh-auth";
/// Volume that mounts the MPI SSH auth Secret.
pub const MPI_SSH_AUTH_VOLUME: &str = "mpi-ssh-auth";

/// Env vars that carry a pod's rank among the trainer nodes; a pod template
/// reads them from the Job completion index.
const RANK_ENV: [&str; 3] = ["PET_NODE_RANK", "JAX_PROCESS_ID", "DMLC_TASK_ID"];
/// The MPI hostfile's path in the launcher, as the MPI policy writes it.
const MPI_HOSTFILE_PATH: &str = "/etc/mpi/hostfile";

/// A JobSet (`jobset.x-k8s.io/v1alpha2`); k8s-openapi has no type for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSet {
    /// [`JOBSET_API_VERSION`].
    pub api_version: String,
    /// `JobSet`.
    pub kind: String,
    /// Name (the TrainJob's), namespace, labels, annotations, owner.
    pub metadata: ObjectMeta,
    /// Replicated jobs with their pod templates, network and policies.
    pub spec: JobSetSpec,
}

/// A PodGroup of scheduler-plugins coscheduling or of Volcano; `api_version`
/// says which. k8s-openapi has no type for either.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodGroup {
    /// [`COSCHEDULING_API_VERSION`] or [`VOLCANO_API_VERSION`].
    pub api_version: String,
    /// `PodGroup`.
    pub kind: String,
    /// Name (the TrainJob's), namespace, owner.
    pub metadata: ObjectMeta,
    /// The gang.
    pub spec: PodGroupSpec,
}

/// `spec` of a PodGroup: the fields both schedulers share, and each one's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupSpec {
    /// Pods that must be scheduled together: every pod of the TrainJob.
    pub min_member: i32,
    /// Sum of the pods' requests, resource → quantity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min_resources: BTreeMap<String, String>,
    /// Coscheduling: seconds to wait for the whole gang.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
    /// Volcano: the queue (from the JobSet annotation [`VOLCANO_QUEUE_ANNOTATION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Volcano: the priority class of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Volcano: network-topology-aware placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_topology: Option<NetworkTopology>,
}

/// Volcano `spec.networkTopology`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkTopology {
    /// `hard` or `soft`.
    pub mode: String,
    /// Highest tier the gang may span.
    pub highest_tier_allowed: i64,
}

/// Everything rendered for one TrainJob.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifests {
    /// The JobSet that runs every pod.
    pub job_set: JobSet,
    /// ConfigMaps the pods mount (the MPI hostfile).
    pub config_maps: Vec<ConfigMap>,
    /// The gang, when the runtime has a `podGroupPolicy`.
    pub pod_group: Option<PodGroup>,
    /// MPI: the name of the `kubernetes.io/ssh-auth` Secret the node and
    /// launcher pods mount (keys `ssh-privatekey`, `ssh-publickey`), which the
    /// caller creates with fresh keys.
    pub ssh_auth_secret: Option<String>,
}

impl Manifests {
    /// Every object as a document with `apiVersion` and `kind`, in the order
    /// to create them: ConfigMaps, the PodGroup, then the JobSet (whose pods
    /// need the others).
    pub fn to_values(&self) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for config_map in &self.config_maps {
            let mut value = to_value(config_map, "configMap")?;
            if let Value::Object(map) = &mut value {
                map.insert("apiVersion".into(), "v1".into());
                map.insert("kind".into(), "ConfigMap".into());
            }
            out.push(value);
        }
        if let Some(pod_group) = &self.pod_group {
            out.push(to_value(pod_group, "podGroup")?);
        }
        out.push(to_value(&self.job_set, "jobSet")?);
        Ok(out)
    }
}

fn to_value<T: Serialize>(object: &T, path: &str) -> Result<Value> {
    serde_json::to_value(object).map_err(|e| unrenderable(path, format!("cannot serialise: {e}")))
}

fn unrenderable(path: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Unrenderable { path: path.into(), message: message.into() }
}

/// Renders `plan` — resolved from `job` and `runtime` by
/// [`crate::launch::plan`] with [`Network::Kubernetes`] — into the JobSet,
/// ConfigMaps and PodGroup the upstream controller creates. The runtime's
/// JobSet template (with the TrainJob's runtime patches) supplies everything
/// the plan does not model (volumes, probes, security contexts, policies);
/// the plan supplies counts, containers' image/command/args/env/resources and
/// files. O(P·E + T) for P pods, E env vars per pod and a template of size T.
///
/// Fails with [`Error::Unrenderable`] when the plan does not belong to the
/// job, was resolved for local processes, or differs between the pods of one
/// replicated job in a way one pod template cannot say; with
/// [`Error::Invalid`] / [`Error::UnknownField`] (path under `jobset.`) when a
/// rendered template would not pass the Kubernetes schema.
///
/// ```
/// use kf_train::launch::{Network, plan};
/// use kf_train::render::{COMPLETION_INDEX_FIELD_PATH, render};
/// use kf_train::{TrainJob, TrainingRuntime};
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
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
///     "metadata": {"name": "mnist", "namespace": "team-a"},
///     "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}},
/// }))?;
/// let plan = plan(&job, &runtime, &Network::Kubernetes)?;
/// let manifests = render(&job, &runtime, &plan)?;
///
/// let node = &manifests.job_set.spec.replicated_jobs.as_ref().unwrap()[0];
/// let job_spec = node.template.as_ref().unwrap().spec.as_ref().unwrap();
/// assert_eq!((job_spec.parallelism, job_spec.completions), (Some(2), Some(2)));
/// let pod = job_spec.template.as_ref().unwrap().spec.as_ref().unwrap();
/// let rank = pod["containers"][0]["env"].as_array().unwrap().iter()
///     .find(|e| e["name"] == "PET_NODE_RANK").unwrap();
/// assert_eq!(rank["valueFrom"]["fieldRef"]["fieldPath"], COMPLETION_INDEX_FIELD_PATH);
/// assert_eq!(manifests.job_set.metadata.namespace.as_deref(), Some("team-a"));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn render(job: &TrainJob, runtime: &TrainingRuntime, plan: &LaunchPlan) -> Result<Manifests> {
    let name = job.name().unwrap_or_default();
    if plan.job_name != name {
        return Err(unrenderable(
            "plan.job_name",
            format!("the plan is for TrainJob {:?}, not {name:?}", plan.job_name),
        ));
    }
    if plan.network != Network::Kubernetes {
        return Err(unrenderable("plan.network", "the plan was resolved for local processes, not Kubernetes"));
    }
    let namespace = job.metadata.as_ref().and_then(|m| m.namespace.clone());
    let mut template = runtime
        .template()
        .cloned()
        .ok_or_else(|| unrenderable("runtime.spec.template", "the runtime has no JobSet template"))?;
    // The same runtime patches the plan was resolved with: they carry the pod
    // fields the plan does not model (node selectors, tolerations, volumes).
    crate::launch::patch::apply_runtime_patches(job, &mut template)?;
    let template_meta = template.metadata.clone().unwrap_or_default();

    let mut spec = template.spec.clone().unwrap_or_default();
    let subdomain = render_network(&mut spec, name)?;
    spec.suspend = job.spec.as_ref().and_then(|s| s.suspend);

    let pod_group = plan.pod_group.as_ref();
    let (pod_labels, pod_annotations) = match pod_group.map(|g| &g.scheduler) {
        Some(PodGroupScheduler::Coscheduling { .. }) => {
            (BTreeMap::from([(COSCHEDULING_POD_GROUP_LABEL.to_string(), name.to_string())]), BTreeMap::new())
        }
        Some(PodGroupScheduler::Volcano { .. }) => {
            (BTreeMap::new(), BTreeMap::from([(VOLCANO_GROUP_NAME_ANNOTATION.to_string(), name.to_string())]))
        }
        None => (BTreeMap::new(), BTreeMap::new()),
    };
    let volcano = matches!(pod_group.map(|g| &g.scheduler), Some(PodGroupScheduler::Volcano { .. }));

    let mpi = plan.framework == Some(Framework::Mpi);
    let ssh_mount = runtime.ml_policy().and_then(|m| m.mpi.as_ref()).map(|m| m.ssh_auth_mount_path().to_string());
    let mut config_maps = Vec::new();
    let mut priority_class_name = None;
    let jobs = spec.replicated_jobs.as_deref_mut().unwrap_or_default();
    let mut rendered_pods = 0usize;
    // What the gang needs: every pod's effective request (all its
    // containers, as the scheduler counts them) times its pods.
    let mut gang_requests: BTreeMap<String, f64> = BTreeMap::new();
    for (i, rjob) in jobs.iter_mut().enumerate() {
        let here = format!("jobset.spec.replicatedJobs[{i}]");
        let pods: Vec<&Pod> = plan.pods_of(&rjob.name).collect();
        rendered_pods += pods.len();
        let job_template = rjob.template.get_or_insert_with(Default::default);
        let job_spec = job_template.spec.get_or_insert_with(Default::default);
        let pod_template = job_spec.template.get_or_insert_with(Default::default);
        if let Some(first) = pods.first() {
            let replicas = pods.iter().map(|p| p.job_index).max().unwrap_or(0) + 1;
            let per_job = pods.iter().filter(|p| p.job_index == first.job_index).count();
            if pods.len() != replicas as usize * per_job {
                return Err(unrenderable(&here, "the plan's Jobs of this replicated job have different pod counts"));
            }
            rjob.replicas = Some(to_i32(replicas as usize, &here)?);
            job_spec.parallelism = Some(to_i32(per_job, &here)?);
            job_spec.completions = job_spec.parallelism;
            let pod_spec = pod_template.spec.get_or_insert_with(|| Value::Object(Map::new()));
            render_main_container(pod_spec, &pods, &format!("{here}.template.spec.template.spec"))?;
            // The rendezvous port on the trainer container, as the torch and
            // JAX plugins publish it for the headless service.
            let port = match plan.framework {
                Some(Framework::Torch) => Some(TRAINER_PORT),
                Some(Framework::Jax) => first.container.env_value("JAX_COORDINATOR_PORT").and_then(|p| p.parse().ok()),
                _ => None,
            };
            if let Some(port) = port.filter(|_| first.node_rank.is_some()) {
                add_container_port(pod_spec, &first.container.name, port);
            }
            if mpi && (rjob.name == crate::jobset::NODE || rjob.name == crate::jobset::LAUNCHER) {
                let mount = ssh_mount.as_deref().unwrap_or("/root/.ssh");
                mount_ssh_auth(pod_spec, &first.container.name, name, mount);
            }
            if let Some(config_map) = render_files(pod_spec, &pods, name, namespace.as_deref(), &here, mpi)?
                && !config_maps.contains(&config_map)
            {
                config_maps.push(config_map);
            }
        }
        if !pod_labels.is_empty() {
            let pod_meta = pod_template.metadata.get_or_insert_with(Default::default);
            pod_meta.labels.get_or_insert_with(Default::default).extend(pod_labels.clone());
        }
        if !pod_annotations.is_empty() {
            let pod_meta = pod_template.metadata.get_or_insert_with(Default::default);
            pod_meta.annotations.get_or_insert_with(Default::default).extend(pod_annotations.clone());
        }
        let pod_spec = pod_template.spec.get_or_insert_with(|| Value::Object(Map::new()));
        if volcano && pod_spec.get("schedulerName").is_none() {
            pod_spec["schedulerName"] = json!(VOLCANO_SCHEDULER_NAME);
        }
        if let Some(class) = pod_spec.get("priorityClassName").and_then(Value::as_str) {
            priority_class_name = Some(class.to_string());
        }
        normalise_quantities(pod_spec);
        let pods_here = plan.pods_of(&rjob.name).count() as f64;
        for (resource, amount) in effective_pod_requests(pod_spec) {
            *gang_requests.entry(resource).or_insert(0.0) += amount * pods_here;
        }
    }
    if plan.framework == Some(Framework::Torch) {
        inject_torch_env(runtime, plan, jobs)?;
    }
    for (i, rjob) in jobs.iter().enumerate() {
        if let Some(job_template) = &rjob.template {
            check_job_template(&format!("jobset.spec.replicatedJobs[{i}].template"), job_template)?;
        }
    }
    if rendered_pods != plan.pods.len() {
        return Err(unrenderable(
            "plan.pods",
            format!(
                "the plan has {} pods, but only {rendered_pods} belong to replicated jobs of the runtime",
                plan.pods.len()
            ),
        ));
    }
    check_hostnames(plan, name, &subdomain)?;
    JobSetTemplate { metadata: None, spec: Some(spec.clone()), extra: Default::default() }
        .validate("jobset", Shape::Full)?;

    let owner = owner_reference(job);
    let job_set = JobSet {
        api_version: JOBSET_API_VERSION.into(),
        kind: "JobSet".into(),
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: namespace.clone(),
            labels: template_meta.labels.clone().filter(|l| !l.is_empty()),
            annotations: template_meta.annotations.clone().filter(|a| !a.is_empty()),
            owner_references: owner.clone().map(|o| vec![o]),
            ..Default::default()
        },
        spec,
    };
    let pod_group = match pod_group {
        None => None,
        Some(group) => {
            let group = crate::launch::PodGroup { min_resources: gang_requests, ..group.clone() };
            Some(render_pod_group(&group, runtime, &job_set.metadata, priority_class_name)?)
        }
    };
    for config_map in &mut config_maps {
        config_map.metadata.owner_references = owner.clone().map(|o| vec![o]);
    }
    Ok(Manifests {
        job_set,
        config_maps,
        pod_group,
        ssh_auth_secret: mpi.then(|| format!("{name}{MPI_SSH_AUTH_SECRET_SUFFIX}")),
    })
}

/// The MPI SSH Secret the node and launcher pods mount
/// ([`Manifests::ssh_auth_secret`]), from key material the caller generated
/// (upstream makes a fresh ECDSA P-521 key per TrainJob): `private_key_pem`
/// becomes `ssh-privatekey`, `authorized_key` (an OpenSSH public key line)
/// `ssh-publickey`. Immutable and owned by the TrainJob, as upstream creates it.
///
/// ```
/// use kf_train::TrainJob;
/// use kf_train::render::ssh_auth_secret;
///
/// let job = TrainJob::from_value(serde_json::json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
///     "metadata": {"name": "mpi-job", "namespace": "ml"}, "spec": {"runtimeRef": {"name": "mpi"}},
/// }))?;
/// let secret = ssh_auth_secret(&job, "-----BEGIN EC PRIVATE KEY-----\n…", "ecdsa-sha2-nistp521 AAAA…");
/// assert_eq!(secret.metadata.name.as_deref(), Some("mpi-job-mpi-ssh-auth"));
/// assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/ssh-auth"));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn ssh_auth_secret(job: &TrainJob, private_key_pem: &str, authorized_key: &str) -> Secret {
    let name = job.name().unwrap_or_default();
    Secret {
        metadata: ObjectMeta {
            name: Some(format!("{name}{MPI_SSH_AUTH_SECRET_SUFFIX}")),
            namespace: job.metadata.as_ref().and_then(|m| m.namespace.clone()),
            owner_references: owner_reference(job).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("kubernetes.io/ssh-auth".into()),
        immutable: Some(true),
        data: Some(BTreeMap::from([
            ("ssh-privatekey".to_string(), ByteString(private_key_pem.as_bytes().to_vec())),
            ("ssh-publickey".to_string(), ByteString(authorized_key.as_bytes().to_vec())),
        ])),
        ..Default::default()
    }
}

/// Torch `envInjection`: the trainer's `PET_*` variables, as rendered for its
/// main container (the rank as the completion index), also go to each listed
/// container or init container of the target replicated job. The plan models
/// one container per pod, so the others are filled here. O(T·C·E).
fn inject_torch_env(runtime: &TrainingRuntime, plan: &LaunchPlan, jobs: &mut [ReplicatedJob]) -> Result<()> {
    let targets = runtime
        .ml_policy()
        .and_then(|m| m.torch.as_ref())
        .and_then(|t| t.env_injection.as_ref())
        .and_then(|e| e.targets.as_deref())
        .unwrap_or(&[]);
    if targets.is_empty() {
        return Ok(());
    }
    let Some(trainer) = plan.nodes().first().copied() else { return Ok(()) };
    let pet: Vec<Value> = jobs
        .iter()
        .find(|j| j.name == trainer.replicated_job)
        .and_then(|j| j.pod_template()?.spec.as_ref()?.get("containers")?.as_array().cloned())
        .into_iter()
        .flatten()
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(trainer.container.name.as_str()))
        .filter_map(|c| c.get("env")?.as_array().cloned())
        .flatten()
        .filter(|e| e.get("name").and_then(Value::as_str).is_some_and(|n| n.starts_with("PET_")))
        .collect();
    for (t, target) in targets.iter().enumerate() {
        let here = format!("runtime.spec.mlPolicy.torch.envInjection.targets[{t}]");
        let job_name = target.job_name.as_deref().unwrap_or_default();
        let Some(rjob) = jobs.iter_mut().find(|j| j.name == job_name) else {
            return Err(unrenderable(
                format!("{here}.jobName"),
                format!("the runtime has no replicated job {job_name:?}"),
            ));
        };
        let pod_spec = rjob
            .template
            .as_mut()
            .and_then(|t| t.spec.as_mut())
            .and_then(|s| s.template.as_mut())
            .and_then(|p| p.spec.as_mut());
        let Some(pod_spec) = pod_spec else { continue };
        for (c, container_name) in target.container_names.iter().flatten().enumerate() {
            let list = ["containers", "initContainers"].into_iter().find(|list| {
                pod_spec.get(*list).and_then(Value::as_array).is_some_and(|cs| {
                    cs.iter().any(|c| c.get("name").and_then(Value::as_str) == Some(container_name.as_str()))
                })
            });
            let container = list.and_then(|list| {
                pod_spec
                    .get_mut(list)?
                    .as_array_mut()?
                    .iter_mut()
                    .find(|c| c.get("name").and_then(Value::as_str) == Some(container_name.as_str()))
            });
            let Some(Value::Object(container)) = container else {
                return Err(unrenderable(
                    format!("{here}.containerNames[{c}]"),
                    format!("replicated job {job_name:?} has no container or init container {container_name:?}"),
                ));
            };
            let env = container.entry("env").or_insert_with(|| Value::Array(Vec::new()));
            let Some(env) = env.as_array_mut() else { continue };
            for var in &pet {
                match env.iter_mut().find(|e| e.get("name") == var.get("name")) {
                    Some(existing) => *existing = var.clone(),
                    None => env.push(var.clone()),
                }
            }
        }
    }
    Ok(())
}

/// A pod's effective resource requests, as the Kubernetes scheduler counts
/// them (and upstream sums them into a PodGroup's `minResources`): the sum
/// over its containers and restartable (sidecar) init containers, or the
/// largest of the ordinary init containers with the sidecars started before
/// it, whichever is larger, plus the pod's `overhead`. A request defaults to
/// the limit; unreadable quantities count as nothing. O(containers).
fn effective_pod_requests(pod_spec: &Value) -> BTreeMap<String, f64> {
    // The plan's own rule for one container: a request defaults to its limit.
    fn requests_of(container: &Value) -> BTreeMap<String, f64> {
        let resources = container.get("resources").cloned().and_then(|r| serde_json::from_value(r).ok());
        crate::launch::pod_requests(resources.as_ref())
    }
    fn add(into: &mut BTreeMap<String, f64>, more: &BTreeMap<String, f64>) {
        for (name, amount) in more {
            *into.entry(name.clone()).or_insert(0.0) += amount;
        }
    }
    fn at_least(into: &mut BTreeMap<String, f64>, other: &BTreeMap<String, f64>) {
        for (name, amount) in other {
            let slot = into.entry(name.clone()).or_insert(0.0);
            *slot = slot.max(*amount);
        }
    }
    let list = |field: &str| pod_spec.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut total = BTreeMap::new();
    let mut sidecars = BTreeMap::new();
    let mut init_peak = BTreeMap::new();
    for init in list("initContainers") {
        let requests = requests_of(&init);
        if init.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add(&mut sidecars, &requests);
        } else {
            let mut running = sidecars.clone();
            add(&mut running, &requests);
            at_least(&mut init_peak, &running);
        }
    }
    for container in list("containers") {
        add(&mut total, &requests_of(&container));
    }
    add(&mut total, &sidecars);
    at_least(&mut total, &init_peak);
    let overhead: BTreeMap<String, f64> = pod_spec
        .get("overhead")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), crate::meta::quantity_of(q)?)))
        .collect();
    add(&mut total, &overhead);
    total
}

/// The PodGroup of `group`'s scheduler, named and owned like the JobSet.
fn render_pod_group(
    group: &crate::launch::PodGroup,
    runtime: &TrainingRuntime,
    job_set: &ObjectMeta,
    priority_class_name: Option<String>,
) -> Result<PodGroup> {
    let min_member = i32::try_from(group.min_member)
        .map_err(|_| unrenderable("plan.pod_group.min_member", "more pods than a PodGroup can count"))?;
    let mut min_resources = BTreeMap::new();
    for (resource, amount) in &group.min_resources {
        if !amount.is_finite() {
            return Err(unrenderable(
                format!("plan.pod_group.min_resources.{resource}"),
                format!("the pods' requests sum to {amount}, which is not a quantity"),
            ));
        }
        min_resources.insert(resource.clone(), format_quantity(*amount));
    }
    let mut spec = PodGroupSpec { min_member, min_resources, ..Default::default() };
    let api_version = match &group.scheduler {
        PodGroupScheduler::Coscheduling { schedule_timeout_seconds } => {
            spec.schedule_timeout_seconds = Some(*schedule_timeout_seconds);
            COSCHEDULING_API_VERSION
        }
        PodGroupScheduler::Volcano { network_topology_mode, highest_tier_allowed } => {
            spec.queue = job_set.annotations.as_ref().and_then(|a| a.get(VOLCANO_QUEUE_ANNOTATION)).cloned();
            spec.priority_class_name = priority_class_name;
            let topology_set = runtime
                .spec
                .as_ref()
                .and_then(|s| s.pod_group_policy.as_ref())
                .and_then(|p| p.volcano.as_ref())
                .is_some_and(|v| v.network_topology.is_some());
            if topology_set {
                // The CRD defaults: mode hard, highestTierAllowed 1.
                spec.network_topology = Some(NetworkTopology {
                    mode: network_topology_mode.clone().unwrap_or_else(|| "hard".into()),
                    highest_tier_allowed: highest_tier_allowed.unwrap_or(1),
                });
            }
            VOLCANO_API_VERSION
        }
    };
    Ok(PodGroup {
        api_version: api_version.into(),
        kind: "PodGroup".into(),
        metadata: ObjectMeta {
            name: job_set.name.clone(),
            namespace: job_set.namespace.clone(),
            owner_references: job_set.owner_references.clone(),
            ..Default::default()
        },
        spec,
    })
}

fn to_i32(n: usize, path: &str) -> Result<i32> {
    i32::try_from(n).map_err(|_| unrenderable(path, format!("{n} does not fit a Kubernetes int32")))
}

/// The owner reference to the TrainJob, as the controller sets it; none
/// without a `uid` (a TrainJob not yet created), since the API requires one.
fn owner_reference(job: &TrainJob) -> Option<OwnerReference> {
    let uid = job.metadata.as_ref()?.extra.get("uid")?.as_str()?.to_string();
    Some(OwnerReference {
        api_version: API_VERSION.into(),
        kind: TRAINJOB_KIND.into(),
        name: job.name()?.to_string(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Writes the JobSet network the plan's hostnames assume (DNS hostnames on
/// the headless service `subdomain`) and returns the subdomain.
fn render_network(spec: &mut JobSetSpec, job_name: &str) -> Result<String> {
    let network = spec.network.get_or_insert_with(Default::default);
    if network.enable_dns_hostnames == Some(false) {
        return Err(unrenderable(
            "runtime.spec.template.spec.network.enableDNSHostnames",
            "is false, but the launch policies address the pods by their DNS hostnames",
        ));
    }
    network.enable_dns_hostnames = Some(true);
    let subdomain = network.subdomain.get_or_insert_with(|| job_name.to_string()).clone();
    Ok(subdomain)
}

/// The plan's hostnames must be the ones the JobSet gives its pods.
fn check_hostnames(plan: &LaunchPlan, job_name: &str, subdomain: &str) -> Result<()> {
    for pod in &plan.pods {
        let expected = format!("{job_name}-{}-{}-{}.{subdomain}", pod.replicated_job, pod.job_index, pod.pod_index);
        if pod.hostname != expected {
            return Err(unrenderable(
                "plan.pods",
                format!("pod hostname {:?} is not the JobSet's {expected:?}", pod.hostname),
            ));
        }
    }
    Ok(())
}

/// The containers (or init containers) list of a pod spec, created if absent.
fn containers_mut<'a>(pod_spec: &'a mut Value, list: &str) -> Option<&'a mut Vec<Value>> {
    let obj = pod_spec.as_object_mut()?;
    obj.entry(list).or_insert_with(|| Value::Array(Vec::new())).as_array_mut()
}

fn container_mut<'a>(pod_spec: &'a mut Value, name: &str) -> Option<&'a mut Map<String, Value>> {
    pod_spec
        .get_mut("containers")?
        .as_array_mut()?
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

/// Writes the plan's main container (identical in every pod of the set,
/// except the rank) over the template's container of the same name.
fn render_main_container(pod_spec: &mut Value, pods: &[&Pod], path: &str) -> Result<()> {
    let Some(first) = pods.first() else { return Ok(()) };
    let main = &first.container;
    for (p, pod) in pods.iter().enumerate().skip(1) {
        let c = &pod.container;
        let same = c.name == main.name
            && c.image == main.image
            && c.command == main.command
            && c.args == main.args
            && c.resources == main.resources
            && c.env_from_secrets == main.env_from_secrets
            && c.working_dir == main.working_dir;
        if !same {
            return Err(unrenderable(
                format!("{path}.containers"),
                format!("pod {p} of the plan runs another container than pod 0; one pod template cannot say both"),
            ));
        }
    }
    let env = render_env(pods, &format!("{path}.containers[{}].env", main.name))?;
    let Some(container) = container_mut(pod_spec, &main.name) else {
        return Err(unrenderable(
            format!("{path}.containers"),
            format!("the template has no container {:?} for the plan's main container", main.name),
        ));
    };
    set_or_remove(container, "image", main.image.clone().map(Value::String));
    set_or_remove(container, "command", non_empty(&main.command));
    set_or_remove(container, "args", non_empty(&main.args));
    set_or_remove(container, "env", (!env.is_empty()).then_some(Value::Array(env)));
    set_or_remove(container, "workingDir", main.working_dir.clone().map(Value::String));
    let resources = main.resources.as_ref().map(resources_value).transpose()?;
    set_or_remove(container, "resources", resources);
    let env_from = container.entry("envFrom").or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = env_from.as_array_mut() {
        for secret in &main.env_from_secrets {
            let present = list.iter().any(|e| e.pointer("/secretRef/name").and_then(Value::as_str) == Some(secret));
            if !present {
                list.push(json!({"secretRef": {"name": secret}}));
            }
        }
    }
    if container.get("envFrom").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        container.remove("envFrom");
    }
    Ok(())
}

fn non_empty(list: &[String]) -> Option<Value> {
    (!list.is_empty()).then(|| Value::Array(list.iter().cloned().map(Value::String).collect()))
}

fn set_or_remove(container: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            container.insert(key.to_string(), v);
        }
        None => {
            container.remove(key);
        }
    }
}

/// One env list for every pod: a variable the pods agree on is written as
/// is; a rank variable whose value is each pod's completion index becomes a
/// reference to it. O(P·E).
fn render_env(pods: &[&Pod], path: &str) -> Result<Vec<Value>> {
    let Some(first) = pods.first().map(|p| &p.container.env) else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(first.len());
    for (e, var) in first.iter().enumerate() {
        let here = format!("{path}[{}]", var.name);
        let agree = pods.iter().all(|p| p.container.env.get(e) == Some(var));
        let is_rank = RANK_ENV.contains(&var.name.as_str());
        if is_rank {
            let indexed = pods.iter().all(|p| {
                p.container
                    .env
                    .get(e)
                    .is_some_and(|v| v.name == var.name && v.value.as_deref() == Some(p.pod_index.to_string().as_str()))
            });
            if indexed {
                out.push(
                    json!({"name": var.name, "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX_FIELD_PATH}}}),
                );
                continue;
            }
        }
        if !agree {
            return Err(unrenderable(
                here,
                "differs between the pods of this replicated job and is not their completion index; \
                 one pod template cannot say it",
            ));
        }
        out.push(serde_json::to_value(var).map_err(|err| unrenderable(&here, err.to_string()))?);
    }
    if let Some(p) = pods.iter().position(|p| p.container.env.len() != first.len()) {
        return Err(unrenderable(path, format!("pod {p} of the plan has other env vars than pod 0")));
    }
    Ok(out)
}

/// Resource requirements with every quantity a string, as the API server
/// stores them.
fn resources_value(resources: &ResourceRequirements) -> Result<Value> {
    let mut value = serde_json::to_value(resources).map_err(|e| unrenderable("resources", e.to_string()))?;
    normalise_resource_maps(&mut value);
    Ok(value)
}

fn normalise_resource_maps(resources: &mut Value) {
    for field in ["limits", "requests"] {
        if let Some(map) = resources.get_mut(field).and_then(Value::as_object_mut) {
            for q in map.values_mut() {
                if let Value::Number(n) = q {
                    *q = Value::String(n.to_string());
                }
            }
        }
    }
}

/// Numeric quantities anywhere a container lists resources become strings.
fn normalise_quantities(pod_spec: &mut Value) {
    if let Some(resources) = pod_spec.get_mut("resources") {
        normalise_resource_maps(resources);
    }
    for list in ["containers", "initContainers"] {
        for container in pod_spec.get_mut(list).and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(resources) = container.get_mut("resources") {
                normalise_resource_maps(resources);
            }
        }
    }
}

/// Adds `containerPort` to the container's ports unless it is there.
fn add_container_port(pod_spec: &mut Value, container: &str, port: u16) {
    let Some(c) = container_mut(pod_spec, container) else { return };
    let ports = c.entry("ports").or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = ports.as_array_mut()
        && !list.iter().any(|p| p.get("containerPort") == Some(&json!(port)))
    {
        list.push(json!({"containerPort": port}));
    }
}

/// Adds `volume` to the pod unless one of that name exists.
fn upsert_volume(pod_spec: &mut Value, volume: Value) {
    let Some(volumes) = containers_mut(pod_spec, "volumes") else { return };
    if !volumes.iter().any(|v| v.get("name") == volume.get("name")) {
        volumes.push(volume);
    }
}

fn upsert_mount(pod_spec: &mut Value, container: &str, name: &str, mount_path: &str) {
    let Some(c) = container_mut(pod_spec, container) else { return };
    let mounts = c.entry("volumeMounts").or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = mounts.as_array_mut()
        && !list.iter().any(|m| m.get("name").and_then(Value::as_str) == Some(name))
    {
        list.push(json!({"name": name, "mountPath": mount_path}));
    }
}

/// MPI: the SSH key Secret as a volume, mounted where the policy says.
fn mount_ssh_auth(pod_spec: &mut Value, container: &str, job_name: &str, mount_path: &str) {
    upsert_volume(
        pod_spec,
        json!({"name": MPI_SSH_AUTH_VOLUME, "secret": {
            "secretName": format!("{job_name}{MPI_SSH_AUTH_SECRET_SUFFIX}"),
            "defaultMode": 0o640,
            "items": [
                {"key": "ssh-privatekey", "path": "id_rsa"},
                {"key": "ssh-publickey", "path": "id_rsa.pub"},
                {"key": "ssh-publickey", "path": "authorized_keys"},
            ],
        }}),
    );
    upsert_mount(pod_spec, container, MPI_SSH_AUTH_VOLUME, mount_path);
}

/// The plan's files (the MPI hostfile) as a ConfigMap the pods mount. Every
/// pod of the set must have the same files.
fn render_files(
    pod_spec: &mut Value,
    pods: &[&Pod],
    job_name: &str,
    namespace: Option<&str>,
    path: &str,
    mpi: bool,
) -> Result<Option<ConfigMap>> {
    let Some(first) = pods.first() else { return Ok(None) };
    let files = &first.files;
    if let Some(p) = pods.iter().position(|p| &p.files != files) {
        return Err(unrenderable(path, format!("pod {p} of the plan has other files than pod 0")));
    }
    let Some(file) = files.first() else { return Ok(None) };
    if !mpi || files.len() > 1 || file.path != MPI_HOSTFILE_PATH {
        return Err(unrenderable(
            path,
            format!("the plan places {:?} in the pods; only the MPI hostfile has a Kubernetes rendering", file.path),
        ));
    }
    let (dir, key) = file.path.rsplit_once('/').unwrap_or(("/", file.path.as_str()));
    let config_map_name = format!("{job_name}{MPI_HOSTFILE_CONFIG_MAP_SUFFIX}");
    upsert_volume(
        pod_spec,
        json!({"name": MPI_HOSTFILE_VOLUME, "configMap": {
            "name": config_map_name,
            "items": [{"key": key, "path": key, "mode": 0o444}],
        }}),
    );
    upsert_mount(pod_spec, &first.container.name, MPI_HOSTFILE_VOLUME, dir);
    Ok(Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name),
            namespace: namespace.map(str::to_string),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_string(), file.contents.clone())])),
        ..Default::default()
    }))
}

/// Offline strict validation of one rendered Job template: it must read as
/// k8s-openapi's `batch/v1` `JobTemplateSpec` and write back unchanged; a
/// field that does not survive is unknown to the API. O(template size).
fn check_job_template(path: &str, template: &crate::jobset::JobTemplate) -> Result<()> {
    let value = serde_json::to_value(template).map_err(|e| unrenderable(path, e.to_string()))?;
    let typed: JobTemplateSpec = serde_path_to_error::deserialize(value.clone()).map_err(|err| {
        let inner = err.path().to_string();
        Error::Invalid { path: join(path, &inner), message: err.inner().to_string() }
    })?;
    let reread = serde_json::to_value(&typed).map_err(|e| unrenderable(path, e.to_string()))?;
    match first_loss(&value, &reread, path) {
        None => Ok(()),
        Some(at) => Err(Error::UnknownField {
            path: at,
            expected: "a field of the Kubernetes batch/v1 JobTemplateSpec (k8s-openapi)".into(),
        }),
    }
}

fn join(base: &str, inner: &str) -> String {
    if inner.is_empty() || inner == "." {
        base.to_string()
    } else if inner.starts_with('[') {
        format!("{base}{inner}")
    } else {
        format!("{base}.{inner}")
    }
}

/// The path of the first value in `original` that `reread` lost or changed.
fn first_loss(original: &Value, reread: &Value, path: &str) -> Option<String> {
    match (original, reread) {
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(k, v)| {
            let here = format!("{path}.{k}");
            match b.get(k) {
                Some(w) => first_loss(v, w, &here),
                // null and empty values are dropped harmlessly
                None if v.is_null() => None,
                None => Some(here),
            }
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.iter().zip(b).enumerate().find_map(|(i, (v, w))| first_loss(v, w, &format!("{path}[{i}]")))
        }
        (a, b) if a == b => None,
        _ => Some(path.to_string()),
    }
}

/// A quantity for an amount in base units: an integer, binary-suffixed when
/// a whole number of MiB or more (memory), else milli-units when exact,
/// else a decimal. [`crate::parse_quantity`] reads it back to the amount.
///
/// ```
/// use kf_train::render::format_quantity;
/// assert_eq!(format_quantity(8.0 * 1024.0 * 1024.0 * 1024.0), "8Gi");
/// assert_eq!(format_quantity(1.5), "1500m");
/// assert_eq!(format_quantity(3.0), "3");
/// ```
pub fn format_quantity(amount: f64) -> String {
    if amount.fract() == 0.0 && amount.abs() < 9.0e15 {
        let n = amount as i64;
        for (suffix, power) in [("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2)] {
            let unit = 1i64 << (10 * power);
            if n != 0 && n % unit == 0 {
                return format!("{}{suffix}", n / unit);
            }
        }
        return n.to_string();
    }
    let millis = (amount * 1000.0).round();
    if (millis / 1000.0 - amount).abs() <= f64::EPSILON * amount.abs().max(1.0) && millis.abs() < 9.0e15 {
        return format!("{}m", millis as i64);
    }
    format!("{amount}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_loss_names_the_dropped_field() {
        let a = json!({"spec": {"containers": [{"name": "n", "imag": "x"}]}});
        let b = json!({"spec": {"containers": [{"name": "n"}]}});
        assert_eq!(first_loss(&a, &b, "t").as_deref(), Some("t.spec.containers[0].imag"));
        assert_eq!(first_loss(&a, &a, "t"), None);
        assert_eq!(first_loss(&json!({"x": null}), &json!({}), "t"), None);
    }

    proptest! {
        #[test]
        fn quantities_read_back_as_their_amount(whole in 0u64..1_000_000_000_000, millis in 0u64..1000) {
            let amount = whole as f64 + millis as f64 / 1000.0;
            let text = format_quantity(amount);
            let back = crate::parse_quantity(&text).unwrap_or(f64::NAN);
            prop_assert!((back - amount).abs() <= 1e-9 * amount.max(1.0), "{amount} -> {text} -> {back}");
        }
    }
}
