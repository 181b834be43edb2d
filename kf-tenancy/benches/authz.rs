//! Authorizer decisions at scale and the layer's cost over a no-op handler.
//!
//! Targets (issue #12): a decision < 1 µs p50 with 10,000 profiles and
//! 100,000 bindings; the layer adds < 5 % to a no-op axum handler. Run with
//! `cargo bench -p kf-tenancy --features server`.

use std::hint::black_box;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use kf_tenancy::{
    Access, Authenticator, Identity, PeerAddr, Policy, ProxyTrust, Request as AccessRequest, RequestHead, Role,
    RoleTable, Subject, TenancyLayer, Verb,
};
use tower::ServiceExt;

const PROFILES: usize = 10_000;
const BINDINGS_PER_PROFILE: usize = 10;

fn big_policy() -> Policy {
    let mut policy = Policy::new(RoleTable::default());
    for p in 0..PROFILES {
        let ns = format!("team-{p}");
        policy.set_owner(&ns, Subject::User(format!("owner-{p}@example.com")));
        for b in 0..BINDINGS_PER_PROFILE {
            let role = Role::ALL[b % 3];
            let subject = if b % 4 == 0 {
                Subject::Group(format!("group-{}", (p + b) % 500))
            } else {
                Subject::User(format!("user-{}@example.com", (p * 7 + b) % 50_000))
            };
            policy.bind(&ns, subject, role);
        }
    }
    policy
}

fn decisions(c: &mut Criterion) {
    let policy = big_policy();
    // a contributor with a few groups, asking about a namespace they are in and one they are not
    let member = Identity::user("user-35@example.com").with_group("group-1").with_group("group-2").with_group("ml");
    let mut group = c.benchmark_group("authorizer (10k profiles, 100k bindings)");
    group.bench_function("allowed read", |b| {
        let request = AccessRequest { identity: &member, namespace: "team-5", verb: Verb::Get, resource: "runs" };
        b.iter(|| black_box(policy.decide(black_box(&request))))
    });
    group.bench_function("denied write, other namespace", |b| {
        let request = AccessRequest { identity: &member, namespace: "team-9999", verb: Verb::Create, resource: "runs" };
        b.iter(|| black_box(policy.decide(black_box(&request))))
    });
    group.finish();
}

async fn noop() -> &'static str {
    "ok"
}

fn layer_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let policy = Arc::new(RwLock::new(big_policy()));
    let authn = Authenticator::new().with_proxy(ProxyTrust::parse(&["10.0.0.2"]).expect("proxy"));
    fn scope<'a>(head: &RequestHead<'a>) -> Access<'a> {
        Access::Namespaced {
            namespace: head.path_segment(0).unwrap_or_default().into(),
            resource: "runs".into(),
            verb: head.verb(),
        }
    }
    let bare = Router::new().route("/{ns}/runs", get(noop));
    let layer = TenancyLayer::new(authn, policy, scope);
    let guarded = Router::new().route("/{ns}/runs", get(noop)).layer(layer.clone());
    let wrapped = layer.wrap(Router::new().route("/{ns}/runs", get(noop)));
    let request = || {
        let mut r = Request::get("/team-5/runs")
            .header("kubeflow-userid", "owner-5@example.com")
            .body(Body::empty())
            .expect("request");
        r.extensions_mut().insert(PeerAddr("10.0.0.2".parse().expect("ip")));
        r
    };
    let mut group = c.benchmark_group("layer over a no-op handler");
    group.bench_function("bare router", |b| {
        b.iter(|| runtime.block_on(async { black_box(bare.clone().oneshot(request()).await.expect("response")) }))
    });
    group.bench_function("with TenancyLayer", |b| {
        b.iter(|| runtime.block_on(async { black_box(guarded.clone().oneshot(request()).await.expect("response")) }))
    });
    group.bench_function("TenancyLayer around the router", |b| {
        b.iter(|| runtime.block_on(async { black_box(wrapped.clone().oneshot(request()).await.expect("response")) }))
    });
    group.finish();
}

/// One keep-alive HTTP/1.1 connection to a server on 127.0.0.1:0; each
/// iteration sends a request and reads the whole response.
struct Connection {
    stream: std::net::TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn open(router: Router, runtime: &tokio::runtime::Runtime) -> Self {
        Self::open_with(runtime, |listener| async move {
            let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
            axum::serve(listener, app).await
        })
    }

    /// The layer around the whole router, as the crate documents mounting
    /// it: one `TenancyService<Router>` per connection, knowing its peer.
    fn open_wrapped(router: Router, layer: TenancyLayer, runtime: &tokio::runtime::Runtime) -> Self {
        Self::open_with(runtime, |listener| async move {
            axum::serve(listener, layer.wrap(router).into_make_service()).await
        })
    }

    fn open_with<F: Future<Output = std::io::Result<()>> + Send + 'static>(
        runtime: &tokio::runtime::Runtime,
        serve: impl FnOnce(tokio::net::TcpListener) -> F,
    ) -> Self {
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let addr = listener.local_addr().expect("addr");
        runtime.spawn(serve(listener));
        let stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Connection { stream, buffer: vec![0; 4096] }
    }

    fn round_trip(&mut self) -> usize {
        use std::io::{Read, Write};
        let request = b"GET /team-5/runs HTTP/1.1\r\nHost: bench\r\nkubeflow-userid: owner-5@example.com\r\n\r\n";
        self.stream.write_all(request).expect("write");
        // the response is small: headers and a 2-byte body arrive together
        let mut read = 0;
        loop {
            read += self.stream.read(&mut self.buffer[read..]).expect("read");
            let text = &self.buffer[..read];
            if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if read >= end + 4 + length {
                    assert!(head.starts_with("http/1.1 200"), "{head}");
                    return read;
                }
            }
        }
    }
}

fn layer_overhead_over_http(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let policy = Arc::new(RwLock::new(big_policy()));
    let authn = Authenticator::new().with_proxy(ProxyTrust::parse(&["127.0.0.1"]).expect("proxy"));
    fn scope<'a>(head: &RequestHead<'a>) -> Access<'a> {
        Access::Namespaced {
            namespace: head.path_segment(0).unwrap_or_default().into(),
            resource: "runs".into(),
            verb: head.verb(),
        }
    }
    let layer = TenancyLayer::new(authn, policy, scope);
    let router = || Router::new().route("/{ns}/runs", get(noop));
    let mut bare = Connection::open(router(), &runtime);
    let mut guarded = Connection::open(router().layer(layer.clone()), &runtime);
    let mut wrapped = Connection::open_wrapped(router(), layer, &runtime);
    let mut group = c.benchmark_group("layer over a no-op handler, HTTP/1.1 on loopback");
    group.bench_function("bare router", |b| b.iter(|| black_box(bare.round_trip())));
    group.bench_function("with TenancyLayer", |b| b.iter(|| black_box(guarded.round_trip())));
    group.bench_function("TenancyLayer around the router", |b| b.iter(|| black_box(wrapped.round_trip())));
    group.finish();
}

criterion_group!(benches, decisions, layer_overhead, layer_overhead_over_http);
criterion_main!(benches);
