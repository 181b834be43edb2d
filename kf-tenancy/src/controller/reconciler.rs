//! The IO shell around [`super::plan`]: observe a Profile's children, ask the
//! pure planner what to do, and carry the plan out with server-side apply.
//!
//! Every read happens before the first write, so a failed read leaves the
//! cluster untouched; the first failed write ends the reconcile (no deletes,
//! no status) and the error policy requeues it with backoff. The next
//! reconcile re-observes and plans again, so a partly carried-out plan is
//! finished, never repeated blindly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event};
use kube::runtime::{reflector::ObjectRef, watcher};
use kube::{Client, Resource};
use serde_json::{Value, json};

use super::plan::{
    ChildRef, FINALIZER, MANAGED_BY_LABEL, MANAGER, Outcome, cleanup_plan, invalid_condition, reconcile_plan,
    status_with,
};
use crate::profile::{API_GROUP, KIND, Profile, ProfileStatus};
use crate::render::RenderConfig;
use crate::store::PolicyStore;
use crate::{Error, Result};

/// How the controller renders and how often it retries.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// What the rendering needs (identity header, gateway principals, …).
    pub render: RenderConfig,
    /// How long after a successful reconcile a Profile is looked at again:
    /// contributors live in the policy store, which sends no watch events.
    pub resync: Duration,
    /// The first retry delay after a failed reconcile; doubled per failure.
    pub retry_base: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            render: RenderConfig::default(),
            resync: Duration::from_secs(300),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }
}

/// What every reconcile shares: the client, the configuration, where
/// contributors come from, and the failure counts behind the backoff.
pub struct Context {
    client: Client,
    config: ControllerConfig,
    contributors: Option<Arc<dyn PolicyStore>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Context {
    /// A context without contributors: owners and service accounts only.
    pub fn new(client: Client, config: ControllerConfig) -> Self {
        Context { client, config, contributors: None, failures: Mutex::new(HashMap::new()) }
    }

    /// Reads each namespace's contributors from `store` (the bindings KFAM
    /// would have made), so their RoleBindings and policies follow the store.
    pub fn with_contributors(mut self, store: Arc<dyn PolicyStore>) -> Self {
        self.contributors = Some(store);
        self
    }

    /// Records a failure of `name`; returns how many in a row.
    fn failed(&self, name: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = failures.entry(name.to_string()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn succeeded(&self, name: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name);
    }
}

/// The kubeflow.org/v1 Profile resource (cluster-scoped).
pub fn profile_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(API_GROUP, "v1", KIND), "profiles")
}

/// Istio's security.istio.io/v1 AuthorizationPolicy resource.
pub fn authorization_policy_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("security.istio.io", "v1", "AuthorizationPolicy");
    ApiResource::from_gvk_with_plural(&gvk, "authorizationpolicies")
}

/// The API resource of a child kind, and whether it is namespaced.
fn child_resource(kind: &str) -> Option<(ApiResource, bool)> {
    Some(match kind {
        "Namespace" => (ApiResource::erase::<Namespace>(&()), false),
        "ServiceAccount" => (ApiResource::erase::<ServiceAccount>(&()), true),
        "RoleBinding" => (ApiResource::erase::<RoleBinding>(&()), true),
        "ResourceQuota" => (ApiResource::erase::<ResourceQuota>(&()), true),
        "AuthorizationPolicy" => (authorization_policy_resource(), true),
        _ => return None,
    })
}

/// The namespaced kinds listed (by our label) when observing.
const NAMESPACED_CHILDREN: [&str; 4] = ["ServiceAccount", "RoleBinding", "ResourceQuota", "AuthorizationPolicy"];

fn api_error(action: String, error: kube::Error) -> Error {
    match &error {
        kube::Error::Api(status) if status.is_conflict() => {
            Error::Conflict { what: format!("{action}: {}", status.message) }
        }
        _ => Error::Kubernetes { action, source: Box::new(error) },
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

/// A listed or fetched object as a plain value, with the `apiVersion` and
/// `kind` that list items leave out.
fn with_types(object: &DynamicObject, resource: &ApiResource) -> Result<Value> {
    let mut value = serde_json::to_value(object).map_err(|e| Error::Invalid {
        path: resource.kind.clone(),
        message: format!("cannot read the observed object: {e}"),
    })?;
    value["apiVersion"] = Value::String(resource.api_version.clone());
    value["kind"] = Value::String(resource.kind.clone());
    Ok(value)
}

impl Context {
    fn api(&self, child: &ChildRef) -> Result<Api<DynamicObject>> {
        let (resource, namespaced) = child_resource(&child.kind).ok_or_else(|| Error::Invalid {
            path: "kind".into(),
            message: format!("the controller does not manage {:?} objects", child.kind),
        })?;
        Ok(match (&child.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(self.client.clone(), ns, &resource),
            _ => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// The namespace `name` (if it exists) and the objects labelled as ours
    /// in it. Reads only.
    async fn observe(&self, name: &str) -> Result<Vec<Value>> {
        let (resource, _) = child_resource("Namespace").ok_or_else(|| Error::NotFound { what: "Namespace".into() })?;
        let namespaces: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
        let namespace = namespaces.get_opt(name).await.map_err(|e| api_error(format!("get namespace {name:?}"), e))?;
        let Some(namespace) = namespace else { return Ok(vec![]) };
        let mut observed = vec![with_types(&namespace, &resource)?];
        let ours = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
        for kind in NAMESPACED_CHILDREN {
            let Some((resource, _)) = child_resource(kind) else { continue };
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), name, &resource);
            let list = api.list(&ours).await.map_err(|e| api_error(format!("list {kind} in {name:?}"), e))?;
            for item in &list.items {
                observed.push(with_types(item, &resource)?);
            }
        }
        Ok(observed)
    }

    async fn apply(&self, object: &Value) -> Result<()> {
        let child = ChildRef::of(object).ok_or_else(|| Error::Invalid {
            path: "metadata.name".into(),
            message: "a rendered object has no kind or name".into(),
        })?;
        let params = PatchParams::apply(MANAGER).force();
        self.api(&child)?
            .patch(&child.name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| api_error(format!("apply {} {:?}", child.kind, child.name), e))?;
        Ok(())
    }

    /// Deletes one child, only if it is still the object observed (same
    /// uid); one already gone counts as deleted.
    async fn delete(&self, child: &ChildRef) -> Result<()> {
        let params = DeleteParams {
            preconditions: child.uid.clone().map(|uid| Preconditions { uid: Some(uid), resource_version: None }),
            ..DeleteParams::default()
        };
        match self.api(child)?.delete(&child.name, &params).await {
            Err(e) if !is_not_found(&e) => Err(api_error(format!("delete {} {:?}", child.kind, child.name), e)),
            _ => Ok(()),
        }
    }

    async fn write_status(&self, name: &str, status: &ProfileStatus) -> Result<()> {
        let profiles: Api<DynamicObject> = Api::all_with(self.client.clone(), &profile_resource());
        let body = json!({
            "apiVersion": profile_resource().api_version,
            "kind": KIND,
            "metadata": {"name": name},
            "status": status,
        });
        profiles
            .patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body))
            .await
            .map_err(|e| api_error(format!("write the status of Profile {name:?}"), e))?;
        Ok(())
    }

    async fn contributors(&self, namespace: &str) -> Result<Vec<(crate::Subject, crate::Role)>> {
        let Some(store) = &self.contributors else { return Ok(vec![]) };
        let records = store.namespaces().await?;
        Ok(records.into_iter().find(|r| r.namespace == namespace).map(|r| r.bindings).unwrap_or_default())
    }

    async fn apply_profile(&self, object: &DynamicObject) -> Result<Action> {
        let name = object.metadata.name.clone().unwrap_or_default();
        let profile = match profile_of(object) {
            Ok(profile) => profile,
            Err(error) => {
                // An unreadable spec is a condition, not a crash loop: say
                // which field, then wait for the Profile to be edited.
                let current = object.data.get("status").cloned().and_then(|s| serde_json::from_value(s).ok());
                let (ready, _) = invalid_condition(&error);
                if let Some(status) = status_with(current.as_ref(), ready) {
                    self.write_status(&name, &status).await?;
                }
                return Ok(Action::await_change());
            }
        };
        let contributors = self.contributors(&name).await?;
        // Whether a Profile is valid does not depend on the cluster: an
        // invalid one costs no reads.
        let offline = reconcile_plan(&profile, &contributors, &[], &self.config.render);
        let plan = if matches!(offline.outcome, Outcome::Invalid { .. }) {
            offline
        } else {
            let observed = self.observe(&name).await?;
            reconcile_plan(&profile, &contributors, &observed, &self.config.render)
        };
        for object in &plan.apply {
            self.apply(object).await?;
        }
        for child in &plan.delete {
            self.delete(child).await?;
        }
        if let Some(status) = &plan.status {
            self.write_status(&name, status).await?;
        }
        Ok(match plan.outcome {
            Outcome::Ready | Outcome::NamespaceTaken => Action::requeue(self.config.resync),
            Outcome::Invalid { .. } => Action::await_change(),
        })
    }

    async fn cleanup_profile(&self, object: &DynamicObject) -> Result<Action> {
        // Ownership needs only the name and uid, so even a Profile whose
        // spec no longer parses can be cleaned up.
        let name = object.metadata.name.clone().unwrap_or_default();
        let identity = Profile::from_value(json!({
            "apiVersion": profile_resource().api_version,
            "kind": KIND,
            "metadata": {"name": name, "uid": object.metadata.uid},
        }))?;
        let observed = self.observe(&name).await?;
        for child in cleanup_plan(&identity, &observed) {
            self.delete(&child).await?;
        }
        Ok(Action::await_change())
    }
}

/// Reads a watched object as a [`Profile`]; a type error names the field.
fn profile_of(object: &DynamicObject) -> Result<Profile> {
    let mut value = serde_json::to_value(object)
        .map_err(|e| Error::Invalid { path: String::new(), message: format!("unreadable Profile: {e}") })?;
    if value.get("apiVersion").is_none() {
        value["apiVersion"] = Value::String(profile_resource().api_version);
        value["kind"] = Value::String(KIND.into());
    }
    Profile::from_value(value)
}

fn from_finalizer(error: finalizer::Error<Error>) -> Error {
    match error {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        finalizer::Error::AddFinalizer(e) => api_error(format!("add finalizer {FINALIZER:?}"), e),
        finalizer::Error::RemoveFinalizer(e) => api_error(format!("remove finalizer {FINALIZER:?}"), e),
        other => Error::Invalid { path: "metadata".into(), message: other.to_string() },
    }
}

/// Reconciles one Profile: adds the [`FINALIZER`] first; while the Profile
/// lives, applies what [`reconcile_plan`] says; once it is deleted, deletes
/// the children [`cleanup_plan`] names and lets the finalizer go.
pub async fn reconcile(profile: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let name = profile.metadata.name.clone().unwrap_or_default();
    let profiles: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &profile_resource());
    let action = finalizer::finalizer(&profiles, FINALIZER, profile, |event| async {
        match event {
            Event::Apply(object) => ctx.apply_profile(&object).await,
            Event::Cleanup(object) => ctx.cleanup_profile(&object).await,
        }
    })
    .await
    .map_err(from_finalizer)?;
    ctx.succeeded(&name);
    Ok(action)
}

/// After a failed reconcile: retry with exponential backoff per Profile
/// (`retry_base` doubled per consecutive failure, at most `retry_max`); a
/// conflict means someone else wrote first, so it retries after `retry_base`.
pub fn error_policy(profile: Arc<DynamicObject>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = profile.meta().name.clone().unwrap_or_default();
    let failures = ctx.failed(&name);
    let config = &ctx.config;
    let delay = match error {
        Error::Conflict { .. } => config.retry_base,
        _ => config.retry_base.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(config.retry_max),
    };
    Action::requeue(delay)
}

/// What each reconcile reports: the Profile and the action, or the error.
pub type ReconcileResult =
    std::result::Result<(ObjectRef<DynamicObject>, Action), kube::runtime::controller::Error<Error, watcher::Error>>;

/// The Profile controller as a stream of reconcile results (log them as you
/// like). Watches Profiles and the children labelled as ours.
pub fn controller(ctx: Arc<Context>) -> impl Stream<Item = ReconcileResult> {
    let client = ctx.client.clone();
    let profiles: Api<DynamicObject> = Api::all_with(client.clone(), &profile_resource());
    let ours = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let mut controller = Controller::new_with(profiles, watcher::Config::default(), profile_resource());
    for kind in ["Namespace"].into_iter().chain(NAMESPACED_CHILDREN) {
        if let Some((resource, _)) = child_resource(kind) {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            controller = controller.owns_with(api, resource, ours.clone());
        }
    }
    controller.run(reconcile, error_policy, ctx)
}

/// Runs the Profile controller until its watches end.
pub async fn run(client: Client, config: ControllerConfig) {
    run_with(Arc::new(Context::new(client, config))).await;
}

/// [`run`] with a prepared context (e.g. one reading contributors from a store).
pub async fn run_with(ctx: Arc<Context>) {
    controller(ctx).for_each(|_| async {}).await;
}
