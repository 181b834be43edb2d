//! `TrainingRuntime` and `ClusterTrainingRuntime` (trainer.kubeflow.org/v1alpha1):
//! the blueprint a TrainJob runs on — an ML policy (node count and one
//! framework: torch, MPI, JAX, XGBoost or Flux), an optional pod-group
//! policy for gang scheduling, and a JobSet template.
//!
//! The two kinds share one schema and one type; only the scope differs. This
//! module reads, writes and validates; launch plans live in [`crate::launch`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;
use crate::jobset::{JobSetTemplate, NODE, Shape};
use crate::meta::{
    Extra, OBJECT_META_EXTRA, ObjectMeta, check_max_len, child, invalid, is_dns_subdomain, reject_unknown,
    validate_meta,
};
use crate::trainjob::API_VERSION;

/// Kind of the namespaced runtime.
pub const TRAINING_RUNTIME_KIND: &str = "TrainingRuntime";
/// Kind of the cluster-scoped runtime (the default `runtimeRef.kind`).
pub const CLUSTER_TRAINING_RUNTIME_KIND: &str = "ClusterTrainingRuntime";

/// A `TrainingRuntime` or `ClusterTrainingRuntime`; `kind` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrainingRuntime {
    /// `trainer.kubeflow.org/v1alpha1`.
    pub api_version: String,
    /// `TrainingRuntime` or `ClusterTrainingRuntime`.
    pub kind: String,
    /// Object metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// The blueprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<TrainingRuntimeSpec>,
    /// Top-level fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The cluster-scoped runtime has the same schema as the namespaced one;
/// [`TrainingRuntime::is_cluster_scoped`] tells them apart.
pub type ClusterTrainingRuntime = TrainingRuntime;

/// `spec` of a ClusterTrainingRuntime for kube's typed API (feature
/// `kube`): the same fields as [`TrainingRuntimeSpec`], serialised
/// transparently, deriving the cluster-scoped `kube::CustomResource`
/// ([`ClusterTrainingRuntimeResource`]).
#[cfg(feature = "kube")]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema, kube::CustomResource)]
#[kube(
    group = "trainer.kubeflow.org",
    version = "v1alpha1",
    kind = "ClusterTrainingRuntime",
    root = "ClusterTrainingRuntimeResource",
    plural = "clustertrainingruntimes",
    doc = "A ClusterTrainingRuntime as kube's typed API sees it (see [`ClusterTrainingRuntimeSpec`])."
)]
#[serde(transparent)]
pub struct ClusterTrainingRuntimeSpec(pub TrainingRuntimeSpec);

/// `spec` of a runtime.
///
/// With the `kube` feature it also derives `kube::CustomResource` for the
/// namespaced kind (`TrainingRuntimeResource`); the cluster-scoped kind
/// has `ClusterTrainingRuntimeSpec`. [`TrainingRuntime`] stays the
/// lossless wire type for both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema, kube::CustomResource))]
#[cfg_attr(
    feature = "kube",
    kube(
        group = "trainer.kubeflow.org",
        version = "v1alpha1",
        kind = "TrainingRuntime",
        root = "TrainingRuntimeResource",
        plural = "trainingruntimes",
        namespaced,
        doc = "A TrainingRuntime as kube's typed API sees it (see [`TrainingRuntimeSpec`])."
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TrainingRuntimeSpec {
    /// Node count and framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ml_policy: Option<MlPolicy>,
    /// Gang-scheduling plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_group_policy: Option<PodGroupPolicy>,
    /// The JobSet template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<JobSetTemplate>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mlPolicy`: how many nodes, and at most one framework policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MlPolicy {
    /// Number of training nodes; a TrainJob's `trainer.numNodes` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_nodes: Option<i32>,
    /// PyTorch (torchrun).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<TorchPolicy>,
    /// MPI (mpirun over SSH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi: Option<MpiPolicy>,
    /// JAX (`jax.distributed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jax: Option<JaxPolicy>,
    /// XGBoost (Rabit/collective tracker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xgboost: Option<XGBoostPolicy>,
    /// Flux Framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux: Option<FluxPolicy>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The framework a runtime's ML policy selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framework {
    /// `mlPolicy.torch`.
    Torch,
    /// `mlPolicy.mpi`.
    Mpi,
    /// `mlPolicy.jax`.
    Jax,
    /// `mlPolicy.xgboost`.
    XGBoost,
    /// `mlPolicy.flux`.
    Flux,
}

impl Framework {
    /// The field name under `mlPolicy`.
    pub fn field(self) -> &'static str {
        match self {
            Framework::Torch => "torch",
            Framework::Mpi => "mpi",
            Framework::Jax => "jax",
            Framework::XGBoost => "xgboost",
            Framework::Flux => "flux",
        }
    }
}

/// `mlPolicy.torch`. Upstream removed `numProcPerNode` from it; the TrainJob
/// carries it now (`trainer.numProcPerNode`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TorchPolicy {
    /// Extra containers that also get the `PET_*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_injection: Option<TorchEnvInjection>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mlPolicy.torch.envInjection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct TorchEnvInjection {
    /// Target containers, by replicated job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<EnvInjectionTarget>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `envInjection` target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EnvInjectionTarget {
    /// Replicated job name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Containers in it (never `node`, which always gets them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_names: Option<Vec<String>>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mlPolicy.mpi`. Defaults are methods, never written back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct MpiPolicy {
    /// Slots per node; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_proc_per_node: Option<i32>,
    /// `OpenMPI` (the only implementation upstream supports); default `OpenMPI`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi_implementation: Option<String>,
    /// Where SSH keys are mounted; default `/root/.ssh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_auth_mount_path: Option<String>,
    /// Whether the launcher also runs a training process; default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_launcher_as_node: Option<bool>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl MpiPolicy {
    /// Slots per node (default 1).
    pub fn num_proc_per_node(&self) -> i32 {
        self.num_proc_per_node.unwrap_or(1)
    }
    /// MPI implementation (default `OpenMPI`; the CRD also allows `""`, read as the default).
    pub fn mpi_implementation(&self) -> &str {
        match self.mpi_implementation.as_deref() {
            None | Some("") => "OpenMPI",
            Some(other) => other,
        }
    }
    /// SSH key mount path (default `/root/.ssh`).
    pub fn ssh_auth_mount_path(&self) -> &str {
        self.ssh_auth_mount_path.as_deref().unwrap_or("/root/.ssh")
    }
    /// Whether the launcher is also a node (default false).
    pub fn run_launcher_as_node(&self) -> bool {
        self.run_launcher_as_node.unwrap_or(false)
    }
}

/// `mlPolicy.jax`: no settings; kept for unknown-field round-trip.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub struct JaxPolicy {
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mlPolicy.xgboost`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
pub struct XGBoostPolicy {
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `mlPolicy.flux`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct FluxPolicy {
    /// Tasks per node; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_proc_per_node: Option<i32>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `podGroupPolicy`: which gang scheduler creates the pod group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PodGroupPolicy {
    /// scheduler-plugins coscheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coscheduling: Option<CoschedulingPolicy>,
    /// Volcano.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volcano: Option<VolcanoPolicy>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `podGroupPolicy.coscheduling`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CoschedulingPolicy {
    /// Seconds to wait for the whole gang; default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_timeout_seconds: Option<i32>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl CoschedulingPolicy {
    /// Seconds to wait for the whole gang (default 60).
    pub fn schedule_timeout_seconds(&self) -> i32 {
        self.schedule_timeout_seconds.unwrap_or(60)
    }
}

/// `podGroupPolicy.volcano`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct VolcanoPolicy {
    /// Network-topology-aware placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_topology: Option<VolcanoNetworkTopology>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `podGroupPolicy.volcano.networkTopology`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct VolcanoNetworkTopology {
    /// `hard` or `soft`; default `hard`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Highest tier the gang may span; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub highest_tier_allowed: Option<i64>,
    /// Fields kf does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl MlPolicy {
    /// The frameworks set, in CRD order (valid policies set at most one).
    pub fn frameworks(&self) -> Vec<Framework> {
        [
            (Framework::Torch, self.torch.is_some()),
            (Framework::Mpi, self.mpi.is_some()),
            (Framework::Jax, self.jax.is_some()),
            (Framework::XGBoost, self.xgboost.is_some()),
            (Framework::Flux, self.flux.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }

    /// The framework, if exactly one is set.
    pub fn framework(&self) -> Option<Framework> {
        match self.frameworks().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "flux, jax, mpi, numNodes, torch, xgboost")?;
        let set = self.frameworks();
        if set.len() > 1 {
            let names: Vec<_> = set.iter().map(|f| f.field()).collect();
            return invalid(path, format!("only one framework policy can be configured, found {}", names.join(", ")));
        }
        if let Some(torch) = &self.torch {
            let here = child(path, "torch");
            reject_unknown(&here, &torch.extra, &[], "envInjection")?;
            if let Some(inj) = &torch.env_injection {
                let here = child(&here, "envInjection");
                reject_unknown(&here, &inj.extra, &[], "targets")?;
                let targets = inj.targets.as_deref().unwrap_or(&[]);
                for (i, t) in targets.iter().enumerate() {
                    let at = format!("{here}.targets[{i}]");
                    reject_unknown(&at, &t.extra, &[], "containerNames, jobName")?;
                    let Some(job) = t.job_name.as_deref() else {
                        return invalid(format!("{at}.jobName"), "required field is missing");
                    };
                    check_max_len(&format!("{at}.jobName"), job, 253)?;
                    if targets[..i].iter().any(|o| o.job_name.as_deref() == Some(job)) {
                        return invalid(format!("{at}.jobName"), format!("duplicate target {job:?}"));
                    }
                    let Some(names) = &t.container_names else {
                        return invalid(format!("{at}.containerNames"), "required field is missing");
                    };
                    if names.iter().any(|n| n == NODE) {
                        return invalid(
                            format!("{at}.containerNames"),
                            "containerNames must not include the main node container because PET_* envs are \
                             always injected into it",
                        );
                    }
                    if let Some(dup) = names.iter().enumerate().find(|(j, n)| names[..*j].contains(n)) {
                        return invalid(format!("{at}.containerNames"), format!("duplicate name {:?}", dup.1));
                    }
                }
            }
        }
        if let Some(mpi) = &self.mpi {
            let here = child(path, "mpi");
            reject_unknown(
                &here,
                &mpi.extra,
                &[],
                "mpiImplementation, numProcPerNode, runLauncherAsNode, sshAuthMountPath",
            )?;
            if mpi.num_proc_per_node.is_some_and(|n| n < 1) {
                return invalid(format!("{here}.numProcPerNode"), "NumProcPerNode in mpiPolicy must be >= 1");
            }
            if let Some(imp) = mpi.mpi_implementation.as_deref()
                && !matches!(imp, "OpenMPI" | "")
            {
                return invalid(format!("{here}.mpiImplementation"), format!("expected OpenMPI, found {imp:?}"));
            }
            if let Some(p) = mpi.ssh_auth_mount_path.as_deref() {
                check_max_len(&format!("{here}.sshAuthMountPath"), p, 4096)?;
            }
        }
        if let Some(jax) = &self.jax {
            reject_unknown(&child(path, "jax"), &jax.extra, &[], "(no fields)")?;
        }
        if let Some(xgb) = &self.xgboost {
            reject_unknown(&child(path, "xgboost"), &xgb.extra, &[], "(no fields)")?;
        }
        if let Some(flux) = &self.flux {
            let here = child(path, "flux");
            reject_unknown(&here, &flux.extra, &[], "numProcPerNode")?;
            if flux.num_proc_per_node.is_some_and(|n| n < 1) {
                return invalid(format!("{here}.numProcPerNode"), "NumProcPerNode in fluxPolicy must be >= 1");
            }
        }
        Ok(())
    }
}

impl PodGroupPolicy {
    fn validate(&self, path: &str) -> Result<()> {
        reject_unknown(path, &self.extra, &[], "coscheduling, volcano")?;
        if self.coscheduling.is_some() && self.volcano.is_some() {
            return invalid(path, "only one pod group policy can be configured, found coscheduling, volcano");
        }
        if let Some(c) = &self.coscheduling {
            let here = child(path, "coscheduling");
            reject_unknown(&here, &c.extra, &[], "scheduleTimeoutSeconds")?;
            if c.schedule_timeout_seconds.is_some_and(|t| t < 0) {
                return invalid(format!("{here}.scheduleTimeoutSeconds"), "must be at least 0");
            }
        }
        if let Some(v) = &self.volcano {
            let here = child(path, "volcano");
            reject_unknown(&here, &v.extra, &[], "networkTopology")?;
            if let Some(t) = &v.network_topology {
                let here = child(&here, "networkTopology");
                reject_unknown(&here, &t.extra, &[], "highestTierAllowed, mode")?;
                if let Some(mode) = t.mode.as_deref()
                    && !matches!(mode, "hard" | "soft")
                {
                    return invalid(format!("{here}.mode"), format!("expected hard or soft, found {mode:?}"));
                }
            }
        }
        Ok(())
    }
}

impl TrainingRuntime {
    /// Reads a runtime from a parsed JSON/YAML document. Type errors name the
    /// field path; unknown fields are kept (see [`TrainingRuntime::validate`]).
    pub fn from_value(doc: Value) -> Result<Self> {
        crate::meta::from_value(doc)
    }

    /// Writes the runtime back: the fields read, no others (defaults are
    /// methods, never written).
    pub fn to_value(&self) -> Value {
        crate::meta::to_value(self)
    }

    /// The runtime's name.
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref()?.name.as_deref()
    }

    /// True for a `ClusterTrainingRuntime`.
    pub fn is_cluster_scoped(&self) -> bool {
        self.kind == CLUSTER_TRAINING_RUNTIME_KIND
    }

    /// The ML policy, if any.
    pub fn ml_policy(&self) -> Option<&MlPolicy> {
        self.spec.as_ref()?.ml_policy.as_ref()
    }

    /// The JobSet template, if any.
    pub fn template(&self) -> Option<&JobSetTemplate> {
        self.spec.as_ref()?.template.as_ref()
    }

    /// Checks what the API server (schema, CEL rules, strict field
    /// validation) would reject: apiVersion and kind, a DNS-subdomain name,
    /// unknown fields anywhere kf models (including pod specs and
    /// containers), at most one framework policy, MPI/Flux process counts,
    /// JobSet rules (unique replicated jobs, InOrder vs dependsOn). Returns
    /// the first problem, with its dotted path.
    pub fn validate(&self) -> Result<()> {
        if self.api_version != API_VERSION {
            return invalid("apiVersion", format!("expected {API_VERSION:?}, found {:?}", self.api_version));
        }
        if !matches!(self.kind.as_str(), TRAINING_RUNTIME_KIND | CLUSTER_TRAINING_RUNTIME_KIND) {
            return invalid(
                "kind",
                format!("expected {TRAINING_RUNTIME_KIND} or {CLUSTER_TRAINING_RUNTIME_KIND}, found {:?}", self.kind),
            );
        }
        reject_unknown("", &self.extra, &[], "apiVersion, kind, metadata, spec")?;
        let Some(meta) = &self.metadata else {
            return invalid("metadata.name", "a runtime needs a name");
        };
        validate_meta("metadata", meta, OBJECT_META_EXTRA)?;
        match meta.name.as_deref() {
            None | Some("") => return invalid("metadata.name", "a runtime needs a name"),
            Some(name) if !is_dns_subdomain(name) => {
                return invalid(
                    "metadata.name",
                    format!("expected a DNS subdomain (lowercase letters, digits, '-' and '.'), found {name:?}"),
                );
            }
            Some(_) => {}
        }
        let Some(spec) = &self.spec else { return invalid("spec", "a runtime needs a spec") };
        reject_unknown("spec", &spec.extra, &[], "mlPolicy, podGroupPolicy, template")?;
        if let Some(ml) = &spec.ml_policy {
            ml.validate("spec.mlPolicy")?;
        }
        if let Some(pg) = &spec.pod_group_policy {
            pg.validate("spec.podGroupPolicy")?;
        }
        if let Some(template) = &spec.template {
            template.validate("spec.template", Shape::Full)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use serde_json::json;

    fn node_job() -> Value {
        json!({"name": "node", "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
            "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "pytorch"}]}}}}})
    }

    fn runtime(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "ClusterTrainingRuntime", "metadata": {"name": "rt"}, "spec": spec})
    }

    fn problem(doc: Value) -> Error {
        TrainingRuntime::from_value(doc).and_then(|r| r.validate()).expect_err("should be rejected")
    }

    #[test]
    fn accepts_each_framework_and_keeps_defaults_out_of_the_document() {
        for policy in [
            json!({"torch": {"envInjection": {"targets": [{"jobName": "launcher", "containerNames": ["sidecar"]}]}}}),
            json!({"mpi": {"numProcPerNode": 2, "mpiImplementation": "OpenMPI", "runLauncherAsNode": true}}),
            json!({"jax": {}}),
            json!({"xgboost": {}}),
            json!({"flux": {"numProcPerNode": 4}}),
        ] {
            let doc = runtime(json!({"mlPolicy": policy, "template": {"spec": {"replicatedJobs": [node_job()]}}}));
            let rt = TrainingRuntime::from_value(doc.clone()).unwrap();
            rt.validate().unwrap_or_else(|e| panic!("{doc}: {e}"));
            assert!(rt.ml_policy().and_then(MlPolicy::framework).is_some());
            assert_eq!(rt.to_value(), doc);
        }
        let mpi = MpiPolicy::default();
        assert_eq!(
            (mpi.num_proc_per_node(), mpi.mpi_implementation(), mpi.ssh_auth_mount_path(), mpi.run_launcher_as_node()),
            (1, "OpenMPI", "/root/.ssh", false)
        );
        assert_eq!(CoschedulingPolicy::default().schedule_timeout_seconds(), 60);
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let template = json!({"spec": {"replicatedJobs": [node_job()]}});
        let cases = [
            (json!({"mlPolicy": {"torch": {}, "mpi": {}}}), "spec.mlPolicy"),
            (json!({"mlPolicy": {"mpi": {"numProcPerNode": 0}}}), "spec.mlPolicy.mpi.numProcPerNode"),
            (json!({"mlPolicy": {"mpi": {"mpiImplementation": "MPICH"}}}), "spec.mlPolicy.mpi.mpiImplementation"),
            (json!({"mlPolicy": {"flux": {"numProcPerNode": 0}}}), "spec.mlPolicy.flux.numProcPerNode"),
            (
                json!({"mlPolicy": {"torch": {"envInjection": {"targets": [{"jobName": "node", "containerNames": ["node"]}]}}}}),
                "spec.mlPolicy.torch.envInjection.targets[0].containerNames",
            ),
            (json!({"mlPolicy": {"pytorch": {}}}), "spec.mlPolicy.pytorch"),
            (json!({"podGroupPolicy": {"coscheduling": {}, "volcano": {}}}), "spec.podGroupPolicy"),
            (
                json!({"podGroupPolicy": {"volcano": {"networkTopology": {"mode": "firm"}}}}),
                "spec.podGroupPolicy.volcano.networkTopology.mode",
            ),
            (
                json!({"template": {"spec": {"replicatedJobs": [node_job(), node_job()]}}}),
                "spec.template.spec.replicatedJobs[1].name",
            ),
            (
                json!({"template": {"spec": {"replicatedJobs": [{"name": "node"}]}}}),
                "spec.template.spec.replicatedJobs[0].template",
            ),
            (
                json!({"template": {"spec": {"startupPolicy": {"startupPolicyOrder": "InOrder"}, "replicatedJobs": [
                    {"name": "a", "template": {"spec": {"template": {"spec": {"containers": []}}}}},
                    {"name": "b", "dependsOn": [{"name": "a", "status": "Complete"}],
                     "template": {"spec": {"template": {"spec": {"containers": []}}}}}]}}}),
                "spec.template.spec.replicatedJobs[1].dependsOn",
            ),
            (
                json!({"template": {"spec": {"replicatedJobs": [{"name": "a", "dependsOn": [{"name": "b", "status": "Done"}],
                    "template": {"spec": {"template": {"spec": {"containers": []}}}}}]}}}),
                "spec.template.spec.replicatedJobs[0].dependsOn[0].status",
            ),
            (
                json!({"template": {"spec": {"replicatedJobs": [{"name": "a", "template": {"spec": {"template": {"spec":
                    {"containers": [{"name": "c", "imag": "typo"}]}}}}}]}}}),
                "spec.template.spec.replicatedJobs[0].template.spec.template.spec.containers[0].imag",
            ),
            (
                json!({"template": {"spec": {"replicatedJobs": [{"name": "a", "template": {"spec": {"template": {"spec":
                    {"nodeSelect": {}, "containers": []}}}}}]}}}),
                "spec.template.spec.replicatedJobs[0].template.spec.template.spec.nodeSelect",
            ),
            (
                json!({"template": {"spec": {"successPolicy": {"operator": "Most"}}}}),
                "spec.template.spec.successPolicy.operator",
            ),
            (json!({"template": template, "extra": 1}), "spec.extra"),
            (
                json!({"template": {"spec": {"failurePolicy": {"maxRestarts": 1, "rules": [{"name": "r", "action": "Retry"}]}}}}),
                "spec.template.spec.failurePolicy.rules[0].action",
            ),
            (
                json!({"template": {"spec": {"failurePolicy": {"maxRestart": 1}}}}),
                "spec.template.spec.failurePolicy.maxRestart",
            ),
            (
                json!({"template": {"spec": {"coordinator": {"podIndex": 0}}}}),
                "spec.template.spec.coordinator.replicatedJob",
            ),
            (
                json!({"template": {"spec": {"volumeClaimPolicies": [{"templates": [{"metadata": {"name": "w", "namespace": "x"}}]}]}}}),
                "spec.template.spec.volumeClaimPolicies[0].templates[0].metadata.namespace",
            ),
            (
                json!({"template": {"spec": {"volumeClaimPolicies": [{"retentionPolicy": {"whenDeleted": "Keep"}}]}}}),
                "spec.template.spec.volumeClaimPolicies[0].retentionPolicy.whenDeleted",
            ),
        ];
        for (spec, path) in cases {
            let err = problem(runtime(spec.clone()));
            assert_eq!(err.path(), path, "{spec}: {err}");
        }
        let mut wrong_kind = runtime(json!({}));
        wrong_kind["kind"] = json!("TrainJob");
        assert_eq!(problem(wrong_kind).path(), "kind");
        let mut bad_name = runtime(json!({}));
        bad_name["metadata"]["name"] = json!("Torch_Runtime");
        assert_eq!(problem(bad_name).path(), "metadata.name");
    }

    #[test]
    fn container_type_errors_name_the_field() {
        let doc = runtime(json!({"template": {"spec": {"replicatedJobs": [{"name": "node", "template": {"spec":
            {"template": {"spec": {"containers": [{"name": "node", "command": "python train.py"}]}}}}}]}}}));
        let rt = TrainingRuntime::from_value(doc).unwrap();
        let err = rt.validate().unwrap_err();
        assert_eq!(
            err.path(),
            "spec.template.spec.replicatedJobs[0].template.spec.template.spec.containers[0].command"
        );
        let pod = rt.template().unwrap().replicated_jobs()[0].pod_template().unwrap();
        assert_eq!(pod.containers().unwrap_err().path(), "spec.containers[0].command");
    }

    #[test]
    fn typed_accessors_find_the_trainer_container() {
        let doc = runtime(json!({"mlPolicy": {"torch": {}}, "template": {"spec": {"replicatedJobs": [node_job()]}}}));
        let rt = TrainingRuntime::from_value(doc).unwrap();
        let template = rt.template().unwrap();
        let job = template.trainer_job().unwrap();
        assert_eq!(job.name, "node");
        let container = job.pod_template().unwrap().container("node").unwrap().unwrap();
        assert_eq!(container.image.as_deref(), Some("pytorch"));
        assert!(rt.is_cluster_scoped());
    }
}
