//! [`OnnxModel`]: ONNX files run natively with tract (feature `onnx`).
//!
//! Owns the translation between protocol tensors and tract tensors and the
//! metadata read from the ONNX graph (names, element types, shapes with
//! symbolic dimensions as `-1`). It does not check requests against that
//! metadata beyond what it needs to run: the repository does that first.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use half::f16;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as TypeValue;
use tract_onnx::pb::{ModelProto, ValueInfoProto};
use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable, IntoTValue, TValue,
    TVec, TypedRunnableModel, tract_ndarray,
};

use super::Model;
use crate::protocol::{
    DataType, InferenceRequest, InferenceResponse, MetadataTensor, ModelMetadata, Tensor, TensorData,
};
use crate::{Error, Result};

/// How many input-shape-specific plans a model without a symbolic plan keeps.
/// Requests with other shapes still run, compiling a plan each time.
const SHAPE_PLAN_CACHE: usize = 32;

/// How the model runs.
enum Plan {
    /// One optimised plan for every batch size (symbolic dimensions).
    Symbolic(Arc<TypedRunnableModel>),
    /// The graph does not optimise without concrete input shapes (skl2onnx
    /// writes batch dimensions as unnamed unknowns): a plan per input shape,
    /// compiled on first use and cached.
    PerShape { model: Box<InferenceModel>, plans: Mutex<HashMap<Vec<Vec<usize>>, Arc<TypedRunnableModel>>> },
}

/// An ONNX model run by tract.
///
/// Loading reads the graph, derives the metadata, and optimises the model
/// once for any batch size. Models that only optimise with concrete shapes
/// are checked at load time with a batch of one and then compiled per input
/// shape; models using an operator tract does not implement are refused at
/// load time with an error naming it, never served with a wrong answer.
///
/// Inference converts each input once into a tract tensor and each output
/// once back: O(elements) copying around the model's own cost.
///
/// ```
/// use kf_serve::{Model, OnnxModel};
/// use kf_serve::protocol::{InferenceRequest, Tensor};
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/sum.onnx");
/// let model = OnnxModel::load("sum", path)?;
/// assert_eq!(model.metadata().inputs[0].shape, vec![-1, -1]);
/// let request = InferenceRequest {
///     inputs: vec![Tensor::new("input", vec![1, 4], vec![1.0f32, 2.0, 3.0, 4.0])?],
///     ..Default::default()
/// };
/// let response = model.infer(&request)?;
/// assert_eq!(response.outputs[0].shape(), &[1, 1]);
/// assert_eq!(response.outputs[0].data().as_f32(), Some(&[10.0f32][..]));
/// # Ok::<(), kf_serve::Error>(())
/// ```
pub struct OnnxModel {
    metadata: ModelMetadata,
    plan: Plan,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plan = match self.plan {
            Plan::Symbolic(_) => "symbolic",
            Plan::PerShape { .. } => "per-shape",
        };
        f.debug_struct("OnnxModel").field("metadata", &self.metadata).field("plan", &plan).finish()
    }
}

/// The protocol datatype of an ONNX `TensorProto.DataType` code.
fn datatype_of_onnx(code: i32) -> Option<DataType> {
    Some(match code {
        1 => DataType::Fp32,
        2 => DataType::Uint8,
        3 => DataType::Int8,
        4 => DataType::Uint16,
        5 => DataType::Int16,
        6 => DataType::Int32,
        7 => DataType::Int64,
        8 => DataType::Bytes,
        9 => DataType::Bool,
        10 => DataType::Fp16,
        11 => DataType::Fp64,
        12 => DataType::Uint32,
        13 => DataType::Uint64,
        16 => DataType::Bf16,
        _ => return None,
    })
}

fn datum_of(datatype: DataType) -> DatumType {
    match datatype {
        DataType::Bool => DatumType::Bool,
        DataType::Uint8 => DatumType::U8,
        DataType::Uint16 => DatumType::U16,
        DataType::Uint32 => DatumType::U32,
        DataType::Uint64 => DatumType::U64,
        DataType::Int8 => DatumType::I8,
        DataType::Int16 => DatumType::I16,
        DataType::Int32 => DatumType::I32,
        DataType::Int64 => DatumType::I64,
        DataType::Fp16 => DatumType::F16,
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Bytes => DatumType::String,
        // tract has no bf16; such inputs are widened to f32 by the graph's own Cast, never here.
        DataType::Bf16 => DatumType::F32,
    }
}

/// A graph input or output as protocol metadata: symbolic or unknown
/// dimensions become `-1`.
fn metadata_tensor(model: &str, info: &ValueInfoProto) -> Result<MetadataTensor> {
    let load_err = |message: String| Error::ModelLoad { model: model.to_string(), message };
    let Some(TypeValue::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(load_err(format!("graph value {:?} is not a tensor", info.name)));
    };
    let datatype = datatype_of_onnx(t.elem_type)
        .ok_or_else(|| load_err(format!("tensor {:?} has ONNX element type {}, not served", info.name, t.elem_type)))?;
    if datatype == DataType::Bf16 {
        return Err(load_err(format!("tensor {:?} is BF16, which tract does not run", info.name)));
    }
    let shape = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(n)) if n >= 0 => n,
                    _ => -1,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(MetadataTensor { name: info.name.clone(), datatype, shape })
}

/// Model metadata from the ONNX graph: inputs are the graph inputs that are
/// not initializers (older IR versions list weights as inputs too).
fn metadata_of(name: &str, proto: &ModelProto) -> Result<ModelMetadata> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| Error::ModelLoad { model: name.to_string(), message: "the file has no graph".into() })?;
    let weights: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    Ok(ModelMetadata {
        name: name.to_string(),
        versions: None,
        platform: "onnx".into(),
        inputs: graph
            .input
            .iter()
            .filter(|i| !weights.contains(i.name.as_str()))
            .map(|i| metadata_tensor(name, i))
            .collect::<Result<_>>()?,
        outputs: graph.output.iter().map(|o| metadata_tensor(name, o)).collect::<Result<_>>()?,
    })
}

/// tract's error chain in one line; it names the operator when one is not implemented.
fn describe(err: &tract_onnx::prelude::TractError) -> String {
    format!("{err:#}")
}

/// Sets concrete facts for every input of `model` from `shapes` and compiles it.
fn compile_for_shapes(
    model: &InferenceModel,
    metadata: &ModelMetadata,
    shapes: &[Vec<usize>],
) -> tract_onnx::prelude::TractResult<Arc<TypedRunnableModel>> {
    let mut model = model.clone();
    for (i, (declared, shape)) in metadata.inputs.iter().zip(shapes).enumerate() {
        model.set_input_fact(i, InferenceFact::dt_shape(datum_of(declared.datatype), shape.as_slice()))?;
    }
    model.into_optimized()?.into_runnable()
}

impl OnnxModel {
    /// Loads the ONNX file at `path`, to be known as `name`.
    ///
    /// Fails (naming the model) when the file cannot be read or parsed, when
    /// a graph input or output has a type the protocol cannot carry, or when
    /// tract cannot run the graph — the error then names what tract lacks,
    /// e.g. `Unimplemented(TreeEnsembleRegressor)`.
    pub fn load(name: &str, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let proto = tract_onnx::onnx().proto_model_for_path(path).map_err(|e| Error::ModelLoad {
            model: name.to_string(),
            message: format!("cannot read {}: {}", path.display(), describe(&e)),
        })?;
        Self::from_proto(name, &proto)
    }

    /// [`OnnxModel::load`] from the bytes of an ONNX file, e.g. read from
    /// an object store (see [`crate::store`]). Models whose weights live in
    /// external data files need [`OnnxModel::load`], next to those files.
    ///
    /// ```
    /// let bytes = std::fs::read("../../shared/models/iris-logreg.onnx")?;
    /// let model = kf_serve::OnnxModel::from_bytes("iris", &bytes)?;
    /// assert_eq!(kf_serve::Model::metadata(&model).platform, "onnx");
    /// assert!(kf_serve::OnnxModel::from_bytes("iris", b"not onnx").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let proto = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).map_err(|e| Error::ModelLoad {
            model: name.to_string(),
            message: format!("not an ONNX model: {}", describe(&e)),
        })?;
        Self::from_proto(name, &proto)
    }

    fn from_proto(name: &str, proto: &tract_onnx::pb::ModelProto) -> Result<Self> {
        let load_err = |message: String| Error::ModelLoad { model: name.to_string(), message };
        let onnx = tract_onnx::onnx();
        let metadata = metadata_of(name, proto)?;
        let model = onnx.model_for_proto_model(proto).map_err(|e| load_err(describe(&e)))?;
        let plan = match model.clone().into_optimized().and_then(|m| m.into_runnable()) {
            Ok(plan) => Plan::Symbolic(plan),
            Err(symbolic) => {
                // Try the shape of a batch of one, every unknown dimension 1: if
                // that does not compile either, the model cannot be served.
                let probe: Vec<Vec<usize>> = metadata
                    .inputs
                    .iter()
                    .map(|t| t.shape.iter().map(|d| usize::try_from(*d).unwrap_or(1)).collect())
                    .collect();
                let plan = compile_for_shapes(&model, &metadata, &probe).map_err(|e| {
                    load_err(format!(
                        "tract cannot run this model: {} (without concrete shapes: {})",
                        describe(&e),
                        describe(&symbolic)
                    ))
                })?;
                let plans = Mutex::new(HashMap::from([(probe, plan)]));
                Plan::PerShape { model: Box::new(model), plans }
            }
        };
        Ok(OnnxModel { metadata, plan })
    }

    /// The plan for these input shapes.
    fn plan_for(&self, shapes: Vec<Vec<usize>>) -> Result<Arc<TypedRunnableModel>> {
        match &self.plan {
            Plan::Symbolic(plan) => Ok(Arc::clone(plan)),
            Plan::PerShape { model, plans } => {
                if let Some(plan) = plans.lock().unwrap_or_else(PoisonError::into_inner).get(&shapes) {
                    return Ok(Arc::clone(plan));
                }
                // Compiled outside the lock: other shapes keep being served meanwhile.
                let plan = compile_for_shapes(model, &self.metadata, &shapes).map_err(|e| Error::Inference {
                    model: self.metadata.name.clone(),
                    message: format!("cannot compile for input shapes {shapes:?}: {}", describe(&e)),
                })?;
                let mut plans = plans.lock().unwrap_or_else(PoisonError::into_inner);
                if plans.len() < SHAPE_PLAN_CACHE {
                    plans.insert(shapes, Arc::clone(&plan));
                }
                Ok(plan)
            }
        }
    }
}

fn to_tract<T: Datum>(shape: &[usize], data: Vec<T>) -> Result<TValue> {
    tract_ndarray::ArrayD::from_shape_vec(tract_ndarray::IxDyn(shape), data)
        .map(|a| a.into_tvalue())
        .map_err(|e| Error::Internal { message: format!("tensor of shape {shape:?}: {e}") })
}

/// A protocol tensor as a tract value of the declared datatype.
fn input_value(tensor: &Tensor) -> Result<TValue> {
    let shape = tensor.shape();
    Ok(match tensor.data() {
        TensorData::Bool(v) => to_tract(shape, v.clone())?,
        TensorData::Uint8(v) => to_tract(shape, v.clone())?,
        TensorData::Uint16(v) => to_tract(shape, v.clone())?,
        TensorData::Uint32(v) => to_tract(shape, v.clone())?,
        TensorData::Uint64(v) => to_tract(shape, v.clone())?,
        TensorData::Int8(v) => to_tract(shape, v.clone())?,
        TensorData::Int16(v) => to_tract(shape, v.clone())?,
        TensorData::Int32(v) => to_tract(shape, v.clone())?,
        TensorData::Int64(v) => to_tract(shape, v.clone())?,
        TensorData::Fp16(v) => to_tract(shape, v.clone())?,
        TensorData::Fp32(v) => to_tract(shape, v.clone())?,
        TensorData::Fp64(v) => to_tract(shape, v.clone())?,
        TensorData::Bf16(v) => to_tract(shape, v.iter().map(|x| x.to_f32()).collect::<Vec<f32>>())?,
        TensorData::Bytes(v) => {
            // ONNX strings are text; tract holds them as `String`.
            let strings = v
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b.clone()).map_err(|_| Error::Tensor {
                        tensor: tensor.name().to_string(),
                        message: format!("BYTES element {i} is not UTF-8; ONNX string tensors hold text"),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            to_tract(shape, strings)?
        }
    })
}

/// A tract output as a protocol tensor named `name`.
fn output_tensor(name: &str, value: &TValue) -> Result<Tensor> {
    let internal =
        |e: tract_onnx::prelude::TractError| Error::Internal { message: format!("output {name:?}: {}", describe(&e)) };
    fn values<T: Datum + Clone>(value: &TValue) -> tract_onnx::prelude::TractResult<Vec<T>> {
        Ok(value.to_plain_array_view::<T>()?.iter().cloned().collect())
    }
    let data: TensorData = match value.datum_type() {
        DatumType::Bool => values::<bool>(value).map_err(internal)?.into(),
        DatumType::U8 => values::<u8>(value).map_err(internal)?.into(),
        DatumType::U16 => values::<u16>(value).map_err(internal)?.into(),
        DatumType::U32 => values::<u32>(value).map_err(internal)?.into(),
        DatumType::U64 => values::<u64>(value).map_err(internal)?.into(),
        DatumType::I8 => values::<i8>(value).map_err(internal)?.into(),
        DatumType::I16 => values::<i16>(value).map_err(internal)?.into(),
        DatumType::I32 => values::<i32>(value).map_err(internal)?.into(),
        DatumType::I64 => values::<i64>(value).map_err(internal)?.into(),
        DatumType::F16 => values::<f16>(value).map_err(internal)?.into(),
        DatumType::F32 => values::<f32>(value).map_err(internal)?.into(),
        DatumType::F64 => values::<f64>(value).map_err(internal)?.into(),
        DatumType::String => {
            values::<String>(value).map_err(internal)?.into_iter().map(String::into_bytes).collect::<Vec<_>>().into()
        }
        other => {
            return Err(Error::Internal { message: format!("output {name:?} has tract type {other:?}, not served") });
        }
    };
    Tensor::new(name, value.shape().to_vec(), data)
}

/// An output as the datatype the graph declares. tract may compute an
/// output in another type (an integer folded into a symbolic `TDim`, say);
/// it is cast back, and a value that does not cast is a model failure, never
/// a response whose metadata lies about its type.
fn declared_output(metadata: &ModelMetadata, declared: &MetadataTensor, value: &TValue) -> Result<Tensor> {
    let want = datum_of(declared.datatype);
    if value.datum_type() == want {
        return output_tensor(&declared.name, value);
    }
    let cast = value.cast_to_dt(want).map_err(|e| Error::Inference {
        model: metadata.name.clone(),
        message: format!(
            "output {:?} came out as {:?} and does not convert to the declared {}: {}",
            declared.name,
            value.datum_type(),
            declared.datatype,
            describe(&e)
        ),
    })?;
    output_tensor(&declared.name, &cast.into_owned().into_tvalue())
}

impl Model for OnnxModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        let mut inputs: TVec<TValue> = TVec::new();
        let mut shapes = Vec::with_capacity(self.metadata.inputs.len());
        for declared in &self.metadata.inputs {
            let tensor = request.input(&declared.name).ok_or_else(|| Error::BadRequest {
                path: "inputs".into(),
                message: format!("missing input {:?} of model {:?}", declared.name, self.metadata.name),
            })?;
            if tensor.datatype() != declared.datatype {
                return Err(Error::Tensor {
                    tensor: declared.name.clone(),
                    message: format!("expected datatype {}, found {}", declared.datatype, tensor.datatype()),
                });
            }
            shapes.push(tensor.shape().to_vec());
            inputs.push(input_value(tensor)?);
        }
        let plan = self.plan_for(shapes)?;
        let outputs = plan
            .run(inputs)
            .map_err(|e| Error::Inference { model: self.metadata.name.clone(), message: describe(&e) })?;
        let outputs = self
            .metadata
            .outputs
            .iter()
            .zip(outputs.iter())
            .map(|(declared, value)| declared_output(&self.metadata, declared, value))
            .collect::<Result<Vec<_>>>()?;
        Ok(InferenceResponse { model_name: self.metadata.name.clone(), outputs, ..Default::default() })
    }
}
