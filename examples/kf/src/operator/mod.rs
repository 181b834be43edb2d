//! `kf operator`: the crates' reconcilers against a real cluster. Wiring
//! only: the cluster comes from kube's standard config loading (kubeconfig,
//! or the pod's service account), one replica leads through a Lease
//! ([`lease`]) and only the leader reconciles; `/healthz` and `/metrics`
//! answer on every replica; Ctrl-C or SIGTERM stops the controllers and
//! gives the Lease up. With `serve`, the leader also runs kf-serve's KPA
//! scraper ([`kf_serve::controller::Scraper`]) every `--scrape-interval`,
//! feeding the replicas the serve reconciler writes.

pub mod lease;

use std::collections::HashMap;
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
    /// How often the serve controller's autoscaler scrapes the predictor
    /// pods' /metrics and decides (e.g. 2s, 500ms; 100ms to 600s). The
    /// KPA-scaled InferenceServices are reconciled as often, so a new
    /// recommendation reaches the Deployment within one interval.
    #[arg(long, default_value = "2s", value_parser = parse_interval)]
    scrape_interval: Duration,
}

/// `2s`, `1.5s`, `500ms` or a bare number of seconds, from 100 ms to 10 min.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix("ms") {
        Some(n) => (n, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let seconds = number.trim().parse::<f64>().ok().filter(|n| n.is_finite()).map(|n| n * unit);
    match seconds {
        Some(s) if (0.1..=600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("expected a duration from 100ms to 600s such as 2s or 500ms, found {text:?}")),
    }
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
                use kf_serve::controller::{InMemoryRecommendations, Scraper, ScraperConfig};
                // The scraper writes the KPA's answers, the reconciler reads them.
                let recommendations = Arc::new(InMemoryRecommendations::default());
                let scraping = ScraperConfig {
                    namespace: args.namespace.clone(),
                    interval: args.scrape_interval,
                    ..ScraperConfig::default()
                };
                let scraper = Scraper::new(client.clone(), scraping, Arc::clone(&recommendations));
                let mut log = ScrapeLog::default();
                running.push(Box::pin(scraper.run(move |round| log.report(round))));
                let config = kf_serve::controller::Config {
                    namespace: args.namespace.clone(),
                    autoscale_interval: args.scrape_interval,
                    recommendations,
                    ..Default::default()
                };
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

/// Logs what the KPA scraper did, but only what changed since the last
/// round: a new recommendation, a pod skipped for a new reason, a failed
/// round's error once; so a pod that stays broken is one line, not one
/// every couple of seconds.
#[derive(Debug, Default)]
struct ScrapeLog {
    replicas: HashMap<String, Option<u32>>,
    skipped: HashMap<String, String>,
    failed: Option<String>,
}

impl ScrapeLog {
    fn report(&mut self, round: kf_serve::Result<&kf_serve::controller::Round>) {
        let round = match round {
            Ok(round) => round,
            Err(err) => {
                let err = err.to_string();
                if self.failed.as_ref() != Some(&err) {
                    eprintln!("kf operator: serve autoscaler: {err}");
                    self.failed = Some(err);
                }
                return;
            }
        };
        self.failed = None;
        let mut replicas = HashMap::new();
        for s in &round.services {
            let key = format!("{}/{}", s.namespace, s.name);
            let last = self.replicas.get(&key).copied().flatten();
            let now = s.replicas.or(last);
            if s.replicas.is_some() && s.replicas != last {
                let panic = if s.panicking { ", panicking" } else { "" };
                eprintln!(
                    "kf operator: serve autoscaler: {key}: {} replicas ({} ready, {} answered{panic})",
                    s.replicas.unwrap_or_default(),
                    s.ready,
                    s.answered
                );
            }
            replicas.insert(key, now);
        }
        self.replicas = replicas;
        let mut skipped = HashMap::new();
        for s in &round.skipped {
            if self.skipped.get(&s.object) != Some(&s.reason) {
                eprintln!("kf operator: serve autoscaler: skipped {}: {}", s.object, s.reason);
            }
            skipped.insert(s.object.clone(), s.reason.clone());
        }
        self.skipped = skipped;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_intervals_read_as_people_write_them() {
        assert_eq!(parse_interval("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "soon", "0s", "50ms", "1h", "NaNs", "-2s", "inf"] {
            let err = parse_interval(bad).expect_err(bad);
            assert!(err.contains("100ms to 600s"), "{bad}: {err}");
        }
    }
}
