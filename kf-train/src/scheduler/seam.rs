//! The seam between launch plans and the scheduler: a resolved TrainJob
//! becomes a [`Workload`]. Pure conversion; it decides nothing.

use super::model::{PodSetRequest, Workload};
use super::resources::Resources;
use crate::launch::LaunchPlan;
use crate::meta::ResourceRequirements;

/// The workload a launch plan is admitted as: one pod set per replicated job
/// (in template order), counted from the plan's pods, each pod requesting its
/// main container's resources (limit, else request, as the pod group counts
/// them: CPU rounded up to milli-cores, memory up to MiB, GPUs from every
/// `*gpu*` resource). `activeDeadlineSeconds` becomes the requested duration
/// backfill plans with. O(P) for P pods.
///
/// ```
/// use kf_train::launch::{plan, Network};
/// use kf_train::scheduler::workload_from_plan;
/// use kf_train::{TrainJob, TrainingRuntime};
///
/// let runtime = TrainingRuntime::from_value(serde_json::json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
///     "metadata": {"name": "torch"},
///     "spec": {"mlPolicy": {"numNodes": 1, "torch": {}}, "template": {"spec": {"replicatedJobs": [{
///         "name": "node", "replicas": 1,
///         "template": {"metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
///             "spec": {"template": {"spec": {"containers": [{"name": "node", "image": "pytorch"}]}}}}}]}}}
/// }))?;
/// let job = TrainJob::from_value(serde_json::json!({
///     "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "mnist"},
///     "spec": {"runtimeRef": {"name": "torch"}, "trainer": {"numNodes": 2,
///         "resourcesPerNode": {"limits": {"nvidia.com/gpu": 4, "cpu": "8", "memory": "32Gi"}}}}
/// }))?;
/// let w = workload_from_plan(&plan(&job, &runtime, &Network::Kubernetes)?, "team-a", 0.0);
/// assert_eq!(w.pod_sets.len(), 1);
/// assert_eq!((w.pod_sets[0].name.as_str(), w.pod_sets[0].count), ("node", 2));
/// assert_eq!(w.pod_sets[0].per_pod, kf_train::scheduler::Resources::new(8_000, 32_768, 4));
/// # Ok::<(), kf_train::Error>(())
/// ```
pub fn workload_from_plan(plan: &LaunchPlan, queue: &str, submit_s: f64) -> Workload {
    let mut pod_sets: Vec<PodSetRequest> = Vec::new();
    for pod in &plan.pods {
        let per_pod = pod_resources(pod.container.resources.as_ref());
        match pod_sets.iter_mut().find(|ps| ps.name == pod.replicated_job) {
            Some(ps) => {
                ps.count += 1;
                ps.per_pod = ps.per_pod.max(per_pod);
            }
            None => pod_sets.push(PodSetRequest::new(pod.replicated_job.clone(), 1, per_pod)),
        }
    }
    let mut w = Workload::new(plan.job_name.clone(), queue, submit_s, pod_sets);
    w.duration_s = plan.active_deadline_seconds.filter(|d| *d > 0).map(|d| d as f64);
    w
}

fn pod_resources(r: Option<&ResourceRequirements>) -> Resources {
    let Some(r) = r else { return Resources::ZERO };
    let whole =
        |x: Option<f64>, scale: f64| x.filter(|v| v.is_finite() && *v > 0.0).map_or(0, |v| (v * scale).ceil() as u64);
    Resources {
        cpu_milli: whole(r.amount("cpu"), 1000.0),
        memory_mib: whole(r.amount("memory"), 1.0 / (1024.0 * 1024.0)),
        gpus: r.gpus(),
    }
}
