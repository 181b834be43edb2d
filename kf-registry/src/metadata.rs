//! `customProperties` values: the six `MetadataValue` kinds of the API, tagged by
//! `metadataType`, each with exactly the fields the spec allows.
//!
//! This module owns the wire shape and its checks (an int is a decimal string
//! within the spec's pattern, no field besides the kind's own). It does not
//! decide how values are stored or compared; see [`crate::record`] and
//! [`crate::filter`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// User-defined properties of a registry object: name → typed value.
pub type CustomProperties = BTreeMap<String, MetadataValue>;

/// One custom property value, as the API writes it:
/// `{"metadataType": "MetadataIntValue", "int_value": "7"}`.
///
/// ```
/// use kf_registry::MetadataValue;
///
/// let v: MetadataValue = serde_json::from_value(serde_json::json!(
///     {"metadataType": "MetadataIntValue", "int_value": "-42"}))?;
/// assert_eq!(v, MetadataValue::int(-42));
/// // an int travels as a string, a double as a number
/// assert_eq!(serde_json::to_value(&v)?["int_value"], "-42");
/// assert!(serde_json::from_value::<MetadataValue>(serde_json::json!(
///     {"metadataType": "MetadataIntValue", "int_value": "abc"})).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "metadataType", deny_unknown_fields)]
pub enum MetadataValue {
    /// `MetadataStringValue`.
    #[serde(rename = "MetadataStringValue")]
    String {
        /// The string.
        string_value: String,
    },
    /// `MetadataIntValue`: an int32 written as a decimal string.
    #[serde(rename = "MetadataIntValue")]
    Int {
        /// The integer.
        int_value: IntValue,
    },
    /// `MetadataDoubleValue`: a JSON number.
    #[serde(rename = "MetadataDoubleValue")]
    Double {
        /// The number.
        double_value: f64,
    },
    /// `MetadataBoolValue`.
    #[serde(rename = "MetadataBoolValue")]
    Bool {
        /// The boolean.
        bool_value: bool,
    },
    /// `MetadataStructValue`: base64 of a serialised struct, kept verbatim.
    #[serde(rename = "MetadataStructValue")]
    Struct {
        /// Base64 text, as sent.
        struct_value: String,
    },
    /// `MetadataProtoValue`: a type URL and base64 of the message bytes, kept verbatim.
    #[serde(rename = "MetadataProtoValue")]
    Proto {
        /// URL describing the proto type.
        #[serde(rename = "type")]
        type_url: String,
        /// Base64 text, as sent.
        proto_value: String,
    },
}

impl MetadataValue {
    /// The `metadataType` tag of this value.
    pub fn metadata_type(&self) -> &'static str {
        match self {
            MetadataValue::String { .. } => "MetadataStringValue",
            MetadataValue::Int { .. } => "MetadataIntValue",
            MetadataValue::Double { .. } => "MetadataDoubleValue",
            MetadataValue::Bool { .. } => "MetadataBoolValue",
            MetadataValue::Struct { .. } => "MetadataStructValue",
            MetadataValue::Proto { .. } => "MetadataProtoValue",
        }
    }

    /// A string value.
    pub fn string(value: impl Into<String>) -> Self {
        MetadataValue::String { string_value: value.into() }
    }

    /// An int value.
    pub fn int(value: i32) -> Self {
        MetadataValue::Int { int_value: IntValue(value) }
    }

    /// A double value.
    pub fn double(value: f64) -> Self {
        MetadataValue::Double { double_value: value }
    }

    /// A bool value.
    pub fn bool(value: bool) -> Self {
        MetadataValue::Bool { bool_value: value }
    }
}

/// `int_value`: an int32 that travels as a decimal string matching
/// `^-?([1-9][0-9]{0,8}|0)$` (so at most nine digits, no `+`, no leading zeros,
/// no `-0`). Anything else is rejected rather than normalised, so what is
/// stored is exactly what was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntValue(pub i32);

impl From<i32> for IntValue {
    fn from(value: i32) -> Self {
        IntValue(value)
    }
}

impl IntValue {
    /// Parses the spec's pattern; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        let well_formed = match digits.as_bytes() {
            [b'0'] => digits.len() == text.len(), // "0" yes, "-0" no
            [b'1'..=b'9', rest @ ..] => rest.len() <= 8 && rest.iter().all(u8::is_ascii_digit),
            _ => false,
        };
        if !well_formed {
            return None;
        }
        text.parse().ok().map(IntValue)
    }
}

impl fmt::Display for IntValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for IntValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IntValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IntValue::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected an int32 as a decimal string matching ^-?([1-9][0-9]{{0,8}}|0)$, found {text:?}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn every_kind_round_trips_exactly() {
        for doc in [
            json!({"metadataType": "MetadataStringValue", "string_value": "hello"}),
            json!({"metadataType": "MetadataIntValue", "int_value": "-42"}),
            json!({"metadataType": "MetadataDoubleValue", "double_value": 2.0}),
            json!({"metadataType": "MetadataBoolValue", "bool_value": false}),
            json!({"metadataType": "MetadataStructValue", "struct_value": "eyJhIjogMX0="}),
            json!({"metadataType": "MetadataProtoValue", "type": "t.example/x", "proto_value": "AAE="}),
        ] {
            let value: MetadataValue = serde_json::from_value(doc.clone()).unwrap();
            assert_eq!(serde_json::to_value(&value).unwrap(), doc);
        }
    }

    #[test]
    fn malformed_values_are_rejected() {
        for doc in [
            json!({"metadataType": "MetadataIntValue", "int_value": "abc"}),
            json!({"metadataType": "MetadataIntValue", "int_value": "007"}),
            json!({"metadataType": "MetadataIntValue", "int_value": "-0"}),
            json!({"metadataType": "MetadataIntValue", "int_value": "1234567890"}),
            json!({"metadataType": "MetadataIntValue", "int_value": 7}),
            json!({"metadataType": "MetadataDoubleValue", "double_value": "2.0"}),
            json!({"metadataType": "MetadataNopeValue", "x": 1}),
            json!({"metadataType": "MetadataStringValue", "string_value": "x", "extra": 1}),
            json!({"string_value": "x"}),
        ] {
            assert!(serde_json::from_value::<MetadataValue>(doc.clone()).is_err(), "{doc} accepted");
        }
    }

    proptest! {
        #[test]
        fn int_values_match_the_pattern_exactly(n in -999_999_999i32..=999_999_999) {
            let text = n.to_string();
            prop_assert_eq!(IntValue::parse(&text), Some(IntValue(n)));
            let doc = json!({"metadataType": "MetadataIntValue", "int_value": text});
            let v: MetadataValue = serde_json::from_value(doc.clone()).unwrap();
            prop_assert_eq!(serde_json::to_value(&v).unwrap(), doc);
        }

        #[test]
        fn int_parse_never_panics_and_only_accepts_canonical_text(s in "\\PC{0,12}") {
            if let Some(v) = IntValue::parse(&s) {
                prop_assert_eq!(v.to_string(), s);
            }
        }

        #[test]
        fn doubles_stay_numbers(x in -1e12f64..1e12) {
            let v = MetadataValue::double(x);
            let doc = serde_json::to_value(&v).unwrap();
            prop_assert!(matches!(doc["double_value"], Value::Number(_)));
            prop_assert_eq!(serde_json::from_value::<MetadataValue>(doc).unwrap(), v);
        }
    }
}
