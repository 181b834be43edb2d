//! Resolve a TrainJob against its runtime and print the launch plan.
//!
//! ```text
//! cargo run -p kf-train --example launch_plan                       # built-in torch example
//! cargo run -p kf-train --example launch_plan -- JOB.yaml RUNTIME.yaml [--local PORT]
//! ```

use kf_train::launch::{Network, plan};
use kf_train::{TrainJob, TrainingRuntime};

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

const JOB: &str = r#"
apiVersion: trainer.kubeflow.org/v1alpha1
kind: TrainJob
metadata:
  name: mnist
spec:
  runtimeRef:
    name: torch-distributed
  trainer:
    numNodes: 2
    command: [torchrun, train.py]
    resourcesPerNode:
      limits:
        nvidia.com/gpu: 2
"#;

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (job_text, runtime_text) = match args.as_slice() {
        [job, runtime, ..] => (std::fs::read_to_string(job)?, std::fs::read_to_string(runtime)?),
        _ => (JOB.to_string(), RUNTIME.to_string()),
    };
    let network = match args.iter().position(|a| a == "--local") {
        Some(i) => Network::Local { host: "127.0.0.1".into(), port: args.get(i + 1).map_or(Ok(29500), |p| p.parse())? },
        None => Network::Kubernetes,
    };

    let job = TrainJob::from_value(serde_saphyr::from_str(&job_text)?)?;
    job.validate()?;
    let runtime = TrainingRuntime::from_value(serde_saphyr::from_str(&runtime_text)?)?;
    runtime.validate()?;

    let plan = plan(&job, &runtime, &network)?;
    println!("{}: {} node(s), world size {}", plan.job_name, plan.num_nodes(), plan.world_size());
    for pod in &plan.pods {
        let rank = pod.node_rank.map_or("-".to_string(), |r| r.to_string());
        println!("\n[{:?} rank {rank}] {} ({} process(es))", pod.role, pod.hostname, pod.processes);
        println!("  image:   {}", pod.container.image.as_deref().unwrap_or("(runtime default)"));
        println!("  command: {:?} {:?}", pod.container.command, pod.container.args);
        for var in &pod.container.env {
            println!("  env:     {}={}", var.name, var.value.as_deref().unwrap_or("(from reference)"));
        }
        for file in &pod.files {
            println!("  file:    {}\n{}", file.path, file.contents.trim_end());
        }
    }
    if let Some(group) = &plan.pod_group {
        println!(
            "\npod group: {:?}, minMember {}, minResources {:?}",
            group.scheduler, group.min_member, group.min_resources
        );
    }
    Ok(())
}
