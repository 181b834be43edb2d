//! The pure core of the InferenceService reconciler: from an
//! InferenceService, the children the API server has and the autoscaler's
//! recommendation, decide what to apply, what to delete, what status to
//! write and when to look again.
//!
//! No IO and no clock: the shell ([`super::reconcile`]) reads, calls
//! [`reconcile_plan`] and carries the [`Plan`] out. Children are plain JSON
//! documents (server-side apply bodies); the status is the part of KServe's
//! status this controller owns (see [`super::status`]).
//!
//! Ownership is explicit: every child carries a controller owner reference
//! to the InferenceService (by uid) and the label
//! `app.kubernetes.io/managed-by: kf-serve`. Only children with that owner
//! reference are ever applied over or deleted; a child name held by any
//! other object stops the reconcile with a condition.

use serde_json::{Value, json};

use super::status::{self, Readiness};
use crate::autoscale::KpaConfig;
use crate::kserve::InferenceService;
use crate::kserve::inference_service::{API_VERSION, KIND};
use crate::{Error, Result};

/// Label on every child: the InferenceService it belongs to (KServe's).
pub const INFERENCESERVICE_LABEL: &str = "serving.kserve.io/inferenceservice";
/// Label on every child and pod: the component (KServe's).
pub const COMPONENT_LABEL: &str = "component";
/// Label key marking a child as created by this controller.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`], and the default field manager.
pub const MANAGER: &str = "kf-serve";
/// Annotation on the Deployment: the storage URI of the rolled-out
/// (stable) revision. It is the controller's memory of the previous
/// revision while a canary runs.
pub const ROLLED_OUT_ANNOTATION: &str = "serving.kf-rs.dev/rolled-out-storage-uri";
/// Annotation on the pod template while a canary runs: the canary's share,
/// so that a new split rolls the pods (see [`TRAFFIC_FLAG`]).
pub const CANARY_PERCENT_ANNOTATION: &str = "serving.kf-rs.dev/canary-traffic-percent";
/// Where the storage initializer puts the models and `kf serve` reads them:
/// `<MODEL_DIR>/<isvc name>/<version>/model.onnx`.
pub const MODEL_DIR: &str = "/mnt/models";
/// The port `kf serve` listens on in the pod.
pub const CONTAINER_PORT: i64 = 8080;
/// The mount path of the traffic ConfigMap.
pub const TRAFFIC_DIR: &str = "/etc/kf-serve";
/// The key of the traffic ConfigMap (and the file name under [`TRAFFIC_DIR`]).
pub const TRAFFIC_FILE: &str = "traffic.json";
/// The `kf serve` flag that reads the canary split; `kf serve` must
/// implement it (see the module documentation of [`super`]).
pub const TRAFFIC_FLAG: &str = "--traffic";
/// Annotation on every child: a digest of what the controller applied
/// ([`digest`]). Comparing fields finds drift but not a field the
/// InferenceService stopped asking for (a removed `env` or `resources`);
/// the digest changes then, so the child is applied and server-side apply
/// drops the field.
pub const DIGEST_ANNOTATION: &str = "serving.kf-rs.dev/applied-digest";
/// KServe's name of the volume holding the downloaded models.
const MODEL_VOLUME: &str = "kserve-provision-location";
const TRAFFIC_VOLUME: &str = "traffic";

/// What the children are made of: the images and what `kf serve` can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    /// The image with the `kf` binary; the container runs `kf serve`.
    pub image: String,
    /// KServe's storage initializer image (`args: [storageUri, dest]`).
    pub storage_initializer_image: String,
    /// Model formats the image's `kf serve` loads; a predictor of another
    /// format gets a `NoSupportingRuntime` condition.
    pub model_formats: Vec<String>,
}

impl Default for RenderConfig {
    fn default() -> Self {
        RenderConfig {
            image: "ghcr.io/kf-rs/kf:latest".into(),
            storage_initializer_image: "kserve/storage-initializer:v0.15.2".into(),
            model_formats: vec!["onnx".into()],
        }
    }
}

/// The children the API server has for an InferenceService, as it returned
/// them (`None`: 404).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The Deployment `<name>-predictor`.
    pub deployment: Option<Value>,
    /// The Service `<name>-predictor`.
    pub service: Option<Value>,
    /// The ConfigMap `<name>-predictor-traffic`.
    pub traffic: Option<Value>,
}

impl Observed {
    fn all(&self) -> impl Iterator<Item = &Value> {
        [&self.deployment, &self.service, &self.traffic].into_iter().flatten()
    }

    fn same_as(&self, like: &Value) -> Option<&Value> {
        let key = child_key(like);
        self.all().find(|o| child_key(o).1 == key.1 && child_key(o).2 == key.2)
    }
}

/// `(apiVersion, kind, name)` of an object.
pub fn child_key(object: &Value) -> (&str, &str, &str) {
    let text = |p: &str| object.pointer(p).and_then(Value::as_str).unwrap_or_default();
    (text("/apiVersion"), text("/kind"), text("/metadata/name"))
}

/// A child to delete: only ever one this InferenceService owns, and only
/// if it is still the object observed (the uid is a precondition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef {
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Name, in the InferenceService's namespace.
    pub name: String,
    /// The observed uid.
    pub uid: String,
}

/// When the shell should reconcile the InferenceService again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// On the next change of the InferenceService or a child.
    AwaitChange,
    /// After a backoff: a child name is held by an object this controller
    /// does not watch for.
    Retry,
    /// After the autoscaling interval: recommendations change without
    /// watch events.
    Rescale,
}

/// What one reconcile must do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Every child the InferenceService should have, in apply order
    /// (traffic ConfigMap, Deployment, Service).
    pub desired: Vec<Value>,
    /// The desired children that differ from the observed ones.
    pub apply: Vec<Value>,
    /// Children of ours that are no longer wanted (the traffic ConfigMap
    /// after a canary ends).
    pub delete: Vec<ChildRef>,
    /// The status fields this controller owns, when they differ from the
    /// InferenceService's.
    pub status: Option<Value>,
    /// When to look again.
    pub next: Next,
}

impl Plan {
    /// Nothing to do until the InferenceService changes.
    pub fn idle() -> Plan {
        Plan { desired: Vec::new(), apply: Vec::new(), delete: Vec::new(), status: None, next: Next::AwaitChange }
    }

    /// Whether the plan writes anything.
    pub fn writes(&self) -> bool {
        !self.apply.is_empty() || !self.delete.is_empty() || self.status.is_some()
    }
}

/// One model revision: a storage URI, named after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRevision {
    /// `<name>-predictor-<8 hex digits of the URI's FNV-1a hash>`.
    pub name: String,
    /// Where the model is.
    pub storage_uri: String,
}

impl ModelRevision {
    fn new(isvc: &str, storage_uri: &str) -> ModelRevision {
        let hash = storage_uri.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        ModelRevision { name: format!("{isvc}-predictor-{hash:08x}"), storage_uri: storage_uri.into() }
    }
}

/// Which revisions serve and how traffic is split between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The rolled-out revision (model version `1`).
    pub stable: ModelRevision,
    /// The canary (model version `2`) and its share in percent, while one runs.
    pub canary: Option<(ModelRevision, u8)>,
}

/// The rollout of an InferenceService whose predictor's storage URI is
/// `latest`, with `canaryTrafficPercent` `percent`, when `rolled_out` is
/// the storage URI of the Deployment's rolled-out revision (if any).
///
/// As KServe: without a percent (or at 100) the latest revision is rolled
/// out and takes all traffic; with one, the previous rolled-out revision
/// keeps `100 - percent` and the latest gets `percent` (0 pins all traffic
/// to the previous revision). The first revision always takes everything:
/// there is nothing to split with. O(1).
///
/// ```
/// use kf_serve::controller::plan::rollout;
/// let r = rollout("flowers", "gs://m/flowers-2", Some(10), Some("gs://m/flowers"));
/// assert_eq!(r.stable.storage_uri, "gs://m/flowers");
/// assert_eq!(r.canary.map(|(rev, p)| (rev.storage_uri, p)), Some(("gs://m/flowers-2".into(), 10)));
/// assert!(rollout("flowers", "gs://m/flowers-2", None, Some("gs://m/flowers")).canary.is_none());
/// ```
pub fn rollout(name: &str, latest: &str, percent: Option<i64>, rolled_out: Option<&str>) -> Rollout {
    let latest_revision = ModelRevision::new(name, latest);
    match (percent.and_then(|p| u8::try_from(p).ok()).filter(|p| *p < 100), rolled_out) {
        (Some(p), Some(stable)) if stable != latest => {
            Rollout { stable: ModelRevision::new(name, stable), canary: Some((latest_revision, p)) }
        }
        _ => Rollout { stable: latest_revision, canary: None },
    }
}

/// How the Deployment's replicas are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scaling {
    /// A fixed count: `minReplicas`, at least 1.
    Fixed(u32),
    /// The KPA's recommendation within `[min, max]` (`max` 0: unbounded).
    Kpa {
        /// Lower bound, at least 1.
        min: u32,
        /// Upper bound; 0 means none.
        max: u32,
    },
    /// Another autoscaler (HPA, KEDA, external) owns `spec.replicas`: the
    /// controller does not write it.
    External,
}

impl Scaling {
    /// The replicas to write: the recommendation, else the Deployment's
    /// current count, else the lower bound — always within the bounds.
    pub fn replicas(self, recommendation: Option<u32>, current: Option<u32>) -> Option<u32> {
        match self {
            Scaling::Fixed(n) => Some(n),
            Scaling::Kpa { min, max } => {
                let want = recommendation.or(current).unwrap_or(min).max(min);
                Some(if max == 0 { want } else { want.min(max) })
            }
            Scaling::External => None,
        }
    }
}

const KNATIVE: &str = "autoscaling.knative.dev/";

/// How `isvc`'s predictor is scaled. KPA when it asks for it: the
/// `autoscaling.knative.dev/class` annotation is the KPA's, a
/// `autoscaling.knative.dev/target` or `metric` annotation is set, or
/// `scaleMetric` is `concurrency` or `rps`; then the bounds come from
/// [`KpaConfig::for_predictor`] (whose errors name the field). External
/// when KServe's `serving.kserve.io/autoscalerClass` is `hpa`, `keda` or
/// `external`. Otherwise a fixed `minReplicas` (default 1). Raw
/// deployments have no activator to wake a service at zero, so the lower
/// bound is at least 1.
pub fn scaling(isvc: &InferenceService) -> Result<Scaling> {
    let annotations = isvc.metadata.as_ref().and_then(|m| m.annotations.clone()).unwrap_or_default();
    let predictor = isvc.predictor();
    if matches!(
        annotations.get("serving.kserve.io/autoscalerClass").map(String::as_str),
        Some("hpa" | "keda" | "external")
    ) {
        return Ok(Scaling::External);
    }
    let kpa = annotations.get(&format!("{KNATIVE}class")).is_some_and(|c| c == "kpa.autoscaling.knative.dev")
        || annotations.contains_key(&format!("{KNATIVE}target"))
        || annotations.contains_key(&format!("{KNATIVE}metric"))
        || predictor.and_then(|p| p.scale_metric.as_deref()).is_some_and(|m| matches!(m, "concurrency" | "rps"));
    if kpa {
        let config = KpaConfig::for_predictor(isvc)?;
        return Ok(Scaling::Kpa { min: config.min_replicas.max(1), max: config.max_replicas });
    }
    let min = predictor.and_then(|p| p.min_replicas).unwrap_or(1);
    Ok(Scaling::Fixed(u32::try_from(min).unwrap_or(1).max(1)))
}

/// What the predictor serves: the storage URI, or why `kf serve` cannot
/// serve it, as an error naming the field.
pub fn supported_storage_uri<'a>(isvc: &'a InferenceService, config: &RenderConfig) -> Result<&'a str> {
    let unsupported = |path: &str, message: String| Err(Error::Invalid { path: path.into(), message });
    let spec = isvc.spec.as_ref();
    if spec.is_some_and(|s| s.transformer.is_some()) {
        return unsupported("spec.transformer", "kf serves the predictor only; transformers are not supported".into());
    }
    if spec.is_some_and(|s| s.explainer.is_some()) {
        return unsupported("spec.explainer", "kf serves the predictor only; explainers are not supported".into());
    }
    let Some(predictor) = isvc.predictor() else {
        return unsupported("spec.predictor", "an InferenceService needs a predictor".into());
    };
    let Some((key, model)) = predictor.model_implementations().into_iter().next() else {
        return unsupported(
            "spec.predictor.containers",
            "custom containers are not supported: the predictor runs `kf serve` on a storageUri".into(),
        );
    };
    let (format, format_path) = match model.model_format.as_ref() {
        Some(f) => (f.name.as_str(), format!("spec.predictor.{key}.modelFormat.name")),
        None => (key, format!("spec.predictor.{key}")),
    };
    if !config.model_formats.iter().any(|f| f == format) {
        return unsupported(
            &format_path,
            format!("kf serve loads {} models, not {format:?}", config.model_formats.join(", ")),
        );
    }
    if let Some(protocol) = model.protocol_version.as_deref().filter(|p| *p != "v2") {
        return unsupported(
            &format!("spec.predictor.{key}.protocolVersion"),
            format!("kf serve speaks the v2 REST protocol, not {protocol:?}"),
        );
    }
    match model.storage_uri.as_deref() {
        Some(uri) if !uri.is_empty() => Ok(uri),
        _ if predictor.extra.contains_key("storageUris") => {
            unsupported("spec.predictor.storageUris", "several storage URIs are not supported; set storageUri".into())
        }
        _ => unsupported(&format!("spec.predictor.{key}.storageUri"), "the model to serve is required".into()),
    }
}

/// The InferenceService's uid: owner references need it.
fn uid(isvc: &InferenceService) -> Result<&str> {
    isvc.metadata
        .as_ref()
        .and_then(|m| m.extra.get("uid"))
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::Invalid {
            path: "metadata.uid".into(),
            message: "an InferenceService read from the API server has a uid; without one its children cannot \
                      name their owner"
                .into(),
        })
}

/// The name of the Deployment and Service of `isvc`'s predictor.
pub fn predictor_name(isvc: &str) -> String {
    format!("{isvc}-predictor")
}

/// The name of the traffic ConfigMap.
pub fn traffic_name(isvc: &str) -> String {
    format!("{isvc}-predictor-traffic")
}

/// The cluster-local URL of the predictor's Service.
pub fn predictor_url(isvc: &str, namespace: &str) -> String {
    format!("http://{}.{namespace}.svc.cluster.local", predictor_name(isvc))
}

fn metadata(name: &str, namespace: &str, labels: &Value, owner: &Value) -> Value {
    let mut meta = json!({"name": name, "labels": labels, "ownerReferences": [owner]});
    if !namespace.is_empty() {
        meta["namespace"] = json!(namespace);
    }
    meta
}

/// The traffic file `kf serve --traffic` reads: which model versions are
/// the stable and the canary revision, and the canary's share.
pub fn traffic_document(isvc: &str, stable: &ModelRevision, canary: &ModelRevision, percent: u8) -> Value {
    json!({
        "model": isvc,
        "stable": {"version": "1", "revision": stable.name, "storageUri": stable.storage_uri},
        "canary": {"version": "2", "revision": canary.name, "storageUri": canary.storage_uri},
        "canaryPercent": percent,
    })
}

/// The children of `isvc` for `rollout` with `replicas` (`None`: not
/// written): the traffic ConfigMap while a canary runs, the Deployment
/// running `kf serve` behind a storage initializer per revision, and the
/// Service (port 80 → 8080). Fails naming the field when `isvc` has no uid.
pub fn desired_children(
    isvc: &InferenceService,
    rollout: &Rollout,
    replicas: Option<u32>,
    config: &RenderConfig,
) -> Result<Vec<Value>> {
    let uid = uid(isvc)?;
    let name = isvc.name().unwrap_or_default();
    let namespace = isvc.metadata.as_ref().and_then(|m| m.namespace.as_deref()).unwrap_or_default();
    let predictor = predictor_name(name);
    let owner = json!({
        "apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    });
    let selector = json!({INFERENCESERVICE_LABEL: name, COMPONENT_LABEL: "predictor"});
    let mut labels = selector.clone();
    labels[MANAGED_BY_LABEL] = json!(MANAGER);
    let mut children = Vec::new();

    let model_dir = format!("{MODEL_DIR}/{name}");
    let initializer = |container: &str, revision: &ModelRevision, version: &str| {
        json!({
            "name": container,
            "image": config.storage_initializer_image,
            "args": [revision.storage_uri, format!("{model_dir}/{version}")],
            "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": MODEL_DIR}],
        })
    };
    let mut init_containers = vec![initializer("storage-initializer", &rollout.stable, "1")];
    let mut args = vec![
        json!("serve"),
        json!("--model-repository"),
        json!(MODEL_DIR),
        json!("--addr"),
        json!(format!("0.0.0.0:{CONTAINER_PORT}")),
    ];
    let mut mounts = vec![json!({"name": MODEL_VOLUME, "mountPath": MODEL_DIR, "readOnly": true})];
    let mut volumes = vec![json!({"name": MODEL_VOLUME, "emptyDir": {}})];
    let mut template_meta = json!({"labels": labels});
    if let Some((canary, percent)) = &rollout.canary {
        let traffic = traffic_name(name);
        let document = traffic_document(name, &rollout.stable, canary, *percent);
        children.push(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": metadata(&traffic, namespace, &labels, &owner),
            "data": {TRAFFIC_FILE: document.to_string()},
        }));
        init_containers.push(initializer("storage-initializer-canary", canary, "2"));
        args.push(json!(TRAFFIC_FLAG));
        args.push(json!(format!("{TRAFFIC_DIR}/{TRAFFIC_FILE}")));
        mounts.push(json!({"name": TRAFFIC_VOLUME, "mountPath": TRAFFIC_DIR, "readOnly": true}));
        volumes.push(json!({"name": TRAFFIC_VOLUME, "configMap": {"name": traffic}}));
        template_meta["annotations"] = json!({CANARY_PERCENT_ANNOTATION: percent.to_string()});
    }
    let mut container = json!({
        "name": "kserve-container",
        "image": config.image,
        "command": ["kf"],
        "args": args,
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": CONTAINER_PORT}},
        "volumeMounts": mounts,
    });
    let component = isvc.predictor();
    let model = component.and_then(|p| p.model_implementations().into_iter().next()).map(|(_, m)| m);
    for field in ["resources", "env"] {
        if let Some(value) = model.and_then(|m| m.extra.get(field)) {
            container[field] = value.clone();
        }
    }
    let mut pod = json!({"initContainers": init_containers, "containers": [container], "volumes": volumes});
    for field in ["serviceAccountName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"] {
        if let Some(value) = component.and_then(|p| p.extra.get(field)) {
            pod[field] = value.clone();
        }
    }
    let mut deployment_meta = metadata(&predictor, namespace, &labels, &owner);
    deployment_meta["annotations"] = json!({ROLLED_OUT_ANNOTATION: rollout.stable.storage_uri});
    let mut spec = json!({
        "selector": {"matchLabels": selector},
        "template": {"metadata": template_meta, "spec": pod},
    });
    if let Some(n) = replicas {
        spec["replicas"] = json!(i32::try_from(n).unwrap_or(i32::MAX));
    }
    children.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": deployment_meta, "spec": spec}));
    children.push(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": metadata(&predictor, namespace, &labels, &owner),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": CONTAINER_PORT, "protocol": "TCP"}],
        },
    }));
    for child in &mut children {
        let digest = digest(child);
        if let Some(meta) = child.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            annotations[DIGEST_ANNOTATION] = json!(digest);
        }
    }
    Ok(children)
}

/// FNV-1a (64 bits, 16 hex digits) of the object's JSON text: stable for
/// equal documents built the same way, which is all the controller needs
/// to notice that what it would apply has changed. O(size).
pub fn digest(object: &Value) -> String {
    let hash = object
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

/// Whether this controller reconciles `isvc` at all: not being deleted
/// (the children go with it through their owner references) and not
/// asking for ModelMesh, which another controller serves.
pub fn acts_on(isvc: &InferenceService) -> bool {
    let meta = isvc.metadata.as_ref();
    let deleting = meta.is_some_and(|m| m.extra.get("deletionTimestamp").is_some_and(|t| !t.is_null()));
    let mode = meta.and_then(|m| m.annotations.as_ref()).and_then(|a| a.get("serving.kserve.io/deploymentMode"));
    !deleting && mode.is_none_or(|m| m != "ModelMesh")
}

/// Decides one reconcile of `isvc`. `recommendation` is the autoscaler's
/// replica count for it, if any; `now` (RFC 3339) stamps conditions that
/// change. O(size of the InferenceService and the observed children).
///
/// In order: an InferenceService this controller does not act on
/// ([`acts_on`]) gets [`Plan::idle`]; one that fails
/// [`InferenceService::validate`] or asks for autoscaler settings
/// [`scaling`] rejects gets `Ready` `False` (`InvalidSpec`), one
/// `kf serve` cannot serve gets `Ready` `False` (`NoSupportingRuntime`),
/// both naming the field and waiting for an edit; a child name held by an
/// object it does not own is `Ready` `False` (`ChildNotOwned`) and a
/// [`Next::Retry`], with nothing applied; otherwise the children that
/// differ from the observed ones are applied, a traffic ConfigMap of ours
/// that is no longer wanted is deleted, and the status follows the
/// Deployment.
///
/// Idempotent: when the observed children are the applied ones (plus
/// whatever the server adds) and the InferenceService holds the returned
/// status, the next plan writes nothing.
pub fn reconcile_plan(
    isvc: &InferenceService,
    observed: &Observed,
    recommendation: Option<u32>,
    config: &RenderConfig,
    now: &str,
) -> Plan {
    if !acts_on(isvc) {
        return Plan::idle();
    }
    if let Err(err) = isvc.validate() {
        return invalid_plan(isvc, &err, now);
    }
    let latest = match supported_storage_uri(isvc, config) {
        Ok(uri) => uri,
        Err(err) => return failed_plan(isvc, status::NO_SUPPORTING_RUNTIME, &err, Next::AwaitChange, now),
    };
    let scaling = match scaling(isvc) {
        Ok(scaling) => scaling,
        Err(err) => return invalid_plan(isvc, &err, now),
    };
    let name = isvc.name().unwrap_or_default();
    let deployment = observed.deployment.as_ref();
    let rolled_out = deployment
        .and_then(|d| d.pointer("/metadata/annotations"))
        .and_then(|a| a.get(ROLLED_OUT_ANNOTATION))
        .and_then(Value::as_str);
    let percent = isvc.predictor().and_then(|p| p.canary_traffic_percent);
    let rollout = rollout(name, latest, percent, rolled_out);
    let current = deployment.and_then(|d| d.pointer("/spec/replicas")).and_then(Value::as_u64);
    let replicas = scaling.replicas(recommendation, current.and_then(|c| u32::try_from(c).ok()));
    let desired = match desired_children(isvc, &rollout, replicas, config) {
        Ok(desired) => desired,
        Err(err) => return failed_plan(isvc, status::INVALID_SPEC, &err, Next::AwaitChange, now),
    };
    let uid = uid(isvc).unwrap_or_default();
    let foreign = desired.iter().filter_map(|d| observed.same_as(d)).find(|o| !owned_by(o, uid));
    if let Some(foreign) = foreign {
        let (_, kind, child) = child_key(foreign);
        let err = Error::Invalid {
            path: format!("{kind} {child:?}"),
            message: "exists and is not owned by this InferenceService; it is left alone".into(),
        };
        return failed_plan(isvc, status::CHILD_NOT_OWNED, &err, Next::Retry, now);
    }
    let apply: Vec<Value> =
        desired.iter().filter(|d| observed.same_as(d).is_none_or(|o| !is_subset(d, o))).cloned().collect();
    let delete: Vec<ChildRef> = observed
        .traffic
        .iter()
        .filter(|t| owned_by(t, uid) && desired.iter().all(|d| child_key(d).1 != "ConfigMap"))
        .map(|t| ChildRef {
            kind: "ConfigMap".into(),
            name: child_key(t).2.to_string(),
            uid: t.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or_default().to_string(),
        })
        .collect();
    let mut readiness = Readiness::of(deployment, &predictor_name(name));
    // A Deployment applied now rolls out a template the observed status
    // does not describe yet.
    readiness.rolled_out &= !apply.iter().any(|a| child_key(a).1 == "Deployment");
    let wanted = status::serving(isvc, &rollout, &readiness, now);
    let next = if matches!(scaling, Scaling::Kpa { .. }) { Next::Rescale } else { Next::AwaitChange };
    Plan { desired, apply, delete, status: status::changed(isvc, wanted), next }
}

/// The plan for an InferenceService that fails validation (or does not even
/// read as one: the shell passes a stub with its metadata and status):
/// `Ready` `False` (`InvalidSpec`) with a message that starts with the
/// field's path, and no children. Waits for an edit.
pub fn invalid_plan(isvc: &InferenceService, err: &Error, now: &str) -> Plan {
    failed_plan(isvc, status::INVALID_SPEC, err, Next::AwaitChange, now)
}

fn failed_plan(isvc: &InferenceService, reason: &str, err: &Error, next: Next, now: &str) -> Plan {
    let wanted = status::failed(isvc, reason, &err.to_string(), now);
    Plan { status: status::changed(isvc, wanted), next, ..Plan::idle() }
}

/// Whether `object` has an owner reference to the InferenceService with `uid`.
pub fn owned_by(object: &Value, uid: &str) -> bool {
    !uid.is_empty()
        && object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|o| o.get("uid").and_then(Value::as_str) == Some(uid))
}

/// Whether every field `desired` sets has that value in `observed`: the
/// fields a server-side apply manages. Fields the server adds (defaults,
/// status, resourceVersion) do not count; arrays must match element by
/// element; numbers compare by value; an empty object or array matches an
/// absent field; resource `limits` and `requests` compare as quantities
/// (the server writes `cpu: 1000m` or `cpu: 1` back as `"1"`). O(size of
/// `desired`).
///
/// ```
/// use kf_serve::controller::plan::is_subset;
/// use serde_json::json;
/// let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
/// let observed = json!({"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}]}, "status": {}});
/// assert!(is_subset(&desired, &observed));
/// assert!(!is_subset(&json!({"spec": {"replicas": 3}}), &observed));
/// let limits = json!({"resources": {"limits": {"cpu": 1, "memory": "1024Mi"}}});
/// assert!(is_subset(&limits, &json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})));
/// ```
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    subset_at(desired, observed, false)
}

fn subset_at(desired: &Value, observed: &Value, quantities: bool) -> bool {
    let quantity = |v: &Value| match v {
        Value::String(s) => crate::quantity::milli_units(s),
        Value::Number(n) => n.as_i64().and_then(|n| i128::from(n).checked_mul(1000)),
        _ => None,
    };
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d.iter().all(|(k, v)| match o.get(k) {
            Some(w) => subset_at(v, w, quantities || k == "limits" || k == "requests"),
            None => is_empty(v),
        }),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(v, w)| subset_at(v, w, false))
        }
        (Value::Number(a), Value::Number(b)) if a == b || a.as_f64() == b.as_f64() => true,
        (d, o) if d == o || (is_empty(d) && o.is_null()) => true,
        (d, o) => quantities && quantity(d).is_some_and(|q| Some(q) == quantity(o)),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// An InferenceService that does not read as one: its metadata and status,
/// so that the condition naming the field can be written.
pub fn stub(document: &Value) -> InferenceService {
    let metadata = document.get("metadata").cloned().and_then(|m| serde_json::from_value(m).ok());
    InferenceService {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata,
        spec: None,
        status: document.get("status").cloned(),
        extra: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::{CHILD_NOT_OWNED, DEPLOYMENT_UNAVAILABLE, NO_SUPPORTING_RUNTIME, READY};
    use proptest::prelude::*;

    const UID: &str = "uid-1";

    fn isvc_with(predictor: Value, annotations: Value) -> InferenceService {
        let doc = json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "flowers", "namespace": "team-a", "uid": UID, "generation": 1, "annotations": annotations},
            "spec": {"predictor": predictor},
        });
        InferenceService::from_value(doc).unwrap_or_else(|e| panic!("{e}"))
    }

    fn isvc(uri: &str, percent: Option<i64>) -> InferenceService {
        let mut predictor = json!({"onnx": {"storageUri": uri}});
        if let Some(p) = percent {
            predictor["canaryTrafficPercent"] = json!(p);
        }
        isvc_with(predictor, json!({}))
    }

    fn plan(isvc: &InferenceService, observed: &Observed, recommendation: Option<u32>) -> Plan {
        reconcile_plan(isvc, observed, recommendation, &RenderConfig::default(), "t1")
    }

    /// What the API server returns for applied children: the applied fields
    /// plus some of its own; a Deployment with `available` replicas.
    fn as_server_returns(children: &[Value], available: i64) -> Observed {
        let mut observed = Observed::default();
        for child in children {
            let mut c = child.clone();
            c["metadata"]["uid"] = json!(format!("child-{}", child_key(child).1));
            c["metadata"]["resourceVersion"] = json!("7");
            match child_key(child).1 {
                "Deployment" => {
                    c["spec"]["strategy"] = json!({"type": "RollingUpdate"});
                    c["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
                        json!("/dev/termination-log");
                    c["metadata"]["generation"] = json!(2);
                    c["status"] = json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                                         "availableReplicas": available});
                    observed.deployment = Some(c);
                }
                "Service" => {
                    c["spec"]["clusterIP"] = json!("10.0.0.7");
                    c["spec"]["type"] = json!("ClusterIP");
                    observed.service = Some(c);
                }
                _ => observed.traffic = Some(c),
            }
        }
        observed
    }

    /// The InferenceService holding the plan's status, and its children as
    /// the server returns them.
    fn settle(isvc: &InferenceService, plan: &Plan, available: i64) -> (InferenceService, Observed) {
        let mut settled = isvc.clone();
        if let Some(status) = &plan.status {
            settled.status = Some(status.clone());
        }
        (settled, as_server_returns(&plan.desired, available))
    }

    fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
        status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == type_))
            .unwrap_or_else(|| panic!("no {type_} in {status}"))
    }

    #[test]
    fn first_plan_applies_deployment_and_service_and_reports_not_ready() {
        let isvc = isvc("gs://m/flowers", None);
        let first = plan(&isvc, &Observed::default(), None);
        let kinds: Vec<&str> = first.apply.iter().map(|c| child_key(c).1).collect();
        assert_eq!(kinds, ["Deployment", "Service"]);
        assert_eq!(first.apply, first.desired);
        let deployment = &first.desired[0];
        assert_eq!(child_key(deployment).2, "flowers-predictor");
        assert_eq!(deployment["spec"]["replicas"], 1);
        assert_eq!(deployment["metadata"]["ownerReferences"][0]["uid"], UID);
        assert_eq!(deployment["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(deployment["metadata"]["labels"][INFERENCESERVICE_LABEL], "flowers");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["initContainers"][0]["args"], json!(["gs://m/flowers", "/mnt/models/flowers/1"]));
        assert_eq!(
            pod["containers"][0]["args"],
            json!(["serve", "--model-repository", "/mnt/models", "--addr", "0.0.0.0:8080"])
        );
        assert_eq!(
            first.desired[1]["spec"]["ports"][0],
            json!({"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"})
        );
        let status = first.status.unwrap_or_default();
        assert_eq!(status["url"], "http://flowers-predictor.team-a.svc.cluster.local");
        assert_eq!(condition(&status, READY)["reason"], DEPLOYMENT_UNAVAILABLE);
        assert_eq!(status["components"]["predictor"]["traffic"][0]["percent"], 100);
        assert_eq!(status["observedGeneration"], 1);
        assert_eq!(first.next, Next::AwaitChange);
    }

    #[test]
    fn an_available_deployment_makes_the_service_ready_and_nothing_else_changes() {
        let isvc = isvc("gs://m/flowers", None);
        let first = plan(&isvc, &Observed::default(), None);
        let (settled, observed) = settle(&isvc, &first, 1);
        let second = plan(&settled, &observed, None);
        assert!(second.apply.is_empty() && second.delete.is_empty());
        let status = second.status.unwrap_or_default();
        assert_eq!(condition(&status, READY), &json!({"type": "Ready", "status": "True", "lastTransitionTime": "t1"}));
        let predictor = &status["components"]["predictor"];
        assert_eq!(predictor["latestReadyRevision"], predictor["latestCreatedRevision"]);
    }

    #[test]
    fn a_canary_serves_both_revisions_from_one_deployment() {
        let (settled, observed) = {
            let v1 = isvc("gs://m/flowers", None);
            let first = plan(&v1, &Observed::default(), None);
            settle(&v1, &first, 1)
        };
        let mut v2 = isvc("gs://m/flowers-2", Some(10));
        v2.status = settled.status.clone();
        let canary = plan(&v2, &observed, None);
        let kinds: Vec<&str> = canary.apply.iter().map(|c| child_key(c).1).collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment"], "the Service is unchanged");
        let traffic: Value = serde_json::from_str(canary.desired[0]["data"][TRAFFIC_FILE].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(traffic["stable"]["storageUri"], "gs://m/flowers");
        assert_eq!(traffic["canary"]["storageUri"], "gs://m/flowers-2");
        assert_eq!(traffic["canaryPercent"], 10);
        let deployment = &canary.desired[1];
        assert_eq!(deployment["metadata"]["annotations"][ROLLED_OUT_ANNOTATION], "gs://m/flowers");
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["initContainers"][1]["args"], json!(["gs://m/flowers-2", "/mnt/models/flowers/2"]));
        let args = pod["containers"][0]["args"].as_array().cloned().unwrap_or_default();
        assert_eq!(args[5..], [json!("--traffic"), json!("/etc/kf-serve/traffic.json")]);
        let status = canary.status.clone().unwrap_or_default();
        let split = &status["components"]["predictor"]["traffic"];
        assert_eq!((split[0]["percent"].clone(), split[0]["tag"].clone()), (json!(90), json!("prev")));
        assert_eq!((split[1]["percent"].clone(), split[1]["latestRevision"].clone()), (json!(10), json!(true)));

        // Promotion: no percent any more. The latest is rolled out, and our
        // traffic ConfigMap goes.
        let (settled, observed) = settle(&v2, &canary, 1);
        let mut promoted = isvc("gs://m/flowers-2", None);
        promoted.status = settled.status;
        let done = plan(&promoted, &observed, None);
        assert_eq!(
            done.delete,
            [ChildRef {
                kind: "ConfigMap".into(),
                name: "flowers-predictor-traffic".into(),
                uid: "child-ConfigMap".into()
            }]
        );
        assert_eq!(done.apply.len(), 1);
        assert_eq!(done.apply[0]["metadata"]["annotations"][ROLLED_OUT_ANNOTATION], "gs://m/flowers-2");
    }

    #[test]
    fn resources_the_server_writes_back_canonical_are_not_a_change() {
        let resources = json!({"limits": {"cpu": 1, "memory": "1024Mi"}, "requests": {"cpu": "500m"}});
        let isvc = isvc_with(json!({"onnx": {"storageUri": "gs://m", "resources": resources}}), json!({}));
        let first = plan(&isvc, &Observed::default(), None);
        assert_eq!(first.desired[0]["spec"]["template"]["spec"]["containers"][0]["resources"], resources);
        let (settled, mut observed) = settle(&isvc, &first, 1);
        if let Some(d) = observed.deployment.as_mut() {
            d["spec"]["template"]["spec"]["containers"][0]["resources"] =
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}});
        }
        let second = plan(&settled, &observed, None);
        assert!(second.apply.is_empty(), "{:?}", second.apply);
    }

    #[test]
    fn a_field_the_inference_service_no_longer_sets_is_a_change() {
        let with_env =
            isvc_with(json!({"onnx": {"storageUri": "gs://m", "env": [{"name": "A", "value": "1"}]}}), json!({}));
        let first = plan(&with_env, &Observed::default(), None);
        let (settled, observed) = settle(&with_env, &first, 1);
        let mut without = isvc("gs://m", None);
        without.status = settled.status;
        let second = plan(&without, &observed, None);
        assert_eq!(second.apply.iter().map(|c| child_key(c).1).collect::<Vec<_>>(), ["Deployment"]);
        assert!(second.apply[0]["spec"]["template"]["spec"]["containers"][0].get("env").is_none());
    }

    #[test]
    fn a_canary_of_the_first_revision_takes_all_traffic() {
        let r = rollout("m", "s3://a", Some(20), None);
        assert!(r.canary.is_none());
        assert_eq!(r.stable.storage_uri, "s3://a");
        assert!(rollout("m", "s3://a", Some(20), Some("s3://a")).canary.is_none());
        assert_eq!(rollout("m", "s3://b", Some(0), Some("s3://a")).canary.map(|c| c.1), Some(0));
    }

    #[test]
    fn a_child_held_by_a_foreign_object_is_a_condition_not_a_takeover() {
        let isvc = isvc("gs://m/flowers", None);
        let first = plan(&isvc, &Observed::default(), None);
        let mut observed = as_server_returns(&first.desired, 1);
        if let Some(service) = observed.service.as_mut() {
            service["metadata"]["ownerReferences"] = json!([{"kind": "Deployment", "name": "x", "uid": "other"}]);
        }
        let blocked = plan(&isvc, &observed, None);
        assert!(blocked.apply.is_empty() && blocked.delete.is_empty());
        assert_eq!(blocked.next, Next::Retry);
        let status = blocked.status.unwrap_or_default();
        assert_eq!(condition(&status, READY)["reason"], CHILD_NOT_OWNED);
        assert!(
            condition(&status, READY)["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Service \"flowers-predictor\"")
        );
    }

    #[test]
    fn a_foreign_traffic_config_map_is_never_deleted() {
        let isvc = isvc("gs://m/flowers", None);
        let foreign = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flowers-predictor-traffic", "uid": "u"}});
        let observed = Observed { traffic: Some(foreign), ..Observed::default() };
        assert!(plan(&isvc, &observed, None).delete.is_empty());
    }

    #[test]
    fn predictors_kf_serve_cannot_run_get_a_condition_naming_the_field() {
        let cases = [
            (json!({"tensorflow": {"storageUri": "gs://m"}}), "spec.predictor.tensorflow: kf serve loads onnx models"),
            (
                json!({"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "gs://m"}}),
                "spec.predictor.model.modelFormat.name:",
            ),
            (
                json!({"onnx": {"storageUri": "gs://m", "protocolVersion": "v1"}}),
                "spec.predictor.onnx.protocolVersion:",
            ),
            (json!({"onnx": {}}), "spec.predictor.onnx.storageUri:"),
            (json!({"containers": [{"name": "kserve-container", "image": "x"}]}), "spec.predictor.containers:"),
        ];
        for (predictor, prefix) in cases {
            let p = plan(&isvc_with(predictor, json!({})), &Observed::default(), None);
            assert!(p.apply.is_empty());
            let status = p.status.unwrap_or_default();
            let ready = condition(&status, READY);
            assert_eq!(ready["reason"], NO_SUPPORTING_RUNTIME);
            assert!(ready["message"].as_str().unwrap_or_default().starts_with(prefix), "{ready}");
        }
    }

    #[test]
    fn scaling_reads_the_autoscaler_asked_for() {
        let onnx = json!({"storageUri": "gs://m"});
        let fixed = isvc_with(json!({"onnx": onnx, "minReplicas": 3}), json!({}));
        assert_eq!(scaling(&fixed).ok(), Some(Scaling::Fixed(3)));
        let zero = isvc_with(json!({"onnx": onnx, "minReplicas": 0}), json!({}));
        assert_eq!(scaling(&zero).ok(), Some(Scaling::Fixed(1)));
        let kpa = isvc_with(json!({"onnx": onnx, "minReplicas": 2, "maxReplicas": 5, "scaleMetric": "rps"}), json!({}));
        assert_eq!(scaling(&kpa).ok(), Some(Scaling::Kpa { min: 2, max: 5 }));
        let class =
            isvc_with(json!({"onnx": onnx}), json!({"autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev"}));
        assert_eq!(scaling(&class).ok(), Some(Scaling::Kpa { min: 1, max: 0 }));
        let hpa = isvc_with(
            json!({"onnx": onnx}),
            json!({"serving.kserve.io/deploymentMode": "RawDeployment", "serving.kserve.io/autoscalerClass": "hpa"}),
        );
        assert_eq!(scaling(&hpa).ok(), Some(Scaling::External));
        let p = plan(&hpa, &Observed::default(), None);
        assert!(p.desired[0]["spec"].get("replicas").is_none(), "the HPA owns spec.replicas");
        let bad = isvc_with(json!({"onnx": onnx}), json!({"autoscaling.knative.dev/target": "lots"}));
        let p = plan(&bad, &Observed::default(), None);
        let status = p.status.unwrap_or_default();
        assert_eq!(condition(&status, READY)["reason"], "InvalidSpec");
        assert!(
            condition(&status, READY)["message"]
                .as_str()
                .unwrap_or_default()
                .starts_with("metadata.annotations.autoscaling.knative.dev/target:")
        );
    }

    #[test]
    fn kpa_replicas_follow_the_recommendation_within_bounds() {
        let kpa = isvc_with(
            json!({"onnx": {"storageUri": "gs://m"}, "minReplicas": 2, "maxReplicas": 5, "scaleMetric": "concurrency"}),
            json!({}),
        );
        let replicas = |rec| plan(&kpa, &Observed::default(), rec).desired[0]["spec"]["replicas"].clone();
        assert_eq!(replicas(None), 2);
        assert_eq!(replicas(Some(4)), 4);
        assert_eq!(replicas(Some(50)), 5);
        assert_eq!(replicas(Some(0)), 2);
        assert_eq!(plan(&kpa, &Observed::default(), None).next, Next::Rescale);
    }

    #[test]
    fn deleting_or_model_mesh_services_are_left_alone() {
        let mut deleting = isvc("gs://m", None);
        if let Some(m) = deleting.metadata.as_mut() {
            m.extra.insert("deletionTimestamp".into(), json!("2026-12-07T00:00:00Z"));
        }
        assert_eq!(plan(&deleting, &Observed::default(), None), Plan::idle());
        let mesh = isvc_with(
            json!({"onnx": {"storageUri": "gs://m"}}),
            json!({"serving.kserve.io/deploymentMode": "ModelMesh"}),
        );
        assert_eq!(plan(&mesh, &Observed::default(), None), Plan::idle());
    }

    fn scaled(percent: Option<i64>, min: i64, max: i64, kpa: bool) -> InferenceService {
        let mut predictor = json!({"onnx": {"storageUri": "gs://m/v2"}, "minReplicas": min, "maxReplicas": max});
        if let Some(p) = percent {
            predictor["canaryTrafficPercent"] = json!(p);
        }
        if kpa {
            predictor["scaleMetric"] = json!("concurrency");
        }
        isvc_with(predictor, json!({}))
    }

    proptest! {
        /// Applying a plan's children and status, as the server returns
        /// them, leaves nothing to write — from any earlier rollout.
        #[test]
        fn plans_are_idempotent(
            percent in prop::option::of(0i64..=100),
            earlier in prop::option::of(prop::sample::select(vec!["gs://m/v1", "gs://m/v2"])),
            min in 0i64..4,
            extra in 0i64..4,
            kpa in any::<bool>(),
            recommendation in prop::option::of(0u32..20),
            available in 0i64..3,
        ) {
            let isvc = scaled(percent, min, min + extra, kpa);
            let observed = match earlier {
                Some(uri) => {
                    let before = plan(&isvc_with(json!({"onnx": {"storageUri": uri}}), json!({})), &Observed::default(), None);
                    as_server_returns(&before.desired, 1)
                }
                None => Observed::default(),
            };
            let first = plan(&isvc, &observed, recommendation);
            let (settled, observed) = settle(&isvc, &first, available);
            let second = plan(&settled, &observed, recommendation);
            let (settled, observed) = settle(&settled, &second, available);
            let third = plan(&settled, &observed, recommendation);
            prop_assert!(!third.writes(), "{:?}", third);
            prop_assert_eq!(third.desired, second.desired);
        }

        /// Replicas are always within [max(min, 1), max] (max 0: unbounded).
        #[test]
        fn replicas_stay_within_bounds(
            min in 0i64..6,
            extra in prop::option::of(0i64..6),
            kpa in any::<bool>(),
            recommendation in prop::option::of(0u32..100),
            current in prop::option::of(0i64..100),
        ) {
            let max = extra.map_or(0, |e| min + e);
            let isvc = scaled(None, min, max, kpa);
            let mut observed = as_server_returns(&plan(&isvc, &Observed::default(), None).desired, 1);
            if let (Some(d), Some(c)) = (observed.deployment.as_mut(), current) {
                d["spec"]["replicas"] = json!(c);
            }
            let p = plan(&isvc, &observed, recommendation);
            let replicas = p.desired.iter().find(|d| child_key(d).1 == "Deployment")
                .and_then(|d| d["spec"]["replicas"].as_i64()).unwrap_or(-1);
            prop_assert!(replicas >= min.max(1), "{} < {}", replicas, min);
            prop_assert!(max == 0 || replicas <= max, "{} > {}", replicas, max);
        }

        /// Only children owned by this InferenceService are ever deleted or
        /// applied over.
        #[test]
        fn never_touches_what_it_does_not_own(
            percent in prop::option::of(0i64..=100),
            owners in prop::collection::vec(prop::sample::select(vec![UID, "someone-else"]), 3),
        ) {
            let isvc = scaled(percent, 1, 0, false);
            let canary = isvc_with(json!({"onnx": {"storageUri": "gs://m/v3"}, "canaryTrafficPercent": 50}), json!({}));
            let mut observed = as_server_returns(&plan(&isvc_with(json!({"onnx": {"storageUri": "gs://m/v1"}}), json!({})), &Observed::default(), None).desired, 1);
            let with_canary = plan(&canary, &observed, None);
            observed = as_server_returns(&with_canary.desired, 1);
            for (child, owner) in [&mut observed.deployment, &mut observed.service, &mut observed.traffic].into_iter().zip(&owners) {
                if let Some(c) = child.as_mut() {
                    c["metadata"]["ownerReferences"] = json!([{"uid": owner}]);
                }
            }
            let p = plan(&isvc, &observed, None);
            for d in &p.delete {
                let found = observed.all().find(|o| child_key(o).1 == d.kind && child_key(o).2 == d.name);
                prop_assert!(found.is_some_and(|o| owned_by(o, UID)));
            }
            for a in &p.apply {
                prop_assert!(observed.same_as(a).is_none_or(|o| owned_by(o, UID)));
            }
        }
    }
}
