//! # kf-registry — model registry
//!
//! The domain of Kubeflow Model Registry (registered models, versions, artifacts,
//! serving environments, inference services, experiments and runs, with their
//! `customProperties`), a [`RegistryStore`] trait with in-memory, SQLite and
//! PostgreSQL implementations that share one conformance suite, the `filterQuery`
//! grammar compiled to parameterised SQL, and a REST API compatible with the
//! upstream OpenAPI spec (`model-registry.yaml`, v1alpha3) and its official
//! Python client.
//!
//! The domain, the filter language and the registry rules are IO-free; SQL and
//! HTTP are adapters. This crate never depends on another kf crate.
//!
//! ## Contents
//!
//! - [`model`]: the wire types ([`RegisteredModel`], [`ModelVersion`],
//!   [`Artifact`] and its five kinds, [`ServingEnvironment`],
//!   [`InferenceService`], [`ServeModel`], [`Experiment`], [`ExperimentRun`]),
//!   their states, list envelopes and the error body.
//! - [`metadata`]: [`MetadataValue`], the six typed `customProperties` values.
//! - [`filter`]: `filterQuery` text → [`filter::Expr`] (and back).
//! - [`query`]: resolved filters, order, keyset cursors — what a store is asked.
//! - [`record`]: what a store keeps ([`record::Record`]) and the searchable properties of a document.
//! - [`token`]: HMAC-signed `nextPageToken`s.
//! - [`store`]: the [`RegistryStore`] trait and the [`MemoryStore`].
//! - [`registry`]: [`Registry`], the API's rules over any store.
//! - [`sql`]: a resolved filter and list query → parameterised SQL text and bind values.
//! - [`testing`]: the conformance suite every store runs.
//! - `artifact_store` (feature `artifacts`, part of `server`): `ArtifactStore`,
//!   model files in any object_store backend under keys made of model id,
//!   version id and a checked file name.
//! - `sqlite` (feature `sqlite`): `SqliteStore`, the store on SQLite through sqlx.
//! - `postgres` (feature `postgres`): `PostgresStore`, the same store on
//!   PostgreSQL (and `testing::TempPostgres`, a throwaway server).
//! - `server` (feature `server`): the axum router for the REST API (both path
//!   prefixes), kf's file endpoints under `/api/kf_registry/v1`, and `serve`
//!   with graceful shutdown.
//!
//! ```
//! use kf_registry::{MemoryStore, ModelVersion, Registry, RegisteredModel};
//! use kf_registry::registry::{ListParams, Scope};
//!
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(async {
//!     let registry = Registry::new(MemoryStore::new());
//!     let model: RegisteredModel = registry.create(serde_json::json!({"name": "iris"}), None).await?;
//!     let id = model.id.clone().unwrap();
//!     let v1: ModelVersion = registry
//!         .create(serde_json::json!({"name": "1", "registeredModelId": id}), None)
//!         .await?;
//!     assert_eq!(v1.state, Some(kf_registry::model::LiveState::Live));
//!     let params = ListParams { filter_query: Some("name = '1'".into()), ..ListParams::default() };
//!     let page = registry.list::<ModelVersion>(&params, Scope::default()).await?;
//!     assert_eq!(page.items, vec![v1]);
//!     assert_eq!(page.next_page_token, "");
//!     Ok::<(), kf_registry::Error>(())
//! })?;
//! # Ok::<(), kf_registry::Error>(())
//! ```
#![deny(missing_docs)]

#[cfg(feature = "artifacts")]
pub mod artifact_store;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod driver;
mod error;
pub mod filter;
pub mod metadata;
pub mod model;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod query;
pub mod record;
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
pub mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod store;
pub mod testing;
pub mod token;

pub use error::{Error, Result};
pub use metadata::{CustomProperties, IntValue, MetadataValue};
pub use model::{
    Artifact, ArtifactState, DataSet, DocArtifact, Experiment, ExperimentRun, InferenceService, ListPage, Metric,
    ModelArtifact, ModelVersion, Parameter, RegisteredModel, ServeModel, ServingEnvironment, ToFromValue,
};
pub use registry::{Registry, Resource};
pub use store::{MemoryStore, RegistryStore};
