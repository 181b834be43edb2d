//! Render a TrainJob and its runtime into the Kubernetes manifests the
//! Trainer controller would create (JobSet, MPI hostfile ConfigMap, PodGroup)
//! and print them as YAML, ready for `kubectl apply -f -`.
//!
//! ```text
//! cargo run -p kf-train --features kube --example render -- JOB.yaml RUNTIME.yaml
//! cargo run -p kf-train --features kube --example render -- \
//!     ../shared/corpus/trainer/examples__yaml__04-volcano-integration.doc1.yaml \
//!     ../shared/corpus/trainer/examples__yaml__04-volcano-integration.doc0.yaml
//! ```

use kf_train::launch::{Network, plan};
use kf_train::render::render;
use kf_train::{TrainJob, TrainingRuntime};

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [job_path, runtime_path] = args.as_slice() else {
        return Err("usage: render JOB.yaml RUNTIME.yaml".into());
    };
    let read = |path: &str| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(serde_saphyr::from_str(&text).map_err(|e| format!("{path}: {e}"))?)
    };
    let job = TrainJob::from_value(read(job_path)?)?;
    let runtime = TrainingRuntime::from_value(read(runtime_path)?)?;
    job.validate()?;
    runtime.validate()?;
    let plan = plan(&job, &runtime, &Network::Kubernetes)?;
    let manifests = render(&job, &runtime, &plan)?;
    print!("{}", serde_saphyr::to_string_multiple(&manifests.to_values()?)?);
    if let Some(secret) = &manifests.ssh_auth_secret {
        eprintln!("note: create the kubernetes.io/ssh-auth Secret {secret} (kf_train::render::ssh_auth_secret)");
    }
    Ok(())
}
