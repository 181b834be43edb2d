//! Dynamic batching for v2 requests: the pure concatenation of requests
//! along the batch (first) dimension and the split of the batched response
//! back into one response per caller, and [`BatchingModel`], a [`Model`]
//! wrapper that gathers concurrent requests for up to a maximum latency or
//! batch size and runs them as one.
//!
//! [`concat()`] and [`split()`] are plain functions; the wrapper owns one
//! worker thread and no async runtime. Each caller gets exactly its own rows:
//! row counts are recorded at concatenation and checked at the split, and an
//! output whose first dimension is not the batch's row count fails the whole
//! batch rather than hand anyone a neighbour's rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::protocol::{InferenceRequest, InferenceResponse, ModelMetadata, Tensor, TensorData};
use crate::{Error, Model, Result};

fn batch_error(message: String) -> Error {
    Error::BadRequest { path: "inputs".into(), message }
}

/// The rows of a request: the first dimension shared by all of its inputs.
pub(crate) fn rows_of(request: &InferenceRequest) -> Result<usize> {
    let mut rows = None;
    for t in &request.inputs {
        let Some(&first) = t.shape().first() else {
            return Err(batch_error(format!("input {:?} is a scalar; batching needs a batch dimension", t.name())));
        };
        match rows {
            None => rows = Some(first),
            Some(r) if r == first => {}
            Some(r) => {
                return Err(batch_error(format!("input {:?} has {first} rows, other inputs have {r}", t.name())));
            }
        }
    }
    rows.ok_or_else(|| batch_error("a request without inputs cannot be batched".into()))
}

/// Whether two requests can share a batch: the same input names, datatypes
/// and shapes after the batch dimension, in the same order. O(inputs × rank).
pub fn compatible(a: &InferenceRequest, b: &InferenceRequest) -> bool {
    a.inputs.len() == b.inputs.len()
        && a.inputs.iter().zip(&b.inputs).all(|(x, y)| {
            x.name() == y.name() && x.datatype() == y.datatype() && x.shape().get(1..) == y.shape().get(1..)
        })
}

macro_rules! same_variant {
    ($parts:expr, $first:expr, $($variant:ident),*) => {
        match $first {
            $(TensorData::$variant(_) => TensorData::$variant(
                $parts.iter().flat_map(|p| match p { TensorData::$variant(v) => v.clone(), _ => Vec::new() }).collect()
            ),)*
        }
    };
}

fn concat_data(parts: &[&TensorData]) -> Option<TensorData> {
    let first = parts.first()?;
    if parts.iter().any(|p| p.datatype() != first.datatype()) {
        return None;
    }
    Some(same_variant!(
        parts, first, Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes, Bf16
    ))
}

macro_rules! slice_variant {
    ($data:expr, $range:expr, $($variant:ident),*) => {
        match $data {
            $(TensorData::$variant(v) => TensorData::$variant(v[$range].to_vec()),)*
        }
    };
}

fn slice_data(data: &TensorData, range: std::ops::Range<usize>) -> TensorData {
    slice_variant!(
        data, range, Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes, Bf16
    )
}

/// Concatenates compatible requests along the first dimension, returning
/// the batched request (inputs only: outputs and parameters are per caller)
/// and each request's row count. O(total elements).
///
/// ```
/// use kf_serve::protocol::{InferenceRequest, Tensor};
/// use kf_serve::router::batch::concat;
///
/// let one = |rows: usize| -> kf_serve::Result<InferenceRequest> {
///     Ok(InferenceRequest {
///         inputs: vec![Tensor::new("x", vec![rows, 2], vec![rows as i32; rows * 2])?],
///         ..Default::default()
///     })
/// };
/// let (batch, rows) = concat(&[&one(1)?, &one(3)?])?;
/// assert_eq!(rows, vec![1, 3]);
/// assert_eq!(batch.inputs[0].shape(), &[4, 2]);
/// # Ok::<(), kf_serve::Error>(())
/// ```
pub fn concat(requests: &[&InferenceRequest]) -> Result<(InferenceRequest, Vec<usize>)> {
    let Some(first) = requests.first() else {
        return Err(batch_error("no requests to batch".into()));
    };
    let rows: Vec<usize> = requests.iter().map(|r| rows_of(r)).collect::<Result<_>>()?;
    if let Some(i) = requests.iter().position(|r| !compatible(first, r)) {
        return Err(batch_error(format!("request {i} has other inputs than request 0; it cannot share a batch")));
    }
    let total: usize = rows.iter().sum();
    let inputs = first
        .inputs
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let parts: Vec<&TensorData> = requests.iter().map(|r| r.inputs[k].data()).collect();
            let data =
                concat_data(&parts).ok_or_else(|| batch_error(format!("input {:?}: datatypes differ", t.name())))?;
            let mut shape = t.shape().to_vec();
            shape[0] = total;
            Tensor::new(t.name(), shape, data)
        })
        .collect::<Result<_>>()?;
    Ok((InferenceRequest { inputs, ..Default::default() }, rows))
}

/// Splits a batched response into one response per request, `rows[i]` rows
/// each, in order. Every output's first dimension must equal the total row
/// count: anything else (a model that reduces over the batch) cannot be
/// split and is an error for the whole batch. O(total elements).
pub fn split(response: &InferenceResponse, rows: &[usize]) -> Result<Vec<InferenceResponse>> {
    let total: usize = rows.iter().sum();
    let mut out: Vec<InferenceResponse> = rows
        .iter()
        .map(|_| InferenceResponse {
            model_name: response.model_name.clone(),
            model_version: response.model_version.clone(),
            parameters: response.parameters.clone(),
            ..Default::default()
        })
        .collect();
    for t in &response.outputs {
        if t.shape().first() != Some(&total) {
            return Err(Error::Inference {
                model: response.model_name.clone(),
                message: format!(
                    "output {:?} has shape {:?}, not {total} rows; it cannot be split between batched requests",
                    t.name(),
                    t.shape()
                ),
            });
        }
        let row_size = t.shape()[1..].iter().product::<usize>();
        let mut start = 0;
        for (response, r) in out.iter_mut().zip(rows) {
            let mut shape = t.shape().to_vec();
            shape[0] = *r;
            let end = start + r * row_size;
            let piece = Tensor::new(t.name(), shape, slice_data(t.data(), start..end))?;
            response.outputs.push(match t.parameters() {
                Some(p) => piece.with_parameters(p.clone()),
                None => piece,
            });
            start = end;
        }
    }
    Ok(out)
}

/// How a [`BatchingModel`] gathers requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// The most rows run together (a request larger than this runs alone).
    pub max_batch_rows: usize,
    /// The longest the first request of a batch waits for company.
    pub max_latency: Duration,
}

/// Upper bounds of the batch-size histogram buckets, in rows.
pub const BATCH_BUCKETS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// What a batching model has done, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches of at most [`BATCH_BUCKETS`]`[i]` rows (cumulative, as
    /// Prometheus histograms count).
    pub buckets: [u64; BATCH_BUCKETS.len()],
    /// Batches run.
    pub batches: u64,
    /// Rows run, over every batch.
    pub rows: u64,
    /// Requests waiting for a batch now.
    pub queued: u64,
}

/// The batch-size histogram a batching model keeps.
#[derive(Debug, Default)]
struct BatchCounters {
    buckets: [AtomicU64; BATCH_BUCKETS.len()],
    batches: AtomicU64,
    rows: AtomicU64,
}

impl BatchCounters {
    fn record(&self, rows: usize) {
        for (bound, n) in BATCH_BUCKETS.iter().zip(&self.buckets) {
            if rows <= *bound {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows as u64, Ordering::Relaxed);
    }

    fn snapshot(&self, queued: usize) -> BatchStats {
        BatchStats {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            batches: self.batches.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            queued: queued as u64,
        }
    }
}

type Reply = SyncSender<Result<InferenceResponse>>;

struct Queue {
    waiting: Vec<(InferenceRequest, Reply)>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    arrived: Condvar,
    counters: BatchCounters,
}

/// A model whose concurrent requests run as batches on one worker thread.
///
/// Callers block until their batch has run (so a server runs it on a
/// blocking pool: [`Model::waits`] says so). A batch closes when it holds
/// `max_batch_rows` rows or when its first request has waited
/// `max_latency`; requests that cannot share a batch with the first (other
/// trailing shapes) wait for the next. Dropping the model stops the worker
/// after it has answered everything queued.
pub struct BatchingModel {
    inner: Arc<dyn Model>,
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for BatchingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchingModel").field("metadata", self.inner.metadata()).finish_non_exhaustive()
    }
}

impl BatchingModel {
    /// Wraps `inner`, batching as `options` say.
    pub fn new(inner: Arc<dyn Model>, options: BatchOptions) -> Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue { waiting: Vec::new(), closed: false }),
            arrived: Condvar::new(),
            counters: BatchCounters::default(),
        });
        let worker = {
            let (inner, shared) = (Arc::clone(&inner), Arc::clone(&shared));
            std::thread::Builder::new()
                .name("kf-serve-batcher".into())
                .spawn(move || run_batches(&*inner, &shared, options))
                .map_err(|e| Error::Internal { message: format!("cannot start the batching thread: {e}") })?
        };
        Ok(BatchingModel { inner, shared, worker: Some(worker) })
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Queue> {
    shared.queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The worker: gather a batch, run it, answer each caller with its rows.
fn run_batches(inner: &dyn Model, shared: &Shared, options: BatchOptions) {
    loop {
        let batch = {
            let mut queue = lock(shared);
            while queue.waiting.is_empty() && !queue.closed {
                queue = shared.arrived.wait(queue).unwrap_or_else(PoisonError::into_inner);
            }
            if queue.waiting.is_empty() {
                return;
            }
            let deadline = Instant::now() + options.max_latency;
            loop {
                let rows: usize = queue
                    .waiting
                    .iter()
                    .filter(|(r, _)| compatible(&queue.waiting[0].0, r))
                    .map(|(r, _)| rows_of(r).unwrap_or(0))
                    .sum();
                let now = Instant::now();
                if rows >= options.max_batch_rows || now >= deadline || queue.closed {
                    break;
                }
                queue = shared.arrived.wait_timeout(queue, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
            }
            take_batch(&mut queue.waiting, options.max_batch_rows)
        };
        shared.counters.record(batch.iter().map(|(r, _)| rows_of(r).unwrap_or(0)).sum());
        run_one_batch(inner, batch);
    }
}

/// Takes the first request and the compatible ones after it, in arrival
/// order, while they fit in `max_rows` (the first always goes).
pub(crate) fn take_batch<R>(waiting: &mut Vec<(InferenceRequest, R)>, max_rows: usize) -> Vec<(InferenceRequest, R)> {
    let mut taken: Vec<(InferenceRequest, R)> = Vec::new();
    let mut kept = Vec::new();
    let mut rows = 0;
    for (request, reply) in waiting.drain(..) {
        let r = rows_of(&request).unwrap_or(0);
        let fits = taken.is_empty() || (compatible(&taken[0].0, &request) && rows + r <= max_rows);
        if fits {
            rows += r;
            taken.push((request, reply));
        } else {
            kept.push((request, reply));
        }
    }
    *waiting = kept;
    taken
}

fn run_one_batch(inner: &dyn Model, batch: Vec<(InferenceRequest, Reply)>) {
    let requests: Vec<&InferenceRequest> = batch.iter().map(|(r, _)| r).collect();
    let answers = concat(&requests).and_then(|(joined, rows)| split(&inner.infer(&joined)?, &rows));
    match answers {
        Ok(responses) => {
            for ((_, reply), response) in batch.into_iter().zip(responses) {
                // A caller that gave up no longer listens; nothing to do.
                let _ = reply.send(Ok(response));
            }
        }
        Err(e) => {
            let message = e.to_string();
            for (_, reply) in batch {
                let _ = reply.send(Err(match &e {
                    Error::BadRequest { path, message } => {
                        Error::BadRequest { path: path.clone(), message: message.clone() }
                    }
                    _ => Error::Inference { model: inner.metadata().name.clone(), message: message.clone() },
                }));
            }
        }
    }
}

impl Model for BatchingModel {
    fn metadata(&self) -> &ModelMetadata {
        self.inner.metadata()
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    fn waits(&self) -> bool {
        true
    }

    fn batch_stats(&self) -> Option<BatchStats> {
        Some(self.shared.counters.snapshot(lock(&self.shared).waiting.len()))
    }

    fn infer(&self, request: &InferenceRequest) -> Result<InferenceResponse> {
        rows_of(request)?;
        let (reply, answer): (Reply, Receiver<_>) = sync_channel(1);
        {
            let mut queue = lock(&self.shared);
            queue.waiting.push((InferenceRequest { inputs: request.inputs.clone(), ..Default::default() }, reply));
        }
        self.shared.arrived.notify_one();
        answer.recv().map_err(|_| Error::Internal { message: "the batching thread stopped".into() })?
    }
}

impl Drop for BatchingModel {
    fn drop(&mut self) {
        lock(&self.shared).closed = true;
        self.shared.arrived.notify_all();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FnModel;
    use crate::protocol::{DataType, MetadataTensor};
    use proptest::prelude::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn meta() -> ModelMetadata {
        ModelMetadata {
            name: "rows".into(),
            versions: None,
            platform: "closure".into(),
            inputs: vec![MetadataTensor { name: "x".into(), datatype: DataType::Int64, shape: vec![-1, 2] }],
            outputs: vec![MetadataTensor { name: "y".into(), datatype: DataType::Int64, shape: vec![-1, 2] }],
        }
    }

    /// `y = x + 1`, counting how many times it ran and the largest batch.
    fn plus_one(calls: Arc<AtomicUsize>, largest: Arc<AtomicUsize>) -> Arc<dyn Model> {
        Arc::new(FnModel::new(meta(), move |r: &InferenceRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            let x = &r.inputs[0];
            largest.fetch_max(x.shape()[0], Ordering::SeqCst);
            let y: Vec<i64> = x.data().as_i64().unwrap_or_default().iter().map(|v| v + 1).collect();
            Ok(InferenceResponse { outputs: vec![Tensor::new("y", x.shape().to_vec(), y)?], ..Default::default() })
        }))
    }

    fn request(caller: i64, rows: usize) -> InferenceRequest {
        let data: Vec<i64> = (0..rows * 2).map(|i| caller * 1000 + i as i64).collect();
        InferenceRequest { inputs: vec![Tensor::new("x", vec![rows, 2], data).expect("t")], ..Default::default() }
    }

    #[test]
    fn outputs_that_are_not_per_row_fail_the_batch() {
        let response = InferenceResponse {
            outputs: vec![Tensor::new("total", vec![1], vec![3i64]).expect("t")],
            ..Default::default()
        };
        assert!(split(&response, &[1, 2]).is_err());
        let scalar =
            InferenceRequest { inputs: vec![Tensor::new("x", vec![], vec![1i64]).expect("t")], ..Default::default() };
        assert!(concat(&[&scalar]).is_err());
        assert!(
            concat(&[
                &request(0, 1),
                &InferenceRequest {
                    inputs: vec![Tensor::new("x", vec![1, 3], vec![0i64; 3]).expect("t")],
                    ..Default::default()
                }
            ])
            .is_err()
        );
    }

    #[test]
    fn concurrent_callers_share_batches_and_get_their_own_rows() {
        let (calls, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let model = Arc::new(
            BatchingModel::new(
                plus_one(Arc::clone(&calls), Arc::clone(&largest)),
                BatchOptions { max_batch_rows: 64, max_latency: Duration::from_millis(50) },
            )
            .expect("starts"),
        );
        let handles: Vec<_> = (0..16)
            .map(|caller| {
                let model = Arc::clone(&model);
                std::thread::spawn(move || (caller, model.infer(&request(caller, 1 + caller as usize % 3))))
            })
            .collect();
        for h in handles {
            let (caller, response) = h.join().expect("joins");
            let want: Vec<i64> = request(caller, 1 + caller as usize % 3).inputs[0]
                .data()
                .as_i64()
                .expect("i64")
                .iter()
                .map(|v| v + 1)
                .collect();
            assert_eq!(response.expect("answers").outputs[0].data().as_i64(), Some(&want[..]));
        }
        assert!(calls.load(Ordering::SeqCst) < 16, "some requests shared a batch");
        assert!(largest.load(Ordering::SeqCst) <= 64);
    }

    proptest! {
        #[test]
        fn each_caller_gets_exactly_its_rows(sizes in prop::collection::vec(0usize..5, 1..8)) {
            let requests: Vec<InferenceRequest> = sizes.iter().enumerate().map(|(i, n)| request(i as i64, *n)).collect();
            let refs: Vec<&InferenceRequest> = requests.iter().collect();
            let (batch, rows) = concat(&refs).expect("compatible");
            prop_assert_eq!(&rows, &sizes);
            // The identity: every caller must get back exactly what it sent.
            let response = InferenceResponse { outputs: vec![{
                let t = &batch.inputs[0];
                Tensor::new("y", t.shape().to_vec(), t.data().clone()).expect("t")
            }], ..Default::default() };
            let parts = split(&response, &rows).expect("splits");
            prop_assert_eq!(parts.len(), requests.len());
            for (part, sent) in parts.iter().zip(&requests) {
                prop_assert_eq!(part.outputs[0].shape(), sent.inputs[0].shape());
                prop_assert_eq!(part.outputs[0].data(), sent.inputs[0].data());
            }
        }

        #[test]
        fn batches_never_exceed_the_row_limit_unless_one_request_does(sizes in prop::collection::vec(1usize..6, 1..10), limit in 1usize..10) {
            let mut waiting: Vec<(InferenceRequest, Reply)> =
                sizes.iter().enumerate().map(|(i, n)| (request(i as i64, *n), sync_channel(1).0)).collect();
            while !waiting.is_empty() {
                let before = waiting.len();
                let taken = take_batch(&mut waiting, limit);
                prop_assert!(!taken.is_empty());
                prop_assert_eq!(waiting.len() + taken.len(), before);
                let rows: usize = taken.iter().map(|(r, _)| rows_of(r).expect("rows")).sum();
                prop_assert!(rows <= limit || taken.len() == 1);
            }
        }
    }
}
