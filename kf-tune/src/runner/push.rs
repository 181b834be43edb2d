//! The `Push` collector's endpoint: an HTTP/1.1 server on 127.0.0.1 that
//! records what trials push into their [`MetricsSink`]s.
//!
//! The wire format, the token checks and the body parsing are
//! [`crate::push`]'s; this module only moves bytes. Each running trial gets a
//! [`Grant`] (a random token, revoked when the grant is dropped); a pushed
//! value goes through [`MetricsSink::report`] exactly like a `name=value`
//! line read from stdout, so early stopping acts on every objective report.
//! Bodies longer than [`crate::push::MAX_BODY_BYTES`] are not read; a bad
//! request gets its 4xx reply and never reaches the experiment.
//!
//! ```
//! use kf_tune::runner::push::PushServer;
//!
//! let server = PushServer::bind()?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//! assert!(server.url().ends_with("/v1/metrics"));
//! # Ok::<(), kf_tune::Error>(())
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, header};
use hyper_util::rt::TokioIo;

use super::{MetricsSink, lock};
use crate::push::{self, Grants, Reply};
use crate::{Error, Result};

/// The push endpoint of one experiment run. Cheap to clone (shared).
#[derive(Clone)]
pub struct PushServer {
    inner: Arc<Inner>,
}

struct Inner {
    addr: SocketAddr,
    /// Taken by the first grant, which starts serving on the current tokio runtime.
    listener: Mutex<Option<std::net::TcpListener>>,
    grants: Mutex<Grants<MetricsSink>>,
}

impl std::fmt::Debug for PushServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushServer").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

impl PushServer {
    /// Binds 127.0.0.1 on a free port. Serving starts with the first
    /// [`PushServer::grant`], on the tokio runtime that calls it.
    pub fn bind() -> Result<Self> {
        let io = |err: std::io::Error| Error::Io { path: "push endpoint 127.0.0.1:0".into(), message: err.to_string() };
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io)?;
        listener.set_nonblocking(true).map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        Ok(PushServer {
            inner: Arc::new(Inner { addr, listener: Mutex::new(Some(listener)), grants: Mutex::new(Grants::new()) }),
        })
    }

    /// The URL trials push to (`KF_TUNE_PUSH_URL`).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.inner.addr, push::PATH)
    }

    /// A fresh token whose pushes go into `sink`, valid until the grant is
    /// dropped. Must be called on a tokio runtime (the first call starts
    /// serving on it). Errors: the listener cannot join the runtime.
    pub fn grant(&self, sink: MetricsSink) -> Result<Grant> {
        if let Some(listener) = lock(&self.inner.listener).take() {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|err| Error::Io { path: self.url(), message: err.to_string() })?;
            tokio::spawn(serve(listener, self.inner.clone()));
        }
        let token = push::new_token(&mut rand::rng());
        lock(&self.inner.grants).grant(token.clone(), sink);
        Ok(Grant { server: self.clone(), token })
    }
}

/// A trial's right to push, revoked on drop.
#[derive(Debug)]
pub struct Grant {
    server: PushServer,
    token: String,
}

impl Grant {
    /// The token (`KF_TUNE_PUSH_TOKEN`).
    pub fn token(&self) -> &str {
        &self.token
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        lock(&self.server.inner.grants).revoke(&self.token);
    }
}

/// Pause after a failed `accept` before the next.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// The longest one connection is served: pushes are small and quick.
const CONNECTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn serve(listener: tokio::net::TcpListener, inner: Arc<Inner>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: back off briefly (trials
            // ending free descriptors), rather than spin on the error.
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let inner = inner.clone();
                async move { Ok::<_, Infallible>(respond(handle(&inner, request).await)) }
            });
            // A client that hangs up or speaks nonsense only ends its own
            // connection, and one that stalls is cut off after a while.
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

async fn handle(inner: &Inner, request: Request<Incoming>) -> Reply {
    let (parts, body) = request.into_parts();
    let authorization = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let sink = match lock(&inner.grants).check(parts.method.as_str(), parts.uri.path(), authorization) {
        Ok(sink) => sink.clone(),
        Err(reply) => return reply,
    };
    let body = match Limited::new(body, push::MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return Reply::error(413, &format!("expected a body of at most {} bytes", push::MAX_BODY_BYTES));
        }
        Err(err) => return Reply::error(400, &format!("cannot read the body: {err}")),
    };
    match push::parse_metrics(&body) {
        Ok(metrics) => {
            let mut stop = false;
            for (name, value) in metrics {
                stop = sink.report(&name, value);
            }
            Reply::recorded(stop || sink.stop_requested())
        }
        Err(message) => Reply::error(400, &message),
    }
}

fn respond(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{ExperimentState, Plan};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn state() -> Arc<Mutex<ExperimentState>> {
        let doc = serde_json::json!({
            "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "p"},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {"algorithmName": "random"},
                "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}],
                "trialTemplate": {"trialParameters": [{"name": "x", "reference": "x"}],
                    "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"command": ["true"]}}},
            },
        });
        let plan = Plan::from_katib(&crate::Experiment::from_value(doc).unwrap()).unwrap();
        Arc::new(Mutex::new(ExperimentState::new(plan)))
    }

    /// One raw HTTP/1.1 request; the reply's status and body.
    async fn post(server: &PushServer, head: &str, body: &[u8]) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(server.inner.addr).await.unwrap();
        let request = format!("{head}\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(request.as_bytes()).await.unwrap();
        // A refused body may not be read at all; the reply still comes.
        let _ = stream.write_all(body).await;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply).into_owned();
        let status = reply.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, reply.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
    }

    #[tokio::test]
    async fn pushes_reach_only_the_sink_of_their_token() {
        let server = PushServer::bind().unwrap();
        let (a, b) = (MetricsSink::new(state()), MetricsSink::new(state()));
        let (grant_a, grant_b) = (server.grant(a.clone()).unwrap(), server.grant(b.clone()).unwrap());
        let auth = |g: &Grant| format!("POST /v1/metrics HTTP/1.1\r\nAuthorization: Bearer {}", g.token());
        assert_eq!(
            post(&server, &auth(&grant_a), br#"{"metrics": {"loss": 0.5}}"#).await,
            (200, "{\"stop\":false}".into())
        );
        assert_eq!(post(&server, &auth(&grant_a), b"loss=0.25 acc=1").await.0, 200);
        assert_eq!(post(&server, &auth(&grant_b), b"loss=9").await.0, 200);
        assert_eq!(a.snapshot().get("loss"), [0.5, 0.25]);
        assert_eq!(a.snapshot().get("acc"), [1.0]);
        assert_eq!(b.snapshot().get("loss"), [9.0]);

        let (status, body) = post(&server, &auth(&grant_a), b"loss=oops").await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("expected a number"), "{body}");
        assert_eq!(post(&server, &auth(&grant_a), &vec![b' '; push::MAX_BODY_BYTES + 1]).await.0, 413);
        assert_eq!(post(&server, "POST /v1/metrics HTTP/1.1\r\nAuthorization: Bearer nope", b"loss=1").await.0, 401);
        assert_eq!(post(&server, "POST /v1/metrics HTTP/1.1", b"loss=1").await.0, 401);
        assert_eq!(post(&server, "GET /v1/metrics HTTP/1.1", b"").await.0, 405);
        assert_eq!(post(&server, "POST / HTTP/1.1", b"").await.0, 404);
        // Garbage does not take the server down.
        let mut junk = tokio::net::TcpStream::connect(server.inner.addr).await.unwrap();
        junk.write_all(b"\x00\x01 not http\r\n\r\n").await.unwrap();
        drop(junk);

        let revoked = auth(&grant_a);
        drop(grant_a);
        assert_eq!(post(&server, &revoked, b"loss=1").await.0, 401, "a finished trial's token is revoked");
        assert_eq!(a.snapshot().get("loss"), [0.5, 0.25]);
        assert_eq!(post(&server, &auth(&grant_b), b"loss=8").await.0, 200);

        b.kill();
        assert_eq!(post(&server, &auth(&grant_b), b"loss=7").await, (200, "{\"stop\":true}".into()));
    }
}
