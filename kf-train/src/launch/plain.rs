//! The plain policy, for runtimes without a framework: the trainer job gets
//! `numNodes` pods, ranked by index, and no framework env.

use super::{LaunchPlan, LaunchPolicy, PodSet, PolicyInput, Role, rank_trainer_pods, trainer_set, unlaunchable};
use crate::Result;

/// No `mlPolicy` framework: `numNodes` pods of `trainer.numProcPerNode` (default 1) processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainPolicy;

impl LaunchPolicy for PlainPolicy {
    fn enforce(&self, input: &PolicyInput<'_>, pod_sets: &mut [PodSet]) -> Result<()> {
        let Some(set) = trainer_set(pod_sets) else {
            return Err(unlaunchable("runtime.spec.template.spec.replicatedJobs", "no trainer replicated job"));
        };
        set.role = Role::Node;
        set.replicas = 1;
        set.parallelism = input.num_nodes;
        set.processes =
            input.job.trainer().and_then(|t| t.num_proc_per_node).map_or(1, |n| u32::try_from(n).unwrap_or(1).max(1));
        Ok(())
    }

    fn finish(&self, input: &PolicyInput<'_>, plan: &mut LaunchPlan) -> Result<()> {
        rank_trainer_pods(plan, input.trainer_job);
        Ok(())
    }
}
