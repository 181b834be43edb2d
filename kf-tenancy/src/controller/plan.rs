//! The reconciler's decisions, as a pure function: (Profile, contributors,
//! observed children) → [`Plan`] (objects to apply, our stale objects to
//! delete, the status to write). Nothing here talks to an API server; the
//! shell in [`super::reconciler`] observes, calls [`reconcile_plan`] and
//! carries the plan out.
//!
//! Ownership is explicit: every child the plan applies carries the label
//! `app.kubernetes.io/managed-by: kf-tenancy` and an owner reference to the
//! Profile (by uid). Only objects with both are ever planned for deletion.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::profile::{Condition, Profile, ProfileStatus};
use crate::render::{RenderConfig, render};
use crate::role::Role;
use crate::subject::Subject;
use crate::{Error, Quantity, Result};

/// The label key marking a child as created by this controller.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The field manager of every write, and the value of [`MANAGED_BY_LABEL`].
pub const MANAGER: &str = "kf-tenancy";
/// The finalizer that holds a deleted Profile until its children are gone.
pub const FINALIZER: &str = "kf.dev/profile-cleanup";
/// The condition type this controller owns in `status.conditions`.
pub const READY: &str = "Ready";
/// The Istio security API the controller applies policies with.
///
/// The rendering writes `security.istio.io/v1beta1`, which every Istio
/// release serves and `kf tenancy render` keeps for older meshes; the
/// controller talks to the GA `v1` (Istio ≥ 1.22), which has the same schema.
pub const ISTIO_SECURITY_API: &str = "security.istio.io/v1";

/// Identifies one child object: API group, kind, namespace and name.
///
/// The version and uid are kept for requests but ignored by equality: a
/// policy listed through `v1` is the same object as one rendered as `v1beta1`.
#[derive(Debug, Clone)]
pub struct ChildRef {
    /// `apiVersion` (group/version, or just the version for the core group).
    pub api_version: String,
    /// Kind, e.g. `RoleBinding`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects (the Namespace).
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
    /// The uid observed, if any: a delete is made conditional on it, so an
    /// object recreated by someone else under the same name is never hit.
    pub uid: Option<String>,
}

impl ChildRef {
    /// Reads the reference of a Kubernetes object; `None` when it lacks a
    /// kind or a name.
    pub fn of(object: &Value) -> Option<ChildRef> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        Some(ChildRef {
            api_version: object.get("apiVersion").and_then(text).unwrap_or_default(),
            kind: object.get("kind").and_then(text)?,
            namespace: object.pointer("/metadata/namespace").and_then(text).filter(|n| !n.is_empty()),
            name: object.pointer("/metadata/name").and_then(text)?,
            uid: object.pointer("/metadata/uid").and_then(text),
        })
    }

    /// The API group: what precedes `/` in the apiVersion, empty for core.
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(group, _)| group)
    }

    fn key(&self) -> (&str, &str, Option<&str>, &str) {
        (self.group(), &self.kind, self.namespace.as_deref(), &self.name)
    }
}

impl PartialEq for ChildRef {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for ChildRef {}
impl PartialOrd for ChildRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ChildRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Why a plan looks the way it does; the shell turns it into a requeue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The children match the Profile (after the plan is carried out).
    Ready,
    /// The Profile fails validation at `path`; nothing is applied or deleted
    /// until it is edited.
    Invalid {
        /// Dotted path of the offending field.
        path: String,
    },
    /// The namespace exists and is not owned by this Profile: not taken over.
    NamespaceTaken,
}

/// What one reconcile must do.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Objects to server-side apply, in order (the namespace first). Only
    /// those whose observed state differs on the fields we manage.
    pub apply: Vec<Value>,
    /// Objects of ours that are no longer wanted (e.g. a removed
    /// contributor's binding), in deletion order.
    pub delete: Vec<ChildRef>,
    /// The Profile's new status, when it differs from the current one.
    pub status: Option<ProfileStatus>,
    /// The verdict behind the plan.
    pub outcome: Outcome,
}

impl Plan {
    /// Whether carrying the plan out changes nothing.
    pub fn is_empty(&self) -> bool {
        self.apply.is_empty() && self.delete.is_empty() && self.status.is_none()
    }
}

/// The Profile's uid: owner references need it, so a Profile without one
/// (never stored by an API server) cannot own anything.
fn profile_uid(profile: &Profile) -> Result<&str> {
    profile
        .metadata
        .as_ref()
        .and_then(|m| m.extra.get("uid"))
        .and_then(Value::as_str)
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| Error::Invalid {
            path: "metadata.uid".into(),
            message: "a Profile read from the API server has a uid; this one has none".into(),
        })
}

/// The children `profile` reconciles into: the rendering, each object marked
/// as ours (label and owner reference) and Istio policies on
/// [`ISTIO_SECURITY_API`].
pub fn desired_children(
    profile: &Profile,
    contributors: &[(Subject, Role)],
    config: &RenderConfig,
) -> Result<Vec<Value>> {
    let uid = profile_uid(profile)?.to_string();
    let mut objects = render(profile, contributors, config)?;
    let owner = json!({
        "apiVersion": profile.api_version,
        "kind": "Profile",
        "name": profile.namespace().unwrap_or_default(),
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    });
    for object in &mut objects {
        if object.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("security.istio.io/")) {
            object["apiVersion"] = Value::String(ISTIO_SECURITY_API.into());
        }
        let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        let labels = metadata.entry("labels").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(labels) = labels {
            labels.insert(MANAGED_BY_LABEL.into(), Value::String(MANAGER.into()));
        }
        // The rendering sets owner references when the profile has a uid,
        // except on contributors' objects (KFAM creates those unowned); the
        // controller owns everything it creates so cleanup can find it.
        metadata.entry("ownerReferences").or_insert_with(|| Value::Array(vec![owner.clone()]));
    }
    Ok(objects)
}

/// Whether the object carries an owner reference to the Profile with `uid`.
fn owned_by(object: &Value, uid: &str) -> bool {
    object.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| {
        refs.iter().any(|r| {
            r.get("kind").and_then(Value::as_str) == Some("Profile")
                && r.get("uid").and_then(Value::as_str) == Some(uid)
        })
    })
}

/// Whether `object` is ours to delete: it has our managed-by label, an owner
/// reference to this Profile, and lives in the Profile's namespace (or is it).
pub fn is_ours(object: &Value, profile: &Profile) -> bool {
    let Ok(uid) = profile_uid(profile) else { return false };
    let Some(namespace) = profile.namespace() else { return false };
    let labelled = object.pointer("/metadata/labels").and_then(|l| l.get(MANAGED_BY_LABEL)).and_then(Value::as_str)
        == Some(MANAGER);
    let Some(child) = ChildRef::of(object) else { return false };
    let placed = match &child.namespace {
        Some(ns) => ns == namespace,
        None => child.kind == "Namespace" && child.group().is_empty() && child.name == namespace,
    };
    labelled && placed && owned_by(object, uid)
}

/// Whether `observed` already holds every field `desired` sets, with the
/// same values. Fields the server adds (uid, defaults, status) are ignored;
/// lists must match element by element; quota amounts (under `hard`) compare
/// as quantities, since the server writes them back canonical (`1000m` → `1`).
pub fn covers(observed: &Value, desired: &Value) -> bool {
    covers_at(observed, desired, false)
}

fn covers_at(observed: &Value, desired: &Value, quantities: bool) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d.iter().all(|(k, dv)| match o.get(k) {
            Some(ov) => covers_at(ov, dv, quantities || k == "hard"),
            None => dv.is_null(),
        }),
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(ov, dv)| covers_at(ov, dv, false))
        }
        (Value::String(o), Value::String(d)) if quantities && o != d => {
            matches!((Quantity::parse(o), Quantity::parse(d)), (Ok(a), Ok(b)) if a == b)
        }
        _ => observed == desired,
    }
}

/// A `Ready` condition. Only `type`, `status` and `message`: the Profile
/// CRD's structural schema has no other condition fields, so the API server
/// would prune a `reason` or `lastTransitionTime`, the next reconcile would
/// see the status differ, and write it again forever.
fn condition(status: bool, message: String) -> Condition {
    Condition {
        type_: Some(READY.into()),
        status: Some(if status { "True" } else { "False" }.into()),
        message: Some(message),
        extra: Default::default(),
    }
}

/// The status with our `Ready` condition replaced by `ready`, other
/// conditions and fields kept; `None` when that is the current status.
pub fn status_with(current: Option<&ProfileStatus>, ready: Condition) -> Option<ProfileStatus> {
    let mut status = current.cloned().unwrap_or_default();
    let mut conditions: Vec<Condition> = status
        .conditions
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.type_.as_deref() != Some(READY))
        .collect();
    conditions.push(ready);
    status.conditions = Some(conditions);
    (Some(&status) != current).then_some(status)
}

/// The condition for a Profile that failed validation: it names the field.
pub fn invalid_condition(error: &Error) -> (Condition, Outcome) {
    let path = match error {
        Error::Invalid { path, .. } => path.clone(),
        _ => String::new(),
    };
    (condition(false, error.to_string()), Outcome::Invalid { path })
}

/// Decides what one reconcile of `profile` does, given its contributors and
/// the `observed` objects: the profile's Namespace (if it exists) and the
/// objects labelled as ours in it. O((d + o) log(d + o)) for d desired and o
/// observed objects.
///
/// - A Profile failing validation gets a `Ready=False` condition naming the
///   field; nothing is applied or deleted.
/// - A Namespace that exists without an owner reference to this Profile is
///   not taken over: a condition, nothing applied.
/// - Otherwise: apply each desired object the observed one does not
///   [`covers`], delete each observed object [`is_ours`] that is no longer
///   desired, and set `Ready=True`.
pub fn reconcile_plan(
    profile: &Profile,
    contributors: &[(Subject, Role)],
    observed: &[Value],
    config: &RenderConfig,
) -> Plan {
    let current = profile.status.as_ref();
    let desired = match desired_children(profile, contributors, config) {
        Ok(desired) => desired,
        Err(error) => {
            let (ready, outcome) = invalid_condition(&error);
            return Plan { apply: vec![], delete: vec![], status: status_with(current, ready), outcome };
        }
    };
    let namespace = profile.namespace().unwrap_or_default();
    let uid = profile_uid(profile).unwrap_or_default();
    let taken = observed.iter().any(|o| {
        ChildRef::of(o).is_some_and(|c| c.kind == "Namespace" && c.namespace.is_none() && c.name == namespace)
            && !owned_by(o, uid)
    });
    if taken {
        let message = format!(
            "namespace {namespace:?} exists and is not owned by this Profile; it is left alone \
             (delete it or choose another Profile name)"
        );
        return Plan {
            apply: vec![],
            delete: vec![],
            status: status_with(current, condition(false, message)),
            outcome: Outcome::NamespaceTaken,
        };
    }

    let observed_by_ref: std::collections::BTreeMap<ChildRef, &Value> =
        observed.iter().filter_map(|o| ChildRef::of(o).map(|r| (r, o))).collect();
    let wanted: BTreeSet<ChildRef> = desired.iter().filter_map(ChildRef::of).collect();
    let apply = desired
        .into_iter()
        .filter(|d| {
            let current = ChildRef::of(d).and_then(|r| observed_by_ref.get(&r).copied());
            !current.is_some_and(|o| covers(o, d))
        })
        .collect();
    let delete = observed_by_ref
        .iter()
        .filter(|(r, o)| !wanted.contains(r) && r.kind != "Namespace" && is_ours(o, profile))
        .map(|(r, _)| r.clone())
        .collect();
    let message = format!("namespace {namespace:?} and its objects match the Profile");
    Plan { apply, delete, status: status_with(current, condition(true, message)), outcome: Outcome::Ready }
}

/// What to delete when the Profile is deleted: every observed object that
/// [`is_ours`], namespaced objects first (by group, kind and name) and the
/// Namespace last. Objects
/// without our label or owner reference are never in the list.
pub fn cleanup_plan(profile: &Profile, observed: &[Value]) -> Vec<ChildRef> {
    let mut ours: Vec<ChildRef> = observed.iter().filter(|o| is_ours(o, profile)).filter_map(ChildRef::of).collect();
    ours.sort_by(|a, b| (a.namespace.is_none(), a).cmp(&(b.namespace.is_none(), b)));
    ours.dedup();
    ours
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UID: &str = "6f0c2b0e-0000-4000-8000-000000000001";

    fn profile(name: &str, spec: Value) -> Profile {
        let doc = json!({"apiVersion": "kubeflow.org/v1", "kind": "Profile",
                         "metadata": {"name": name, "uid": UID}, "spec": spec});
        Profile::from_value(doc).unwrap_or_else(|e| panic!("test profile: {e}"))
    }

    fn alice() -> Profile {
        profile("team-a", json!({"owner": {"kind": "User", "name": "alice@example.com"}}))
    }

    fn bob() -> (Subject, Role) {
        (Subject::User("bob@example.com".into()), Role::Edit)
    }

    /// What an API server holds after a server-side apply of `desired` on
    /// `current`: desired fields merged in, lists replaced, the rest kept.
    fn merge(current: &mut Value, desired: &Value) {
        match (current, desired) {
            (Value::Object(c), Value::Object(d)) => {
                for (k, dv) in d {
                    merge(c.entry(k.clone()).or_insert(Value::Null), dv);
                }
            }
            (c, d) => *c = d.clone(),
        }
    }

    /// Carries a plan out against a simulated cluster.
    fn carry_out(plan: &Plan, profile: &mut Profile, cluster: &mut Vec<Value>) {
        for object in &plan.apply {
            let target = ChildRef::of(object);
            match cluster.iter_mut().find(|o| ChildRef::of(o) == target) {
                Some(current) => merge(current, object),
                None => cluster.push(object.clone()),
            }
        }
        cluster.retain(|o| ChildRef::of(o).is_none_or(|r| !plan.delete.contains(&r)));
        if let Some(status) = &plan.status {
            profile.status = Some(status.clone());
        }
    }

    fn kinds(objects: &[Value]) -> Vec<String> {
        objects.iter().map(|o| format!("{}/{}", o["kind"].as_str().unwrap_or("?"), o["metadata"]["name"])).collect()
    }

    #[test]
    fn first_plan_applies_everything_marked_as_ours() {
        let plan = reconcile_plan(&alice(), &[bob()], &[], &RenderConfig::default());
        assert_eq!(plan.outcome, Outcome::Ready);
        assert_eq!(plan.apply[0]["kind"], "Namespace", "the namespace comes first");
        assert_eq!(plan.apply.len(), 9, "{:?}", kinds(&plan.apply));
        for object in &plan.apply {
            assert_eq!(object["metadata"]["labels"][MANAGED_BY_LABEL], MANAGER);
            assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], UID);
            assert!(is_ours(object, &alice()), "{object}");
        }
        let policies: Vec<_> = plan.apply.iter().filter(|o| o["kind"] == "AuthorizationPolicy").collect();
        assert!(policies.iter().all(|p| p["apiVersion"] == ISTIO_SECURITY_API));
        assert!(plan.delete.is_empty());
        let ready = &plan.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default()[0];
        assert_eq!((ready.type_.as_deref(), ready.status.as_deref()), (Some(READY), Some("True")));
    }

    #[test]
    fn a_converged_profile_plans_nothing_even_with_server_fields_and_status() {
        let mut p = alice();
        let mut cluster = vec![];
        let first = reconcile_plan(&p, &[], &cluster, &RenderConfig::default());
        carry_out(&first, &mut p, &mut cluster);
        for object in &mut cluster {
            object["metadata"]["uid"] = json!("server-assigned");
            object["metadata"]["resourceVersion"] = json!("42");
            object["status"] = json!({"phase": "Active"});
        }
        assert!(reconcile_plan(&p, &[], &cluster, &RenderConfig::default()).is_empty());
    }

    #[test]
    fn drifted_children_are_reapplied_alone() {
        let mut p = alice();
        let mut cluster = vec![];
        carry_out(&reconcile_plan(&p, &[], &cluster, &RenderConfig::default()), &mut p, &mut cluster);
        let editor =
            cluster.iter_mut().find(|o| o["metadata"]["name"] == "default-editor" && o["kind"] == "RoleBinding");
        if let Some(editor) = editor {
            editor["roleRef"]["name"] = json!("cluster-admin");
        }
        let plan = reconcile_plan(&p, &[], &cluster, &RenderConfig::default());
        assert_eq!(kinds(&plan.apply), ["RoleBinding/\"default-editor\""]);
        assert!(plan.delete.is_empty() && plan.status.is_none());
    }

    #[test]
    fn removed_contributors_lose_their_binding_and_policy_but_foreign_bindings_stay() {
        let mut p = alice();
        let mut cluster = vec![];
        carry_out(&reconcile_plan(&p, &[bob()], &cluster, &RenderConfig::default()), &mut p, &mut cluster);
        // a binding KFAM made by hand: same shape, no label of ours
        cluster.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "user-carol-example-com-clusterrole-kubeflow-view", "namespace": "team-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeflow-view"}}));
        let plan = reconcile_plan(&p, &[], &cluster, &RenderConfig::default());
        let name = "user-bob-example-com-clusterrole-kubeflow-edit";
        let deleted: Vec<_> = plan.delete.iter().map(|r| (r.kind.as_str(), r.name.as_str())).collect();
        assert_eq!(deleted, [("RoleBinding", name), ("AuthorizationPolicy", name)]); // by API group
        assert!(plan.apply.is_empty());
    }

    #[test]
    fn invalid_profiles_get_a_condition_naming_the_field_and_nothing_else() {
        let mut p = profile("team-a", json!({"owner": {"kind": "Robot", "name": "r"}}));
        let cluster = [json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a",
            "labels": {MANAGED_BY_LABEL: MANAGER}, "ownerReferences": [{"kind": "Profile", "uid": UID}]}})];
        let plan = reconcile_plan(&p, &[], &cluster, &RenderConfig::default());
        assert_eq!(plan.outcome, Outcome::Invalid { path: "spec.owner.kind".into() });
        assert!(plan.apply.is_empty() && plan.delete.is_empty());
        let status = plan.status.clone().unwrap_or_default();
        let message = status.conditions.as_ref().and_then(|c| c[0].message.clone()).unwrap_or_default();
        assert!(message.starts_with("spec.owner.kind:"), "{message}");
        p.status = Some(status);
        assert!(reconcile_plan(&p, &[], &cluster, &RenderConfig::default()).is_empty(), "written once");

        let template = profile("${PROFILE_NAME}", json!({"owner": {"kind": "User", "name": "u"}}));
        let plan = reconcile_plan(&template, &[], &[], &RenderConfig::default());
        assert_eq!(plan.outcome, Outcome::Invalid { path: "metadata.name".into() });
        let mut no_uid = alice();
        if let Some(m) = no_uid.metadata.as_mut() {
            m.extra.clear();
        }
        assert_eq!(
            reconcile_plan(&no_uid, &[], &[], &RenderConfig::default()).outcome,
            Outcome::Invalid { path: "metadata.uid".into() }
        );
    }

    #[test]
    fn a_namespace_owned_by_someone_else_is_not_taken_over() {
        let cluster = [json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {MANAGED_BY_LABEL: MANAGER}}})];
        let plan = reconcile_plan(&alice(), &[], &cluster, &RenderConfig::default());
        assert_eq!(plan.outcome, Outcome::NamespaceTaken);
        assert!(plan.apply.is_empty() && plan.delete.is_empty());
        let conditions = plan.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(conditions[0].message.as_deref().is_some_and(|m| m.contains("not owned by this Profile")));
        assert!(conditions[0].extra.is_empty(), "only fields the CRD schema keeps");
    }

    #[test]
    fn other_conditions_and_status_fields_are_kept() {
        let mut p = alice();
        p.status = Some(ProfileStatus {
            conditions: Some(vec![Condition { type_: Some("Failed".into()), ..Condition::default() }]),
            extra: [("note".to_string(), json!(1))].into_iter().collect(),
        });
        let status = reconcile_plan(&p, &[], &[], &RenderConfig::default()).status.unwrap_or_default();
        let types: Vec<_> = status.conditions.iter().flatten().map(|c| c.type_.clone().unwrap_or_default()).collect();
        assert_eq!(types, ["Failed", READY]);
        assert_eq!(status.extra["note"], 1);
    }

    #[test]
    fn cleanup_deletes_only_ours_namespace_last() {
        let mut p = alice();
        let mut cluster = vec![];
        carry_out(&reconcile_plan(&p, &[bob()], &cluster, &RenderConfig::default()), &mut p, &mut cluster);
        cluster.push(json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "mine", "namespace": "team-a", "ownerReferences": [{"kind": "Profile", "uid": UID}]}}));
        let plan = cleanup_plan(&p, &cluster);
        assert_eq!(plan.len(), cluster.len() - 1, "everything but the unlabelled account");
        assert!(plan.iter().all(|r| r.name != "mine"));
        assert_eq!(plan.last().map(|r| r.kind.as_str()), Some("Namespace"));
    }

    #[test]
    fn quota_amounts_compare_as_quantities() {
        let desired = json!({"spec": {"hard": {"cpu": "1", "memory": "1073741824"}}, "metadata": {"name": "1"}});
        let canonical = json!({"spec": {"hard": {"cpu": "1000m", "memory": "1Gi"}}, "metadata": {"name": "1"}});
        assert!(covers(&canonical, &desired));
        assert!(!covers(
            &json!({"spec": {"hard": {"cpu": "2", "memory": "1Gi"}}, "metadata": {"name": "1"}}),
            &desired
        ));
        assert!(!covers(&json!({"spec": canonical["spec"], "metadata": {"name": "1.0"}}), &desired), "only under hard");
    }

    #[test]
    fn child_refs_compare_by_group_not_version() {
        let a = ChildRef::of(&json!({"apiVersion": "security.istio.io/v1beta1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "p", "namespace": "n"}}));
        let b = ChildRef::of(&json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "p", "namespace": "n"}}));
        assert!(a.is_some() && a == b);
        assert_eq!(ChildRef::of(&json!({"kind": "X"})), None);
    }

    fn arb_subject() -> impl Strategy<Value = Subject> {
        prop_oneof![
            "[a-z]{1,6}@ex\\.com".prop_map(Subject::User),
            "[a-z]{1,6}".prop_map(Subject::Group),
            ("[a-z]{1,4}", "[a-z]{1,4}").prop_map(|(namespace, name)| Subject::ServiceAccount { namespace, name }),
        ]
    }

    fn arb_role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Admin), Just(Role::Edit), Just(Role::View)]
    }

    fn arb_profile() -> impl Strategy<Value = Profile> {
        let owner = prop_oneof![
            "[a-z]{1,6}@ex\\.com".prop_map(|n| json!({"kind": "User", "name": n})),
            "[a-z]{1,6}".prop_map(|n| json!({"kind": "Group", "name": n})),
            Just(json!({"kind": "Robot", "name": "r"})),
        ];
        let quota = prop::option::of(prop_oneof![Just(json!({"cpu": "2"})), Just(json!({"memory": "1Gi", "pods": 3}))]);
        (owner, quota, "[a-z]{1,5}").prop_map(|(owner, quota, name)| {
            let mut spec = json!({"owner": owner});
            if let Some(hard) = quota {
                spec["resourceQuotaSpec"] = json!({"hard": hard});
            }
            profile(&name, spec)
        })
    }

    /// Objects a cluster may hold in the namespace: ours, unlabelled
    /// look-alikes, labelled but owned by another Profile.
    fn arb_foreign(namespace: String) -> impl Strategy<Value = Value> {
        let kind = prop_oneof![
            Just(("rbac.authorization.k8s.io/v1", "RoleBinding")),
            Just(("v1", "ServiceAccount")),
            Just(("security.istio.io/v1", "AuthorizationPolicy")),
        ];
        (kind, "[a-z]{1,4}", any::<bool>(), any::<bool>()).prop_map(move |((api, kind), name, labelled, owned)| {
            let mut meta = json!({"name": name, "namespace": namespace});
            if labelled {
                meta["labels"] = json!({MANAGED_BY_LABEL: MANAGER});
            }
            let uid = if owned { UID } else { "another-profile" };
            meta["ownerReferences"] = json!([{"kind": "Profile", "uid": uid}]);
            json!({"apiVersion": api, "kind": kind, "metadata": meta})
        })
    }

    fn arb_case() -> impl Strategy<Value = (Profile, Vec<(Subject, Role)>, Vec<Value>)> {
        arb_profile().prop_flat_map(|p| {
            let ns = p.namespace().unwrap_or_default().to_string();
            let contributors = prop::collection::vec((arb_subject(), arb_role()), 0..4);
            (Just(p), contributors, prop::collection::vec(arb_foreign(ns), 0..6))
        })
    }

    proptest! {
        #[test]
        fn carrying_out_a_plan_converges((mut p, contributors, mut cluster) in arb_case()) {
            let config = RenderConfig::default();
            let first = reconcile_plan(&p, &contributors, &cluster, &config);
            carry_out(&first, &mut p, &mut cluster);
            let second = reconcile_plan(&p, &contributors, &cluster, &config);
            prop_assert!(second.is_empty(), "not idempotent: {second:?}");
        }

        #[test]
        fn never_plans_to_delete_what_is_not_ours((mut p, contributors, mut cluster) in arb_case(),
                                                   dropped in 0usize..4) {
            let config = RenderConfig::default();
            carry_out(&reconcile_plan(&p, &contributors, &cluster, &config), &mut p, &mut cluster);
            let fewer = &contributors[..contributors.len().saturating_sub(dropped)];
            let plan = reconcile_plan(&p, fewer, &cluster, &config);
            for target in plan.delete.iter().chain(&cleanup_plan(&p, &cluster)) {
                let object = cluster.iter().find(|o| ChildRef::of(o).as_ref() == Some(target));
                prop_assert!(object.is_some_and(|o| is_ours(o, &p)
                    && o["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGER), "{target:?}");
            }
        }
    }
}
