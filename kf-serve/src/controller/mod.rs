//! An InferenceService reconciler in raw-deployment mode, on kube-runtime
//! (feature `controller`): KServe's controller, for the predictors
//! `kf serve` can run.
//!
//! Each reconcile of an InferenceService `<name>` reads its children,
//! decides with the pure [`plan::reconcile_plan`] and carries the [`Plan`]
//! out. Every child that differs from the observed one is server-side
//! applied (field manager [`FIELD_MANAGER`], forced), each labelled
//! `serving.kserve.io/inferenceservice=<name>` and owned by the
//! InferenceService (`controller: true`):
//!
//! - the Deployment `<name>-predictor`: a `kf serve --model-repository
//!   /mnt/models --addr 0.0.0.0:8080` container (image
//!   [`RenderConfig::image`]) behind KServe's storage initializer, which
//!   copies the predictor's `storageUri` to `/mnt/models/<name>/1` (so the
//!   storage URI must hold a `model.onnx`); the model is served under the
//!   InferenceService's name;
//! - the Service `<name>-predictor`, port 80 → 8080;
//! - while a canary runs, the ConfigMap `<name>-predictor-traffic`.
//!
//! Then the status (see [`status`]) is applied to the status subresource
//! when it changed: `url` and `address.url`
//! (`http://<name>-predictor.<ns>.svc.cluster.local`),
//! `components.predictor` with the revisions and the traffic split,
//! `PredictorReady` and `Ready` from the Deployment's `availableReplicas`.
//! A reconcile that changes nothing writes nothing.
//!
//! **Canary.** A revision is a storage URI (named `<name>-predictor-<hash>`).
//! The rolled-out revision's URI is an annotation of the Deployment
//! ([`plan::ROLLED_OUT_ANNOTATION`]). When `canaryTrafficPercent` is below
//! 100 and the storage URI differs from the rolled-out one, ONE Deployment
//! serves both: a second storage initializer puts the canary at
//! `/mnt/models/<name>/2`, and `kf serve` gets
//! `--traffic /etc/kf-serve/traffic.json`, mounted from the traffic
//! ConfigMap ([`plan::traffic_document`]: the model, which version is
//! stable and which canary, the canary's percent), which it must route
//! with [`crate::router::TrafficSplit`]. **`kf serve` has no such flag
//! yet: the assembly must add `--traffic FILE`.** The pod template carries
//! the percent ([`plan::CANARY_PERCENT_ANNOTATION`]) so a new split rolls
//! the pods even though `kf serve` reads the file only at start. Dropping
//! `canaryTrafficPercent` (or 100) promotes the latest revision: one
//! revision again, and the ConfigMap (ours) is deleted.
//!
//! **Autoscaling.** When the InferenceService asks for the KPA (see
//! [`plan::scaling`]) the Deployment's `spec.replicas` is the
//! [`Recommendations`] of [`Config::recommendations`] bounded by
//! `[max(minReplicas, 1), maxReplicas]` and the InferenceService is looked
//! at again every [`Config::autoscale_interval`]; without a recommendation
//! the current count stays. Otherwise `spec.replicas` is `minReplicas`
//! (default 1); under KServe's `hpa`, `keda` or `external` autoscaler
//! class it is not written, so that autoscaler owns it.
//!
//! **Bad input.** An InferenceService that fails validation gets `Ready`
//! `False` (`InvalidSpec`), one `kf serve` cannot serve (another model
//! format, a transformer, custom containers, several storage URIs) gets
//! `Ready` `False` (`NoSupportingRuntime`); both messages start with the
//! field's path, nothing else is read and it waits for an edit (no crash
//! loop). A child name taken by an object the InferenceService does not
//! own is `ChildNotOwned`, retried with backoff ([`backoff_delay`]).
//!
//! **Errors.** Every read happens before the first write; the first failed
//! write ends the reconcile (children in order ConfigMap, Deployment,
//! Service, then deletions, the status last), so a failure never reports
//! what was not applied. The error is returned and [`error_policy`]
//! requeues with backoff.
//!
//! **No finalizer.** The children carry a controller owner reference, so
//! Kubernetes' garbage collector deletes them with the InferenceService; a
//! deleting InferenceService is not even read. The only delete this
//! controller issues is its own traffic ConfigMap, conditional on the uid
//! it observed; it never deletes or applies over an object it does not own.
//! InferenceServices in ModelMesh mode are left to ModelMesh. This
//! controller replaces KServe's; do not run both on one cluster.
//!
//! A child is applied when a field it should have differs from the
//! observed one or when its [`plan::DIGEST_ANNOTATION`] does (so a field
//! the InferenceService stopped setting is dropped too).
//!
//! **Not yet.** Transformers, explainers, custom containers and several
//! storage URIs (a condition says so); creating an HPA or KEDA object (those
//! classes only leave `spec.replicas` alone); the KPA's own windows
//! (the pods' are used, see [`scaler`]); ingress (the URL is the
//! cluster-local Service).
//!
//! This module does the IO; everything it decides is in [`plan`] and
//! [`status`], which are pure and unit-tested.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kf_serve::controller::{Config, InMemoryRecommendations, Scraper, ScraperConfig, run};
//!
//! let client = kube::Client::try_default().await?;
//! let recommendations = Arc::new(InMemoryRecommendations::default());
//! // The scraper writes the KPA's answers, the reconciler reads them.
//! let namespace = Some("team-a".to_string());
//! let scraping = ScraperConfig { namespace: namespace.clone(), ..ScraperConfig::default() };
//! let scraper = Scraper::new(client.clone(), scraping, recommendations.clone());
//! tokio::spawn(scraper.run(|round| if let Err(err) = round { eprintln!("scrape: {err}") }));
//! let config = Config { namespace, recommendations, ..Config::default() };
//! run(client, config).await?;
//! # Ok(())
//! # }
//! ```

pub mod exposition;
pub mod plan;
mod recommendations;
pub mod scaler;
mod scraper;
pub mod status;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub use plan::{Next, Observed, Plan, RenderConfig, reconcile_plan};
pub use recommendations::{InMemoryRecommendations, Recommendations};
pub use scraper::{Round, Scraper, ScraperConfig, ServiceRound, Skipped, metrics_path, predictor_selector};

use crate::kserve::inference_service::{API_VERSION, KIND};
use crate::kserve::{API_GROUP, InferenceService};
use crate::{Error, Result};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = plan::MANAGER;

/// How the controller runs.
#[derive(Clone)]
pub struct Config {
    /// Watch InferenceServices in this namespace only; `None` watches all.
    pub namespace: Option<String>,
    /// Field manager of the server-side applies; default [`FIELD_MANAGER`].
    pub field_manager: String,
    /// Images and supported formats of the children.
    pub render: RenderConfig,
    /// First retry delay; doubled per consecutive failure.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How often an autoscaled InferenceService is looked at again.
    pub autoscale_interval: Duration,
    /// Where replica recommendations come from.
    pub recommendations: Arc<dyn Recommendations>,
}

impl Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field("field_manager", &self.field_manager)
            .field("render", &self.render)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("autoscale_interval", &self.autoscale_interval)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: None,
            field_manager: FIELD_MANAGER.into(),
            render: RenderConfig::default(),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            autoscale_interval: Duration::from_secs(15),
            recommendations: Arc::new(InMemoryRecommendations::default()),
        }
    }
}

/// The retry delay after `attempt` consecutive failures (1-based):
/// `base · 2^(attempt-1)`, at most `max`.
///
/// ```
/// use std::time::Duration;
/// use kf_serve::controller::backoff_delay;
/// let (base, max) = (Duration::from_secs(5), Duration::from_secs(60));
/// assert_eq!(backoff_delay(1, base, max), base);
/// assert_eq!(backoff_delay(3, base, max), Duration::from_secs(20));
/// assert_eq!(backoff_delay(40, base, max), max);
/// ```
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// What every reconcile shares: the client, the configuration, the clock
/// and the consecutive-failure counts that drive the backoff.
pub struct Context {
    client: Client,
    config: Config,
    clock: Box<dyn Fn() -> String + Send + Sync>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Context {
    /// A context on `client`; conditions are stamped with the UTC time in
    /// seconds.
    pub fn new(client: Client, config: Config) -> Context {
        let clock = || k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        Context { client, config, clock: Box::new(clock), failures: Mutex::default() }
    }

    /// Replaces the clock (RFC 3339 text), e.g. with a fixed time in tests.
    pub fn with_clock(mut self, clock: impl Fn() -> String + Send + Sync + 'static) -> Context {
        self.clock = Box::new(clock);
        self
    }

    /// One more failure for `key`; returns the delay before the retry.
    fn fail(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n, self.config.backoff_base, self.config.backoff_max)
    }

    fn succeed(&self, key: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }

    fn params(&self) -> PatchParams {
        PatchParams::apply(&self.config.field_manager).force()
    }
}

/// The InferenceService resource (serving.kserve.io/v1beta1).
pub fn inference_service_resource() -> ApiResource {
    let version = API_VERSION.rsplit_once('/').map_or(API_VERSION, |(_, v)| v);
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(API_GROUP, version, KIND), "inferenceservices")
}

fn kube_error(request: String, err: kube::Error) -> Error {
    let (status, message) = match err {
        kube::Error::Api(status) => (Some(status.code), format!("{} ({})", status.message, status.reason)),
        other => (None, other.to_string()),
    };
    Error::Kubernetes { request, status, message }
}

fn unreadable(request: String, err: &serde_json::Error) -> Error {
    Error::Kubernetes { request, status: None, message: err.to_string() }
}

/// The object `name` as a document, `None` on 404.
async fn get<K>(api: Api<K>, kind: &str, namespace: &str, name: &str) -> Result<Option<Value>>
where
    K: Clone + DeserializeOwned + Debug + Serialize,
{
    let request = format!("get {kind} {namespace}/{name}");
    match api.get_opt(name).await.map_err(|e| kube_error(request.clone(), e))? {
        Some(object) => serde_json::to_value(&object).map(Some).map_err(|e| unreadable(request, &e)),
        None => Ok(None),
    }
}

async fn apply<K>(api: Api<K>, ctx: &Context, kind: &str, namespace: &str, body: &Value) -> Result<()>
where
    K: Clone + DeserializeOwned + Debug,
{
    let name = plan::child_key(body).2;
    api.patch(name, &ctx.params(), &Patch::Apply(body))
        .await
        .map_err(|e| kube_error(format!("apply {kind} {namespace}/{name}"), e))?;
    Ok(())
}

/// Reconciles one InferenceService: reads its children, decides with
/// [`reconcile_plan`], applies what changed. Returns when to look again;
/// an API error is returned as [`Error::Kubernetes`] after nothing more was
/// written.
pub async fn reconcile(object: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = object.metadata.namespace.clone().unwrap_or_else(|| ctx.client.default_namespace().to_string());
    let name = object.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let now = (ctx.clock)();
    let mut document = serde_json::to_value(object.as_ref()).map_err(|e| Error::Invalid {
        path: String::new(),
        message: format!("cannot read the InferenceService: {e}"),
    })?;
    if document.get("apiVersion").is_none() {
        document["apiVersion"] = json!(API_VERSION);
        document["kind"] = json!(KIND);
    }
    document["metadata"]["namespace"] = json!(namespace);
    let plan = match InferenceService::from_value(document.clone()) {
        Ok(isvc) => decide(&isvc, &namespace, &name, &ctx, &now).await?,
        Err(err) => {
            let isvc = plan::stub(&document);
            if !plan::acts_on(&isvc) {
                return Ok(Action::await_change());
            }
            plan::invalid_plan(&isvc, &err, &now)
        }
    };
    execute(&plan, &namespace, &name, &ctx).await?;
    Ok(match plan.next {
        Next::AwaitChange => {
            ctx.succeed(&key);
            Action::await_change()
        }
        Next::Rescale => {
            ctx.succeed(&key);
            Action::requeue(ctx.config.autoscale_interval)
        }
        Next::Retry => Action::requeue(ctx.fail(&key)),
    })
}

/// Requeues an InferenceService whose reconcile failed, with backoff.
pub fn error_policy(object: Arc<DynamicObject>, _error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    let name = object.metadata.name.as_deref().unwrap_or_default();
    Action::requeue(ctx.fail(&format!("{namespace}/{name}")))
}

/// Reads what the plan needs and plans.
async fn decide(isvc: &InferenceService, namespace: &str, name: &str, ctx: &Context, now: &str) -> Result<Plan> {
    let render = &ctx.config.render;
    let servable = plan::acts_on(isvc)
        && isvc.validate().is_ok()
        && plan::supported_storage_uri(isvc, render).is_ok()
        && plan::scaling(isvc).is_ok();
    if !servable {
        // Decided without reading anything: left alone, or a condition.
        return Ok(reconcile_plan(isvc, &Observed::default(), None, render, now));
    }
    let client = &ctx.client;
    let predictor = plan::predictor_name(name);
    let observed = Observed {
        deployment: get(Api::<Deployment>::namespaced(client.clone(), namespace), "Deployment", namespace, &predictor)
            .await?,
        service: get(Api::<Service>::namespaced(client.clone(), namespace), "Service", namespace, &predictor).await?,
        traffic: get(
            Api::<ConfigMap>::namespaced(client.clone(), namespace),
            "ConfigMap",
            namespace,
            &plan::traffic_name(name),
        )
        .await?,
    };
    let recommendation = ctx.config.recommendations.replicas(namespace, name);
    Ok(reconcile_plan(isvc, &observed, recommendation, render, now))
}

/// Applies the plan's children in order, deletes what it names, then
/// writes its status; stops at the first error.
async fn execute(plan: &Plan, namespace: &str, name: &str, ctx: &Context) -> Result<()> {
    let client = &ctx.client;
    for child in &plan.apply {
        match plan::child_key(child).1 {
            "Deployment" => {
                apply(Api::<Deployment>::namespaced(client.clone(), namespace), ctx, "Deployment", namespace, child)
                    .await?
            }
            "Service" => {
                apply(Api::<Service>::namespaced(client.clone(), namespace), ctx, "Service", namespace, child).await?
            }
            "ConfigMap" => {
                apply(Api::<ConfigMap>::namespaced(client.clone(), namespace), ctx, "ConfigMap", namespace, child)
                    .await?
            }
            other => {
                return Err(Error::Internal {
                    message: format!("the plan applies a {other:?}, which is not a child kind"),
                });
            }
        }
    }
    for child in &plan.delete {
        // Only our traffic ConfigMap is ever deleted, and only if it is
        // still the object observed.
        let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
        let params = DeleteParams {
            preconditions: Some(Preconditions { uid: Some(child.uid.clone()), resource_version: None }),
            ..DeleteParams::default()
        };
        match api.delete(&child.name, &params).await {
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_error(format!("delete {} {namespace}/{}", child.kind, child.name), e)),
            Ok(_) => {}
        }
    }
    if let Some(status) = &plan.status {
        let body = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        });
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &inference_service_resource());
        api.patch_status(name, &ctx.params(), &Patch::Apply(&body))
            .await
            .map_err(|e| kube_error(format!("apply InferenceService {namespace}/{name} status"), e))?;
    }
    Ok(())
}

/// Runs the controller until the watch streams end: watches
/// InferenceServices (in `config.namespace`, or everywhere) and the
/// Deployments, Services and ConfigMaps labelled as ours, and reconciles
/// each with [`reconcile`] and [`error_policy`].
pub async fn run(client: Client, config: Config) -> Result<()> {
    let resource = inference_service_resource();
    let ours = watcher::Config::default().labels(&format!("{}={}", plan::MANAGED_BY_LABEL, plan::MANAGER));
    let controller = match &config.namespace {
        Some(ns) => Controller::new_with(
            Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
            watcher::Config::default(),
            resource,
        )
        .owns(Api::<Deployment>::namespaced(client.clone(), ns), ours.clone())
        .owns(Api::<Service>::namespaced(client.clone(), ns), ours.clone())
        .owns(Api::<ConfigMap>::namespaced(client.clone(), ns), ours),
        None => Controller::new_with(
            Api::<DynamicObject>::all_with(client.clone(), &resource),
            watcher::Config::default(),
            resource,
        )
        .owns(Api::<Deployment>::all(client.clone()), ours.clone())
        .owns(Api::<Service>::all(client.clone()), ours.clone())
        .owns(Api::<ConfigMap>::all(client.clone()), ours),
    };
    let ctx = Arc::new(Context::new(client, config));
    controller.run(reconcile, error_policy, ctx).for_each(|_| futures::future::ready(())).await;
    Ok(())
}
