//! The torch policy: torchrun's `PET_*` environment, as Trainer v2's Torch
//! plugin injects it. Each node runs torchrun with `PET_NPROC_PER_NODE`
//! workers; the master is node 0.

use super::{
    LaunchPlan, LaunchPolicy, PodSet, PolicyInput, Role, TRAINER_PORT, procs_from_resources, rank_trainer_pods,
    trainer_set, unlaunchable,
};
use crate::Result;
use crate::meta::{EnvVar, upsert_env};

/// Number of nodes.
pub const PET_NNODES: &str = "PET_NNODES";
/// Worker processes per node.
pub const PET_NPROC_PER_NODE: &str = "PET_NPROC_PER_NODE";
/// This node's rank.
pub const PET_NODE_RANK: &str = "PET_NODE_RANK";
/// Address of node 0.
pub const PET_MASTER_ADDR: &str = "PET_MASTER_ADDR";
/// Rendezvous port on node 0.
pub const PET_MASTER_PORT: &str = "PET_MASTER_PORT";
/// Env names torchrun owns; a TrainJob may not set them.
pub const RESERVED: [&str; 5] = [PET_NNODES, PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT];

/// `mlPolicy.torch`.
///
/// Processes per node: `trainer.numProcPerNode` if set; else the node's GPU
/// count; else, with no GPU, its CPU count (rounded up, at least 1); else 1.
/// Upstream leaves `auto` for torchrun to resolve when GPUs are requested;
/// kf resolves it to the GPU count so the plan is concrete.
#[derive(Debug, Clone, Copy, Default)]
pub struct TorchPolicy;

impl LaunchPolicy for TorchPolicy {
    fn enforce(&self, input: &PolicyInput<'_>, pod_sets: &mut [PodSet]) -> Result<()> {
        let trainer = input.job.trainer();
        for (i, env) in trainer.and_then(|t| t.env.as_deref()).unwrap_or(&[]).iter().enumerate() {
            if RESERVED.contains(&env.name.as_str()) {
                return Err(unlaunchable(
                    format!("spec.trainer.env[{i}].name"),
                    format!("{} is reserved: the torch policy sets it", env.name),
                ));
            }
        }
        let Some(set) = trainer_set(pod_sets) else {
            return Err(unlaunchable("runtime.spec.template.spec.replicatedJobs", "no trainer replicated job"));
        };
        set.role = Role::Node;
        set.replicas = 1;
        set.parallelism = input.num_nodes;
        set.processes = match trainer.and_then(|t| t.num_proc_per_node) {
            Some(n) => u32::try_from(n).unwrap_or(1).max(1),
            None => procs_from_resources(set.container.resources.as_ref()),
        };
        Ok(())
    }

    fn finish(&self, input: &PolicyInput<'_>, plan: &mut LaunchPlan) -> Result<()> {
        let port = input.port(TRAINER_PORT).to_string();
        let mut nodes = rank_trainer_pods(plan, input.trainer_job);
        let master = nodes.first().map(|p| p.hostname.clone()).unwrap_or_default();
        let count = nodes.len().to_string();
        let env_for = |rank: u32, procs: u32| {
            [
                EnvVar::literal(PET_NNODES, count.clone()),
                EnvVar::literal(PET_NPROC_PER_NODE, procs.to_string()),
                EnvVar::literal(PET_NODE_RANK, rank.to_string()),
                EnvVar::literal(PET_MASTER_ADDR, master.clone()),
                EnvVar::literal(PET_MASTER_PORT, port.clone()),
            ]
        };
        for pod in nodes.iter_mut() {
            let rank = pod.node_rank.unwrap_or_default();
            upsert_env(&mut pod.container.env, env_for(rank, pod.processes));
        }
        // envInjection: the same variables in the listed containers of other
        // replicated jobs (kf models each pod's main container).
        let targets = input
            .runtime
            .ml_policy()
            .and_then(|m| m.torch.as_ref())
            .and_then(|t| t.env_injection.as_ref())
            .and_then(|e| e.targets.as_deref())
            .unwrap_or(&[]);
        let procs = plan.nodes().first().map(|p| p.processes).unwrap_or(1);
        for target in targets {
            let (Some(job), Some(names)) = (&target.job_name, &target.container_names) else { continue };
            for pod in plan.pods.iter_mut().filter(|p| &p.replicated_job == job && names.contains(&p.container.name)) {
                let rank = pod.node_rank.unwrap_or(pod.pod_index);
                upsert_env(&mut pod.container.env, env_for(rank, procs));
            }
        }
        Ok(())
    }
}
