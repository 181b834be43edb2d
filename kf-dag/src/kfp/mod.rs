//! KFP v2 compatibility: the compiled `PipelineSpec` YAML that
//! `kfp.compiler.Compiler` writes, read losslessly, converted into the IR and
//! back.
//!
//! - [`spec`]: the wire types (`PipelineSpec`, `PlatformSpec`), lossless:
//!   fields kf does not model are kept and written back.
//! - [`KfpPipeline`]: one compiled pipeline — its `PipelineSpec` and, when
//!   the compiler wrote one, the second YAML document (`platforms`).
//!   [`KfpPipeline::from_values`] reads it, [`KfpPipeline::to_values`] writes
//!   it back, [`KfpPipeline::validate`] converts it into the IR and runs
//!   [`Plan::new`], with every error naming the YAML path of the defect.
//! - [`import`]: wire types → IR; [`export`]: IR → wire types
//!   ([`KfpPipeline::from_pipeline`]), so a pipeline built with the
//!   [`crate::PipelineBuilder`] becomes KFP v2 IR YAML the kfp SDK loads.
//! - [`executor_input`]: the executor contract KFP's containers speak (the
//!   `ExecutorInput` JSON a component reads, the `ExecutorOutput` it
//!   writes, placeholder substitution, pipeline-root mapping), as pure
//!   functions for the executor to call.
//!
//! This module reads and writes values; it never touches files or runs
//! anything. YAML text is the caller's business (the `kf` binary uses
//! serde-saphyr), so documents travel as `serde_json::Value`.
//!
//! ```
//! use kf_dag::kfp::KfpPipeline;
//! use serde_json::json;
//!
//! let doc = json!({
//!     "pipelineInfo": {"name": "hello"},
//!     "components": {"comp-say": {
//!         "executorLabel": "exec-say",
//!         "inputDefinitions": {"parameters": {"text": {"parameterType": "STRING"}}},
//!     }},
//!     "deploymentSpec": {"executors": {"exec-say": {"container": {
//!         "image": "alpine", "command": ["echo", "{{$.inputs.parameters['text']}}"],
//!     }}}},
//!     "root": {"dag": {"tasks": {"say": {
//!         "componentRef": {"name": "comp-say"},
//!         "inputs": {"parameters": {"text": {"runtimeValue": {"constant": "hi"}}}},
//!         "taskInfo": {"name": "say"},
//!     }}}},
//!     "schemaVersion": "2.1.0",
//!     "sdkVersion": "kfp-2.14.3",
//! });
//! let pipeline = KfpPipeline::from_values(&[doc.clone()])?;
//! pipeline.validate()?;
//! assert_eq!(pipeline.to_values(), [doc]); // nothing lost, nothing invented
//! assert_eq!(pipeline.plan()?.root().order(), ["say"]);
//! # Ok::<(), kf_dag::Error>(())
//! ```

pub mod executor_input;
pub mod export;
mod fields;
pub mod import;
pub mod lightweight;
pub mod spec;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ir::Pipeline;
use crate::{Error, Plan, Result};

pub use executor_input::{ExecutorInput, ExecutorOutput, PipelineRoot, RunFacts, Substitution, TaskOutputs};
pub use spec::{PipelineSpec, PlatformSpec};

/// The `schemaVersion`s kf reads (every kfp 2.x compiler writes one of these).
pub const SCHEMA_VERSIONS: [&str; 2] = ["2.0.0", "2.1.0"];
/// The `schemaVersion` kf writes.
pub const SCHEMA_VERSION: &str = "2.1.0";

/// A compiled KFP pipeline: the `PipelineSpec` document and, when present,
/// the `PlatformSpec` document that follows it in the same YAML file.
#[derive(Debug, Clone, PartialEq)]
pub struct KfpPipeline {
    /// The first document.
    pub spec: PipelineSpec,
    /// The second document (`platforms: {kubernetes: …}`), kept and written
    /// back; kf does not apply it when running locally.
    pub platforms: Option<PlatformSpec>,
}

fn decode<T: DeserializeOwned>(doc: Value, document: &str) -> Result<T> {
    serde_path_to_error::deserialize(doc).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { document.to_owned() } else { path };
        Error::invalid(path, err.inner().to_string())
    })
}

fn encode<T: Serialize>(value: &T) -> Value {
    // Plain structs, string-keyed maps and `Value`s always serialise.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl KfpPipeline {
    /// Reads a compiled pipeline from its YAML documents, parsed into values:
    /// the `PipelineSpec`, optionally followed by the `PlatformSpec`. Type
    /// errors name the field path (`root.dag.tasks.a.dependentTasks: invalid
    /// type: string, expected a sequence`).
    pub fn from_values(docs: &[Value]) -> Result<Self> {
        match docs {
            [spec] => Ok(KfpPipeline { spec: decode(spec.clone(), "PipelineSpec")?, platforms: None }),
            [spec, platforms] => {
                if platforms.get("platforms").is_none() {
                    return Err(Error::invalid(
                        "platforms",
                        "the second document of a compiled pipeline must be its PlatformSpec (a `platforms` map)",
                    ));
                }
                Ok(KfpPipeline {
                    spec: decode(spec.clone(), "PipelineSpec")?,
                    platforms: Some(decode(platforms.clone(), "PlatformSpec")?),
                })
            }
            other => Err(Error::invalid(
                "PipelineSpec",
                format!(
                    "expected one document (the PipelineSpec) or two (and its PlatformSpec), found {}",
                    other.len()
                ),
            )),
        }
    }

    /// Writes the pipeline back: one value per document, holding exactly the
    /// fields read.
    pub fn to_values(&self) -> Vec<Value> {
        let mut docs = vec![encode(&self.spec)];
        docs.extend(self.platforms.as_ref().map(encode));
        docs
    }

    /// Converts the pipeline into the IR, checking what the wire format can
    /// get wrong (`schemaVersion`, fields the protobuf does not define,
    /// executor kinds, parameter types, input sources, placeholders,
    /// conditions, durations, loop lists). The IR is
    /// not validated; [`KfpPipeline::plan`] does that.
    pub fn to_pipeline(&self) -> Result<Pipeline> {
        match self.spec.schema_version.as_deref() {
            Some(v) if SCHEMA_VERSIONS.contains(&v) => {}
            Some(v) => {
                return Err(Error::invalid(
                    "schemaVersion",
                    format!("expected one of {SCHEMA_VERSIONS:?}, found {v:?}"),
                ));
            }
            None => {
                return Err(Error::invalid(
                    "schemaVersion",
                    format!("expected one of {SCHEMA_VERSIONS:?}, found none"),
                ));
            }
        }
        fields::check_pipeline(&self.spec)?;
        let pipeline = import::pipeline(&self.spec)?;
        if let Some(platforms) = &self.platforms {
            let empty = Default::default();
            let executors = self.spec.deployment_spec.as_ref().and_then(|d| d.executors.as_ref()).unwrap_or(&empty);
            import::platform_references(platforms, executors)?;
        }
        Ok(pipeline)
    }

    /// Converts the pipeline into the IR and validates it into a [`Plan`].
    pub fn plan(&self) -> Result<Plan> {
        Plan::new(self.to_pipeline()?)
    }

    /// Checks the pipeline as `kf validate` does: the first problem, with the
    /// YAML path of the offending field (`deploymentSpec.executors.exec-x`,
    /// `root.dag.tasks.print-text-2.componentRef.name`, …).
    pub fn validate(&self) -> Result<()> {
        self.plan().map(drop)
    }

    /// Exports an IR pipeline as a KFP v2 `PipelineSpec` (no platform
    /// document). Fails for what KFP cannot express: Rust function executors.
    pub fn from_pipeline(pipeline: &Pipeline) -> Result<Self> {
        Ok(KfpPipeline { spec: export::pipeline_spec(pipeline)?, platforms: None })
    }
}

#[cfg(test)]
mod tests;
