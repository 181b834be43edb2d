//! # kf-registry — model registry
//!
//! The domain of Kubeflow Model Registry (registered models, versions, artifacts,
//! serving environments, inference services, experiments and runs, with their
//! `customProperties`), a `RegistryStore` trait with in-memory, SQLite and
//! Postgres implementations that share one conformance suite, the `filterQuery`
//! grammar compiled to parameterised SQL, and a REST API compatible with the
//! upstream OpenAPI spec and its Python client.
//!
//! The domain and the filter compiler are IO-free; SQL and HTTP are adapters.
//! This crate never depends on another kf crate.
//!
//! Status: the workspace foundation. The store and API land with the kf-registry
//! issue.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
