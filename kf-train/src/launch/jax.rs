//! The JAX policy: one JAX process per node, `jax.distributed` configured
//! through `JAX_*` variables, as Trainer v2's JAX plugin injects them.

use super::{
    JAX_COORDINATOR_PORT, LaunchPlan, LaunchPolicy, PodSet, PolicyInput, Role, rank_trainer_pods, trainer_set,
    unlaunchable,
};
use crate::Result;
use crate::meta::{EnvVar, upsert_env};

/// Total JAX processes.
pub const JAX_NUM_PROCESSES: &str = "JAX_NUM_PROCESSES";
/// This process's id.
pub const JAX_PROCESS_ID: &str = "JAX_PROCESS_ID";
/// `host:port` of process 0.
pub const JAX_COORDINATOR_ADDRESS: &str = "JAX_COORDINATOR_ADDRESS";
/// The coordinator port alone.
pub const JAX_COORDINATOR_PORT_ENV: &str = "JAX_COORDINATOR_PORT";
/// Collective backend.
pub const JAX_DISTRIBUTED_BACKEND: &str = "JAX_DISTRIBUTED_BACKEND";

/// `mlPolicy.jax`: one process per node (its devices are local devices), so
/// `trainer.numProcPerNode` above 1 conflicts and is rejected.
#[derive(Debug, Clone, Copy, Default)]
pub struct JaxPolicy;

impl LaunchPolicy for JaxPolicy {
    fn enforce(&self, input: &PolicyInput<'_>, pod_sets: &mut [PodSet]) -> Result<()> {
        if let Some(n) = input.job.trainer().and_then(|t| t.num_proc_per_node)
            && n != 1
        {
            return Err(unlaunchable(
                "spec.trainer.numProcPerNode",
                format!("the JAX policy runs one process per node (devices are local to it), found {n}"),
            ));
        }
        let Some(set) = trainer_set(pod_sets) else {
            return Err(unlaunchable("runtime.spec.template.spec.replicatedJobs", "no trainer replicated job"));
        };
        set.role = Role::Node;
        set.replicas = 1;
        set.parallelism = input.num_nodes;
        set.processes = 1;
        Ok(())
    }

    fn finish(&self, input: &PolicyInput<'_>, plan: &mut LaunchPlan) -> Result<()> {
        let port = input.port(JAX_COORDINATOR_PORT);
        let mut nodes = rank_trainer_pods(plan, input.trainer_job);
        let coordinator = nodes.first().map(|p| format!("{}:{port}", p.hostname)).unwrap_or_default();
        let count = nodes.len().to_string();
        for pod in nodes.iter_mut() {
            let rank = pod.node_rank.unwrap_or_default();
            upsert_env(
                &mut pod.container.env,
                [
                    EnvVar::literal(JAX_NUM_PROCESSES, count.clone()),
                    EnvVar::literal(JAX_PROCESS_ID, rank.to_string()),
                    EnvVar::literal(JAX_COORDINATOR_ADDRESS, coordinator.clone()),
                    EnvVar::literal(JAX_COORDINATOR_PORT_ENV, port.to_string()),
                    EnvVar::literal(JAX_DISTRIBUTED_BACKEND, "gloo"),
                ],
            );
        }
        Ok(())
    }
}
