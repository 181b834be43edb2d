//! A Profile reconciler on kube-runtime (feature `controller`).
//!
//! It applies what [`crate::render`] makes of each kubeflow.org/v1 Profile
//! (Namespace, ServiceAccounts, RoleBindings, ResourceQuota, Istio
//! AuthorizationPolicies) with server-side apply under the field manager
//! `kf-tenancy`, keeps contributors' bindings in step with a
//! [`PolicyStore`](crate::PolicyStore), and on deletion removes its children
//! through the `kf.dev/profile-cleanup` finalizer.
//!
//! - [`plan`]: the pure core, (Profile, contributors, observed children) →
//!   [`Plan`]. Unit- and property-tested without a cluster.
//! - [`reconciler`]: the IO shell ([`Context`], [`reconcile`],
//!   [`error_policy`], [`run`]), tested against kube's mock service.
//!
//! The controller never deletes an object without both its
//! `app.kubernetes.io/managed-by: kf-tenancy` label and an owner reference to
//! the Profile, and never takes over a namespace another Profile (or anyone)
//! owns: that is a `Ready=False` condition. A Profile failing validation
//! gets a condition naming the field and is not retried until it changes.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kf_tenancy::MemoryPolicyStore;
//! use kf_tenancy::controller::{Context, ControllerConfig, run_with};
//!
//! # async fn start() -> Result<(), kube::Error> {
//! let client = kube::Client::try_default().await?;
//! let store = Arc::new(MemoryPolicyStore::new());
//! let ctx = Context::new(client, ControllerConfig::default()).with_contributors(store);
//! run_with(Arc::new(ctx)).await;
//! # Ok(())
//! # }
//! ```

pub mod plan;
pub mod reconciler;

pub use plan::{
    ChildRef, FINALIZER, MANAGED_BY_LABEL, MANAGER, Outcome, Plan, cleanup_plan, desired_children, is_ours,
    reconcile_plan,
};
pub use reconciler::{
    Context, ControllerConfig, authorization_policy_resource, controller, error_policy, profile_resource, reconcile,
    run, run_with,
};
