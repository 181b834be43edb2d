//! The MPI policy (OpenMPI): a launcher runs `mpirun` over SSH against a
//! hostfile of the node pods, as Trainer v2's MPI plugin sets it up. With
//! `runLauncherAsNode` the launcher is itself one of the hosts.

use super::{LaunchFile, LaunchPlan, LaunchPolicy, PodSet, PolicyInput, Role, unlaunchable};
use crate::Result;
use crate::jobset::{LAUNCHER, NODE};
use crate::meta::{EnvVar, upsert_env};

/// Where the hostfile is mounted in the launcher.
pub const HOSTFILE_PATH: &str = "/etc/mpi/hostfile";
/// OpenMPI: default hostfile.
pub const OMPI_MCA_ORTE_DEFAULT_HOSTFILE: &str = "OMPI_MCA_orte_default_hostfile";
/// OpenMPI: keep fully-qualified host names.
pub const OMPI_MCA_ORTE_KEEP_FQDN_HOSTNAMES: &str = "OMPI_MCA_orte_keep_fqdn_hostnames";
/// OpenMPI: default slots per host.
pub const OMPI_MCA_ORTE_SET_DEFAULT_SLOTS: &str = "OMPI_MCA_orte_set_default_slots";
/// OpenMPI: ssh arguments.
pub const OMPI_MCA_PLM_RSH_ARGS: &str = "OMPI_MCA_plm_rsh_args";

/// `mlPolicy.mpi`.
///
/// Slots per host: `trainer.numProcPerNode`, else `mpi.numProcPerNode`
/// (default 1) — and when that is 1, the node's GPU count if above 1. Node
/// pods: `numNodes`, or `numNodes - 1` when the launcher is a node — at least
/// 1, so `numNodes: 1` with the launcher as a node still gives two hosts, as
/// upstream does. Ranks follow hostfile order, which is template order.
#[derive(Debug, Clone, Copy, Default)]
pub struct MpiPolicy;

impl LaunchPolicy for MpiPolicy {
    fn enforce(&self, input: &PolicyInput<'_>, pod_sets: &mut [PodSet]) -> Result<()> {
        let mpi = input.runtime.ml_policy().and_then(|m| m.mpi.clone()).unwrap_or_default();
        if mpi.mpi_implementation() != "OpenMPI" {
            return Err(unlaunchable(
                "runtime.spec.mlPolicy.mpi.mpiImplementation",
                format!("only OpenMPI is supported, found {:?}", mpi.mpi_implementation()),
            ));
        }
        let as_node = mpi.run_launcher_as_node();
        let has = |name: &str| pod_sets.iter().any(|s| s.name == name);
        if !has(LAUNCHER) {
            return Err(unlaunchable(
                "runtime.spec.template.spec.replicatedJobs",
                "an MPI runtime needs a replicated job named \"launcher\" to run mpirun",
            ));
        }
        let launcher_alone = as_node && input.num_nodes == 1;
        if !has(NODE) && !launcher_alone {
            return Err(unlaunchable(
                "spec.trainer.numNodes",
                "must be 1 when the MPI runtime has no \"node\" replicated job (only the launcher runs)",
            ));
        }
        let trainer = input.job.trainer();
        let slots = match trainer.and_then(|t| t.num_proc_per_node) {
            Some(n) => u32::try_from(n).unwrap_or(1).max(1),
            None => {
                let from_policy = u32::try_from(mpi.num_proc_per_node()).unwrap_or(1).max(1);
                let node_resources =
                    pod_sets.iter().find(|s| s.name == NODE).and_then(|s| s.container.resources.clone());
                let resources = trainer.and_then(|t| t.resources_per_node.clone()).or(node_resources);
                let gpus = resources.map(|r| r.gpus()).unwrap_or(0);
                if from_policy == 1 && gpus > 1 { u32::try_from(gpus).unwrap_or(u32::MAX) } else { from_policy }
            }
        };
        let node_pods = if as_node { input.num_nodes.saturating_sub(1).max(1) } else { input.num_nodes };
        for set in pod_sets.iter_mut() {
            if set.name == NODE {
                set.role = Role::Node;
                set.replicas = 1;
                set.parallelism = node_pods;
                set.processes = slots;
            } else if set.name == LAUNCHER {
                set.role = if as_node { Role::Node } else { Role::Launcher };
                set.replicas = 1;
                set.parallelism = 1;
                set.processes = if as_node { slots } else { 0 };
                upsert_env(
                    &mut set.container.env,
                    [
                        EnvVar::literal(OMPI_MCA_ORTE_DEFAULT_HOSTFILE, HOSTFILE_PATH),
                        EnvVar::literal(OMPI_MCA_ORTE_KEEP_FQDN_HOSTNAMES, "true"),
                        EnvVar::literal(OMPI_MCA_ORTE_SET_DEFAULT_SLOTS, slots.to_string()),
                        EnvVar::literal(OMPI_MCA_PLM_RSH_ARGS, "-o ConnectionAttempts=10"),
                    ],
                );
            } else if set.role == Role::Node {
                set.role = Role::Other;
            }
        }
        Ok(())
    }

    fn finish(&self, _input: &PolicyInput<'_>, plan: &mut LaunchPlan) -> Result<()> {
        let mut hostfile = String::new();
        for (rank, pod) in plan.pods.iter_mut().filter(|p| p.role == Role::Node).enumerate() {
            hostfile.push_str(&format!("{} slots={}\n", pod.hostname, pod.processes));
            pod.node_rank = Some(rank as u32);
        }
        for pod in plan.pods.iter_mut().filter(|p| p.replicated_job == LAUNCHER) {
            pod.files.push(LaunchFile { path: HOSTFILE_PATH.into(), contents: hostfile.clone() });
        }
        Ok(())
    }
}
