//! The router as tower middleware (feature `tower`), for gateways that hold
//! their models as `tower::Service<InferenceRequest>` (a remote backend, a
//! pool, a service with its own retries) rather than as [`crate::Model`]s:
//!
//! - [`BatchLayer`] → [`Batch`]: concurrent requests are gathered for up to
//!   `max_latency` or `max_batch_rows` rows, run through the inner service
//!   as one request, and each caller gets exactly its own rows back — the
//!   same [`concat()`] / [`split()`] as [`super::batch::BatchingModel`], on a
//!   tokio task instead of a thread.
//! - [`CanaryLayer`] → [`Canary`]: the [`TrafficSplit`] between the wrapped
//!   (stable) service and a canary service, sticky by the request's
//!   [`super::STICKY_PARAMETER`], changeable while serving through a
//!   [`SplitHandle`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), kf_serve::Error> {
//! use std::time::Duration;
//! use kf_serve::protocol::{InferenceRequest, InferenceResponse, Tensor};
//! use kf_serve::router::batch::BatchOptions;
//! use kf_serve::router::layer::BatchLayer;
//! use tower::{Layer, ServiceExt, service_fn};
//!
//! // The backend: y = x + 1 over INT64 [rows, 1].
//! let backend = service_fn(|request: InferenceRequest| async move {
//!     let x = request.inputs[0].data().as_i64().unwrap_or_default().to_vec();
//!     let y: Vec<i64> = x.iter().map(|v| v + 1).collect();
//!     Ok::<_, kf_serve::Error>(InferenceResponse { outputs: vec![Tensor::new("y", vec![y.len(), 1], y)?], ..Default::default() })
//! });
//! let batched = BatchLayer::new(BatchOptions { max_batch_rows: 32, max_latency: Duration::from_millis(2) }).layer(backend);
//! let request = InferenceRequest { inputs: vec![Tensor::new("x", vec![2, 1], vec![1i64, 2])?], ..Default::default() };
//! let response = batched.oneshot(request).await?;
//! assert_eq!(response.outputs[0].data().as_i64(), Some(&[2i64, 3][..]));
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tower::{Layer, Service, ServiceExt};

use super::batch::{BatchOptions, compatible, concat, rows_of, split, take_batch};
use super::split::{Revision, TrafficSplit, revision_of};
use crate::protocol::{InferenceRequest, InferenceResponse};
use crate::{Error, Result};

/// A boxed, sendable response future.
pub type ResponseFuture = Pin<Box<dyn Future<Output = Result<InferenceResponse>> + Send>>;

/// Requests waiting in a [`Batch`] queue before its worker takes them; a
/// full queue makes callers wait (backpressure), it never drops them.
const QUEUE_PER_BATCH_ROW: usize = 4;

/// Makes [`Batch`] services. See the [module docs](self).
#[derive(Debug, Clone, Copy)]
pub struct BatchLayer {
    options: BatchOptions,
}

impl BatchLayer {
    /// Batches as `options` say (`max_batch_rows` at least 1).
    pub fn new(options: BatchOptions) -> Self {
        BatchLayer { options: BatchOptions { max_batch_rows: options.max_batch_rows.max(1), ..options } }
    }
}

type Job = (InferenceRequest, oneshot::Sender<Result<InferenceResponse>>);

/// A service that runs concurrent requests as batches through the service
/// it wraps, on a worker task. Cloning is cheap (a queue handle); the worker
/// ends, after answering everything queued, when the last clone is dropped.
///
/// Made outside a tokio runtime there is no worker to run on: every call
/// then fails with an internal error saying so, instead of panicking.
#[derive(Debug, Clone)]
pub struct Batch {
    queue: Option<mpsc::Sender<Job>>,
}

impl<S> Layer<S> for BatchLayer
where
    S: Service<InferenceRequest, Response = InferenceResponse, Error = Error> + Send + 'static,
    S::Future: Send,
{
    type Service = Batch;

    fn layer(&self, inner: S) -> Batch {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return Batch { queue: None } };
        let (queue, jobs) = mpsc::channel(self.options.max_batch_rows.saturating_mul(QUEUE_PER_BATCH_ROW));
        runtime.spawn(run_batches(inner, jobs, self.options));
        Batch { queue: Some(queue) }
    }
}

impl Service<InferenceRequest> for Batch {
    type Response = InferenceResponse;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        // Capacity is awaited in the call's future, so a caller waits
        // for room in the queue instead of failing.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: InferenceRequest) -> ResponseFuture {
        let queue = self.queue.clone();
        Box::pin(async move {
            let stopped = || Error::Internal { message: "the batching worker is not running".into() };
            let queue = queue.ok_or_else(|| Error::Internal {
                message: "the batching layer was built outside a tokio runtime, so it has no worker".into(),
            })?;
            rows_of(&request)?;
            let (reply, answer) = oneshot::channel();
            queue.send((request, reply)).await.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }
}

/// The worker: gather a batch, run it through `inner`, answer each caller
/// with its rows; after the queue closes, answer what is left and stop.
async fn run_batches<S>(mut inner: S, mut jobs: mpsc::Receiver<Job>, options: BatchOptions)
where
    S: Service<InferenceRequest, Response = InferenceResponse, Error = Error>,
{
    let mut waiting: Vec<Job> = Vec::new();
    let mut open = true;
    loop {
        if waiting.is_empty() {
            match jobs.recv().await {
                Some(job) => waiting.push(job),
                None => return,
            }
        }
        let deadline = tokio::time::Instant::now() + options.max_latency;
        while open && rows_like_first(&waiting) < options.max_batch_rows {
            match tokio::time::timeout_at(deadline, jobs.recv()).await {
                Ok(Some(job)) => waiting.push(job),
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        // Callers that gave up are not run.
        waiting.retain(|(_, reply)| !reply.is_closed());
        if waiting.is_empty() {
            continue;
        }
        let batch = take_batch(&mut waiting, options.max_batch_rows);
        let requests: Vec<&InferenceRequest> = batch.iter().map(|(r, _)| r).collect();
        let answers = match concat(&requests) {
            Ok((joined, rows)) => match inner.ready().await {
                Ok(ready) => ready.call(joined).await.and_then(|response| split(&response, &rows)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match answers {
            Ok(responses) => {
                for ((_, reply), response) in batch.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                let message = e.to_string();
                let class = e.class();
                for (_, reply) in batch {
                    let _ = reply.send(Err(same_class(class, &message)));
                }
            }
        }
        if !open && waiting.is_empty() {
            return;
        }
    }
}

/// The rows of the waiting requests that can share a batch with the first.
fn rows_like_first(waiting: &[Job]) -> usize {
    let Some((first, _)) = waiting.first() else { return 0 };
    waiting.iter().filter(|(r, _)| compatible(first, r)).map(|(r, _)| rows_of(r).unwrap_or(0)).sum()
}

/// One batch's error for each of its callers, in the same status class.
fn same_class(class: crate::ErrorClass, message: &str) -> Error {
    use crate::ErrorClass;
    let message = message.to_string();
    match class {
        ErrorClass::BadRequest => Error::BadRequest { path: "inputs".into(), message },
        ErrorClass::NotFound | ErrorClass::Unavailable => {
            Error::ModelNotReady { model: String::new(), reason: message }
        }
        _ => Error::Internal { message },
    }
}

/// The split a [`Canary`] routes by, shared by its clones and changeable
/// while serving (promote, roll back, a new percentage).
#[derive(Debug, Clone)]
pub struct SplitHandle {
    percent: Arc<AtomicU64>,
    served: Arc<[AtomicU64; 2]>,
}

impl SplitHandle {
    /// The split in force.
    pub fn get(&self) -> TrafficSplit {
        TrafficSplit::clamped(self.percent.load(Ordering::Relaxed))
    }

    /// Changes the split for the requests that start from now on.
    pub fn set(&self, split: TrafficSplit) {
        self.percent.store(u64::from(split.canary_percent()), Ordering::Relaxed);
    }

    /// Requests routed so far to (stable, canary).
    pub fn served(&self) -> (u64, u64) {
        (self.served[0].load(Ordering::Relaxed), self.served[1].load(Ordering::Relaxed))
    }
}

/// Makes [`Canary`] services: the wrapped service is the stable revision.
#[derive(Debug, Clone)]
pub struct CanaryLayer<C> {
    canary: C,
    handle: SplitHandle,
}

impl<C> CanaryLayer<C> {
    /// Sends `split`'s share of requests to `canary`.
    pub fn new(canary: C, split: TrafficSplit) -> Self {
        let handle = SplitHandle {
            percent: Arc::new(AtomicU64::new(u64::from(split.canary_percent()))),
            served: Arc::new([AtomicU64::new(0), AtomicU64::new(0)]),
        };
        CanaryLayer { canary, handle }
    }

    /// The handle that changes the split of every service this layer makes.
    pub fn handle(&self) -> SplitHandle {
        self.handle.clone()
    }
}

impl<S, C: Clone> Layer<S> for CanaryLayer<C> {
    type Service = Canary<S, C>;

    fn layer(&self, stable: S) -> Canary<S, C> {
        Canary { stable, canary: self.canary.clone(), handle: self.handle.clone(), tickets: Arc::default() }
    }
}

/// Two revisions behind a [`TrafficSplit`]; see [`CanaryLayer`]. Requests
/// carrying the sticky parameter route by it, the others by a ticket counter
/// shared by the clones, so the split is exact over every 100 requests.
#[derive(Debug, Clone)]
pub struct Canary<S, C> {
    stable: S,
    canary: C,
    handle: SplitHandle,
    tickets: Arc<AtomicU64>,
}

impl<S, C> Service<InferenceRequest> for Canary<S, C>
where
    S: Service<InferenceRequest, Response = InferenceResponse, Error = Error>,
    S::Future: Send + 'static,
    C: Service<InferenceRequest, Response = InferenceResponse, Error = Error>,
    C::Future: Send + 'static,
{
    type Response = InferenceResponse;
    type Error = Error;
    type Future = ResponseFuture;

    /// Ready when both revisions are: either may get the next request.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let stable = self.stable.poll_ready(cx)?;
        let canary = self.canary.poll_ready(cx)?;
        if stable.is_ready() && canary.is_ready() { Poll::Ready(Ok(())) } else { Poll::Pending }
    }

    fn call(&mut self, request: InferenceRequest) -> ResponseFuture {
        let revision = revision_of(self.handle.get(), &self.tickets, &request);
        let index = usize::from(revision == Revision::Canary);
        self.handle.served[index].fetch_add(1, Ordering::Relaxed);
        match revision {
            Revision::Stable => Box::pin(self.stable.call(request)),
            Revision::Canary => Box::pin(self.canary.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Parameters, Tensor};
    use proptest::prelude::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tower::service_fn;

    fn request(caller: i64, rows: usize) -> InferenceRequest {
        let data: Vec<i64> = (0..rows * 2).map(|i| caller * 1000 + i as i64).collect();
        InferenceRequest { inputs: vec![Tensor::new("x", vec![rows, 2], data).unwrap()], ..Default::default() }
    }

    /// y = x + 1, counting calls and the largest batch.
    fn plus_one(
        calls: Arc<AtomicUsize>,
        largest: Arc<AtomicUsize>,
    ) -> impl Service<InferenceRequest, Response = InferenceResponse, Error = Error, Future: Send> + Send + 'static
    {
        service_fn(move |r: InferenceRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            largest.fetch_max(r.inputs[0].shape()[0], Ordering::SeqCst);
            async move {
                let x = &r.inputs[0];
                let y: Vec<i64> = x.data().as_i64().unwrap_or_default().iter().map(|v| v + 1).collect();
                Ok(InferenceResponse { outputs: vec![Tensor::new("y", x.shape().to_vec(), y)?], ..Default::default() })
            }
        })
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever the mix of row counts and however they interleave, each
        /// caller gets exactly its own rows, plus one; batches never exceed
        /// the limit (a larger single request runs alone).
        #[test]
        fn each_caller_gets_exactly_its_rows(rows in proptest::collection::vec(1usize..6, 1..24), max in 1usize..12) {
            let (calls, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let rt = runtime();
            let results = rt.block_on(async {
                let options = BatchOptions { max_batch_rows: max, max_latency: Duration::from_millis(3) };
                let service = BatchLayer::new(options).layer(plus_one(calls.clone(), largest.clone()));
                let tasks: Vec<_> = rows.iter().enumerate().map(|(caller, &n)| {
                    let service = service.clone();
                    tokio::spawn(async move { (caller, n, service.oneshot(request(caller as i64, n)).await) })
                }).collect();
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await.unwrap());
                }
                out
            });
            for (caller, n, response) in results {
                let want: Vec<i64> = request(caller as i64, n).inputs[0].data().as_i64().unwrap().iter().map(|v| v + 1).collect();
                let response = response.unwrap();
                prop_assert_eq!(response.outputs[0].shape(), &[n, 2][..]);
                prop_assert_eq!(response.outputs[0].data().as_i64().unwrap(), &want[..]);
            }
            prop_assert!(largest.load(Ordering::SeqCst) <= max.max(*rows.iter().max().unwrap()));
            prop_assert!(calls.load(Ordering::SeqCst) <= rows.len());
        }
    }

    #[test]
    fn concurrent_requests_share_one_call() {
        let (calls, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        runtime().block_on(async {
            let options = BatchOptions { max_batch_rows: 8, max_latency: Duration::from_millis(200) };
            let service = BatchLayer::new(options).layer(plus_one(calls.clone(), largest.clone()));
            let tasks: Vec<_> = (0..8).map(|c| tokio::spawn(service.clone().oneshot(request(c, 1)))).collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        // Eight one-row requests fill one batch of eight before the latency runs out.
        assert_eq!((calls.load(Ordering::SeqCst), largest.load(Ordering::SeqCst)), (1, 8));
    }

    #[test]
    fn bad_requests_and_failing_backends_answer_every_caller() {
        runtime().block_on(async {
            let options = BatchOptions { max_batch_rows: 4, max_latency: Duration::from_millis(1) };
            let (calls, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let service = BatchLayer::new(options).layer(plus_one(calls, largest));
            let scalar =
                InferenceRequest { inputs: vec![Tensor::new("x", vec![], vec![1i64]).unwrap()], ..Default::default() };
            let err = service.clone().oneshot(scalar).await.unwrap_err();
            assert_eq!(err.class(), crate::ErrorClass::BadRequest, "{err}");
            let failing = service_fn(|_: InferenceRequest| async {
                Err::<InferenceResponse, _>(Error::Inference { model: "m".into(), message: "boom".into() })
            });
            let service = BatchLayer::new(options).layer(failing);
            let a = tokio::spawn(service.clone().oneshot(request(1, 1)));
            let b = tokio::spawn(service.oneshot(request(2, 1)));
            for answer in [a.await.unwrap(), b.await.unwrap()] {
                let err = answer.unwrap_err();
                assert_eq!(err.class(), crate::ErrorClass::Internal);
                assert!(err.to_string().contains("boom"), "{err}");
            }
        });
    }

    #[test]
    fn a_layer_built_outside_a_runtime_fails_calls_instead_of_panicking() {
        let options = BatchOptions { max_batch_rows: 4, max_latency: Duration::from_millis(1) };
        let (calls, largest) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let service = BatchLayer::new(options).layer(plus_one(calls, largest));
        let err = runtime().block_on(service.oneshot(request(1, 1))).unwrap_err();
        assert!(err.to_string().contains("outside a tokio runtime"), "{err}");
    }

    fn tagged(
        tag: i64,
    ) -> impl Service<InferenceRequest, Response = InferenceResponse, Error = Error, Future: Send> + Clone {
        service_fn(move |_: InferenceRequest| async move {
            Ok(InferenceResponse { outputs: vec![Tensor::new("tag", vec![1], vec![tag])?], ..Default::default() })
        })
    }

    async fn tag_of(
        service: &mut impl Service<InferenceRequest, Response = InferenceResponse, Error = Error>,
        request: InferenceRequest,
    ) -> i64 {
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        response.outputs[0].data().as_i64().unwrap()[0]
    }

    #[test]
    fn the_canary_gets_its_share_sticky_keys_stay_and_the_split_changes_live() {
        runtime().block_on(async {
            let layer = CanaryLayer::new(tagged(2), TrafficSplit::new(25).unwrap());
            let handle = layer.handle();
            let mut service = layer.layer(tagged(1));
            let mut canary = 0;
            for _ in 0..100 {
                canary += usize::from(tag_of(&mut service, request(0, 1)).await == 2);
            }
            assert_eq!(canary, 25);
            assert_eq!(handle.served(), (75, 25));
            let sticky = || {
                let mut r = request(0, 1);
                let mut parameters = Parameters::new();
                parameters.insert(crate::router::STICKY_PARAMETER.into(), "user-7".into());
                r.parameters = Some(parameters);
                r
            };
            let first = tag_of(&mut service, sticky()).await;
            for _ in 0..20 {
                assert_eq!(tag_of(&mut service, sticky()).await, first);
            }
            handle.set(TrafficSplit::new(25).unwrap().promote());
            assert_eq!(tag_of(&mut service, request(0, 1)).await, 2);
            handle.set(handle.get().rollback());
            assert_eq!(tag_of(&mut service, request(0, 1)).await, 1);
        });
    }
}
