//! The `TrainJob` custom resource (trainer.kubeflow.org/v1alpha1): a reference
//! to a runtime plus what this job overrides (trainer image, command, nodes,
//! resources, initializers, runtime patches), and the status the controller
//! writes (conditions, per-job counts, trainer progress).
//!
//! This module reads, writes and validates; it resolves nothing against a
//! runtime (that is [`crate::launch`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;
use crate::jobset::{JobSetTemplate, Shape};
use crate::meta::{
    Condition, EnvVar, Extra, OBJECT_META_EXTRA, ObjectMeta, ResourceRequirements, check_max_len, child, invalid,
    is_rfc1035_label, reject_unknown, validate_env, validate_meta,
};
use crate::runtime::{CLUSTER_TRAINING_RUNTIME_KIND, TRAINING_RUNTIME_KIND};

/// API group of the Trainer v2 CRDs.
pub const API_GROUP: &str = "trainer.kubeflow.org";
/// The one `apiVersion` the CRDs serve.
pub const API_VERSION: &str = "trainer.kubeflow.org/v1alpha1";
/// Kind of a TrainJob.
pub const TRAINJOB_KIND: &str = "TrainJob";
/// The default `spec.managedBy`: the built-in controller.
pub const MANAGED_BY_TRAINER: &str = "trainer.kubeflow.org/trainjob-controller";
/// `spec.managedBy` that delegates the job to MultiKueue.
pub const MANAGED_BY_MULTIKUEUE: &str = "kueue.x-k8s.io/multikueue";

/// A TrainJob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrainJob {
    /// `trainer.kubeflow.org/v1alpha1`.
    pub api_version: String,
    /// `TrainJob`.
    pub kind: String,
    /// Object metadata; the name must be an RFC 1035 label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<TrainJobSpec>,
    /// The observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TrainJobStatus>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec` of a TrainJob.
///
/// With the `kube` feature it also derives `kube::CustomResource`, which
/// generates `TrainJobResource`: the typed object for kube's `Api`
/// (`Api::<TrainJobResource>::namespaced(client, "ns")`) and its CRD
/// (`TrainJobResource::crd()`). [`TrainJob`] stays the lossless wire type
/// that reads, validates and round-trips any document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema, kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "trainer.kubeflow.org",
        version = "v1alpha1",
        kind = "TrainJob",
        root = "TrainJobResource",
        plural = "trainjobs",
        namespaced,
        status = "TrainJobStatus",
        doc = "A TrainJob as kube's typed API sees it (see [`TrainJobSpec`])."
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrainJobSpec {
    /// The runtime to run on (required: optional here only so that its
    /// absence is a validation error naming the field, not a parse error).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(required))]
    pub runtime_ref: Option<RuntimeRef>,
    /// Dataset and model initializers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer: Option<Initializer>,
    /// Overrides for the trainer nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<Trainer>,
    /// Patches to the runtime's JobSet template, one per manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_patches: Option<Vec<RuntimePatch>>,
    /// Whether the job is suspended; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// Wall-clock limit in seconds, from the first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// The controller that reconciles the job; default [`MANAGED_BY_TRAINER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec.runtimeRef`. Defaults are methods, never written back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRef {
    /// The runtime's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// API group; default `trainer.kubeflow.org`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// `TrainingRuntime` or `ClusterTrainingRuntime`; default `ClusterTrainingRuntime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl RuntimeRef {
    /// The referenced kind, defaulting to `ClusterTrainingRuntime`.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(CLUSTER_TRAINING_RUNTIME_KIND)
    }
    /// The referenced API group, defaulting to `trainer.kubeflow.org`.
    pub fn api_group(&self) -> &str {
        self.api_group.as_deref().unwrap_or(API_GROUP)
    }
}

/// `spec.initializer`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Initializer {
    /// Downloads the dataset to `/workspace/dataset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<InitializerSource>,
    /// Downloads the model to `/workspace/model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<InitializerSource>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A dataset or model initializer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct InitializerSource {
    /// Where to fetch from: `scheme://…` (`hf://`, `s3://`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_uri: Option<String>,
    /// Extra environment for the initializer container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Secret with credentials, injected as environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reference to a Secret in the job's namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `spec.trainer`: overrides for the trainer nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Trainer {
    /// Image of the `node` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint of the `node` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments of the `node` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment added to (and overriding) the runtime's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Number of nodes; overrides `mlPolicy.numNodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_nodes: Option<i32>,
    /// Resources of each node; replace the runtime container's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_per_node: Option<ResourceRequirements>,
    /// Processes per node (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_proc_per_node: Option<i32>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `spec.runtimePatches` entry: a manager's patch of the runtime.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RuntimePatch {
    /// Who applied the patch (required, e.g. `trainer.kubeflow.org/kubeflow-sdk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// The patch of the runtime spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_runtime_spec: Option<RuntimeSpecPatch>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `trainingRuntimeSpec` of a runtime patch: only the template, and only a
/// few pod fields in it (see the CRD).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RuntimeSpecPatch {
    /// The JobSet template patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<JobSetTemplate>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status` of a TrainJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrainJobStatus {
    /// `Suspended`, `Complete`, `Failed`, `Created`… conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// Pod counts per replicated job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_status: Option<Vec<JobStatus>>,
    /// Progress and metrics the trainer reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer_status: Option<TrainerStatus>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Counts for one replicated job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Replicated job name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ready Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<i32>,
    /// Succeeded Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i32>,
    /// Failed Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Active Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Suspended Jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<i32>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `status.trainerStatus`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrainerStatus {
    /// 0–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_percentage: Option<i32>,
    /// Seconds left, estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_remaining_seconds: Option<i64>,
    /// Latest metrics (name → value as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<Metric>>,
    /// When the trainer last reported (required when the status is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_time: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One reported metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Metric name (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Value as a string (at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl TrainJob {
    /// Reads a TrainJob from a parsed JSON/YAML document. Type errors name the
    /// field path; unknown fields are kept (see [`TrainJob::validate`]).
    pub fn from_value(doc: Value) -> Result<Self> {
        crate::meta::from_value(doc)
    }

    /// Writes the TrainJob back: the fields read, no others (defaults are
    /// methods, never written).
    pub fn to_value(&self) -> Value {
        crate::meta::to_value(self)
    }

    /// The job's name.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// The runtime reference.
    pub fn runtime_ref(&self) -> Option<&RuntimeRef> {
        self.spec.as_ref()?.runtime_ref.as_ref()
    }

    /// The trainer overrides.
    pub fn trainer(&self) -> Option<&Trainer> {
        self.spec.as_ref()?.trainer.as_ref()
    }

    /// Whether the job is suspended (default false).
    pub fn suspended(&self) -> bool {
        self.spec.as_ref().and_then(|s| s.suspend).unwrap_or(false)
    }

    /// The managing controller (default [`MANAGED_BY_TRAINER`]).
    pub fn managed_by(&self) -> &str {
        self.spec.as_ref().and_then(|s| s.managed_by.as_deref()).unwrap_or(MANAGED_BY_TRAINER)
    }

    /// Checks what the API server would reject at creation: apiVersion and
    /// kind, the CEL rules (RFC 1035 name of at most 63 characters,
    /// `scheme://` storage URIs, allowed `managedBy`, `numProcPerNode >= 1`),
    /// schema bounds (lengths, minimums, enums), required fields, and unknown
    /// fields (strict field validation) — including inside runtime patches,
    /// whose schema allows only a few pod fields. Returns the first problem,
    /// with its dotted path.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != API_VERSION {
            return invalid("apiVersion", format!("expected {API_VERSION:?}, found {:?}", self.api_version));
        }
        if self.kind != TRAINJOB_KIND {
            return invalid("kind", format!("expected {TRAINJOB_KIND:?}, found {:?}", self.kind));
        }
        reject_unknown("", &self.extra, &[], "apiVersion, kind, metadata, spec, status")?;
        let Some(meta) = &self.metadata else { return invalid("metadata.name", "a TrainJob needs a name") };
        validate_meta("metadata", meta, OBJECT_META_EXTRA)?;
        match meta.name.as_deref() {
            None | Some("") => return invalid("metadata.name", "a TrainJob needs a name"),
            Some(name) if name.len() > 63 => {
                return invalid("metadata.name", format!("must be no more than 63 characters, found {}", name.len()));
            }
            Some(name) if !is_rfc1035_label(name) => {
                return invalid(
                    "metadata.name",
                    format!(
                        "must match RFC 1035 DNS label format (lowercase letter first, then letters, digits or '-', \
                         not ending in '-'), found {name:?}"
                    ),
                );
            }
            Some(_) => {}
        }
        let Some(spec) = &self.spec else { return invalid("spec.runtimeRef", "a TrainJob needs a runtimeRef") };
        spec.validate("spec")?;
        if let Some(status) = &self.status {
            status.validate("status")?;
        }
        Ok(())
    }
}

impl TrainJobSpec {
    fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(
            path,
            &self.extra,
            &[],
            "activeDeadlineSeconds, initializer, managedBy, runtimePatches, runtimeRef, suspend, trainer",
        )?;
        let Some(rref) = &self.runtime_ref else {
            return invalid(child(path, "runtimeRef"), "required field is missing");
        };
        let here = child(path, "runtimeRef");
        reject_unknown(&here, &rref.extra, &[], "apiGroup, kind, name")?;
        match rref.name.as_deref() {
            None | Some("") => return invalid(format!("{here}.name"), "required field is missing"),
            Some(name) => check_max_len(&format!("{here}.name"), name, 253)?,
        }
        if let Some(group) = rref.api_group.as_deref() {
            check_max_len(&format!("{here}.apiGroup"), group, 253)?;
        }
        if let Some(kind) = rref.kind.as_deref() {
            check_max_len(&format!("{here}.kind"), kind, 253)?;
        }
        if rref.api_group() == API_GROUP
            && !matches!(rref.kind(), TRAINING_RUNTIME_KIND | CLUSTER_TRAINING_RUNTIME_KIND)
        {
            return invalid(
                format!("{here}.kind"),
                format!("expected {TRAINING_RUNTIME_KIND} or {CLUSTER_TRAINING_RUNTIME_KIND}, found {:?}", rref.kind()),
            );
        }
        if let Some(init) = &self.initializer {
            let here = child(path, "initializer");
            reject_unknown(&here, &init.extra, &[], "dataset, model")?;
            for (field, source) in [("dataset", &init.dataset), ("model", &init.model)] {
                if let Some(source) = source {
                    source.validate(&child(&here, field))?;
                }
            }
        }
        if let Some(trainer) = &self.trainer {
            trainer.validate(&child(path, "trainer"))?;
        }
        for (i, patch) in self.runtime_patches.iter().flatten().enumerate() {
            let here = format!("{path}.runtimePatches[{i}]");
            reject_unknown(&here, &patch.extra, &[], "manager, time, trainingRuntimeSpec")?;
            match patch.manager.as_deref() {
                None | Some("") => return invalid(format!("{here}.manager"), "required field is missing"),
                Some(m) => check_max_len(&format!("{here}.manager"), m, 253)?,
            }
            if let Some(rs) = &patch.training_runtime_spec {
                let here = child(&here, "trainingRuntimeSpec");
                reject_unknown(&here, &rs.extra, &[], "template")?;
                if let Some(t) = &rs.template {
                    t.validate(&child(&here, "template"), Shape::Patch)?;
                }
            }
        }
        if let Some(managed_by) = self.managed_by.as_deref()
            && !matches!(managed_by, MANAGED_BY_TRAINER | MANAGED_BY_MULTIKUEUE)
        {
            return invalid(
                child(path, "managedBy"),
                format!("expected {MANAGED_BY_TRAINER:?} or {MANAGED_BY_MULTIKUEUE:?}, found {managed_by:?}"),
            );
        }
        if self.active_deadline_seconds.is_some_and(|s| s < 1) {
            return invalid(child(path, "activeDeadlineSeconds"), "must be at least 1");
        }
        Ok(())
    }
}

impl InitializerSource {
    fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "env, secretRef, storageUri")?;
        if let Some(uri) = self.storage_uri.as_deref() {
            check_max_len(&child(path, "storageUri"), uri, 2048)?;
            if !uri.is_empty() && !is_scheme_uri(uri) {
                return invalid(
                    child(path, "storageUri"),
                    format!("expected a URI of the form scheme://path (hf://, s3://, …), found {uri:?}"),
                );
            }
        }
        if let Some(env) = &self.env {
            validate_env(&child(path, "env"), env)?;
        }
        if let Some(secret) = &self.secret_ref {
            reject_unknown(&child(path, "secretRef"), &secret.extra, &[], "name")?;
        }
        Ok(())
    }
}

/// `^[A-Za-z][A-Za-z0-9+.-]*://.+$`.
fn is_scheme_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once("://") else { return false };
    let b = scheme.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
        && !rest.is_empty()
        && !rest.contains('\n')
}

impl Trainer {
    fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(
            path,
            &self.extra,
            &[],
            "args, command, env, image, numNodes, numProcPerNode, resourcesPerNode",
        )?;
        if let Some(image) = self.image.as_deref() {
            check_max_len(&child(path, "image"), image, 500)?;
        }
        if self.num_nodes.is_some_and(|n| n < 0) {
            return invalid(child(path, "numNodes"), "must be at least 0");
        }
        if self.num_proc_per_node.is_some_and(|n| n < 1) {
            return invalid(child(path, "numProcPerNode"), "must be at least 1");
        }
        if let Some(env) = &self.env {
            validate_env(&child(path, "env"), env)?;
        }
        if let Some(resources) = &self.resources_per_node {
            resources.validate(&child(path, "resourcesPerNode"))?;
        }
        Ok(())
    }
}

impl TrainJobStatus {
    fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "conditions, jobsStatus, trainerStatus")?;
        for (i, c) in self.conditions.iter().flatten().enumerate() {
            c.validate(&format!("{path}.conditions[{i}]"))?;
        }
        for (i, job) in self.jobs_status.iter().flatten().enumerate() {
            let here = format!("{path}.jobsStatus[{i}]");
            reject_unknown(&here, &job.extra, &[], "active, failed, name, ready, succeeded, suspended")?;
            match job.name.as_deref() {
                None => return invalid(format!("{here}.name"), "required field is missing"),
                Some(name) => check_max_len(&format!("{here}.name"), name, 253)?,
            }
            for (field, count) in [
                ("active", job.active),
                ("failed", job.failed),
                ("ready", job.ready),
                ("succeeded", job.succeeded),
                ("suspended", job.suspended),
            ] {
                match count {
                    None => return invalid(format!("{here}.{field}"), "required field is missing"),
                    Some(n) if n < 0 => return invalid(format!("{here}.{field}"), "must be at least 0"),
                    Some(_) => {}
                }
            }
        }
        if let Some(ts) = &self.trainer_status {
            let here = child(path, "trainerStatus");
            reject_unknown(
                &here,
                &ts.extra,
                &[],
                "estimatedRemainingSeconds, lastUpdatedTime, metrics, progressPercentage",
            )?;
            if ts.last_updated_time.is_none() {
                return invalid(format!("{here}.lastUpdatedTime"), "required when trainerStatus is set");
            }
            if let Some(p) = ts.progress_percentage
                && !(0..=100).contains(&p)
            {
                return invalid(format!("{here}.progressPercentage"), format!("expected 0 to 100, found {p}"));
            }
            if ts.estimated_remaining_seconds.is_some_and(|s| s < 0) {
                return invalid(format!("{here}.estimatedRemainingSeconds"), "must be at least 0");
            }
            for (i, m) in ts.metrics.iter().flatten().enumerate() {
                let at = format!("{here}.metrics[{i}]");
                reject_unknown(&at, &m.extra, &[], "name, value")?;
                for (field, value) in [("name", &m.name), ("value", &m.value)] {
                    match value {
                        None => return invalid(format!("{at}.{field}"), "required field is missing"),
                        Some(v) => check_max_len(&format!("{at}.{field}"), v, 64)?,
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use proptest::prelude::*;
    use serde_json::json;

    fn job(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "TrainJob", "metadata": {"name": "job"}, "spec": spec})
    }

    fn problem(doc: Value) -> Error {
        TrainJob::from_value(doc).and_then(|j| j.validate()).expect_err("should be rejected")
    }

    fn rref() -> Value {
        json!({"name": "torch-distributed"})
    }

    #[test]
    fn defaults_are_methods_not_fields() {
        let doc = job(json!({"runtimeRef": rref()}));
        let j = TrainJob::from_value(doc.clone()).unwrap();
        j.validate().unwrap();
        let r = j.runtime_ref().unwrap();
        assert_eq!((r.kind(), r.api_group()), ("ClusterTrainingRuntime", "trainer.kubeflow.org"));
        assert_eq!(j.managed_by(), MANAGED_BY_TRAINER);
        assert!(!j.suspended());
        assert_eq!(j.to_value(), doc);
    }

    #[test]
    fn unknown_fields_survive_a_round_trip_and_are_reported() {
        let doc = job(json!({"runtimeRef": {"name": "r", "future": 1}, "trainer": {"numNodes": 2, "x": [1]}}));
        let j = TrainJob::from_value(doc.clone()).unwrap();
        assert_eq!(j.to_value(), doc);
        let err = j.validate().unwrap_err();
        assert!(matches!(err, Error::UnknownField { .. }));
        assert_eq!(err.path(), "spec.runtimeRef.future");
    }

    #[test]
    fn type_errors_name_the_field() {
        let err = TrainJob::from_value(job(json!({"runtimeRef": rref(), "trainer": {"numProcPerNode": "auto"}})))
            .unwrap_err();
        assert_eq!(err.path(), "spec.trainer.numProcPerNode", "{err}");
        let err =
            TrainJob::from_value(job(json!({"runtimeRef": rref(), "trainer": {"env": [{"name": 1}]}}))).unwrap_err();
        assert!(err.path().starts_with("spec.trainer.env"), "{err}");
    }

    #[test]
    fn cel_rules_and_bounds_name_the_field() {
        let mut bad_name = job(json!({"runtimeRef": rref()}));
        bad_name["metadata"]["name"] = json!("My_Job");
        assert_eq!(problem(bad_name).path(), "metadata.name");
        let mut long_name = job(json!({"runtimeRef": rref()}));
        long_name["metadata"]["name"] = json!("a".repeat(64));
        assert!(problem(long_name).to_string().contains("63"));
        let mut digit_first = job(json!({"runtimeRef": rref()}));
        digit_first["metadata"]["name"] = json!("1job");
        assert_eq!(problem(digit_first).path(), "metadata.name");

        let cases = [
            (json!({}), "spec.runtimeRef"),
            (json!({"runtimeRef": {}}), "spec.runtimeRef.name"),
            (json!({"runtimeRef": {"name": "r", "kind": "Runtime"}}), "spec.runtimeRef.kind"),
            (
                json!({"runtimeRef": rref(), "initializer": {"dataset": {"storageUri": "tatsu-lab/alpaca"}}}),
                "spec.initializer.dataset.storageUri",
            ),
            (
                json!({"runtimeRef": rref(), "initializer": {"model": {"storageUri": "1hf://x"}}}),
                "spec.initializer.model.storageUri",
            ),
            (json!({"runtimeRef": rref(), "managedBy": "me"}), "spec.managedBy"),
            (json!({"runtimeRef": rref(), "trainer": {"numProcPerNode": 0}}), "spec.trainer.numProcPerNode"),
            (json!({"runtimeRef": rref(), "trainer": {"numNodes": -1}}), "spec.trainer.numNodes"),
            (
                json!({"runtimeRef": rref(), "trainer": {"resourcesPerNode": {"limits": {"cpu": "lots"}}}}),
                "spec.trainer.resourcesPerNode.limits.cpu",
            ),
            (json!({"runtimeRef": rref(), "trainer": {"env": [{"name": ""}]}}), "spec.trainer.env[0].name"),
            (json!({"runtimeRef": rref(), "activeDeadlineSeconds": 0}), "spec.activeDeadlineSeconds"),
            (json!({"runtimeRef": rref(), "runtimePatches": [{}]}), "spec.runtimePatches[0].manager"),
        ];
        for (spec, path) in cases {
            let err = problem(job(spec.clone()));
            assert_eq!(err.path(), path, "{spec}: {err}");
        }
        let ok = job(json!({"runtimeRef": rref(), "initializer": {"dataset": {"storageUri": "hf://tatsu-lab/alpaca"},
            "model": {"storageUri": ""}}, "managedBy": MANAGED_BY_MULTIKUEUE}));
        TrainJob::from_value(ok).unwrap().validate().unwrap();
    }

    #[test]
    fn runtime_patches_allow_only_the_patchable_pod_fields() {
        let patch = |pod: Value| {
            job(json!({"runtimeRef": rref(), "runtimePatches": [{"manager": "m", "trainingRuntimeSpec": {"template":
                {"spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": {"spec": pod}}}}]}}}}]}))
        };
        let ok = patch(json!({"nodeSelector": {"a": "b"}, "containers": [{"name": "node", "env": [{"name": "X"}]}]}));
        TrainJob::from_value(ok).unwrap().validate().unwrap();
        let prefix =
            "spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0].template.spec.template.spec";
        let err = problem(patch(json!({"hostNetwork": true})));
        assert_eq!(err.path(), format!("{prefix}.hostNetwork"), "{err}");
        let err = problem(patch(json!({"containers": [{"name": "node", "image": "x"}]})));
        assert_eq!(err.path(), format!("{prefix}.containers[0].image"), "{err}");
    }

    #[test]
    fn status_is_validated() {
        let with_status = |status: Value| {
            let mut doc = job(json!({"runtimeRef": rref()}));
            doc["status"] = status;
            doc
        };
        let good = with_status(json!({
            "conditions": [{"type": "Complete", "status": "True", "reason": "JobsCompleted", "message": "done",
                            "lastTransitionTime": "2025-01-01T00:00:00Z"}],
            "jobsStatus": [{"name": "node", "active": 0, "failed": 0, "ready": 0, "succeeded": 2, "suspended": 0}],
            "trainerStatus": {"progressPercentage": 100, "lastUpdatedTime": "2025-01-01T00:00:00Z",
                              "metrics": [{"name": "loss", "value": "0.1"}]},
        }));
        let j = TrainJob::from_value(good.clone()).unwrap();
        j.validate().unwrap();
        assert_eq!(j.to_value(), good);
        let cases = [
            (
                json!({"conditions": [{"type": "Complete", "status": "Yes", "reason": "R", "message": "m",
                                    "lastTransitionTime": "t"}]}),
                "status.conditions[0].status",
            ),
            (
                json!({"conditions": [{"type": "Complete", "status": "True", "reason": "bad reason", "message": "m",
                                    "lastTransitionTime": "t"}]}),
                "status.conditions[0].reason",
            ),
            (
                json!({"jobsStatus": [{"name": "node", "active": 0, "failed": 0, "ready": 0, "succeeded": 1}]}),
                "status.jobsStatus[0].suspended",
            ),
            (json!({"trainerStatus": {"progressPercentage": 10}}), "status.trainerStatus.lastUpdatedTime"),
            (
                json!({"trainerStatus": {"progressPercentage": 101, "lastUpdatedTime": "t"}}),
                "status.trainerStatus.progressPercentage",
            ),
        ];
        for (status, path) in cases {
            assert_eq!(problem(with_status(status.clone())).path(), path, "{status}");
        }
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from)
        ]
    }

    proptest! {
        /// Whatever a document adds where kf does not look survives
        /// from_value → to_value, and validate names it.
        #[test]
        fn unknown_fields_round_trip_anywhere(
            level in 0usize..6,
            key in "x[A-Za-z]{0,8}",
            value in scalar(),
            nodes in proptest::option::of(0i32..100),
        ) {
            let mut doc = job(json!({"runtimeRef": {"name": "r"}, "trainer": {"image": "i"},
                "initializer": {"dataset": {"storageUri": "s3://b/k"}}, "runtimePatches": [{"manager": "m"}]}));
            if let Some(n) = nodes { doc["spec"]["trainer"]["numNodes"] = json!(n); }
            let (target, path) = match level {
                0 => (&mut doc, String::new()),
                1 => (&mut doc["spec"], "spec".to_string()),
                2 => (&mut doc["spec"]["runtimeRef"], "spec.runtimeRef".to_string()),
                3 => (&mut doc["spec"]["trainer"], "spec.trainer".to_string()),
                4 => (&mut doc["spec"]["initializer"]["dataset"], "spec.initializer.dataset".to_string()),
                _ => (&mut doc["spec"]["runtimePatches"][0], "spec.runtimePatches[0]".to_string()),
            };
            target[key.as_str()] = value;
            let parsed = TrainJob::from_value(doc.clone()).unwrap();
            prop_assert_eq!(parsed.to_value(), doc);
            let err = parsed.validate().unwrap_err();
            let expected = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            prop_assert_eq!(err.path(), expected.as_str());
        }
    }
}
