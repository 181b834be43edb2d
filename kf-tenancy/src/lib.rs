//! # kf-tenancy — multi-tenancy
//!
//! Kubeflow's tenancy model as a library: a [`Profile`] owns a namespace and
//! names its owner; contributors get the roles admin, edit or view; an
//! authorizer decides (subject, namespace, verb, resource) with a reason; identity
//! comes from trusted-proxy headers or a bearer token; an authorization layer any
//! axum router can wear; and a quota ledger.
//!
//! The authorizer and the profile model are plain data and functions; HTTP
//! extraction and storage are adapters. This crate never depends on another kf
//! crate: a namespace is a `String` here, as it is everywhere else.
//!
//! ## Contents
//!
//! - [`profile`]: the `Profile` wire type (kubeflow.org/v1), lossless and validated.
//! - [`role`]: roles, verbs and the [`RoleTable`] that connects them, as data.
//! - [`subject`]: who asks ([`Identity`]) and who is granted ([`Subject`]).
//! - [`authz`]: the pure [`Policy`] that decides requests and binding changes.
//! - [`store`]: the [`PolicyStore`] trait and its in-memory implementation;
//!   [`testing`] holds the conformance suite every store passes.
//! - [`service`]: [`Tenancy`], the store and the policy kept in step
//!   (decide, then store, then apply).
//! - [`quota`]: the [`QuotaLedger`] and [`Quantity`] arithmetic.
//! - [`artifact`]: each namespace's artifact prefix, and confinement of
//!   user-supplied URIs and paths to it.
//!
//! - [`identity`] (feature `server`): trusted-proxy headers, bearer JWTs and
//!   API tokens → [`Identity`].
//! - [`layer`] (feature `server`): the [`TenancyLayer`] any axum router can wear.
//! - [`outbound`] (feature `outbound`, part of `server`): the SSRF guard for
//!   URLs users ask a server to fetch.
//!
//! - [`sqlite`] (feature `sqlite`): the durable [`PolicyStore`] on SQLite.
//!
//! - [`render`] (feature `kube`): the Kubernetes objects a Profile
//!   reconciles into (namespace, service accounts, role bindings, quota, Istio
//!   policies).
//! - [`controller`] (feature `controller`): the Profile reconciler on
//!   kube-runtime that applies that rendering, with finalizer cleanup.
//!
//! ```
//! use kf_tenancy::Profile;
//!
//! let doc = serde_json::json!({
//!     "apiVersion": "kubeflow.org/v1",
//!     "kind": "Profile",
//!     "metadata": {"name": "team-a"},
//!     "spec": {"owner": {"kind": "User", "name": "alice@example.com"}},
//! });
//! let profile = Profile::from_value(doc.clone())?;
//! profile.validate()?;
//! assert_eq!(profile.namespace(), Some("team-a"));
//! assert_eq!(profile.to_value(), doc); // nothing lost, nothing invented
//! # Ok::<(), kf_tenancy::Error>(())
//! ```
#![deny(missing_docs)]
// The contents above link every module, some behind features; documented with
// fewer features (e.g. `--features controller`) those links cannot resolve.
#![cfg_attr(
    not(all(feature = "server", feature = "sqlite", feature = "kube", feature = "controller")),
    allow(rustdoc::broken_intra_doc_links)
)]

pub mod artifact;
pub mod authz;
#[cfg(feature = "controller")]
pub mod controller;
mod error;
#[cfg(feature = "server")]
pub mod identity;
#[cfg(feature = "server")]
pub mod layer;
#[cfg(feature = "outbound")]
pub mod outbound;
pub mod profile;
mod quantity;
pub mod quota;
#[cfg(feature = "kube")]
pub mod render;
pub mod role;
pub mod service;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod subject;
pub mod testing;

pub use authz::{Decision, Policy, Reason, Request, Standing};
pub use error::{Error, Result};
#[cfg(feature = "server")]
pub use identity::{ApiTokens, Authentication, Authenticator, JwtVerifier, ProxyTrust, VerificationKey};
#[cfg(feature = "server")]
pub use layer::{
    Access, AccessCheck, MakeTenancyService, PeerAddr, RequestHead, SharedPolicy, TenancyLayer, TenancyService,
};
pub use profile::Profile;
pub use quantity::{Quantity, is_quantity};
pub use quota::{Admission, QuotaLedger, ResourceList};
pub use role::{Role, RoleTable, Verb};
pub use service::Tenancy;
#[cfg(feature = "sqlite")]
pub use sqlite::SqlitePolicyStore;
pub use store::{MemoryPolicyStore, NamespaceRecord, PolicyStore, load_policy};
pub use subject::{Identity, Subject};
