//! The type system of pipeline data: parameter types, artifact types and the
//! declarations a component makes of its inputs and outputs.
//!
//! Parameter values are `serde_json::Value`, as in KFP, where a parameter is a
//! `google.protobuf.Value`; this module says which values fit which type. It
//! does not know about tasks or wiring (that is [`crate::ir::Dag`]).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The type of a parameter (a small JSON value passed by value), as in KFP's
/// `ParameterType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ParameterType {
    /// A UTF-8 string.
    String,
    /// A whole number (a JSON number with no fractional part).
    NumberInteger,
    /// A floating-point number.
    NumberDouble,
    /// `true` or `false`.
    Boolean,
    /// A JSON array.
    List,
    /// A JSON object.
    Struct,
    /// The final status of another task, given to exit handlers
    /// (`PipelineTaskFinalStatus` in KFP); only a task-final-status input fills it.
    TaskFinalStatus,
}

impl ParameterType {
    /// Every parameter type, in declaration order.
    pub const ALL: [ParameterType; 7] = [
        ParameterType::String,
        ParameterType::NumberInteger,
        ParameterType::NumberDouble,
        ParameterType::Boolean,
        ParameterType::List,
        ParameterType::Struct,
        ParameterType::TaskFinalStatus,
    ];

    /// The KFP spelling, e.g. `NUMBER_INTEGER`.
    pub fn as_kfp_str(self) -> &'static str {
        match self {
            ParameterType::String => "STRING",
            ParameterType::NumberInteger => "NUMBER_INTEGER",
            ParameterType::NumberDouble => "NUMBER_DOUBLE",
            ParameterType::Boolean => "BOOLEAN",
            ParameterType::List => "LIST",
            ParameterType::Struct => "STRUCT",
            ParameterType::TaskFinalStatus => "TASK_FINAL_STATUS",
        }
    }

    /// Parses the KFP spelling; `None` for anything else.
    pub fn from_kfp_str(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_kfp_str() == s)
    }

    /// Whether `value` is a value of this type. Integers are accepted where a
    /// double is expected (JSON does not tell `1` from `1.0` reliably), and a
    /// double with no fractional part is an integer (protobuf `Value` stores
    /// every number as a double). A task final status is a JSON object.
    ///
    /// ```
    /// use kf_dag::ir::ParameterType;
    /// use serde_json::json;
    /// assert!(ParameterType::NumberInteger.accepts(&json!(3)));
    /// assert!(ParameterType::NumberInteger.accepts(&json!(3.0)));
    /// assert!(!ParameterType::NumberInteger.accepts(&json!(3.5)));
    /// assert!(!ParameterType::String.accepts(&json!(3)));
    /// ```
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ParameterType::String => value.is_string(),
            ParameterType::NumberInteger => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
            }
            ParameterType::NumberDouble => value.is_number(),
            ParameterType::Boolean => value.is_boolean(),
            ParameterType::List => value.is_array(),
            ParameterType::Struct | ParameterType::TaskFinalStatus => value.is_object(),
        }
    }
}

impl ParameterType {
    /// Reads a value of this type from text, as given on a command line
    /// (`--param lr=0.1`): strings as they are, numbers and booleans parsed,
    /// lists and structs as JSON.
    ///
    /// ```
    /// use kf_dag::ir::ParameterType;
    /// use serde_json::json;
    /// assert_eq!(ParameterType::NumberDouble.parse_text("0.1"), Ok(json!(0.1)));
    /// assert_eq!(ParameterType::List.parse_text("[1, 2]"), Ok(json!([1, 2])));
    /// assert_eq!(ParameterType::String.parse_text("[1, 2]"), Ok(json!("[1, 2]")));
    /// assert!(ParameterType::NumberInteger.parse_text("1.5").is_err());
    /// ```
    pub fn parse_text(self, text: &str) -> Result<Value, String> {
        let message = || format!("expected a {self} value, found {text:?}");
        let value = match self {
            ParameterType::String => Value::String(text.to_owned()),
            ParameterType::NumberInteger => Value::from(text.trim().parse::<i64>().map_err(|_| message())?),
            ParameterType::NumberDouble => {
                let f = text.trim().parse::<f64>().map_err(|_| message())?;
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(message)?
            }
            ParameterType::Boolean => Value::Bool(text.trim().parse::<bool>().map_err(|_| message())?),
            ParameterType::List | ParameterType::Struct | ParameterType::TaskFinalStatus => {
                serde_json::from_str(text).map_err(|_| message())?
            }
        };
        if self.accepts(&value) { Ok(value) } else { Err(message()) }
    }
}

impl fmt::Display for ParameterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_kfp_str())
    }
}

/// The type of an artifact (a file or directory passed by reference): its
/// schema title such as `system.Model`, and optionally the schema version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactType {
    /// Schema title, e.g. `system.Dataset`.
    pub schema_title: String,
    /// Schema version, e.g. `0.0.1`.
    pub schema_version: Option<String>,
}

impl ArtifactType {
    /// The generic artifact type, which accepts every other artifact type.
    pub const GENERIC: &'static str = "system.Artifact";

    /// An artifact type with the given schema title and the version KFP's
    /// `system.*` types use (`0.0.1`).
    pub fn new(schema_title: impl Into<String>) -> Self {
        ArtifactType { schema_title: schema_title.into(), schema_version: Some("0.0.1".to_owned()) }
    }

    /// `system.Artifact`.
    pub fn artifact() -> Self {
        Self::new(Self::GENERIC)
    }
    /// `system.Dataset`.
    pub fn dataset() -> Self {
        Self::new("system.Dataset")
    }
    /// `system.Model`.
    pub fn model() -> Self {
        Self::new("system.Model")
    }
    /// `system.Metrics`.
    pub fn metrics() -> Self {
        Self::new("system.Metrics")
    }
    /// `system.ClassificationMetrics`.
    pub fn classification_metrics() -> Self {
        Self::new("system.ClassificationMetrics")
    }

    /// Whether an input of this type may consume an artifact of type
    /// `produced`: the titles are equal, or this type is the generic
    /// `system.Artifact` (KFP's rule). Versions are not compared.
    ///
    /// ```
    /// use kf_dag::ir::ArtifactType;
    /// assert!(ArtifactType::artifact().accepts(&ArtifactType::model()));
    /// assert!(!ArtifactType::dataset().accepts(&ArtifactType::model()));
    /// ```
    pub fn accepts(&self, produced: &ArtifactType) -> bool {
        self.schema_title == produced.schema_title || self.schema_title == Self::GENERIC
    }
}

impl fmt::Display for ArtifactType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.schema_title)
    }
}

/// The declaration of one parameter input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSpec {
    /// The parameter's type.
    pub ty: ParameterType,
    /// The value used when a task gives none (inputs only).
    pub default: Option<Value>,
    /// Whether a task may leave the input unset even without a default.
    pub optional: bool,
    /// Human-readable description.
    pub description: Option<String>,
}

impl ParameterSpec {
    /// A required parameter of type `ty` with no default.
    pub fn new(ty: ParameterType) -> Self {
        ParameterSpec { ty, default: None, optional: false, description: None }
    }

    /// The same parameter with a default (which makes it optional to set).
    pub fn with_default(mut self, default: Value) -> Self {
        self.default = Some(default);
        self.optional = true;
        self
    }

    /// Whether a task must give this input a value.
    pub fn is_required(&self) -> bool {
        !self.optional && self.default.is_none()
    }
}

/// The declaration of one artifact input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactSpec {
    /// The artifact's type.
    pub ty: ArtifactType,
    /// Whether this is a list of artifacts (a collected loop output; KFP's
    /// `isArtifactList`).
    pub is_list: bool,
    /// Whether a task may leave the input unset.
    pub optional: bool,
    /// Human-readable description.
    pub description: Option<String>,
}

impl ArtifactSpec {
    /// A required single artifact of type `ty`.
    pub fn new(ty: ArtifactType) -> Self {
        ArtifactSpec { ty, is_list: false, optional: false, description: None }
    }

    /// Shows the type the way errors name it: `system.Model` or `list of system.Model`.
    pub fn describe(&self) -> String {
        if self.is_list { format!("list of {}", self.ty) } else { self.ty.to_string() }
    }
}

/// One side of a component's signature: its parameters and artifacts by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    /// Parameters by name.
    pub parameters: BTreeMap<String, ParameterSpec>,
    /// Artifacts by name.
    pub artifacts: BTreeMap<String, ArtifactSpec>,
}

impl Interface {
    /// Whether there are no parameters and no artifacts.
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.artifacts.is_empty()
    }
}
