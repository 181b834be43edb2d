//! Codec tests: hand-written cases from the protocol and its binary extension,
//! and property tests (encode → decode is the identity for every datatype and
//! shape; decoding arbitrary bytes never panics).

use half::{bf16, f16};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::{Error, ErrorClass};

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("json")
}

/// Bit-exact equality (NaN payloads and signed zeros included).
fn same_data(a: &TensorData, b: &TensorData) -> bool {
    fn bits(d: &TensorData) -> Option<Vec<u64>> {
        Some(match d {
            TensorData::Fp16(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
            TensorData::Bf16(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
            TensorData::Fp32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
            TensorData::Fp64(v) => v.iter().map(|x| x.to_bits()).collect(),
            _ => return None,
        })
    }
    a.datatype() == b.datatype() && if let (Some(x), Some(y)) = (bits(a), bits(b)) { x == y } else { a == b }
}

fn same_tensors(a: &[Tensor], b: &[Tensor]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name() == y.name()
                && x.shape() == y.shape()
                && x.parameters() == y.parameters()
                && same_data(x.data(), y.data())
        })
}

#[test]
fn binary_request_as_the_probe_sends_it() {
    let header = json!({"id": "raw-binary", "inputs": [
        {"name": "a", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
        {"name": "b", "datatype": "INT64", "shape": [1], "data": [7]},
        {"name": "c", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 7}},
    ]});
    let mut raw = body(header);
    let header_length = raw.len();
    raw.extend_from_slice(&1.5f32.to_le_bytes());
    raw.extend_from_slice(&(-2.0f32).to_le_bytes());
    raw.extend_from_slice(&[3, 0, 0, 0, b'c', b'a', b't']);
    let request = InferenceRequest::decode(&raw, Some(header_length)).expect("decodes");
    assert_eq!(request.id.as_deref(), Some("raw-binary"));
    assert_eq!(request.inputs[0].data(), &TensorData::Fp32(vec![1.5, -2.0]));
    assert_eq!(request.inputs[0].parameters(), None, "binary_data_size is the codec's, not the model's");
    assert_eq!(request.inputs[1].data(), &TensorData::Int64(vec![7]));
    assert_eq!(request.input("c").map(Tensor::data), Some(&TensorData::Bytes(vec![b"cat".to_vec()])));
}

fn bad_request(raw: &[u8], header_length: Option<usize>) -> Error {
    let err = InferenceRequest::decode(raw, header_length).expect_err("should be rejected");
    assert_eq!(err.class(), ErrorClass::BadRequest, "{err}");
    err
}

#[test]
fn malformed_bodies_are_400s_naming_the_field() {
    let err = bad_request(b"{\"inputs\": [", None);
    assert!(err.to_string().starts_with("inputs: EOF while parsing a list at line 1 column 12"), "{err}");
    assert!(bad_request(b"not json", None).to_string().starts_with("body: expected"));
    assert_eq!(
        bad_request(&body(json!({"id": "1"})), None).to_string(),
        "body: missing field `inputs` at line 1 column 10"
    );
    let err = bad_request(
        &body(json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "id": 5})),
        None,
    );
    assert!(err.to_string().starts_with("id: invalid type"), "{err}");
    let err =
        bad_request(&body(json!({"inputs": [{"name": "x", "shape": "1", "datatype": "FP32", "data": [1]}]})), None);
    assert!(err.to_string().starts_with("inputs[0].shape: invalid type"), "{err}");
    let err = bad_request(b"{\"inputs\": []} trailing", None);
    assert!(err.to_string().starts_with("body: trailing characters"), "{err}");
    let tensor = |t: Value| bad_request(&body(json!({"inputs": [t]})), None).to_string();
    assert_eq!(
        tensor(json!({"name": "x", "shape": [1], "datatype": "FP8", "data": [1]})),
        "tensor \"x\": unknown datatype \"FP8\""
    );
    assert!(
        tensor(json!({"name": "x", "shape": [-1, 2], "datatype": "FP32", "data": [1, 2]}))
            .contains("negative dimension")
    );
    assert_eq!(tensor(json!({"name": "x", "shape": [1], "datatype": "FP32"})), "tensor \"x\": has no data");
    assert!(
        tensor(json!({"name": "x", "shape": [2], "datatype": "BOOL", "data": [true, 1]})).contains("data element 1")
    );
    let dup = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [1]},
                                {"name": "x", "shape": [1], "datatype": "INT8", "data": [2]}]});
    assert!(bad_request(&body(dup), None).to_string().starts_with("inputs[1].name: \"x\" appears more than once"));
}

#[test]
fn binary_sections_must_add_up() {
    let input = |size: Value| json!({"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": size}}]});
    let mut raw = body(input(json!(8)));
    let n = raw.len();
    raw.extend_from_slice(&[0; 8]);
    assert!(InferenceRequest::decode(&raw, Some(n)).is_ok());
    // The size claims more than was sent (KServe accepts this; the protocol does not).
    let mut short = body(input(json!(12)));
    let n = short.len();
    short.extend_from_slice(&[0; 8]);
    assert!(bad_request(&short, Some(n)).to_string().contains("only 8 bytes of binary data remain"));
    // Bytes nobody claims.
    let mut long = body(input(json!(8)));
    let n = long.len();
    long.extend_from_slice(&[0; 12]);
    assert!(bad_request(&long, Some(n)).to_string().starts_with("Inference-Header-Content-Length: 4 bytes"));
    // The claimed size does not fit the shape.
    let mut odd = body(input(json!(4)));
    let n = odd.len();
    odd.extend_from_slice(&[0; 4]);
    assert!(bad_request(&odd, Some(n)).to_string().contains("binary data has 4 bytes"));
    assert!(
        bad_request(&raw, Some(raw.len() + 1))
            .to_string()
            .starts_with("Inference-Header-Content-Length: the header claims")
    );
    assert!(
        bad_request(&body(input(json!(8))), None)
            .to_string()
            .contains("needs the Inference-Header-Content-Length header")
    );
    let mut negative = body(input(json!(-8)));
    let n = negative.len();
    negative.extend_from_slice(&[0; 8]);
    assert!(bad_request(&negative, Some(n)).to_string().contains("must be a byte count"));
    let both = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [1], "parameters": {"binary_data_size": 1}}]});
    let mut both = body(both);
    let n = both.len();
    both.push(1);
    assert!(bad_request(&both, Some(n)).to_string().contains("has both data and parameters.binary_data_size"));
    assert_eq!(parse_header_length(" 42 ").expect("number"), 42);
    assert!(parse_header_length("forty").is_err());
}

#[test]
fn binary_outputs_follow_request_then_output_parameters() {
    let request = InferenceRequest::decode(
        &body(json!({"inputs": [], "parameters": {"binary_data_output": true},
                     "outputs": [{"name": "a", "parameters": {"binary_data": false}}, {"name": "b"}]})),
        None,
    )
    .expect("decodes");
    let choice = request.binary_outputs();
    assert!(!choice.is_binary("a") && choice.is_binary("b") && choice.is_binary("c"));
    let plain = InferenceRequest::decode(
        &body(json!({"inputs": [], "outputs": [{"name": "a", "parameters": {"binary_data": true}}]})),
        None,
    )
    .expect("decodes");
    assert!(plain.binary_outputs().is_binary("a") && !plain.binary_outputs().is_binary("b"));
}

fn response() -> InferenceResponse {
    InferenceResponse {
        model_name: "m".into(),
        model_version: Some("2".into()),
        id: Some("7".into()),
        parameters: None,
        outputs: vec![
            Tensor::new("probabilities", vec![1, 3], vec![0.25f32, 0.5, 0.25]).expect("t"),
            Tensor::new("label", vec![1], vec![1i64]).expect("t"),
        ],
    }
}

#[test]
fn responses_mix_json_and_binary_outputs() {
    let mut choice = BinaryOutputs::none();
    choice.overrides.insert("probabilities".into(), true);
    let encoded = response().encode(&choice).expect("encodes");
    let n = encoded.header_length.expect("binary");
    let header: Value = serde_json::from_slice(&encoded.body[..n]).expect("json header");
    assert_eq!(
        header,
        json!({"model_name": "m", "model_version": "2", "id": "7", "outputs": [
            {"name": "probabilities", "shape": [1, 3], "datatype": "FP32", "parameters": {"binary_data_size": 12}},
            {"name": "label", "shape": [1], "datatype": "INT64", "data": [1]},
        ]})
    );
    assert_eq!(&encoded.body[n..n + 4], &0.25f32.to_le_bytes());
    assert_eq!(InferenceResponse::decode(&encoded.body, encoded.header_length).expect("decodes"), response());
}

#[test]
fn requested_outputs_are_selected_in_order() {
    let ask = |names: &[&str]| InferenceRequest {
        outputs: Some(names.iter().map(|n| RequestedOutput::new(*n)).collect()),
        ..Default::default()
    };
    let mut r = response();
    r.retain_requested(&ask(&["label", "probabilities"])).expect("both");
    assert_eq!(r.outputs.iter().map(Tensor::name).collect::<Vec<_>>(), ["label", "probabilities"]);
    let mut r = response();
    r.retain_requested(&ask(&["label"])).expect("subset");
    assert_eq!(r.outputs.len(), 1);
    let mut r = response();
    let err = r.retain_requested(&ask(&["label", "nope"])).expect_err("unknown");
    assert_eq!(err.to_string(), "outputs[1].name: the model has no output \"nope\"");
    assert_eq!(r, response(), "a failed selection leaves the response whole");
    assert!(r.retain_requested(&ask(&["label", "label"])).is_err());
    let mut r = response();
    r.retain_requested(&InferenceRequest::default()).expect("all");
    assert_eq!(r, response());
}

#[test]
fn non_utf8_bytes_in_json_responses_are_server_errors() {
    let r = InferenceResponse {
        model_name: "m".into(),
        outputs: vec![Tensor::new("b", vec![1], vec![vec![0xffu8]]).expect("t")],
        ..Default::default()
    };
    let err = r.encode(&BinaryOutputs::none()).expect_err("not UTF-8");
    assert_eq!(err.class(), ErrorClass::Internal);
    assert!(r.encode(&BinaryOutputs::all()).is_ok(), "binary form carries any bytes");
}

// ---------------------------------------------------------------------------
// property tests

/// Data of `datatype` with `n` elements; `json_safe` keeps floats finite and
/// BYTES UTF-8, the values JSON can carry.
fn data(datatype: DataType, n: usize, json_safe: bool) -> BoxedStrategy<TensorData> {
    use prop::collection::vec;
    fn finite<T: Copy>(x: T, ok: bool, zero: T) -> T {
        if ok { x } else { zero }
    }
    match datatype {
        DataType::Bool => vec(any::<bool>(), n).prop_map(TensorData::Bool).boxed(),
        DataType::Uint8 => vec(any::<u8>(), n).prop_map(TensorData::Uint8).boxed(),
        DataType::Uint16 => vec(any::<u16>(), n).prop_map(TensorData::Uint16).boxed(),
        DataType::Uint32 => vec(any::<u32>(), n).prop_map(TensorData::Uint32).boxed(),
        DataType::Uint64 => vec(any::<u64>(), n).prop_map(TensorData::Uint64).boxed(),
        DataType::Int8 => vec(any::<i8>(), n).prop_map(TensorData::Int8).boxed(),
        DataType::Int16 => vec(any::<i16>(), n).prop_map(TensorData::Int16).boxed(),
        DataType::Int32 => vec(any::<i32>(), n).prop_map(TensorData::Int32).boxed(),
        DataType::Int64 => vec(any::<i64>(), n).prop_map(TensorData::Int64).boxed(),
        DataType::Fp16 => vec(any::<u16>().prop_map(f16::from_bits), n)
            .prop_map(move |v| {
                TensorData::Fp16(v.into_iter().map(|x| finite(x, !json_safe || x.is_finite(), f16::ZERO)).collect())
            })
            .boxed(),
        DataType::Bf16 => vec(any::<u16>().prop_map(bf16::from_bits), n)
            .prop_map(move |v| {
                TensorData::Bf16(v.into_iter().map(|x| finite(x, !json_safe || x.is_finite(), bf16::ZERO)).collect())
            })
            .boxed(),
        DataType::Fp32 => vec(any::<u32>().prop_map(f32::from_bits), n)
            .prop_map(move |v| {
                TensorData::Fp32(v.into_iter().map(|x| finite(x, !json_safe || x.is_finite(), 0.0)).collect())
            })
            .boxed(),
        DataType::Fp64 => vec(any::<u64>().prop_map(f64::from_bits), n)
            .prop_map(move |v| {
                TensorData::Fp64(v.into_iter().map(|x| finite(x, !json_safe || x.is_finite(), 0.0)).collect())
            })
            .boxed(),
        DataType::Bytes if json_safe => {
            vec("\\PC{0,6}", n).prop_map(|v| TensorData::Bytes(v.into_iter().map(String::into_bytes).collect())).boxed()
        }
        DataType::Bytes => vec(vec(any::<u8>(), 0..6), n).prop_map(TensorData::Bytes).boxed(),
    }
}

/// Up to four tensors of any datatype and shape (zero-sized dimensions and
/// scalars included), some with parameters.
fn tensors(json_safe: bool) -> impl Strategy<Value = Vec<Tensor>> {
    let one = (prop::sample::select(DataType::ALL.to_vec()), prop::collection::vec(0usize..4, 0..4), any::<bool>());
    prop::collection::vec(one, 0..4).prop_flat_map(move |specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (datatype, shape, with_params))| {
                let n = element_count(&shape).unwrap_or(0);
                data(datatype, n, json_safe).prop_map(move |d| {
                    let t = Tensor::new(format!("t{i}"), shape.clone(), d).expect("consistent by construction");
                    let mut p = Parameters::new();
                    if with_params {
                        p.insert("content_type".into(), json!("np"));
                    }
                    t.with_parameters(p)
                })
            })
            .collect::<Vec<_>>()
    })
}

/// Wraps flat row-major values into nested arrays following `shape`.
fn nest(flat: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] | [_] => Value::Array(flat.to_vec()),
        [first, rest @ ..] => {
            let step = element_count(rest).unwrap_or(0);
            Value::Array((0..*first).map(|i| nest(&flat[i * step..(i + 1) * step], rest)).collect())
        }
    }
}

proptest! {
    #[test]
    fn requests_round_trip(json in tensors(true), binary in tensors(false), id in prop::option::of("[a-z0-9]{0,8}")) {
        for (inputs, as_binary) in [(json, false), (binary, true)] {
            let request = InferenceRequest { id: id.clone(), inputs, ..Default::default() };
            let encoded = request.encode(as_binary).expect("encodes");
            let decoded = InferenceRequest::decode(&encoded.body, encoded.header_length).expect("decodes");
            prop_assert_eq!(&decoded.id, &request.id);
            prop_assert!(same_tensors(&decoded.inputs, &request.inputs), "{:?} != {:?}", decoded.inputs, request.inputs);
        }
    }

    #[test]
    fn responses_round_trip(outputs in tensors(false), pick in prop::collection::vec(any::<bool>(), 4)) {
        // Outputs that JSON cannot carry go binary; the rest as `pick` says.
        let mut choice = BinaryOutputs::none();
        for (i, t) in outputs.iter().enumerate() {
            let json_ok = match t.data() {
                TensorData::Bytes(v) => v.iter().all(|b| std::str::from_utf8(b).is_ok()),
                TensorData::Fp16(v) => v.iter().all(|x| x.is_finite()),
                TensorData::Bf16(v) => v.iter().all(|x| x.is_finite()),
                TensorData::Fp32(v) => v.iter().all(|x| x.is_finite()),
                TensorData::Fp64(v) => v.iter().all(|x| x.is_finite()),
                _ => true,
            };
            choice.overrides.insert(t.name().to_string(), !json_ok || pick[i]);
        }
        let response = InferenceResponse { model_name: "m".into(), outputs, ..Default::default() };
        let encoded = response.encode(&choice).expect("encodes");
        prop_assert_eq!(encoded.header_length.is_some(), response.outputs.iter().any(|t| choice.is_binary(t.name())));
        let decoded = InferenceResponse::decode(&encoded.body, encoded.header_length).expect("decodes");
        prop_assert!(same_tensors(&decoded.outputs, &response.outputs));
    }

    #[test]
    fn nested_and_flat_json_data_decode_alike(shape in prop::collection::vec(1usize..4, 1..4), seed in any::<i32>()) {
        let n = element_count(&shape).expect("small");
        let flat: Vec<Value> = (0..n).map(|i| json!(seed.wrapping_add(i as i32))).collect();
        let decode = |data: Value| {
            let doc = json!({"inputs": [{"name": "x", "shape": shape, "datatype": "INT32", "data": data}]});
            InferenceRequest::decode(&body(doc), None).expect("decodes").inputs
        };
        prop_assert_eq!(decode(Value::Array(flat.clone())), decode(nest(&flat, &shape)));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(raw in prop::collection::vec(any::<u8>(), 0..256), cut in prop::option::of(0usize..300)) {
        let _ = InferenceRequest::decode(&raw, cut);
        let _ = InferenceResponse::decode(&raw, cut);
    }

    #[test]
    fn decoding_well_formed_headers_with_arbitrary_binary_never_panics(
        specs in prop::collection::vec((prop::sample::select(DataType::ALL.to_vec()), prop::collection::vec(0i64..5, 0..3), 0u64..40), 0..4),
        blob in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let inputs: Vec<Value> = specs.iter().enumerate().map(|(i, (d, shape, size))| json!({
            "name": format!("t{i}"), "datatype": d.as_str(), "shape": shape, "parameters": {"binary_data_size": size},
        })).collect();
        let mut raw = body(json!({"inputs": inputs}));
        let n = raw.len();
        raw.extend_from_slice(&blob);
        if let Ok(request) = InferenceRequest::decode(&raw, Some(n)) {
            // Whatever was accepted is consistent.
            for t in &request.inputs {
                prop_assert_eq!(Some(t.data().len()), element_count(t.shape()));
            }
        }
    }
}
