//! The JobSet template a training runtime carries (`spec.template`), and the
//! restricted copy of it a TrainJob's `runtimePatches` may carry.
//!
//! JobSet and Job fields are typed as far as launch policies read them
//! (replicated jobs, their replicas and dependencies, the network subdomain);
//! pod templates stay `serde_json::Value` so every Kubernetes field
//! round-trips, with typed read accessors ([`PodTemplate::container`]) for
//! what a launch needs. This module validates shape and the JobSet CEL rules;
//! it does not launch anything.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::meta::{
    EMBEDDED_META_EXTRA, EnvVar, Extra, ObjectMeta, ResourceRequirements, child, invalid, reject_unknown, validate_env,
    validate_meta,
};
use crate::{Error, Result};

/// Label on a replicated job naming the TrainJob part it runs.
pub const ANCESTOR_LABEL: &str = "trainer.kubeflow.org/trainjob-ancestor-step";
/// Name of the trainer replicated job and of its main container.
pub const NODE: &str = "node";
/// Name of the MPI launcher replicated job.
pub const LAUNCHER: &str = "launcher";
/// Name of the dataset initializer replicated job and container.
pub const DATASET_INITIALIZER: &str = "dataset-initializer";
/// Name of the model initializer replicated job and container.
pub const MODEL_INITIALIZER: &str = "model-initializer";

/// Which shape the validator enforces: a runtime's full JobSet template, or a
/// TrainJob's runtime patch, whose schema allows only a few pod fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Full,
    Patch,
}

/// `spec.template` of a runtime: a JobSet template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobSetTemplate {
    /// Labels and annotations for the JobSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The JobSet spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<JobSetSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A JobSet spec (jobset.x-k8s.io/v1alpha2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobSetSpec {
    /// The groups of identical Jobs; names are unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated_jobs: Option<Vec<ReplicatedJob>>,
    /// Pod networking (headless service subdomain, DNS hostnames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// When the JobSet counts as succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_policy: Option<SuccessPolicy>,
    /// Restart rules, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_policy: Option<Value>,
    /// Whether replicated jobs start in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_policy: Option<StartupPolicy>,
    /// Suspends the JobSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The pod that acts as coordinator, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<Value>,
    /// The controller that manages the JobSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// Seconds to keep a finished JobSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// PersistentVolumeClaim templates shared by the jobs, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_policies: Option<Vec<Value>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `network` of a JobSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// Whether pods get DNS hostnames (`<jobset>-<job>-<i>-<j>.<subdomain>`).
    #[serde(default, rename = "enableDNSHostnames", skip_serializing_if = "Option::is_none")]
    pub enable_dns_hostnames: Option<bool>,
    /// Whether the headless service publishes pods before they are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_not_ready_addresses: Option<bool>,
    /// The headless service's name; defaults to the JobSet's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `successPolicy` of a JobSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SuccessPolicy {
    /// `All` or `Any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The replicated jobs whose success counts; empty means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_replicated_jobs: Option<Vec<String>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `startupPolicy` of a JobSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct StartupPolicy {
    /// `AnyOrder` or `InOrder`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_policy_order: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One replicated job: `replicas` identical Jobs from one template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedJob {
    /// Unique name (`node`, `launcher`, `dataset-initializer`, …).
    pub name: String,
    /// Group for exclusive placement; defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Number of Jobs; defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Replicated jobs that must reach a status before this one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<DependsOn>>,
    /// The Job template (required in a runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<JobTemplate>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `dependsOn` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DependsOn {
    /// The replicated job waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Ready` or `Complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `batch/v1` Job template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobTemplate {
    /// Labels (notably [`ANCESTOR_LABEL`]) and annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The Job spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<JobSpec>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A `batch/v1` JobSpec: the pod template and the counts; the other Job
/// fields are kept in `extra` (the schema defines them, kf does not read them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Pods running at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// Successful pods needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// The pod template (required in a runtime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplate>,
    /// Job fields kf keeps without reading (backoffLimit, completionMode, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// JobSpec fields besides parallelism, completions and template.
const JOB_SPEC_EXTRA: &[&str] = &[
    "activeDeadlineSeconds",
    "backoffLimit",
    "backoffLimitPerIndex",
    "completionMode",
    "managedBy",
    "manualSelector",
    "maxFailedIndexes",
    "podFailurePolicy",
    "podReplacementPolicy",
    "selector",
    "successPolicy",
    "suspend",
    "ttlSecondsAfterFinished",
];

/// A pod template; the pod spec stays a `Value` so every Kubernetes field
/// round-trips.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// Pod labels and annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The `core/v1` PodSpec, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Value>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The fields of a container a launch needs, read from a pod template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name.
    pub name: String,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Compute resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Every other container field, verbatim.
    #[serde(flatten)]
    pub extra: Extra,
}

/// PodSpec fields of `core/v1`, as the runtime CRDs define them.
const POD_SPEC_FIELDS: &[&str] = &[
    "activeDeadlineSeconds",
    "affinity",
    "automountServiceAccountToken",
    "containers",
    "dnsConfig",
    "dnsPolicy",
    "enableServiceLinks",
    "ephemeralContainers",
    "hostAliases",
    "hostIPC",
    "hostNetwork",
    "hostPID",
    "hostUsers",
    "hostname",
    "hostnameOverride",
    "imagePullSecrets",
    "initContainers",
    "nodeName",
    "nodeSelector",
    "os",
    "overhead",
    "preemptionPolicy",
    "priority",
    "priorityClassName",
    "readinessGates",
    "resourceClaims",
    "resources",
    "restartPolicy",
    "runtimeClassName",
    "schedulerName",
    "schedulingGates",
    "schedulingGroup",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "subdomain",
    "terminationGracePeriodSeconds",
    "tolerations",
    "topologySpreadConstraints",
    "volumes",
];

/// Container fields of `core/v1`.
const CONTAINER_FIELDS: &[&str] = &[
    "args",
    "command",
    "env",
    "envFrom",
    "image",
    "imagePullPolicy",
    "lifecycle",
    "livenessProbe",
    "name",
    "ports",
    "readinessProbe",
    "resizePolicy",
    "resources",
    "restartPolicy",
    "restartPolicyRules",
    "securityContext",
    "startupProbe",
    "stdin",
    "stdinOnce",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "tty",
    "volumeDevices",
    "volumeMounts",
    "workingDir",
];

/// The pod fields a TrainJob's runtime patch may set.
const PATCH_POD_SPEC_FIELDS: &[&str] = &[
    "affinity",
    "containers",
    "imagePullSecrets",
    "initContainers",
    "nodeSelector",
    "schedulingGates",
    "securityContext",
    "serviceAccountName",
    "terminationGracePeriodSeconds",
    "tolerations",
    "volumes",
];

/// The container fields a TrainJob's runtime patch may set.
const PATCH_CONTAINER_FIELDS: &[&str] = &["env", "name", "securityContext", "volumeMounts"];

impl JobSetTemplate {
    /// The replicated jobs, in template order (empty if none).
    pub fn replicated_jobs(&self) -> &[ReplicatedJob] {
        self.spec.as_ref().and_then(|s| s.replicated_jobs.as_deref()).unwrap_or(&[])
    }

    /// The replicated job called `name`.
    pub fn replicated_job(&self, name: &str) -> Option<&ReplicatedJob> {
        self.replicated_jobs().iter().find(|j| j.name == name)
    }

    /// The replicated job that runs the trainer: the one labelled
    /// `trainjob-ancestor-step: trainer`, else the one named `node`.
    pub fn trainer_job(&self) -> Option<&ReplicatedJob> {
        let jobs = self.replicated_jobs();
        jobs.iter().find(|j| j.ancestor() == Some("trainer")).or_else(|| jobs.iter().find(|j| j.name == NODE))
    }

    pub(crate) fn validate(&self, path: &str, shape: Shape) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "metadata, spec")?;
        if let Some(meta) = &self.metadata {
            validate_meta(&child(path, "metadata"), meta, EMBEDDED_META_EXTRA)?;
        }
        match &self.spec {
            Some(spec) => spec.validate(&child(path, "spec"), shape),
            None => Ok(()),
        }
    }
}

impl JobSetSpec {
    fn validate(&self, path: &str, shape: Shape) -> Result<()> {
        match shape {
            Shape::Full => reject_unknown(
                path,
                &self.extra,
                &[],
                "coordinator, failurePolicy, managedBy, network, replicatedJobs, startupPolicy, successPolicy, \
                 suspend, ttlSecondsAfterFinished, volumeClaimPolicies",
            )?,
            Shape::Patch => {
                reject_unknown(path, &self.extra, &[], "replicatedJobs")?;
                let set = [
                    ("network", self.network.is_some()),
                    ("successPolicy", self.success_policy.is_some()),
                    ("failurePolicy", self.failure_policy.is_some()),
                    ("startupPolicy", self.startup_policy.is_some()),
                    ("suspend", self.suspend.is_some()),
                    ("coordinator", self.coordinator.is_some()),
                    ("managedBy", self.managed_by.is_some()),
                    ("ttlSecondsAfterFinished", self.ttl_seconds_after_finished.is_some()),
                    ("volumeClaimPolicies", self.volume_claim_policies.is_some()),
                ];
                if let Some((field, _)) = set.iter().find(|(_, present)| *present) {
                    return Err(Error::UnknownField { path: child(path, field), expected: "replicatedJobs".into() });
                }
            }
        }
        let jobs = self.replicated_jobs.as_deref().unwrap_or(&[]);
        for (i, job) in jobs.iter().enumerate() {
            let here = format!("{path}.replicatedJobs[{i}]");
            if jobs[..i].iter().any(|other| other.name == job.name) {
                return invalid(format!("{here}.name"), format!("duplicate replicated job name {:?}", job.name));
            }
            job.validate(&here, shape)?;
        }
        if shape == Shape::Patch {
            return Ok(());
        }
        if let Some(net) = &self.network {
            reject_unknown(
                &child(path, "network"),
                &net.extra,
                &[],
                "enableDNSHostnames, publishNotReadyAddresses, subdomain",
            )?;
        }
        if let Some(success) = &self.success_policy {
            let here = child(path, "successPolicy");
            reject_unknown(&here, &success.extra, &[], "operator, targetReplicatedJobs")?;
            match success.operator.as_deref() {
                Some("All" | "Any") => {}
                Some(other) => {
                    return invalid(format!("{here}.operator"), format!("expected All or Any, found {other:?}"));
                }
                None => return invalid(format!("{here}.operator"), "required field is missing"),
            }
        }
        if let Some(startup) = &self.startup_policy {
            let here = child(path, "startupPolicy");
            reject_unknown(&here, &startup.extra, &[], "startupPolicyOrder")?;
            match startup.startup_policy_order.as_deref() {
                Some("AnyOrder") => {}
                Some("InOrder") => {
                    if let Some(i) = jobs.iter().position(|j| j.depends_on.is_some()) {
                        return invalid(
                            format!("{path}.replicatedJobs[{i}].dependsOn"),
                            "startupPolicy InOrder and dependsOn are mutually exclusive",
                        );
                    }
                }
                Some(other) => {
                    return invalid(
                        format!("{here}.startupPolicyOrder"),
                        format!("expected AnyOrder or InOrder, found {other:?}"),
                    );
                }
                None => return invalid(format!("{here}.startupPolicyOrder"), "required field is missing"),
            }
        }
        if let Some(failure) = &self.failure_policy {
            validate_failure_policy(&child(path, "failurePolicy"), failure)?;
        }
        if let Some(coordinator) = &self.coordinator {
            let here = child(path, "coordinator");
            check_keys(&here, coordinator, &["jobIndex", "podIndex", "replicatedJob"])?;
            if coordinator.get("replicatedJob").is_none() {
                return invalid(format!("{here}.replicatedJob"), "required field is missing");
            }
        }
        for (i, policy) in self.volume_claim_policies.iter().flatten().enumerate() {
            validate_volume_claim_policy(&format!("{path}.volumeClaimPolicies[{i}]"), policy)?;
        }
        if self.ttl_seconds_after_finished.is_some_and(|t| t < 0) {
            return invalid(child(path, "ttlSecondsAfterFinished"), "must be at least 0");
        }
        Ok(())
    }
}

impl ReplicatedJob {
    /// The value of the [`ANCESTOR_LABEL`] on the Job template.
    pub fn ancestor(&self) -> Option<&str> {
        self.template.as_ref()?.metadata.as_ref()?.labels.as_ref()?.get(ANCESTOR_LABEL).map(String::as_str)
    }

    /// The pod template of this job.
    pub fn pod_template(&self) -> Option<&PodTemplate> {
        self.template.as_ref()?.spec.as_ref()?.template.as_ref()
    }

    fn validate(&self, path: &str, shape: Shape) -> Result<()> {
        let known = "dependsOn, groupName, name, replicas, template";
        reject_unknown(path, &self.extra, &[], if shape == Shape::Full { known } else { "name, template" })?;
        if self.name.is_empty() {
            return invalid(format!("{path}.name"), "a replicated job needs a name");
        }
        if shape == Shape::Patch {
            for (field, present) in [
                ("groupName", self.group_name.is_some()),
                ("replicas", self.replicas.is_some()),
                ("dependsOn", self.depends_on.is_some()),
            ] {
                if present {
                    return Err(Error::UnknownField { path: child(path, field), expected: "name, template".into() });
                }
            }
        }
        if self.replicas.is_some_and(|r| r < 0) {
            return invalid(format!("{path}.replicas"), "must be at least 0");
        }
        for (i, dep) in self.depends_on.iter().flatten().enumerate() {
            let here = format!("{path}.dependsOn[{i}]");
            reject_unknown(&here, &dep.extra, &[], "name, status")?;
            if dep.name.as_deref().unwrap_or("").is_empty() {
                return invalid(format!("{here}.name"), "required field is missing");
            }
            match dep.status.as_deref() {
                Some("Ready" | "Complete") => {}
                Some(other) => {
                    return invalid(format!("{here}.status"), format!("expected Ready or Complete, found {other:?}"));
                }
                None => return invalid(format!("{here}.status"), "required field is missing"),
            }
        }
        let Some(template) = &self.template else {
            return match shape {
                Shape::Full => invalid(format!("{path}.template"), "required field is missing"),
                Shape::Patch => Ok(()),
            };
        };
        let here = format!("{path}.template");
        reject_unknown(&here, &template.extra, &[], "metadata, spec")?;
        if let Some(meta) = &template.metadata {
            validate_meta(&child(&here, "metadata"), meta, EMBEDDED_META_EXTRA)?;
        }
        let Some(spec) = &template.spec else { return Ok(()) };
        let here = child(&here, "spec");
        match shape {
            Shape::Full => reject_unknown(
                &here,
                &spec.extra,
                JOB_SPEC_EXTRA,
                "activeDeadlineSeconds, backoffLimit, backoffLimitPerIndex, completionMode, completions, managedBy, \
                 manualSelector, maxFailedIndexes, parallelism, podFailurePolicy, podReplacementPolicy, selector, \
                 successPolicy, suspend, template, ttlSecondsAfterFinished",
            )?,
            Shape::Patch => {
                reject_unknown(&here, &spec.extra, &[], "template")?;
                for (field, present) in
                    [("parallelism", spec.parallelism.is_some()), ("completions", spec.completions.is_some())]
                {
                    if present {
                        return Err(Error::UnknownField { path: child(&here, field), expected: "template".into() });
                    }
                }
            }
        }
        for (field, value) in [("parallelism", spec.parallelism), ("completions", spec.completions)] {
            if value.is_some_and(|v| v < 0) {
                return invalid(child(&here, field), "must be at least 0");
            }
        }
        match &spec.template {
            Some(pod) => pod.validate(&child(&here, "template"), shape),
            None if shape == Shape::Full => invalid(child(&here, "template"), "required field is missing"),
            None => Ok(()),
        }
    }
}

impl PodTemplate {
    /// The pod spec's containers, read into [`Container`]s. Fails with the
    /// path (relative to the pod template) of a container that does not
    /// read.
    pub fn containers(&self) -> Result<Vec<Container>> {
        self.read_containers("containers")
    }

    /// The pod spec's init containers.
    pub fn init_containers(&self) -> Result<Vec<Container>> {
        self.read_containers("initContainers")
    }

    /// The container called `name`, if the pod has one.
    pub fn container(&self, name: &str) -> Result<Option<Container>> {
        Ok(self.containers()?.into_iter().find(|c| c.name == name))
    }

    fn read_containers(&self, field: &str) -> Result<Vec<Container>> {
        let Some(list) = self.spec.as_ref().and_then(|s| s.get(field)) else { return Ok(Vec::new()) };
        crate::meta::from_value::<Vec<Container>>(list.clone()).map_err(|e| match e {
            Error::Invalid { path, message } => {
                Error::Invalid { path: format!("spec.{field}{}", bracket(&path)), message }
            }
            other => other,
        })
    }

    fn validate(&self, path: &str, shape: Shape) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "metadata, spec")?;
        if let Some(meta) = &self.metadata {
            validate_meta(&child(path, "metadata"), meta, EMBEDDED_META_EXTRA)?;
        }
        let here = child(path, "spec");
        let Some(spec) = &self.spec else {
            return Ok(());
        };
        let Some(fields) = spec.as_object() else {
            return invalid(here, format!("expected a PodSpec object, found {spec}"));
        };
        let (allowed, allowed_containers) = match shape {
            Shape::Full => (POD_SPEC_FIELDS, CONTAINER_FIELDS),
            Shape::Patch => (PATCH_POD_SPEC_FIELDS, PATCH_CONTAINER_FIELDS),
        };
        if let Some(key) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::UnknownField { path: child(&here, key), expected: allowed.join(", ") });
        }
        if shape == Shape::Full && !fields.contains_key("containers") {
            return invalid(child(&here, "containers"), "required field is missing");
        }
        for list in ["containers", "initContainers"] {
            let Some(value) = fields.get(list) else { continue };
            let Some(items) = value.as_array() else {
                return invalid(child(&here, list), format!("expected a list of containers, found {value}"));
            };
            for (i, item) in items.iter().enumerate() {
                let at = format!("{here}.{list}[{i}]");
                let Some(obj) = item.as_object() else {
                    return invalid(at, format!("expected a container object, found {item}"));
                };
                if let Some(key) = obj.keys().find(|k| !allowed_containers.contains(&k.as_str())) {
                    return Err(Error::UnknownField { path: child(&at, key), expected: allowed_containers.join(", ") });
                }
                let container: Container = crate::meta::from_value(item.clone()).map_err(|e| match e {
                    Error::Invalid { path, message } => Error::Invalid { path: join_path(&at, &path), message },
                    other => other,
                })?;
                if container.name.is_empty() {
                    return invalid(format!("{at}.name"), "a container needs a name");
                }
                if items[..i].iter().any(|other| other.get("name") == item.get("name")) {
                    return invalid(format!("{at}.name"), format!("duplicate container name {:?}", container.name));
                }
                if let Some(env) = &container.env {
                    validate_env(&format!("{at}.env"), env)?;
                }
                if let Some(resources) = &container.resources {
                    resources.validate(&format!("{at}.resources"))?;
                }
            }
        }
        Ok(())
    }
}

/// Fails on the first key of the object `value` not in `known`; a value that
/// is not an object is a type error.
fn check_keys(path: &str, value: &Value, known: &[&str]) -> Result<()> {
    let Some(fields) = value.as_object() else {
        return invalid(path, format!("expected an object, found {value}"));
    };
    match fields.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(Error::UnknownField { path: child(path, key), expected: known.join(", ") }),
        None => Ok(()),
    }
}

fn check_enum(path: &str, value: Option<&Value>, allowed: &[&str]) -> Result<()> {
    match value {
        None => Ok(()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(()),
        Some(other) => invalid(path, format!("expected one of {}, found {other}", allowed.join(", "))),
    }
}

fn validate_failure_policy(path: &str, policy: &Value) -> Result<()> {
    check_keys(path, policy, &["maxRestarts", "restartStrategy", "rules"])?;
    check_enum(
        &child(path, "restartStrategy"),
        policy.get("restartStrategy"),
        &["Recreate", "BlockingRecreate", "InPlaceRestart"],
    )?;
    let rules = policy.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (i, rule) in rules.iter().enumerate() {
        let here = format!("{path}.rules[{i}]");
        check_keys(
            &here,
            rule,
            &["action", "name", "onJobFailureMessagePatterns", "onJobFailureReasons", "targetReplicatedJobs"],
        )?;
        for field in ["action", "name"] {
            if rule.get(field).is_none() {
                return invalid(format!("{here}.{field}"), "required field is missing");
            }
        }
        check_enum(
            &format!("{here}.action"),
            rule.get("action"),
            &[
                "FailJobSet",
                "RestartJobSet",
                "RestartJobSetAndIgnoreMaxRestarts",
                "RestartJob",
                "RestartJobAndIgnoreMaxRestarts",
            ],
        )?;
    }
    Ok(())
}

fn validate_volume_claim_policy(path: &str, policy: &Value) -> Result<()> {
    check_keys(path, policy, &["retentionPolicy", "templates"])?;
    if let Some(retention) = policy.get("retentionPolicy") {
        let here = child(path, "retentionPolicy");
        check_keys(&here, retention, &["whenDeleted"])?;
        check_enum(&child(&here, "whenDeleted"), retention.get("whenDeleted"), &["Delete", "Retain"])?;
    }
    let templates = policy.get("templates").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    for (i, template) in templates.iter().enumerate() {
        let here = format!("{path}.templates[{i}]");
        check_keys(&here, template, &["apiVersion", "kind", "metadata", "spec", "status"])?;
        if let Some(meta) = template.get("metadata") {
            check_keys(&child(&here, "metadata"), meta, &["annotations", "finalizers", "labels", "name", "namespace"])?;
            if meta.get("namespace").and_then(Value::as_str).is_some_and(|ns| !ns.is_empty()) {
                return invalid(
                    format!("{here}.metadata.namespace"),
                    "namespace cannot be set for VolumeClaimPolicies templates",
                );
            }
        }
        if let Some(spec) = template.get("spec") {
            check_keys(
                &child(&here, "spec"),
                spec,
                &[
                    "accessModes",
                    "dataSource",
                    "dataSourceRef",
                    "resources",
                    "selector",
                    "storageClassName",
                    "volumeAttributesClassName",
                    "volumeMode",
                    "volumeName",
                ],
            )?;
        }
    }
    Ok(())
}

/// `[3].name` for a list element's inner path `[3].name` or `3.name`.
fn bracket(inner: &str) -> String {
    match inner.split_once('.') {
        _ if inner.is_empty() => String::new(),
        _ if inner.starts_with('[') => inner.to_string(),
        Some((index, rest)) if index.chars().all(|c| c.is_ascii_digit()) => format!("[{index}].{rest}"),
        None if inner.chars().all(|c| c.is_ascii_digit()) => format!("[{inner}]"),
        _ => format!(".{inner}"),
    }
}

fn join_path(base: &str, inner: &str) -> String {
    if inner.is_empty() { base.to_string() } else { format!("{base}.{inner}") }
}
