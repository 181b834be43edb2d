//! kf-train inside your own binary: a Trainer v2 TrainJob and the torch
//! runtime, resolved into a launch plan, then run on this machine as two
//! shell processes that see torchrun's environment.
//!
//! Run with `cargo run -p kf-train --features local --example embed`. The
//! guide that walks through it is docs/guides/kf-train.md.

use kf_train::launch::{self, Network};
use kf_train::local::{LocalBackend, LocalEvent, LocalOptions};
use kf_train::{TrainJob, TrainingRuntime};

// guide: documents
// The torch runtime as Kubeflow Trainer ships it (trimmed), and a TrainJob that
// uses it. On a cluster these are what you `kubectl apply`; here they are text.
const RUNTIME: &str = r#"
apiVersion: trainer.kubeflow.org/v1alpha1
kind: ClusterTrainingRuntime
metadata:
  name: torch-distributed
spec:
  mlPolicy:
    numNodes: 1
    torch: {}
  template:
    spec:
      replicatedJobs:
        - name: node
          template:
            metadata:
              labels:
                trainer.kubeflow.org/trainjob-ancestor-step: trainer
            spec:
              template:
                spec:
                  containers:
                    - name: node
                      image: pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime
"#;

// Two nodes of one process each. The command stands in for `torchrun train.py`:
// it prints the rendezvous environment and a `name=value` metrics line.
const JOB: &str = r#"
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata:
  name: embed
spec:
  runtimeRef:
    name: torch-distributed
  trainer:
    numNodes: 2
    numProcPerNode: 1
    command:
      - sh
      - -c
      - >-
        echo "rank $RANK of $WORLD_SIZE, master $MASTER_ADDR:$MASTER_PORT";
        sleep 0.2;
        echo "epoch=1 loss=0.$((4 + RANK)) progress=100"
"#;
// guide: end

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: parse
    // Lenient read (unknown fields are kept), then the API server's checks;
    // errors name the field (`spec.trainer.numNodes: …`).
    let job = TrainJob::from_value(serde_saphyr::from_str(JOB)?)?;
    job.validate()?;
    let runtime = TrainingRuntime::from_value(serde_saphyr::from_str(RUNTIME)?)?;
    runtime.validate()?;
    // guide: end

    // guide: plan
    // The launch plan is what the Trainer controller would create: one entry per
    // pod, with the env the torch policy sets (PET_NNODES, PET_NODE_RANK, …).
    // `Network::Kubernetes` gives the pods' cluster hostnames; `Network::Local`
    // points every node at one host and port instead.
    let plan = launch::plan(&job, &runtime, &Network::Kubernetes)?;
    println!("{}: {} node(s), world size {}", plan.job_name, plan.num_nodes(), plan.world_size());
    for pod in &plan.pods {
        let pet: Vec<String> = pod
            .container
            .env
            .iter()
            .filter(|v| v.name.starts_with("PET_"))
            .map(|v| format!("{}={}", v.name, v.value.as_deref().unwrap_or("")))
            .collect();
        println!("  {} {}", pod.hostname, pet.join(" "));
    }
    // guide: end

    // guide: run
    // The local backend runs the same job as processes on this host (it makes
    // its own plan, on a free port), each in its own process group, and reports
    // what happens as events. The last argument cancels the run when it completes.
    let workspace = tempfile::tempdir()?;
    let backend = LocalBackend::new(LocalOptions::new(workspace.path().join("embed")));
    let on_event = |event: LocalEvent| match event {
        LocalEvent::Started { process, .. } => println!("[{process}] started"),
        LocalEvent::Line { process, line, .. } => println!("[{process}] {line}"),
        LocalEvent::Exited { process, code } => println!("[{process}] exited with {code:?}"),
        _ => {}
    };
    let run = backend.run(&job, &runtime, on_event, std::future::pending()).await?;
    // guide: end

    // guide: status
    // The outcome, and the TrainJob status the controller would write back:
    // conditions, per-replicated-job counts, and the trainer's parsed metrics.
    println!("outcome: {:?} ({})", run.outcome.reason, run.outcome.message);
    if let Some(status) = &run.job.status {
        let conditions: Vec<_> = status.conditions.iter().flatten().filter_map(|c| c.type_.as_deref()).collect();
        println!("conditions: {conditions:?}");
        if let Some(trainer) = &status.trainer_status {
            let metrics = serde_json::to_string(&trainer.metrics)?;
            println!("trainerStatus: progress {:?}%, metrics {metrics}", trainer.progress_percentage);
        }
    }
    if !run.outcome.succeeded() {
        return Err(format!("the job failed; logs are under {}", run.workspace.root().display()).into());
    }
    // guide: end
    Ok(())
}
