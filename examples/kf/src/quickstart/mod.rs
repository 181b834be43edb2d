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
mod tenant;
mod training;
mod tuning;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kf_tenancy::Verb;
use serde_json::json;

use self::pipeline::pipeline_step;
use self::registering::{MODEL_NAME, registry_step};
use self::serving::{Canary, SERVING, serving_step};
use self::tenant::{PROFILE, Tenant};
use self::tuning::tuning_step;
use crate::output::OutputFormat;

/// `kf quickstart` flags.
#[derive(Debug, clap::Args)]
pub struct QuickstartArgs {
    /// Where the quickstart keeps its stores and artifacts (created if
    /// missing) [default: $XDG_DATA_HOME/kf/quickstart, else
    /// ~/.local/share/kf/quickstart]
    #[arg(long = "data-dir", alias = "dir", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Leave every API and the dashboard up (`kf server` over this run's
    /// data, behind the tenancy layer) after the run, until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
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
    let started = Some(std::time::Instant::now());
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
    // Every store the run writes to opens before any step runs, so a corrupt
    // one stops the quickstart with its name and nothing half-written.
    if let Err(err) = runtime.block_on(registering::open_registry(&dir)) {
        eprintln!("kf quickstart: {err:#}");
        return ExitCode::FAILURE;
    }
    let progress = Progress::new(5);
    let (tenant_step, tenant) = progress.step("tenant", || runtime.block_on(tenant_step(&dir)));
    let profile = tenant.as_ref().map(|_| PROFILE);
    let mut steps = vec![tenant_step];
    let Some(tenant) = tenant else {
        return report(output, &Summary { steps, dir, started, ..Summary::default() });
    };
    // Local steps ask the same authorizer the HTTP APIs wear, as the tenant.
    let (pipeline_steps, pipeline) = match tenant.authorize(Verb::Create, "runs") {
        Ok(_) => progress.step("pipeline and training", || runtime.block_on(pipeline_step(&dir))),
        Err(err) => (vec![Step { name: "pipeline", status: "failed", detail: format!("{err:#}") }], None),
    };
    steps.extend(pipeline_steps);
    let tuned = match (&pipeline, tenant.authorize(Verb::Create, "experiments")) {
        (Some(p), Ok(_)) => {
            let (step, tuned) = progress
                .step("tuning", || runtime.block_on(tuning_step(&dir, p.trainer.clone(), &p.dataset, p.version)));
            steps.push(step);
            tuned
        }
        (_, denied) => {
            let detail = denied.err().map_or("no dataset: the pipeline failed".into(), |e| format!("{e:#}"));
            steps.push(Step {
                name: "tuning: a 20-trial TPE experiment with early stopping",
                status: "failed",
                detail,
            });
            None
        }
    };
    let registered = match (&tuned, &pipeline) {
        (Some(t), Some(p)) => {
            let (step, registered) =
                progress.step("registry", || runtime.block_on(registry_step(&dir, &tenant, t, &p.run, p.version)));
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
            progress.step("serving", || runtime.block_on(serving_step(&tenant, model, canary)))
        }
        None => {
            let detail = "no model: the pipeline failed".into();
            (Step { name: SERVING, status: "failed", detail }, None)
        }
    };
    steps.push(serving);
    // What `kf server --config <dir>/kf.toml` needs to show this run: the
    // stores are already laid out as it keeps them.
    let config = match &pipeline {
        Some(p) => {
            let canary = registered.as_ref().map(|r| (r.version.as_str(), r.path.as_path()));
            match server_config(&dir, &tenant, p, canary) {
                Ok(path) => Some(path),
                Err(err) => {
                    eprintln!("kf quickstart: cannot write the server's configuration: {err:#}");
                    None
                }
            }
        }
        None => None,
    };
    let code =
        report(output, &Summary { steps, dir: dir.clone(), started, profile, pipeline, tuned, registered, served });
    if !args.keep_running {
        if matches!(output, OutputFormat::Text) {
            where_to_look(&dir, None, &tenant);
        }
        return code;
    }
    let Some(config) = config else { return code };
    // `--keep-running`: the same server `kf server --config` runs, with the dashboard, until Ctrl-C.
    let kept = runtime.block_on(async {
        let app = crate::server::app(crate::server::settings_from_config(&config)?).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        if matches!(output, OutputFormat::Text) {
            where_to_look(&dir, Some(addr), &tenant);
        }
        eprintln!(
            "kf quickstart: serving on http://{addr}/ until Ctrl-C (the token above identifies {}).",
            tenant.user()
        );
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        anyhow::Ok(())
    });
    match kept {
        Ok(()) => code,
        Err(err) => {
            eprintln!("kf quickstart: the server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `<dir>/kf.toml` for `kf server`: the data directory, the tenant's
/// namespace and token, and a model repository `<dir>/serving` holding this
/// run's models as served — the pipeline's as version `<n>`, the registered
/// one (when there is one) as `<n>-tuned` behind the canary split.
fn server_config(
    dir: &Path,
    tenant: &Tenant,
    pipeline: &pipeline::PipelineRun,
    canary: Option<(&str, &Path)>,
) -> anyhow::Result<PathBuf> {
    let models = dir.join("serving").join(serving::MODEL);
    let copy = |version: &str, from: &Path| -> anyhow::Result<()> {
        let to = models.join(version);
        std::fs::create_dir_all(&to)?;
        std::fs::copy(from, to.join("model.onnx"))
            .map_err(|e| anyhow::anyhow!("cannot copy {} into {}: {e}", from.display(), to.display()))?;
        Ok(())
    };
    let stable = pipeline.version.to_string();
    copy(&stable, &pipeline.model)?;
    let mut text = format!(
        "# kf server --config {config} serves this quickstart's data: every API and the dashboard.\n\
         data_dir = {data:?}\nnamespace = {PROFILE:?}\nmodel_repository = {repo:?}\n[tokens]\n{token:?} = {user:?}\n",
        config = dir.join("kf.toml").display(),
        data = dir.display().to_string(),
        repo = dir.join("serving").display().to_string(),
        token = tenant.token(),
        user = tenant.user(),
    );
    if let Some((_, path)) = canary {
        let tuned = format!("{stable}-tuned");
        copy(&tuned, path)?;
        text.push_str(&format!(
            "[[canary]]\nmodel = {:?}\nstable = {stable:?}\ncanary = {tuned:?}\npercent = {}\n",
            serving::MODEL,
            serving::CANARY_PERCENT
        ));
    }
    let path = dir.join("kf.toml");
    // It holds a token: readable by its owner only.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?
    };
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(path)
}

/// One line per step on stderr as it starts and ends, so a person sees the
/// run move (stdout keeps the report, and `--output json` stays parseable).
struct Progress {
    total: usize,
    done: std::cell::Cell<usize>,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress { total, done: std::cell::Cell::new(0) }
    }

    fn step<T>(&self, name: &str, f: impl FnOnce() -> T) -> T {
        let n = self.done.get() + 1;
        eprintln!("[{n}/{}] {name} …", self.total);
        let started = std::time::Instant::now();
        let out = f();
        eprintln!("[{n}/{}] {name} finished in {:.1} s", self.total, started.elapsed().as_secs_f64());
        self.done.set(n);
        out
    }
}

/// Where the run left things and the `kf` commands that do each step
/// alone; `serving` is the address of the server `--keep-running` left up.
fn where_to_look(dir: &Path, serving: Option<std::net::SocketAddr>, tenant: &Tenant) {
    let d = dir.display();
    outln!("\nwhere to look");
    outln!("  data directory   {d}");
    match serving {
        Some(addr) => {
            outln!("  dashboard        http://{addr}/ (sign in with the token {})", tenant.token());
            outln!("  APIs             http://{addr}/api/… and /v2/… (Authorization: Bearer {})", tenant.token());
            outln!("                   e.g. http://{addr}/api/model_registry/v1alpha3/registered_models");
        }
        None => outln!(
            "  dashboard        kf server --config {d}/kf.toml, then http://127.0.0.1:8080/ (its token is in kf.toml)"
        ),
    }
    outln!("\nthe same steps with kf");
    outln!("  tenant     kf tenancy --db {d}/tenancy.db profile list");
    outln!(
        "             kf tenancy --db {d}/tenancy.db check --user {} --namespace {PROFILE} --verb create --resource runs",
        tenant.user()
    );
    outln!("  pipeline   kf pipeline list --store {}", pipeline::store_root(dir).display());
    outln!("  training   kf train run {d}/manifests/trainjob.yaml --runtime {d}/manifests/runtime.yaml");
    outln!("  tuning     the experiments: {d}/tuning/{PROFILE}/experiments/ (experiment.yaml and journal.jsonl each)");
    outln!("  registry   kf registry models --db sqlite://{d}/registry.db");
    outln!("  serving    kf serve --model-repository {d}/serving --addr 127.0.0.1:8000");
    outln!("  all of it  kf server --config {d}/kf.toml");
}

/// What the run did, for the report.
#[derive(Default)]
struct Summary {
    steps: Vec<Step>,
    dir: PathBuf,
    started: Option<std::time::Instant>,
    profile: Option<&'static str>,
    pipeline: Option<pipeline::PipelineRun>,
    tuned: Option<tuning::Tuned>,
    registered: Option<registering::Registered>,
    served: Option<serving::Served>,
}

fn report(output: OutputFormat, s: &Summary) -> ExitCode {
    let failed = s.steps.iter().any(|s| s.status == "failed");
    let done = s.steps.iter().filter(|s| s.status == "done").count();
    let wall_s = s.started.map(|t| t.elapsed().as_secs_f64());
    match output {
        OutputFormat::Text => {
            outln!("kf quickstart — {done} of {} lifecycle steps done", s.steps.len());
            outln!("  data directory: {}", s.dir.display());
            for (i, step) in s.steps.iter().enumerate() {
                outln!("  {}. [{}] {}\n     {}", i + 1, step.status, step.name, step.detail);
            }
        }
        OutputFormat::Json => {
            let experiment = s.tuned.as_ref().map(|t| {
                let params: serde_json::Map<String, serde_json::Value> =
                    t.best_params.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
                json!({"name": t.experiment, "trials": t.trials, "early_stopped": t.early_stopped,
                       "best_trial": t.best_trial, "best_value": t.best_value, "best_params": params})
            });
            outln!(
                "{}",
                json!({
                    "steps": s.steps, "built": done, "total": s.steps.len(), "dir": s.dir,
                    "profile": s.profile,
                    "pipeline_run": s.pipeline.as_ref().map(|p| &p.run),
                    "train_job": s.pipeline.as_ref().map(|p| &p.train_job),
                    "experiment": experiment,
                    "model": s.registered.as_ref().map(|r| json!({"name": MODEL_NAME, "version": r.version, "uri": r.uri})),
                    "predictions": s.served.as_ref().map(|s| s.predictions),
                    "accuracy": s.served.as_ref().map(|s| s.accuracy),
                    "wall_s": wall_s,
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
/// policy store owned by the user running kf, and that user's API token.
async fn tenant_step(dir: &Path) -> (Step, Option<Tenant>) {
    let name = "tenant: a Profile that owns namespace kf-quickstart";
    let created = async {
        let (tenant, detail) = Tenant::create(dir).await?;
        let reason = tenant.authorize(Verb::Create, "runs")?;
        anyhow::Ok((tenant, format!("{detail}; every later step acts as this user (creating runs: {reason})")))
    };
    match created.await {
        Ok((tenant, detail)) => (Step { name, status: "done", detail }, Some(tenant)),
        Err(err) => (Step { name, status: "failed", detail: format!("{err:#}") }, None),
    }
}
