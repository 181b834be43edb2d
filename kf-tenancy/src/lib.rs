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
//! Status: the workspace foundation plus the `Profile` wire type
//! (kubeflow.org/v1), which `kf validate` and `kf fmt` use. Roles, the
//! authorizer and the layer land with the kf-tenancy issue.
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

mod error;
pub mod profile;
mod quantity;

pub use error::{Error, Result};
pub use profile::Profile;
pub use quantity::is_quantity;
