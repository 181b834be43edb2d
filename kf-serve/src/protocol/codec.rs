//! Element codecs: tensor data to and from JSON values (nested or flat arrays)
//! and to and from the binary tensor extension's little-endian bytes. Pure
//! functions over slices; knows nothing of requests, responses or HTTP.
//!
//! Every decoder checks the element count against the shape before it
//! allocates by that count, so a hostile shape cannot make it allocate more
//! than the body it was sent.

use half::{bf16, f16};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

use super::{DataType, TensorData};
use crate::{Error, Result};

fn tensor_error(name: &str, message: String) -> Error {
    Error::Tensor { tensor: name.to_string(), message }
}

/// The leaves of a JSON `data` value, nested arrays flattened row-major.
/// A bare scalar is one element. Iterative, O(size of the value).
fn leaves(data: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack = vec![data];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items.iter().rev()),
            leaf => out.push(leaf),
        }
    }
    out
}

/// Decodes JSON `data` (nested or flat) of `count` elements of `datatype`.
/// Integers must fit their type, floats must be numbers, booleans booleans
/// and `BYTES` strings; the first offending element is named. O(elements).
pub(crate) fn data_from_json(name: &str, datatype: DataType, data: &Value, count: usize) -> Result<TensorData> {
    let items = leaves(data);
    if items.len() != count {
        return Err(tensor_error(name, format!("the shape holds {count} elements, data has {}", items.len())));
    }
    let bad =
        |i: usize, v: &Value| tensor_error(name, format!("data element {i}: expected a {datatype} value, found {v}"));
    macro_rules! ints {
        ($variant:ident, $t:ty) => {
            TensorData::$variant(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let n = v.as_i64().and_then(|n| <$t>::try_from(n).ok());
                        let n = n.or_else(|| v.as_u64().and_then(|n| <$t>::try_from(n).ok()));
                        n.ok_or_else(|| bad(i, v))
                    })
                    .collect::<Result<_>>()?,
            )
        };
    }
    macro_rules! floats {
        ($variant:ident, $convert:expr) => {
            TensorData::$variant(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_f64().map($convert).ok_or_else(|| bad(i, v)))
                    .collect::<Result<_>>()?,
            )
        };
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(
            items.iter().enumerate().map(|(i, v)| v.as_bool().ok_or_else(|| bad(i, v))).collect::<Result<_>>()?,
        ),
        DataType::Uint8 => ints!(Uint8, u8),
        DataType::Uint16 => ints!(Uint16, u16),
        DataType::Uint32 => ints!(Uint32, u32),
        DataType::Uint64 => ints!(Uint64, u64),
        DataType::Int8 => ints!(Int8, i8),
        DataType::Int16 => ints!(Int16, i16),
        DataType::Int32 => ints!(Int32, i32),
        DataType::Int64 => ints!(Int64, i64),
        DataType::Fp16 => floats!(Fp16, f16::from_f64),
        DataType::Fp32 => floats!(Fp32, |x: f64| x as f32),
        DataType::Fp64 => floats!(Fp64, |x: f64| x),
        DataType::Bf16 => floats!(Bf16, bf16::from_f64),
        DataType::Bytes => TensorData::Bytes(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| v.as_str().map(|s| s.as_bytes().to_vec()).ok_or_else(|| bad(i, v)))
                .collect::<Result<_>>()?,
        ),
    })
}

/// Checks that `data` can be written as JSON: `BYTES` elements must be UTF-8
/// (JSON strings cannot carry other bytes; the binary extension can).
pub(crate) fn check_json_encodable(name: &str, data: &TensorData) -> Result<()> {
    if let TensorData::Bytes(items) = data
        && let Some(i) = items.iter().position(|b| std::str::from_utf8(b).is_err())
    {
        return Err(tensor_error(
            name,
            format!("BYTES element {i} is not UTF-8, which JSON cannot carry; request the tensor as binary data"),
        ));
    }
    Ok(())
}

/// Writes tensor data as a flat JSON array without building a `Value`.
///
/// Floats are written as the exact `f64` of their value, so reading them back
/// gives the same bits (Triton writes them the same way). Non-finite floats
/// have no JSON form and are written as `null`: use the binary extension for them.
pub(crate) struct JsonData<'a>(pub(crate) &'a TensorData);

impl Serialize for JsonData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        macro_rules! each {
            ($v:expr, $map:expr) => {
                for x in $v {
                    seq.serialize_element(&$map(x))?;
                }
            };
        }
        match self.0 {
            TensorData::Bool(v) => each!(v, |x: &bool| *x),
            TensorData::Uint8(v) => each!(v, |x: &u8| *x),
            TensorData::Uint16(v) => each!(v, |x: &u16| *x),
            TensorData::Uint32(v) => each!(v, |x: &u32| *x),
            TensorData::Uint64(v) => each!(v, |x: &u64| *x),
            TensorData::Int8(v) => each!(v, |x: &i8| *x),
            TensorData::Int16(v) => each!(v, |x: &i16| *x),
            TensorData::Int32(v) => each!(v, |x: &i32| *x),
            TensorData::Int64(v) => each!(v, |x: &i64| *x),
            TensorData::Fp16(v) => each!(v, |x: &f16| f64::from(*x)),
            TensorData::Fp32(v) => each!(v, |x: &f32| f64::from(*x)),
            TensorData::Fp64(v) => each!(v, |x: &f64| *x),
            TensorData::Bf16(v) => each!(v, |x: &bf16| f64::from(*x)),
            TensorData::Bytes(v) => {
                for x in v {
                    seq.serialize_element(&String::from_utf8_lossy(x))?;
                }
            }
        }
        seq.end()
    }
}

/// The size of `data` in binary form. O(1), or O(elements) for `BYTES`.
pub(crate) fn binary_size(data: &TensorData) -> usize {
    match data {
        TensorData::Bytes(items) => items.iter().map(|b| 4 + b.len()).sum(),
        other => other.len() * other.datatype().element_size().unwrap_or(0),
    }
}

/// Appends `data` in binary form: little-endian elements, `BOOL` as one byte
/// (0 or 1), `BYTES` as a 4-byte little-endian length then the bytes. O(bytes).
pub(crate) fn append_binary(data: &TensorData, out: &mut Vec<u8>) {
    out.reserve(binary_size(data));
    macro_rules! le {
        ($v:expr) => {
            out.extend($v.iter().flat_map(|x| x.to_le_bytes()))
        };
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Uint16(v) => le!(v),
        TensorData::Uint32(v) => le!(v),
        TensorData::Uint64(v) => le!(v),
        TensorData::Int8(v) => le!(v),
        TensorData::Int16(v) => le!(v),
        TensorData::Int32(v) => le!(v),
        TensorData::Int64(v) => le!(v),
        TensorData::Fp16(v) => le!(v),
        TensorData::Fp32(v) => le!(v),
        TensorData::Fp64(v) => le!(v),
        TensorData::Bf16(v) => le!(v),
        TensorData::Bytes(items) => {
            for item in items {
                // Elements longer than 4 GiB cannot be framed; bodies that size
                // are refused long before this by any server's size limit.
                let len = u32::try_from(item.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(item);
            }
        }
    }
}

/// Splits `bytes` into `N`-byte little-endian elements.
fn chunks<const N: usize, T>(bytes: &[u8], from_le: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|chunk| {
            let mut raw = [0u8; N];
            raw.copy_from_slice(chunk);
            from_le(raw)
        })
        .collect()
}

/// Decodes `count` elements of `datatype` from their binary form, which must
/// be exactly `bytes` long. `BOOL` bytes other than 0 read as true (numpy's
/// reading). O(bytes).
pub(crate) fn data_from_binary(name: &str, datatype: DataType, bytes: &[u8], count: usize) -> Result<TensorData> {
    let Some(size) = datatype.element_size() else {
        return bytes_from_binary(name, bytes, count);
    };
    let expected = count.checked_mul(size);
    if expected != Some(bytes.len()) {
        return Err(tensor_error(
            name,
            format!(
                "the shape holds {count} {datatype} elements of {size} bytes, binary data has {} bytes",
                bytes.len()
            ),
        ));
    }
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(bytes.iter().map(|b| *b != 0).collect()),
        DataType::Uint8 => TensorData::Uint8(bytes.to_vec()),
        DataType::Uint16 => TensorData::Uint16(chunks(bytes, u16::from_le_bytes)),
        DataType::Uint32 => TensorData::Uint32(chunks(bytes, u32::from_le_bytes)),
        DataType::Uint64 => TensorData::Uint64(chunks(bytes, u64::from_le_bytes)),
        DataType::Int8 => TensorData::Int8(chunks(bytes, i8::from_le_bytes)),
        DataType::Int16 => TensorData::Int16(chunks(bytes, i16::from_le_bytes)),
        DataType::Int32 => TensorData::Int32(chunks(bytes, i32::from_le_bytes)),
        DataType::Int64 => TensorData::Int64(chunks(bytes, i64::from_le_bytes)),
        DataType::Fp16 => TensorData::Fp16(chunks(bytes, f16::from_le_bytes)),
        DataType::Fp32 => TensorData::Fp32(chunks(bytes, f32::from_le_bytes)),
        DataType::Fp64 => TensorData::Fp64(chunks(bytes, f64::from_le_bytes)),
        DataType::Bf16 => TensorData::Bf16(chunks(bytes, bf16::from_le_bytes)),
        DataType::Bytes => return bytes_from_binary(name, bytes, count),
    })
}

/// Decodes length-prefixed `BYTES` elements, which must fill `bytes` exactly.
fn bytes_from_binary(name: &str, bytes: &[u8], count: usize) -> Result<TensorData> {
    // Each element takes at least its 4-byte prefix: never reserve more.
    let mut items = Vec::with_capacity(count.min(bytes.len() / 4));
    let mut rest = bytes;
    while !rest.is_empty() {
        let i = items.len();
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(tensor_error(name, format!("BYTES element {i}: the 4-byte length prefix is cut short")));
        };
        let len = u32::from_le_bytes(*prefix) as usize;
        if len > tail.len() {
            return Err(tensor_error(
                name,
                format!("BYTES element {i}: the prefix says {len} bytes, only {} remain", tail.len()),
            ));
        }
        let (item, tail) = tail.split_at(len);
        items.push(item.to_vec());
        rest = tail;
    }
    if items.len() != count {
        return Err(tensor_error(
            name,
            format!("the shape holds {count} BYTES elements, binary data has {}", items.len()),
        ));
    }
    Ok(TensorData::Bytes(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_and_flat_json_agree() {
        let flat = data_from_json("x", DataType::Int32, &json!([1, 2, 3, 4]), 4).expect("flat");
        let nested = data_from_json("x", DataType::Int32, &json!([[1, 2], [3, 4]]), 4).expect("nested");
        assert_eq!(flat, nested);
        assert_eq!(flat, TensorData::Int32(vec![1, 2, 3, 4]));
    }

    #[test]
    fn json_errors_name_the_tensor_and_element() {
        let err = data_from_json("x", DataType::Int8, &json!([1, 300]), 2).expect_err("range");
        assert_eq!(err.to_string(), "tensor \"x\": data element 1: expected a INT8 value, found 300");
        let err = data_from_json("x", DataType::Fp32, &json!([1.0, "a"]), 2).expect_err("string");
        assert!(err.to_string().contains("element 1"), "{err}");
        let err = data_from_json("x", DataType::Int64, &json!([1.5]), 1).expect_err("fraction");
        assert!(err.to_string().contains("element 0"), "{err}");
        let err = data_from_json("x", DataType::Fp32, &json!([1, 2, 3]), 4).expect_err("count");
        assert_eq!(err.to_string(), "tensor \"x\": the shape holds 4 elements, data has 3");
        assert!(data_from_json("x", DataType::Bool, &json!([1]), 1).is_err());
        assert!(data_from_json("x", DataType::Bytes, &json!([1]), 1).is_err());
    }

    #[test]
    fn bytes_binary_layout_is_length_prefixed() {
        let data = TensorData::Bytes(vec![b"ab".to_vec(), Vec::new()]);
        let mut out = Vec::new();
        append_binary(&data, &mut out);
        assert_eq!(out, [2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
        assert_eq!(binary_size(&data), out.len());
        assert_eq!(data_from_binary("s", DataType::Bytes, &out, 2).expect("decodes"), data);
        assert!(data_from_binary("s", DataType::Bytes, &out[..5], 2).is_err());
        assert!(data_from_binary("s", DataType::Bytes, &out[..2], 1).is_err());
        assert!(data_from_binary("s", DataType::Bytes, &out, 3).is_err());
    }

    #[test]
    fn fixed_binary_sizes_must_match() {
        let err = data_from_binary("f", DataType::Fp32, &[0; 7], 2).expect_err("size");
        assert_eq!(
            err.to_string(),
            "tensor \"f\": the shape holds 2 FP32 elements of 4 bytes, binary data has 7 bytes"
        );
        assert!(data_from_binary("f", DataType::Fp32, &[0; 8], usize::MAX).is_err());
        assert_eq!(
            data_from_binary("b", DataType::Bool, &[0, 1, 2], 3).expect("bools"),
            TensorData::Bool(vec![false, true, true])
        );
    }

    #[test]
    fn non_utf8_bytes_cannot_be_json() {
        let data = TensorData::Bytes(vec![b"ok".to_vec(), vec![0xff]]);
        let err = check_json_encodable("b", &data).expect_err("not UTF-8");
        assert!(err.to_string().contains("BYTES element 1 is not UTF-8"), "{err}");
    }
}
