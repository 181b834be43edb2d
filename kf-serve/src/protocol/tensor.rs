//! Owned, row-major tensors: a name, a shape and typed data whose element
//! count always matches the shape. Construction is the only place that check
//! lives, so every `Tensor` in the program is consistent.

use half::{bf16, f16};
use serde_json::{Map, Value};

use super::DataType;
use crate::{Error, Result};

/// Free-form protocol parameters (`"parameters": {...}`).
pub type Parameters = Map<String, Value>;

/// The elements of a tensor, flat and row-major, one variant per datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// `BOOL`.
    Bool(Vec<bool>),
    /// `UINT8`.
    Uint8(Vec<u8>),
    /// `UINT16`.
    Uint16(Vec<u16>),
    /// `UINT32`.
    Uint32(Vec<u32>),
    /// `UINT64`.
    Uint64(Vec<u64>),
    /// `INT8`.
    Int8(Vec<i8>),
    /// `INT16`.
    Int16(Vec<i16>),
    /// `INT32`.
    Int32(Vec<i32>),
    /// `INT64`.
    Int64(Vec<i64>),
    /// `FP16`.
    Fp16(Vec<f16>),
    /// `FP32`.
    Fp32(Vec<f32>),
    /// `FP64`.
    Fp64(Vec<f64>),
    /// `BYTES`: each element an arbitrary byte string.
    Bytes(Vec<Vec<u8>>),
    /// `BF16`.
    Bf16(Vec<bf16>),
}

macro_rules! for_each_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
            TensorData::Bf16($v) => $body,
        }
    };
}

macro_rules! from_vec {
    ($($t:ty => $variant:ident),* $(,)?) => {
        $(impl From<Vec<$t>> for TensorData {
            fn from(values: Vec<$t>) -> Self {
                TensorData::$variant(values)
            }
        })*
    };
}

from_vec!(bool => Bool, u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64, i8 => Int8, i16 => Int16,
          i32 => Int32, i64 => Int64, f16 => Fp16, f32 => Fp32, f64 => Fp64, Vec<u8> => Bytes, bf16 => Bf16);

impl TensorData {
    /// The datatype of these elements.
    pub fn datatype(&self) -> DataType {
        match self {
            TensorData::Bool(_) => DataType::Bool,
            TensorData::Uint8(_) => DataType::Uint8,
            TensorData::Uint16(_) => DataType::Uint16,
            TensorData::Uint32(_) => DataType::Uint32,
            TensorData::Uint64(_) => DataType::Uint64,
            TensorData::Int8(_) => DataType::Int8,
            TensorData::Int16(_) => DataType::Int16,
            TensorData::Int32(_) => DataType::Int32,
            TensorData::Int64(_) => DataType::Int64,
            TensorData::Fp16(_) => DataType::Fp16,
            TensorData::Fp32(_) => DataType::Fp32,
            TensorData::Fp64(_) => DataType::Fp64,
            TensorData::Bytes(_) => DataType::Bytes,
            TensorData::Bf16(_) => DataType::Bf16,
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        for_each_variant!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `f32` when the datatype is `FP32`.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorData::Fp32(v) => Some(v),
            _ => None,
        }
    }

    /// The elements as `i64` when the datatype is `INT64`.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            TensorData::Int64(v) => Some(v),
            _ => None,
        }
    }
}

/// The number of elements of `shape`, or `None` when it overflows `usize`.
/// O(rank).
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d))
}

/// A named tensor: shape × datatype × data, consistent by construction.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    name: String,
    shape: Vec<usize>,
    data: TensorData,
    parameters: Option<Parameters>,
}

impl Tensor {
    /// A tensor named `name` of `shape`, whose row-major `data` must hold
    /// exactly as many elements as the shape. O(rank).
    ///
    /// ```
    /// use kf_serve::protocol::{DataType, Tensor};
    ///
    /// let t = Tensor::new("x", vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    /// assert_eq!(t.datatype(), DataType::Fp32);
    /// assert_eq!(t.shape(), &[2, 3]);
    ///
    /// let err = Tensor::new("x", vec![2, 3], vec![1i64, 2]).unwrap_err();
    /// assert_eq!(err.to_string(), "tensor \"x\": shape [2, 3] holds 6 elements, found 2");
    /// # Ok::<(), kf_serve::Error>(())
    /// ```
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: impl Into<TensorData>) -> Result<Self> {
        let name = name.into();
        let data = data.into();
        let Some(expected) = element_count(&shape) else {
            return Err(Error::Tensor { tensor: name, message: format!("shape {shape:?} has too many elements") });
        };
        if data.len() != expected {
            return Err(Error::Tensor {
                tensor: name,
                message: format!("shape {shape:?} holds {expected} elements, found {}", data.len()),
            });
        }
        Ok(Tensor { name, shape, data, parameters: None })
    }

    /// The same tensor with these parameters (an empty map means none).
    pub fn with_parameters(mut self, parameters: Parameters) -> Self {
        self.parameters = (!parameters.is_empty()).then_some(parameters);
        self
    }

    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape, outermost dimension first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The datatype.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// The elements, row-major.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The tensor's parameters, if any.
    pub fn parameters(&self) -> Option<&Parameters> {
        self.parameters.as_ref()
    }

    /// Takes the tensor apart into name, shape, data and parameters.
    pub fn into_parts(self) -> (String, Vec<usize>, TensorData, Option<Parameters>) {
        (self.name, self.shape, self.data, self.parameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn overflowing_shapes_are_rejected() {
        let err = Tensor::new("big", vec![usize::MAX, 2], Vec::<u8>::new()).expect_err("overflow");
        assert!(err.to_string().contains("too many elements"), "{err}");
    }

    #[test]
    fn empty_parameters_are_none() {
        let t = Tensor::new("s", vec![], vec![1u8]).expect("scalar").with_parameters(Parameters::new());
        assert_eq!(t.parameters(), None);
    }

    proptest! {
        #[test]
        fn construction_accepts_exactly_matching_counts(shape in prop::collection::vec(0usize..5, 0..4), extra in 0usize..3) {
            let n = element_count(&shape).expect("small");
            prop_assert!(Tensor::new("t", shape.clone(), vec![0i32; n]).is_ok());
            if extra > 0 {
                prop_assert!(Tensor::new("t", shape, vec![0i32; n + extra]).is_err());
            }
        }
    }
}
