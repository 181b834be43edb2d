//! `GET /api/serving/v1/models`: what the OIP v2 endpoints serve, for
//! people and dashboards — each model's versions and readiness, its canary
//! split (configured and as served) and its request counts. The OIP v2
//! protocol itself has no listing; this is kf's own small API over the same
//! repository and metrics.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use kf_serve::metrics::Metrics;
use kf_serve::router::{CanaryModel, TrafficSplit};
use kf_serve::{Model, ModelRepository};
use serde::Deserialize;
use serde_json::{Value, json};

/// `[[canary]]` in kf.toml: two versions of one model behind a split.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// The served model.
    pub model: String,
    /// The version most requests go to.
    pub stable: String,
    /// The version that gets `percent` of them; its endpoint (and requests
    /// naming no version) carry the split, as the latest revision's URL does
    /// in KServe. `/versions/{stable}` still reaches the stable one alone.
    pub canary: String,
    /// Share of requests for the canary, 0–100.
    pub percent: u8,
}

/// The canaries in force, by model: (stable, canary, the split model).
pub type Canaries = BTreeMap<String, (String, String, Arc<CanaryModel>)>;

/// Puts each configured split in front of its canary version.
pub fn install(repo: &ModelRepository, canaries: &[CanaryConfig]) -> anyhow::Result<Canaries> {
    let mut installed = Canaries::new();
    for c in canaries {
        let at = || format!("canary of model {:?}", c.model);
        let (_, stable) = repo.model(&c.model, Some(&c.stable)).with_context(at)?;
        let (_, canary) = repo.model(&c.model, Some(&c.canary)).with_context(at)?;
        let split = Arc::new(CanaryModel::new(stable, canary, TrafficSplit::new(c.percent).with_context(at)?)?);
        repo.insert(&c.model, &c.canary, split.clone() as Arc<dyn Model>);
        installed.insert(c.model.clone(), (c.stable.clone(), c.canary.clone(), split));
    }
    Ok(installed)
}

struct Serving {
    repo: Arc<ModelRepository>,
    metrics: Arc<Metrics>,
    canaries: Canaries,
}

/// The route, under `/api/serving/v1/models`.
pub fn router(repo: Arc<ModelRepository>, metrics: Arc<Metrics>, canaries: Canaries) -> Router {
    Router::new().route("/api/serving/v1/models", get(list)).with_state(Arc::new(Serving { repo, metrics, canaries }))
}

async fn list(State(api): State<Arc<Serving>>) -> Json<Value> {
    let counts: BTreeMap<String, (u64, u64)> =
        api.metrics.requests().into_iter().map(|(model, total, errors)| (model, (total, errors))).collect();
    let mut models: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for entry in api.repo.index() {
        let ready = entry.state == "READY";
        models.entry(entry.name.clone()).or_default().push(json!({
            "version": entry.version, "ready": ready, "state": entry.state, "reason": entry.reason,
        }));
    }
    let items: Vec<Value> = models
        .into_iter()
        .map(|(model, versions)| {
            let canary = api.canaries.get(&model).map(|(stable, canary, split)| {
                let (to_stable, to_canary) = split.served();
                json!({"stable": stable, "canary": canary, "percent": split.split().canary_percent(),
                       "served": {"stable": to_stable, "canary": to_canary}})
            });
            let (total, errors) = counts.get(&model).copied().unwrap_or_default();
            json!({"model": model, "versions": versions, "canary": canary,
                   "requests_total": total, "errors_total": errors})
        })
        .collect();
    Json(json!({"items": items}))
}
