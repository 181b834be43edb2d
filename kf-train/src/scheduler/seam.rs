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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::TrainingRuntime;
    use crate::launch::{Network, plan};
    use crate::scheduler::{Cluster, Decision, GangScheduler, Queue, StrictFifo};

    const RUNTIME: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpus/trainer/manifests__base__runtimes__torchtune__qwen2_5__qwen2_5_1.5B.yaml"
    );

    fn qwen_plan(nodes: u32) -> LaunchPlan {
        let text = std::fs::read_to_string(RUNTIME).unwrap();
        let mut doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        doc["spec"]["podGroupPolicy"] = json!({"coscheduling": {"scheduleTimeoutSeconds": 120}});
        let rt = TrainingRuntime::from_value(doc).unwrap();
        let job = crate::TrainJob::from_value(json!({
            "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob", "metadata": {"name": "t"},
            "spec": {"runtimeRef": {"name": "torchtune-qwen2.5-1.5b"}, "trainer": {"numNodes": nodes}}
        }))
        .unwrap();
        plan(&job, &rt, &Network::Kubernetes).unwrap()
    }

    #[test]
    fn a_torchtune_plan_is_one_gang_with_a_pod_set_per_replicated_job() {
        let plan = qwen_plan(2);
        let w = workload_from_plan(&plan, "team", 5.0);
        assert_eq!(w.id, "t");
        let sets: Vec<(&str, u32)> = w.pod_sets.iter().map(|p| (p.name.as_str(), p.count)).collect();
        assert_eq!(sets.iter().map(|s| s.1).sum::<u32>(), plan.pods.len() as u32);
        assert!(sets.contains(&("node", 2)), "{sets:?}");
        // The gang asks for what the pod group sums up.
        let group = plan.pod_group.as_ref().unwrap();
        assert_eq!(w.total().gpus as f64, group.min_resources["nvidia.com/gpu"]);
        assert_eq!(group.min_member, plan.pods.len() as u32);

        // Admitted whole on a cluster that holds it; unschedulable where no
        // placement can ever hold it.
        let per_node = w.pod_sets.iter().find(|p| p.name == "node").unwrap().per_pod;
        let big =
            Resources::new(per_node.cpu_milli * 4 + 64_000, per_node.memory_mib * 4 + (1 << 20), per_node.gpus * 2);
        let mut s = GangScheduler::new(Cluster::uniform(0, 0), vec![Queue::unlimited("team")], StrictFifo).unwrap();
        let t = s.submit(w.clone()).unwrap();
        assert!(matches!(s.schedule(5.0).decisions[..], [Decision::Unschedulable { ticket, .. }] if ticket == t));
        let nodes = (0..2).map(|i| crate::scheduler::Node::new(format!("n{i}"), big)).collect();
        let mut s =
            GangScheduler::new(Cluster::new(nodes, vec![]).unwrap(), vec![Queue::unlimited("team")], StrictFifo)
                .unwrap();
        s.submit(w).unwrap();
        let cycle = s.schedule(5.0);
        let admitted: Vec<_> = cycle.admitted().collect();
        assert_eq!(admitted.len(), 1);
        assert_eq!(admitted[0].pods.len(), plan.pods.len());
    }
}
