//! The registry's wire types, field for field as `model-registry.yaml`
//! (v1alpha3) writes them: ids and timestamps are decimal strings, every
//! optional field is an `Option` that is written only when set, and fields this
//! crate does not model are kept in `extra` and written back unchanged.
//!
//! One struct serves the `…Create`, `…Update` and full schemas of a kind: the
//! spec's three shapes differ only in which fields are required and which are
//! read-only, and [`crate::Registry`] enforces that per operation. This module
//! holds data and shape checks only; it never touches a store.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CustomProperties, Error, Result};

/// Fields a type does not model, written back as they were read.
pub type Extra = BTreeMap<String, Value>;

macro_rules! resource {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            /// Server-assigned id, a decimal string (output only).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub id: Option<String>,
            /// Client-chosen name; unique within the scope its kind defines.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            /// Id in the client's own system; unique per kind when set.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub external_id: Option<String>,
            /// Free-text description.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub description: Option<String>,
            /// User-defined properties.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub custom_properties: Option<CustomProperties>,
            /// Creation time, milliseconds since the epoch as a decimal string (output only).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub create_time_since_epoch: Option<String>,
            /// Last update time, milliseconds since the epoch as a decimal string (output only).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub last_update_time_since_epoch: Option<String>,
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            /// Fields kf does not model, kept verbatim.
            #[serde(flatten)]
            pub extra: Extra,
        }
    };
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )*
        }

        impl $name {
            /// Every value, in the spec's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
    };
}

wire_enum! {
    /// `RegisteredModelState` (also `ModelVersionState`, `ExperimentState`,
    /// `ExperimentRunState`: the spec defines four identical enums).
    LiveState { /// Exists and is in use.
        Live = "LIVE", /// Archived.
        Archived = "ARCHIVED" }
}

/// `ModelVersionState`.
pub type ModelVersionState = LiveState;
/// `RegisteredModelState`.
pub type RegisteredModelState = LiveState;
/// `ExperimentState`.
pub type ExperimentState = LiveState;
/// `ExperimentRunState`.
pub type ExperimentRunState = LiveState;

wire_enum! {
    /// `ArtifactState` (ml-metadata `Artifact.State`).
    ArtifactState {
        /// Not known.
        Unknown = "UNKNOWN",
        /// May exist.
        Pending = "PENDING",
        /// Should exist.
        Live = "LIVE",
        /// Should be deleted.
        MarkedForDeletion = "MARKED_FOR_DELETION",
        /// Has been deleted.
        Deleted = "DELETED",
        /// Abandoned by a failed or cancelled execution.
        Abandoned = "ABANDONED",
        /// A reference artifact.
        Reference = "REFERENCE",
    }
}

wire_enum! {
    /// `ExecutionState` (ml-metadata `Execution.State`), the last known state of a `ServeModel`.
    ExecutionState {
        /// Not known.
        Unknown = "UNKNOWN",
        /// Created.
        New = "NEW",
        /// Running.
        Running = "RUNNING",
        /// Completed.
        Complete = "COMPLETE",
        /// Failed.
        Failed = "FAILED",
        /// Skipped thanks to cached results.
        Cached = "CACHED",
        /// Skipped because a precondition was not met.
        Canceled = "CANCELED",
    }
}

wire_enum! {
    /// `ExperimentRunStatus`.
    ExperimentRunStatus {
        /// Initiated.
        Running = "RUNNING",
        /// Scheduled for later.
        Scheduled = "SCHEDULED",
        /// Completed.
        Finished = "FINISHED",
        /// Failed.
        Failed = "FAILED",
        /// Killed by a user.
        Killed = "KILLED",
    }
}

wire_enum! {
    /// `InferenceServiceState`: the desired state of an inference service.
    InferenceServiceState {
        /// Should be deployed.
        Deployed = "DEPLOYED",
        /// Should be un-deployed.
        Undeployed = "UNDEPLOYED",
    }
}

wire_enum! {
    /// `ParameterType`.
    ParameterType {
        /// A string.
        String = "string",
        /// A number.
        Number = "number",
        /// A boolean.
        Boolean = "boolean",
        /// A JSON object.
        Object = "object",
    }
}

resource! {
    /// `RegisteredModel`: a model, parent of its `ModelVersion`s. Names are unique in the registry.
    RegisteredModel {
        /// Owner of the model.
        owner: String,
        /// `LIVE` or `ARCHIVED`.
        state: RegisteredModelState,
        /// Model documentation in Markdown.
        readme: String,
        /// Maturity level, e.g. `Generally Available`.
        maturity: String,
        /// ISO 639 language codes.
        language: Vec<String>,
        /// Tasks the model is designed for.
        tasks: Vec<String>,
        /// Organisation that provides the model.
        provider: String,
        /// URL of the logo (a data URL is recommended).
        logo: String,
        /// Short name of the license.
        license: String,
        /// URL of the license text.
        license_link: String,
        /// Library name, e.g. `transformers`.
        library_name: String,
    }
}

resource! {
    /// `ModelVersion`: a version of a registered model. Names are unique per registered model.
    ModelVersion {
        /// Id of the parent `RegisteredModel` (required on create).
        registered_model_id: String,
        /// `LIVE` or `ARCHIVED`.
        state: ModelVersionState,
        /// Author of the version.
        author: String,
    }
}

resource! {
    /// `ModelArtifact` (`artifactType: model-artifact`): the model files of a version.
    ModelArtifact {
        /// Always `model-artifact`.
        artifact_type: String,
        /// Experiment that produced it (output only).
        experiment_id: String,
        /// Experiment run that produced it (output only).
        experiment_run_id: String,
        /// Model format name, e.g. `onnx`.
        model_format_name: String,
        /// Storage secret name.
        storage_key: String,
        /// Path in the storage named by `storageKey`.
        storage_path: String,
        /// Model format version.
        model_format_version: String,
        /// Service account holding the storage secret.
        service_account_name: String,
        /// Source kind, e.g. `pipelines`.
        model_source_kind: String,
        /// Source class, e.g. `pipelinerun`.
        model_source_class: String,
        /// Source group, e.g. a namespace.
        model_source_group: String,
        /// Source id, e.g. a pipeline run id.
        model_source_id: String,
        /// Human-readable source name.
        model_source_name: String,
        /// URI of the physical artifact.
        uri: String,
        /// Artifact state.
        state: ArtifactState,
    }
}

resource! {
    /// `DocArtifact` (`artifactType: doc-artifact`): a document.
    DocArtifact {
        /// Always `doc-artifact`.
        artifact_type: String,
        /// Experiment that produced it (output only).
        experiment_id: String,
        /// Experiment run that produced it (output only).
        experiment_run_id: String,
        /// URI of the document.
        uri: String,
        /// Artifact state.
        state: ArtifactState,
    }
}

resource! {
    /// `DataSet` (`artifactType: dataset-artifact`): training or test data.
    DataSet {
        /// Always `dataset-artifact`.
        artifact_type: String,
        /// Experiment that produced it (output only).
        experiment_id: String,
        /// Experiment run that produced it (output only).
        experiment_run_id: String,
        /// Hash of the content.
        digest: String,
        /// Kind of source, e.g. `s3`.
        source_type: String,
        /// Location or connection string of the source.
        source: String,
        /// Schema of the data.
        schema: String,
        /// Statistical profile.
        profile: String,
        /// URI of the data.
        uri: String,
        /// Artifact state.
        state: ArtifactState,
    }
}

resource! {
    /// `Metric` (`artifactType: metric`): a measurement, optionally per step.
    Metric {
        /// Always `metric`.
        artifact_type: String,
        /// Experiment that produced it (output only).
        experiment_id: String,
        /// Experiment run that produced it (output only).
        experiment_run_id: String,
        /// The value.
        value: f64,
        /// When it was recorded, milliseconds since the epoch as a decimal string.
        timestamp: String,
        /// Step number (e.g. epoch).
        step: i64,
        /// Artifact state.
        state: ArtifactState,
    }
}

resource! {
    /// `Parameter` (`artifactType: parameter`): a configuration value.
    Parameter {
        /// Always `parameter`.
        artifact_type: String,
        /// Experiment that produced it (output only).
        experiment_id: String,
        /// Experiment run that produced it (output only).
        experiment_run_id: String,
        /// The value, as text.
        value: String,
        /// How to read `value`.
        parameter_type: ParameterType,
        /// Artifact state.
        state: ArtifactState,
    }
}

resource! {
    /// `ServingEnvironment`: where inference services run. Names are unique in the registry.
    ServingEnvironment {}
}

resource! {
    /// `InferenceService`: a deployed model in a serving environment. Names are unique per environment.
    InferenceService {
        /// The `RegisteredModel` served (required on create).
        registered_model_id: String,
        /// The parent `ServingEnvironment` (required on create).
        serving_environment_id: String,
        /// The `ModelVersion` served; unset means the latest.
        model_version_id: String,
        /// Model runtime.
        runtime: String,
        /// `DEPLOYED` or `UNDEPLOYED`.
        desired_state: InferenceServiceState,
    }
}

resource! {
    /// `ServeModel`: one serving action of an inference service.
    ServeModel {
        /// The `ModelVersion` served (required on create).
        model_version_id: String,
        /// Last known state of the action.
        last_known_state: ExecutionState,
    }
}

resource! {
    /// `Experiment`: parent of `ExperimentRun`s. Names are unique in the registry.
    Experiment {
        /// Owner.
        owner: String,
        /// `LIVE` or `ARCHIVED`.
        state: ExperimentState,
    }
}

resource! {
    /// `ExperimentRun`: one run of an experiment. Names are unique per experiment.
    ExperimentRun {
        /// The parent `Experiment` (required on create).
        experiment_id: String,
        /// Start time, milliseconds since the epoch as a decimal string.
        start_time_since_epoch: String,
        /// End time, milliseconds since the epoch as a decimal string.
        end_time_since_epoch: String,
        /// Run status.
        status: ExperimentRunStatus,
        /// `LIVE` or `ARCHIVED`.
        state: ExperimentRunState,
        /// Owner.
        owner: String,
    }
}

/// `Artifact`: any of the five artifact types, chosen by `artifactType`.
///
/// ```
/// use kf_registry::{Artifact, ToFromValue};
///
/// let doc = serde_json::json!({"artifactType": "doc-artifact", "uri": "s3://b/README.md"});
/// let artifact = Artifact::from_value(doc.clone())?;
/// assert!(matches!(artifact, Artifact::Doc(_)));
/// assert_eq!(artifact.to_value(), doc);
/// # Ok::<(), kf_registry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Artifact {
    /// `model-artifact`.
    Model(ModelArtifact),
    /// `doc-artifact`.
    Doc(DocArtifact),
    /// `dataset-artifact`.
    DataSet(DataSet),
    /// `metric`.
    Metric(Metric),
    /// `parameter`.
    Parameter(Parameter),
}

/// The five `artifactType` values, as the spec spells them.
pub const ARTIFACT_TYPES: [&str; 5] = ["model-artifact", "doc-artifact", "dataset-artifact", "metric", "parameter"];

impl Artifact {
    /// The `artifactType` of this artifact.
    pub fn artifact_type(&self) -> &'static str {
        match self {
            Artifact::Model(_) => "model-artifact",
            Artifact::Doc(_) => "doc-artifact",
            Artifact::DataSet(_) => "dataset-artifact",
            Artifact::Metric(_) => "metric",
            Artifact::Parameter(_) => "parameter",
        }
    }
}

impl Serialize for Artifact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Artifact::Model(a) => a.serialize(serializer),
            Artifact::Doc(a) => a.serialize(serializer),
            Artifact::DataSet(a) => a.serialize(serializer),
            Artifact::Metric(a) => a.serialize(serializer),
            Artifact::Parameter(a) => a.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Artifact {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let doc = Value::deserialize(deserializer)?;
        let kind = doc.get("artifactType").and_then(Value::as_str).unwrap_or_default().to_owned();
        let parsed = match kind.as_str() {
            "model-artifact" => serde_json::from_value(doc).map(Artifact::Model),
            "doc-artifact" => serde_json::from_value(doc).map(Artifact::Doc),
            "dataset-artifact" => serde_json::from_value(doc).map(Artifact::DataSet),
            "metric" => serde_json::from_value(doc).map(Artifact::Metric),
            "parameter" => serde_json::from_value(doc).map(Artifact::Parameter),
            other => {
                return Err(D::Error::custom(format!(
                    "artifactType: expected one of {ARTIFACT_TYPES:?}, found {other:?}"
                )));
            }
        };
        parsed.map_err(D::Error::custom)
    }
}

/// Reading and writing a wire type as a JSON value, with errors that name the
/// field path (`customProperties.k.int_value: expected …`).
pub trait ToFromValue: Serialize + DeserializeOwned + Sized {
    /// Reads the type from a JSON document.
    fn from_value(doc: Value) -> Result<Self> {
        serde_path_to_error::deserialize(doc).map_err(|err| {
            let path = err.path().to_string();
            Error::invalid(if path == "." { String::new() } else { path }, err.inner().to_string())
        })
    }

    /// Writes the type back: the fields read, no others.
    fn to_value(&self) -> Value {
        // Plain structs, string maps and finite numbers always serialise.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl<T: Serialize + DeserializeOwned> ToFromValue for T {}

/// `{"code", "message"}`: the API's error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// A page of a list: `{items, size, pageSize, nextPageToken}`. The token is
/// `""` on the last page, never absent, as the official client requires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    /// The objects of this page.
    pub items: Vec<T>,
    /// `items.len()`.
    pub size: u32,
    /// The page size the list was asked for.
    pub page_size: u32,
    /// Token for the next page; empty on the last page.
    pub next_page_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_documents_round_trip() {
        let docs =
            [json!({"id": "1", "name": "iris", "owner": "o", "state": "LIVE", "language": ["en"], "licenseLink": "u",
                   "createTimeSinceEpoch": "1", "lastUpdateTimeSinceEpoch": "2", "futureField": {"x": 1},
                   "customProperties": {"a": {"metadataType": "MetadataBoolValue", "bool_value": true}}})];
        for doc in docs {
            assert_eq!(RegisteredModel::from_value(doc.clone()).unwrap().to_value(), doc);
        }
        let mv = json!({"name": "1", "registeredModelId": "3", "state": "ARCHIVED", "author": "a"});
        assert_eq!(ModelVersion::from_value(mv.clone()).unwrap().to_value(), mv);
        let metric = json!({"artifactType": "metric", "name": "loss", "value": 0.25, "step": 3, "timestamp": "9"});
        assert_eq!(Artifact::from_value(metric.clone()).unwrap().to_value(), metric);
    }

    #[test]
    fn bad_enum_values_name_the_field() {
        let err = RegisteredModel::from_value(json!({"name": "x", "state": "DELETED"})).unwrap_err();
        assert!(err.to_string().starts_with("state:"), "{err}");
        let err = ModelVersion::from_value(json!({"customProperties": {"k": {"metadataType": "MetadataIntValue",
            "int_value": "abc"}}}))
        .unwrap_err();
        assert!(err.to_string().starts_with("customProperties.k"), "{err}");
        assert!(Artifact::from_value(json!({"artifactType": "nope"})).is_err());
        assert!(Artifact::from_value(json!({"uri": "x"})).is_err());
    }
}
