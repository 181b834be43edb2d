//! The scraper that feeds the reconciler's [`Recommendations`]: Knative's
//! central autoscaler for the InferenceServices this controller runs.
//!
//! Every round ([`Scraper::round`]) it lists the InferenceServices (in
//! [`ScraperConfig::namespace`], or everywhere), and for each one the
//! reconciler scales with the KPA ([`plan::scaling`] is
//! [`Scaling::Kpa`]):
//!
//! 1. lists the predictor's pods by the labels the reconciler puts on the
//!    Deployment's pod template (`serving.kserve.io/inferenceservice=<name>,
//!    component=predictor`);
//! 2. GETs `/metrics` of each ready pod through the API server's pod proxy
//!    (`/api/v1/namespaces/<ns>/pods/<pod>:8080/proxy/metrics`), at most
//!    [`ScraperConfig::concurrency`] at once, each within
//!    [`ScraperConfig::pod_timeout`];
//! 3. reads each answer with [`PodLoad::from_exposition`] and decides with
//!    the service's [`ServiceScaler`] (see [`super::scaler`] for why the
//!    loads are summed rather than the pods' own answers);
//! 4. writes the decision into the [`InMemoryRecommendations`] the
//!    reconciler reads.
//!
//! A pod that fails to answer (an error status, a timeout, text that is not
//! the exposition format) is skipped with its reason in the [`Round`], never
//! fatal. When no pod answered, the previous recommendation is left in
//! place: the reconciler then keeps the Deployment as it is, which is safer
//! than scaling on no data. The recommendation and the KPA state of an
//! InferenceService that is gone or no longer KPA-scaled are removed.
//!
//! The operator needs `list` on `inferenceservices` and `pods` and `get` on
//! `pods/proxy` (see docs/operator.md).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kf_serve::controller::{Config, InMemoryRecommendations, Scraper, ScraperConfig, run};
//!
//! let client = kube::Client::try_default().await?;
//! let recommendations = Arc::new(InMemoryRecommendations::default());
//! let scraper = Scraper::new(client.clone(), ScraperConfig::default(), recommendations.clone());
//! let config = Config { recommendations, ..Config::default() };
//! tokio::select! {
//!     () = scraper.run(|round| if let Err(err) = round { eprintln!("scrape: {err}") }) => {}
//!     ran = run(client, config) => ran?,
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

use super::plan::{self, Scaling};
use super::recommendations::InMemoryRecommendations;
use super::scaler::{PodLoad, ServiceScaler};
use super::{inference_service_resource, kube_error};
use crate::Result;
use crate::autoscale::KpaConfig;
use crate::kserve::InferenceService;
use crate::kserve::inference_service::{API_VERSION, KIND};

/// How the scraper runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScraperConfig {
    /// Scrape InferenceServices in this namespace only; `None`: all.
    pub namespace: Option<String>,
    /// Time between the starts of two rounds (Knative scrapes every
    /// second and decides every two). Default 2 s.
    pub interval: Duration,
    /// How long one pod may take to answer. Default 1 s.
    pub pod_timeout: Duration,
    /// Pods scraped at once. Default 16.
    pub concurrency: usize,
    /// The port of `kf serve` in the pod. Default 8080 ([`plan::CONTAINER_PORT`]).
    pub port: u16,
}

impl Default for ScraperConfig {
    fn default() -> Self {
        ScraperConfig {
            namespace: None,
            interval: Duration::from_secs(2),
            pod_timeout: Duration::from_secs(1),
            concurrency: 16,
            port: u16::try_from(plan::CONTAINER_PORT).unwrap_or(8080),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Round {
    /// One entry per KPA-scaled InferenceService, by namespace and name.
    pub services: Vec<ServiceRound>,
    /// Pods (or whole InferenceServices) that gave no load, and why.
    pub skipped: Vec<Skipped>,
}

/// One InferenceService in a [`Round`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRound {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Ready predictor pods.
    pub ready: u32,
    /// Ready pods whose load was read.
    pub answered: u32,
    /// The recommendation written this round; `None` when no pod answered
    /// (the previous one, if any, stays).
    pub replicas: Option<u32>,
    /// Whether its KPA is panicking (as of its last decision).
    pub panicking: bool,
}

/// A pod or InferenceService the round could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// `namespace/name` of the InferenceService, or `namespace/pod` of a pod.
    pub object: String,
    /// Why.
    pub reason: String,
}

/// Scrapes the predictors' pods and keeps each KPA-scaled
/// InferenceService's recommendation up to date (see the module
/// documentation).
pub struct Scraper {
    client: Client,
    config: ScraperConfig,
    recommendations: Arc<InMemoryRecommendations>,
    scalers: BTreeMap<(String, String), (ServiceScaler, bool)>,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper").field("config", &self.config).field("services", &self.scalers.len()).finish()
    }
}

/// Whether `pod` is ready to serve: its `Ready` condition is `True` and it
/// is not being deleted.
fn is_ready(pod: &Pod) -> bool {
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    ready && !deleting
}

/// The label selector of `isvc`'s predictor pods.
pub fn predictor_selector(isvc: &str) -> String {
    format!("{}={isvc},{}=predictor", plan::INFERENCESERVICE_LABEL, plan::COMPONENT_LABEL)
}

/// The API server path of `pod`'s `/metrics` through the pod proxy.
pub fn metrics_path(namespace: &str, pod: &str, port: u16) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{port}/proxy/metrics")
}

impl Scraper {
    /// A scraper on `client` writing into `recommendations`.
    pub fn new(client: Client, config: ScraperConfig, recommendations: Arc<InMemoryRecommendations>) -> Scraper {
        Scraper { client, config, recommendations, scalers: BTreeMap::new() }
    }

    /// Scrapes every `interval` until the future is dropped, handing each
    /// round (or the error that ended it early) to `on_round`. The clock
    /// is monotonic, from the first round.
    pub async fn run(mut self, mut on_round: impl FnMut(Result<&Round>)) {
        let start = tokio::time::Instant::now();
        let mut interval = tokio::time::interval(self.config.interval.max(Duration::from_millis(100)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match self.round(start.elapsed()).await {
                Ok(round) => on_round(Ok(&round)),
                Err(err) => on_round(Err(err)),
            }
        }
    }

    /// One round at `now` (any monotonic clock). Fails only when the
    /// InferenceServices cannot be listed, and then changes nothing. The
    /// services come in the order listed, the skipped pods by name. O(pods
    /// × exposition size), the pods of one service at most
    /// [`ScraperConfig::concurrency`] at once.
    pub async fn round(&mut self, now: Duration) -> Result<Round> {
        let resource = inference_service_resource();
        let api: Api<DynamicObject> = match &self.config.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        let scope = self.config.namespace.as_deref().unwrap_or("all namespaces");
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| kube_error(format!("list InferenceServices in {scope}"), e))?;
        let mut round = Round::default();
        let mut seen = BTreeSet::new();
        for object in list.items {
            let namespace = object.metadata.namespace.clone().unwrap_or_default();
            let name = object.metadata.name.clone().unwrap_or_default();
            let Some(config) = kpa_config(object) else { continue };
            seen.insert((namespace.clone(), name.clone()));
            self.scrape_service(now, &namespace, &name, config, &mut round).await;
        }
        // Services gone, or no longer KPA-scaled: forget them.
        let gone: Vec<(String, String)> = self.scalers.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for (namespace, name) in gone {
            self.scalers.remove(&(namespace.clone(), name.clone()));
            self.recommendations.remove(&namespace, &name);
        }
        Ok(round)
    }

    async fn scrape_service(
        &mut self,
        now: Duration,
        namespace: &str,
        name: &str,
        config: KpaConfig,
        round: &mut Round,
    ) {
        let pods = Api::<Pod>::namespaced(self.client.clone(), namespace);
        let params = ListParams::default().labels(&predictor_selector(name));
        let listed = match pods.list(&params).await {
            Ok(list) => list.items,
            Err(err) => {
                let err = kube_error(format!("list pods of InferenceService {namespace}/{name}"), err);
                round.skipped.push(Skipped { object: format!("{namespace}/{name}"), reason: err.to_string() });
                return;
            }
        };
        let ready: Vec<String> =
            listed.iter().filter(|p| is_ready(p)).filter_map(|p| p.metadata.name.clone()).collect();
        let metric = config.metric;
        let (client, port, timeout) = (&self.client, self.config.port, self.config.pod_timeout);
        let mut answers: Vec<(String, std::result::Result<PodLoad, String>)> =
            futures::stream::iter(ready.iter().cloned())
                .map(|pod| async move {
                    let load = match scrape_pod(client, namespace, &pod, port, timeout).await {
                        Ok(text) => match PodLoad::from_exposition(&text, metric) {
                            Ok(Some(load)) => Ok(load),
                            Ok(None) => Err(format!(
                                "no {} load on /metrics: the pod measures another metric, or is not kf serve",
                                super::scaler::metric_label(metric)
                            )),
                            Err(err) => Err(format!("unreadable /metrics: {err}")),
                        },
                        Err(err) => Err(err),
                    };
                    (pod, load)
                })
                .buffer_unordered(self.config.concurrency.max(1))
                .collect()
                .await;
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        let mut loads = Vec::new();
        for (pod, answer) in answers {
            match answer {
                Ok(load) => loads.push(load),
                Err(reason) => round.skipped.push(Skipped { object: format!("{namespace}/{pod}"), reason }),
            }
        }
        let ready_count = u32::try_from(ready.len()).unwrap_or(u32::MAX);
        let key = (namespace.to_string(), name.to_string());
        let scaler = match self.scalers.remove(&key) {
            Some((scaler, panicking)) if *scaler.config() == config => Some((scaler, panicking)),
            // New, or its settings changed: take over the pods it has.
            _ => ServiceScaler::new(config, ready_count, now).ok().map(|s| (s, false)),
        };
        let Some((mut scaler, mut panicking)) = scaler else {
            // for_predictor validated the config; unreachable in practice.
            return;
        };
        let decision = scaler.decide(now, ready_count, &loads);
        if let Some(d) = decision {
            self.recommendations.set(namespace, name, d.desired);
            panicking = d.panicking;
        }
        round.services.push(ServiceRound {
            namespace: namespace.to_string(),
            name: name.to_string(),
            ready: ready_count,
            answered: u32::try_from(loads.len()).unwrap_or(u32::MAX),
            replicas: decision.map(|d| d.desired),
            panicking,
        });
        self.scalers.insert(key, (scaler, panicking));
    }
}

/// The KPA settings of a listed InferenceService the reconciler scales with
/// the KPA; `None` for any other (invalid ones get their condition from the
/// reconciler).
fn kpa_config(object: DynamicObject) -> Option<KpaConfig> {
    let mut document = serde_json::to_value(object).ok()?;
    // List items may come without their type.
    document["apiVersion"] = json!(API_VERSION);
    document["kind"] = json!(KIND);
    let isvc = InferenceService::from_value(document).ok()?;
    if !plan::acts_on(&isvc) || isvc.validate().is_err() {
        return None;
    }
    match plan::scaling(&isvc) {
        Ok(Scaling::Kpa { .. }) => KpaConfig::for_predictor(&isvc).ok(),
        _ => None,
    }
}

/// `pod`'s `/metrics` text through the API server's pod proxy, or why not.
async fn scrape_pod(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: u16,
    timeout: Duration,
) -> std::result::Result<String, String> {
    let path = metrics_path(namespace, pod, port);
    let request = http::Request::get(&path).body(Vec::new()).map_err(|e| format!("GET {path}: {e}"))?;
    match tokio::time::timeout(timeout, client.request_text(request)).await {
        Err(_) => Err(format!("GET {path}: no answer within {timeout:?}")),
        Ok(Err(kube::Error::Api(status))) => Err(format!("GET {path}: HTTP {}: {}", status.code, status.message)),
        Ok(Err(err)) => Err(format!("GET {path}: {err}")),
        Ok(Ok(text)) => Ok(text),
    }
}
