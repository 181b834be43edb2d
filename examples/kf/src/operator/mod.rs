//! `kf operator`: the crates' reconcilers against a real cluster. Wiring
//! only: the cluster comes from kube's standard config loading (kubeconfig,
//! or the pod's service account), one replica leads through a Lease
//! ([`lease`]) and only the leader reconciles; `/healthz` and `/metrics`
//! answer on every replica; Ctrl-C or SIGTERM stops the controllers and
//! gives the Lease up.

pub mod lease;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use futures::future::BoxFuture;
use kube::Api;

use self::lease::Elector;

/// The controllers `--controllers` may name.
const CONTROLLERS: [&str; 4] = ["train", "tune", "serve", "tenancy"];

/// `kf operator` flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which reconcilers to run (comma-separated): train (TrainJob → JobSet,
    /// PodGroup), tune (Katib Experiment → trials), serve (InferenceService
    /// → Deployment running `kf serve`, Service), tenancy (Profile →
    /// Namespace, RBAC, quota).
    #[arg(long, value_delimiter = ',', default_value = "train,tune,serve,tenancy")]
    controllers: Vec<String>,
    /// Watch one namespace only (namespaced kinds); default all.
    #[arg(long)]
    namespace: Option<String>,
    /// Where `/healthz` and `/metrics` answer.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_addr: SocketAddr,
    /// The Lease replicas elect a leader with: `NAMESPACE/NAME`.
    #[arg(long, default_value = "default/kf-operator")]
    lease: String,
    /// This replica's name in the Lease [default: the hostname and pid].
    #[arg(long)]
    identity: Option<String>,
    /// How long a Lease holds without renewal, in seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(i32).range(3..=3600))]
    lease_seconds: i32,
}

/// Runs the operator until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("kf operator: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(operate(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kf operator: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `/metrics` shows.
struct State {
    leading: AtomicBool,
    identity: String,
    controllers: Vec<String>,
}

async fn operate(args: Args) -> anyhow::Result<()> {
    for name in &args.controllers {
        anyhow::ensure!(
            CONTROLLERS.contains(&name.as_str()),
            "--controllers: expected some of {}, found {name:?}",
            CONTROLLERS.join(", ")
        );
    }
    let (lease_ns, lease_name) = args
        .lease
        .split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
        .ok_or_else(|| anyhow::anyhow!("--lease: expected NAMESPACE/NAME, found {:?}", args.lease))?;
    // Named explicitly: rustls refuses to guess when more than one provider is linked.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let client = kube::Client::try_default().await.context(
        "cannot reach a cluster: no usable kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a pod",
    )?;
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let state = Arc::new(State {
        leading: AtomicBool::new(false),
        identity: identity.clone(),
        controllers: args.controllers.clone(),
    });
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    eprintln!("kf operator: {identity}: /healthz and /metrics on http://{}", listener.local_addr()?);
    let health = axum::serve(listener, health_app(state.clone())).into_future();

    let elector = Elector::new(Api::namespaced(client.clone(), lease_ns), lease_name, &identity, args.lease_seconds);
    let period = Duration::from_secs(u64::try_from(args.lease_seconds).unwrap_or(15) / 3).max(Duration::from_secs(1));
    let lead = lead(&elector, &state, period, args.lease_seconds, controllers(&args, client));
    let outcome = tokio::select! {
        served = health => served.context("the health server"),
        led = lead => led,
        () = kf_serve::server::shutdown_signal() => Ok(()),
    };
    if state.leading.load(Ordering::Relaxed) {
        // Another replica can lead at once instead of waiting for expiry.
        if let Err(err) = elector.release().await {
            eprintln!("kf operator: could not release the Lease: {err}");
        }
    }
    outcome
}

/// Waits to lead, then runs `controllers` while renewing; returns an error
/// when leadership is lost (another replica may be reconciling now), so the
/// process exits and its restart becomes a candidate again.
async fn lead(
    elector: &Elector,
    state: &State,
    period: Duration,
    seconds: i32,
    controllers: BoxFuture<'static, ()>,
) -> anyhow::Result<()> {
    loop {
        match elector.try_lead().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(err) => eprintln!("kf operator: the Lease: {err}"),
        }
        tokio::time::sleep(period).await;
    }
    state.leading.store(true, Ordering::Relaxed);
    eprintln!("kf operator: {} leads; running {}", state.identity, state.controllers.join(", "));
    let renew = async {
        let deadline = Duration::from_secs(u64::try_from(seconds).unwrap_or(15));
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period).await;
            match elector.try_lead().await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => return anyhow::anyhow!("another replica took the Lease"),
                Err(err) if last.elapsed() >= deadline => {
                    return anyhow::anyhow!("could not renew the Lease for {deadline:?}: {err}");
                }
                Err(err) => eprintln!("kf operator: renewing the Lease: {err}"),
            }
        }
    };
    tokio::select! {
        () = controllers => anyhow::bail!("the controllers stopped"),
        lost = renew => {
            state.leading.store(false, Ordering::Relaxed);
            Err(lost.context("leadership lost"))
        }
    }
}

/// The chosen reconcilers, all running until one stops.
fn controllers(args: &Args, client: kube::Client) -> BoxFuture<'static, ()> {
    let mut running: Vec<BoxFuture<'static, ()>> = Vec::new();
    for name in &args.controllers {
        let client = client.clone();
        match name.as_str() {
            "train" => {
                let config = kf_train::controller::Config { namespace: args.namespace.clone(), ..Default::default() };
                running.push(Box::pin(async move {
                    if let Err(err) = kf_train::controller::run(client, config).await {
                        eprintln!("kf operator: train: {err}");
                    }
                }));
            }
            "tune" => {
                let config = kf_tune::controller::Config { namespace: args.namespace.clone(), ..Default::default() };
                running.push(Box::pin(async move {
                    if let Err(err) = kf_tune::controller::run(client, config).await {
                        eprintln!("kf operator: tune: {err}");
                    }
                }));
            }
            "serve" => {
                let config = kf_serve::controller::Config { namespace: args.namespace.clone(), ..Default::default() };
                running.push(Box::pin(async move {
                    if let Err(err) = kf_serve::controller::run(client, config).await {
                        eprintln!("kf operator: serve: {err}");
                    }
                }));
            }
            "tenancy" => running.push(Box::pin(kf_tenancy::controller::run(client, Default::default()))),
            _ => {}
        }
    }
    Box::pin(async move {
        let _ = futures::future::select_all(running).await;
    })
}

fn health_app(state: Arc<State>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/metrics",
        get(move || {
            let state = state.clone();
            async move {
                let leading = u8::from(state.leading.load(Ordering::Relaxed));
                let mut text = String::from(
                    "# HELP kf_operator_leader 1 while this replica holds the Lease and reconciles.\n\
                         # TYPE kf_operator_leader gauge\n",
                );
                text.push_str(&format!("kf_operator_leader{{identity={:?}}} {leading}\n", state.identity));
                text.push_str("# HELP kf_operator_controller Controllers this replica runs when it leads.\n");
                text.push_str("# TYPE kf_operator_controller gauge\n");
                for c in &state.controllers {
                    text.push_str(&format!("kf_operator_controller{{name={c:?}}} 1\n"));
                }
                ([("content-type", "text/plain; version=0.0.4")], text)
            }
        }),
    )
}
