//! The XGBoost policy: the collective (Rabit) tracker runs on node 0, every
//! worker gets `DMLC_*` variables, as Trainer v2's XGBoost plugin injects them.

use super::{
    LaunchPlan, LaunchPolicy, PodSet, PolicyInput, Role, TRAINER_PORT, rank_trainer_pods, trainer_set, unlaunchable,
};
use crate::Result;
use crate::meta::{EnvVar, upsert_env};

/// Tracker host.
pub const DMLC_TRACKER_URI: &str = "DMLC_TRACKER_URI";
/// Tracker port.
pub const DMLC_TRACKER_PORT: &str = "DMLC_TRACKER_PORT";
/// This worker's id (the node rank).
pub const DMLC_TASK_ID: &str = "DMLC_TASK_ID";
/// Total workers.
pub const DMLC_NUM_WORKER: &str = "DMLC_NUM_WORKER";
/// Env names the policy owns; a TrainJob may not set them.
pub const RESERVED: [&str; 4] = [DMLC_TRACKER_URI, DMLC_TRACKER_PORT, DMLC_TASK_ID, DMLC_NUM_WORKER];

/// `mlPolicy.xgboost`: workers per node are the node's GPUs, or 1 on CPU; a
/// `trainer.numProcPerNode` that says otherwise conflicts and is rejected.
#[derive(Debug, Clone, Copy, Default)]
pub struct XGBoostPolicy;

impl LaunchPolicy for XGBoostPolicy {
    fn enforce(&self, input: &PolicyInput<'_>, pod_sets: &mut [PodSet]) -> Result<()> {
        let trainer = input.job.trainer();
        for (i, env) in trainer.and_then(|t| t.env.as_deref()).unwrap_or(&[]).iter().enumerate() {
            if RESERVED.contains(&env.name.as_str()) {
                return Err(unlaunchable(
                    format!("spec.trainer.env[{i}]"),
                    format!("{} is reserved for the XGBoost runtime", env.name),
                ));
            }
        }
        let Some(set) = trainer_set(pod_sets) else {
            return Err(unlaunchable("runtime.spec.template.spec.replicatedJobs", "no trainer replicated job"));
        };
        let gpus = set.container.resources.as_ref().map(|r| r.gpus()).unwrap_or(0);
        let per_node = u32::try_from(gpus).unwrap_or(u32::MAX).max(1);
        if let Some(n) = trainer.and_then(|t| t.num_proc_per_node)
            && i64::from(n) != i64::from(per_node)
        {
            return Err(unlaunchable(
                "spec.trainer.numProcPerNode",
                format!("XGBoost runs one worker per GPU (or one per CPU node): expected {per_node}, found {n}"),
            ));
        }
        set.role = Role::Node;
        set.replicas = 1;
        set.parallelism = input.num_nodes;
        set.processes = per_node;
        Ok(())
    }

    fn finish(&self, input: &PolicyInput<'_>, plan: &mut LaunchPlan) -> Result<()> {
        let port = input.port(TRAINER_PORT).to_string();
        let mut nodes = rank_trainer_pods(plan, input.trainer_job);
        let tracker = nodes.first().map(|p| p.hostname.clone()).unwrap_or_default();
        let workers: u32 = nodes.iter().map(|p| p.processes).sum();
        for pod in nodes.iter_mut() {
            let rank = pod.node_rank.unwrap_or_default();
            upsert_env(
                &mut pod.container.env,
                [
                    EnvVar::literal(DMLC_TRACKER_URI, tracker.clone()),
                    EnvVar::literal(DMLC_TRACKER_PORT, port.clone()),
                    EnvVar::literal(DMLC_TASK_ID, rank.to_string()),
                    EnvVar::literal(DMLC_NUM_WORKER, workers.to_string()),
                ],
            );
        }
        Ok(())
    }
}
