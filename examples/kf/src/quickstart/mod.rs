//! `kf quickstart`: the whole ML lifecycle on embedded defaults, one command.
//!
//! Tenant, pipeline (prepare → train → evaluate, training as a local
//! TrainJob), tuning, registry and serving, each on the crate that owns it,
//! under one data directory. A step whose input is missing fails and says
//! so; no step is ever faked.

mod dataset;
mod pipeline;
mod registering;
mod serving;
mod training;
mod tuning;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kf_tenancy::{Identity, Request, RoleTable, SqlitePolicyStore, Tenancy, Verb};
use serde_json::json;

use self::pipeline::pipeline_step;
use self::registering::{MODEL_NAME, registry_step};
use self::serving::{Canary, SERVING, serving_step};
use self::tuning::tuning_step;
use crate::output::OutputFormat;

/// The Profile (and namespace) the quickstart runs in.
const PROFILE: &str = "kf-quickstart";

/// `kf quickstart` flags.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Where the quickstart keeps its stores and artifacts (created if
    /// missing) [default: $XDG_DATA_HOME/kf/quickstart, else
    /// ~/.local/share/kf/quickstart]
    #[arg(long = "data-dir", alias = "dir", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// `--data-dir`, or the XDG default under the user's data directory.
fn data_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match flag {
        Some(dir) => dir,
        None => {
            // The XDG spec ignores a relative XDG_DATA_HOME.
            let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|d| d.is_absolute());
            let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share"));
            xdg.or_else(home)
                .ok_or_else(|| anyhow::anyhow!("neither XDG_DATA_HOME nor HOME is set: pass --data-dir DIR"))?
                .join("kf")
                .join("quickstart")
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display()))?;
    Ok(std::path::absolute(&dir)?)
}

/// One lifecycle step and what happened to it.
#[derive(Debug, serde::Serialize)]
struct Step {
    name: &'static str,
    /// `done` or `failed`.
    status: &'static str,
    detail: String,
}

pub fn run(args: QuickstartArgs, output: OutputFormat) -> ExitCode {
    let started = std::time::Instant::now();
    let dir = match data_dir(args.data_dir) {
        Ok(dir) => dir,
        Err(err) => {
            eprintln!("kf quickstart: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // Held until the quickstart ends; the OS releases it if kf dies.
    let _lock = match lock(&dir) {
        Ok(lock) => lock,
        Err(err) => {
            eprintln!("kf quickstart: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    // Multi-threaded: the pipeline's train function blocks its worker on the TrainJob.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("kf quickstart: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let tenant = runtime.block_on(tenant_step(&dir));
    let profile = (tenant.status == "done").then_some(PROFILE);
    let mut steps = vec![tenant];
    let (pipeline_steps, pipeline) = runtime.block_on(pipeline_step(&dir));
    steps.extend(pipeline_steps);
    let tuned = match &pipeline {
        Some(p) => {
            let (step, tuned) = runtime.block_on(tuning_step(&dir, p.trainer.clone(), &p.dataset, p.version));
            steps.push(step);
            tuned
        }
        None => {
            steps.push(Step {
                name: "tuning: a 20-trial TPE experiment with early stopping",
                status: "failed",
                detail: "no dataset: the pipeline failed".into(),
            });
            None
        }
    };
    let registered = match (&tuned, &pipeline) {
        (Some(t), Some(p)) => {
            let (step, registered) = runtime.block_on(registry_step(&dir, t, &p.run, p.version));
            steps.push(step);
            registered
        }
        _ => {
            let detail = "no tuned model to register".into();
            steps.push(Step { name: "registry: register the best model with its lineage", status: "failed", detail });
            None
        }
    };
    let (serving, served) = match &pipeline {
        Some(model) => {
            let canary = registered.as_ref().zip(tuned.as_ref()).map(|(r, t)| Canary {
                label: format!("{MODEL_NAME} {} (trial {}, {})", r.version, t.best_trial, r.uri),
                path: &r.path,
            });
            runtime.block_on(serving_step(model, canary))
        }
        None => {
            let detail = "no model: the pipeline failed".into();
            (Step { name: SERVING, status: "failed", detail }, None)
        }
    };
    steps.push(serving);
    let failed = steps.iter().any(|s| s.status == "failed");
    let done = steps.iter().filter(|s| s.status == "done").count();
    match output {
        OutputFormat::Text => {
            outln!("kf quickstart — {done} of {} lifecycle steps done", steps.len());
            outln!("  data directory: {}", dir.display());
            for (i, step) in steps.iter().enumerate() {
                outln!("  {}. [{}] {}\n     {}", i + 1, step.status, step.name, step.detail);
            }
        }
        OutputFormat::Json => {
            let experiment = tuned.as_ref().map(|t| {
                let params: serde_json::Map<String, serde_json::Value> =
                    t.best_params.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
                json!({"name": t.experiment, "trials": t.trials, "early_stopped": t.early_stopped,
                       "best_trial": t.best_trial, "best_value": t.best_value, "best_params": params})
            });
            outln!(
                "{}",
                json!({
                    "steps": steps, "built": done, "total": steps.len(), "dir": dir,
                    "profile": profile,
                    "pipeline_run": pipeline.as_ref().map(|p| &p.run),
                    "train_job": pipeline.as_ref().map(|p| &p.train_job),
                    "experiment": experiment,
                    "model": registered.as_ref().map(|r| json!({"name": MODEL_NAME, "version": r.version, "uri": r.uri})),
                    "predictions": served.as_ref().map(|s| s.predictions),
                    "accuracy": served.as_ref().map(|s| s.accuracy),
                    "wall_s": started.elapsed().as_secs_f64(),
                })
            );
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Takes `dir/quickstart.lock` exclusively, so a second quickstart on the
/// same data directory stops at once instead of sharing its stores; the
/// file holds the holder's pid, for the second one's error.
fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("quickstart.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "a process that has not written its pid yet".to_string(),
                pid => format!("pid {pid}"),
            };
            anyhow::bail!(
                "another kf quickstart is running on {} ({holder} holds the lock file {}); wait for it to end or pass \
                 another --data-dir",
                dir.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
    }
    let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id()));
    written.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(file)
}

/// Step 1: the tenant every later step acts as: a Profile in the durable
/// policy store, and a check that its owner may run pipelines in it.
async fn tenant_step(dir: &Path) -> Step {
    let owner = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "kf-user".to_string());
    let name = "tenant: a Profile that owns namespace kf-quickstart";
    let result = async {
        let db = dir.join("tenancy.db");
        let db = db.to_str().ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", db.display()))?;
        let store = SqlitePolicyStore::open(db).await.with_context(|| format!("the policy database {db}"))?;
        let tenancy = Tenancy::load(store, RoleTable::default(), &[]).await?;
        let profile = kf_tenancy::Profile::from_value(json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": "kf-quickstart"},
            "spec": {"owner": {"kind": "User", "name": owner}},
        }))?;
        tenancy.create_profile(&profile).await?;
        let me = Identity::user(owner.clone());
        let decision =
            tenancy.check(&Request { identity: &me, namespace: "kf-quickstart", verb: Verb::Create, resource: "runs" });
        anyhow::ensure!(decision.allowed, "the owner may not create runs: {}", decision.reason);
        anyhow::Ok(decision.reason.to_string())
    };
    match result.await {
        Ok(reason) => Step {
            name,
            status: "done",
            detail: format!(
                "Profile kf-quickstart owned by User {owner:?} in {}/tenancy.db; creating runs: allowed ({reason})",
                dir.display()
            ),
        },
        Err(err) => Step { name, status: "failed", detail: format!("{err:#}") },
    }
}
