//! What a store keeps: a [`Record`] per object (the columns every kind shares
//! plus the object's wire document) and the [`Property`] rows derived from it
//! that `filterQuery` searches.
//!
//! Records are kind-agnostic on purpose: a store implements five small methods
//! over records once, and [`crate::Registry`] maps every wire type onto them.
//! This module owns the derivation of properties from a document, so every
//! store indexes exactly the same values.

use serde_json::{Map, Value};

use crate::MetadataValue;

/// The kinds of object the registry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `RegisteredModel`.
    RegisteredModel,
    /// `ModelVersion`, child of a registered model.
    ModelVersion,
    /// Any `Artifact`; the `artifactType` is the record's subtype.
    Artifact,
    /// `ServingEnvironment`.
    ServingEnvironment,
    /// `InferenceService`, child of a serving environment.
    InferenceService,
    /// `ServeModel`, child of an inference service.
    ServeModel,
    /// `Experiment`.
    Experiment,
    /// `ExperimentRun`, child of an experiment.
    ExperimentRun,
    /// One entry of an experiment run's metric history (a `Metric` document).
    MetricHistory,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 9] = [
        Kind::RegisteredModel,
        Kind::ModelVersion,
        Kind::Artifact,
        Kind::ServingEnvironment,
        Kind::InferenceService,
        Kind::ServeModel,
        Kind::Experiment,
        Kind::ExperimentRun,
        Kind::MetricHistory,
    ];

    /// The stable text a store writes in its `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RegisteredModel => "registered_model",
            Kind::ModelVersion => "model_version",
            Kind::Artifact => "artifact",
            Kind::ServingEnvironment => "serving_environment",
            Kind::InferenceService => "inference_service",
            Kind::ServeModel => "serve_model",
            Kind::Experiment => "experiment",
            Kind::ExperimentRun => "experiment_run",
            Kind::MetricHistory => "metric_history",
        }
    }

    /// Reads [`Kind::as_str`] back.
    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The API's name for the kind, used in messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::RegisteredModel => "RegisteredModel",
            Kind::ModelVersion => "ModelVersion",
            Kind::Artifact => "Artifact",
            Kind::ServingEnvironment => "ServingEnvironment",
            Kind::InferenceService => "InferenceService",
            Kind::ServeModel => "ServeModel",
            Kind::Experiment => "Experiment",
            Kind::ExperimentRun => "ExperimentRun",
            Kind::MetricHistory => "MetricHistory",
        }
    }

    /// Whether names are unique within (kind, subtype, parent). Upstream
    /// enforces this for every kind but metric history, whose entries repeat
    /// a metric's name once per step.
    pub fn names_unique(self) -> bool {
        self != Kind::MetricHistory
    }
}

/// A stored object.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Store-assigned id, ≥ 1, unique across every kind.
    pub id: i64,
    /// The kind.
    pub kind: Kind,
    /// The `artifactType` for artifacts; `""` for other kinds.
    pub subtype: String,
    /// Id of the parent object; 0 for none.
    pub parent: i64,
    /// The object's name, if it has one.
    pub name: Option<String>,
    /// The object's externalId, if it has one.
    pub external_id: Option<String>,
    /// The object's state (the field each kind calls its state), if set.
    pub state: Option<String>,
    /// Creation time, milliseconds since the epoch.
    pub create_time: i64,
    /// Last update time, milliseconds since the epoch.
    pub update_time: i64,
    /// The wire document without the server-managed fields (`id` and the two times).
    pub body: Map<String, Value>,
}

/// What [`crate::RegistryStore::insert`] needs: a record without id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    /// The kind.
    pub kind: Kind,
    /// The `artifactType` for artifacts; `""` otherwise.
    pub subtype: String,
    /// Parent id; 0 for none.
    pub parent: i64,
    /// Name.
    pub name: Option<String>,
    /// externalId.
    pub external_id: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Creation (and first update) time, milliseconds since the epoch.
    pub time: i64,
    /// The document.
    pub body: Map<String, Value>,
}

impl NewRecord {
    /// The record this becomes once the store gives it `id`.
    pub fn into_record(self, id: i64) -> Record {
        Record {
            id,
            kind: self.kind,
            subtype: self.subtype,
            parent: self.parent,
            name: self.name,
            external_id: self.external_id,
            state: self.state,
            create_time: self.time,
            update_time: self.time,
            body: self.body,
        }
    }
}

/// A typed property value, as stored for filtering.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// Text.
    String(String),
    /// Integer.
    Int(i64),
    /// Floating point.
    Double(f64),
    /// Boolean.
    Bool(bool),
}

/// One searchable property of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// Property name.
    pub name: String,
    /// From `customProperties` (true) or a field of the kind (false).
    pub custom: bool,
    /// The value.
    pub value: PropertyValue,
}

/// Fields stored as record columns (or not at all) rather than as properties.
const COLUMN_FIELDS: [&str; 5] = ["name", "externalId", "customProperties", "id", "createTimeSinceEpoch"];

/// The searchable properties of a document: every scalar top-level field that
/// is not a column (e.g. `description`, `owner`, `uri`, `step`), and every
/// string, int, double or bool custom property. Struct and proto values are
/// opaque bytes and are not searchable. O(fields).
///
/// ```
/// use kf_registry::record::{properties, PropertyValue};
///
/// let doc = serde_json::json!({"name": "iris", "owner": "alice", "customProperties": {
///     "rank": {"metadataType": "MetadataIntValue", "int_value": "3"}}});
/// let props = properties(doc.as_object().unwrap());
/// assert!(props.iter().any(|p| p.name == "owner" && !p.custom));
/// assert!(props.iter().any(|p| p.name == "rank" && p.custom && p.value == PropertyValue::Int(3)));
/// ```
pub fn properties(body: &Map<String, Value>) -> Vec<Property> {
    let mut out = Vec::new();
    for (name, value) in body {
        if COLUMN_FIELDS.contains(&name.as_str()) || name == "lastUpdateTimeSinceEpoch" {
            continue;
        }
        let value = match value {
            Value::String(s) => PropertyValue::String(s.clone()),
            Value::Bool(b) => PropertyValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => PropertyValue::Int(i),
                None => PropertyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            _ => continue,
        };
        out.push(Property { name: name.clone(), custom: false, value });
    }
    if let Some(Value::Object(custom)) = body.get("customProperties") {
        for (name, value) in custom {
            let Ok(value) = serde_json::from_value::<MetadataValue>(value.clone()) else { continue };
            let value = match value {
                MetadataValue::String { string_value } => PropertyValue::String(string_value),
                MetadataValue::Int { int_value } => PropertyValue::Int(i64::from(int_value.0)),
                MetadataValue::Double { double_value } => PropertyValue::Double(double_value),
                MetadataValue::Bool { bool_value } => PropertyValue::Bool(bool_value),
                MetadataValue::Struct { .. } | MetadataValue::Proto { .. } => continue,
            };
            out.push(Property { name: name.clone(), custom: true, value });
        }
    }
    out
}
