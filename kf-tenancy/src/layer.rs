//! [`TenancyLayer`]: the tower layer that puts any router behind tenancy.
//!
//! For each request it authenticates the caller ([`Authenticator`]), asks the
//! router's [`Scope`] function what the request touches, decides with the
//! shared [`Policy`], and either answers 401/403 itself or passes the request
//! on with the caller's [`AccessCheck`] (which holds their [`Identity`]) in its
//! extensions. A denial body never says whether the namespace or resource
//! exists.
//!
//! Handlers take the caller as an extractor: `who: Identity` (401 when the
//! route is public and the caller anonymous), `Option<Identity>`, or
//! `check: AccessCheck` for checks the layer cannot make from the request.
//!
//! ## Mounting
//!
//! `Router::layer(tenancy)` works, but axum boxes every layered route and
//! clones the box per request. Wrapping the whole router is cheaper and also
//! covers unmatched paths (an anonymous caller gets 401, not a 404 that
//! confirms what does not exist). Serve it with
//! [`TenancyService::into_make_service`], which hands each connection's peer
//! address to that connection's service (the layer believes proxy headers
//! only from configured peers), or with
//! [`TenancyService::into_make_service_with_connect_info`] when handlers want
//! `ConnectInfo` too:
//!
//! ```
//! use std::sync::{Arc, RwLock};
//!
//! use axum::{Router, routing::get};
//! use kf_tenancy::{Access, Authenticator, Identity, Policy, ProxyTrust, RoleTable, TenancyLayer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Arc::new(RwLock::new(Policy::new(RoleTable::default())));
//! let authn = Authenticator::new().with_proxy(ProxyTrust::parse(&["10.0.0.2"])?);
//! let tenancy = TenancyLayer::new(authn, policy, |_| Access::Authenticated);
//! let router = Router::new().route("/whoami", get(|who: Identity| async move { who.user }));
//! let app = tenancy.wrap(router); // one TenancyService<Router>
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = axum::serve(listener, app.into_make_service());
//! # drop(server);
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::connect_info::{Connected, IntoMakeServiceWithConnectInfo};
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::serve::{IncomingStream, Listener};
use futures::future::Either;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};

use crate::authz::{Policy, Request as AccessRequest};
use crate::identity::{Authentication, Authenticator, Credential, ProxyClaim};
use crate::role::Verb;
use crate::subject::{Identity, Principal};

/// The policy shared between the layer and whoever changes bindings.
pub type SharedPolicy = Arc<RwLock<Policy>>;

/// The peer address, for servers that do not use axum's `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

/// What the layer needs to know about a request to scope it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// Request URI.
    pub uri: &'a Uri,
    /// Request headers.
    pub headers: &'a http::HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The `index`-th non-empty path segment (0-based), percent-encoding kept.
    pub fn path_segment(&self, index: usize) -> Option<&'a str> {
        nth_path_segment(self.uri.path(), index)
    }

    /// The first value of a query parameter (no percent-decoding).
    pub fn query(&self, name: &str) -> Option<&'a str> {
        self.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
    }

    /// The verb the method means; unknown methods are treated as `delete`,
    /// the verb least likely to be granted.
    pub fn verb(&self) -> Verb {
        // The standard methods by comparison, not by name.
        let method = self.method;
        if *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS {
            Verb::Get
        } else if *method == Method::POST {
            Verb::Create
        } else if *method == Method::PUT {
            Verb::Update
        } else if *method == Method::PATCH {
            Verb::Patch
        } else {
            Verb::from_http_method(method.as_str()).unwrap_or(Verb::Delete)
        }
    }
}

/// The `index`-th non-empty `/`-separated segment of `path`. A byte scan:
/// scope functions call this on every request, and `str::split` (a char
/// searcher) costs several times more on paths this short.
fn nth_path_segment(path: &str, mut index: usize) -> Option<&str> {
    let bytes = path.as_bytes();
    let mut at = 0;
    loop {
        while bytes.get(at) == Some(&b'/') {
            at += 1;
        }
        if at == bytes.len() {
            return None;
        }
        let start = at;
        while bytes.get(at).is_some_and(|&b| b != b'/') {
            at += 1;
        }
        if index == 0 {
            // `/` is ASCII, so both ends are char boundaries.
            return path.get(start..at);
        }
        index -= 1;
    }
}

/// What a request touches, as the router that wears the layer describes it.
/// Names may borrow from the request (`Cow::Borrowed(segment)`), so scoping a
/// request need not allocate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access<'a> {
    /// Anyone, even anonymous callers (health and readiness probes).
    Public,
    /// Any authenticated caller (server metadata, "who am I").
    Authenticated,
    /// A resource inside one namespace.
    Namespaced {
        /// The namespace.
        namespace: Cow<'a, str>,
        /// The resource kind, e.g. `models`.
        resource: Cow<'a, str>,
        /// What the request does.
        verb: Verb,
    },
    /// Cluster-wide operations: cluster admins only.
    ClusterAdmin,
}

/// The router's description of its requests.
pub type Scope = Arc<dyn for<'a> Fn(&RequestHead<'a>) -> Access<'a> + Send + Sync>;

struct Shared {
    authenticator: Authenticator,
    policy: SharedPolicy,
    scope: Scope,
}

/// Wraps a service with authentication and authorization.
#[derive(Clone)]
pub struct TenancyLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TenancyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyLayer").finish_non_exhaustive()
    }
}

impl TenancyLayer {
    /// A layer deciding with `policy`, scoping requests with `scope`.
    pub fn new(
        authenticator: Authenticator,
        policy: SharedPolicy,
        scope: impl for<'a> Fn(&RequestHead<'a>) -> Access<'a> + Send + Sync + 'static,
    ) -> Self {
        TenancyLayer { shared: Arc::new(Shared { authenticator, policy, scope: Arc::new(scope) }) }
    }

    /// Wraps a whole service, e.g. an axum `Router`, in one
    /// [`TenancyService`]: the cheap way to mount the layer (see the
    /// [module docs](self)). The same as `tower::Layer::layer`.
    pub fn wrap<S>(&self, inner: S) -> TenancyService<S> {
        TenancyService { inner, shared: Arc::clone(&self.shared), peer: None }
    }
}

impl<S> tower::Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenancyService { inner, shared: Arc::clone(&self.shared), peer: None }
    }
}

/// The service [`TenancyLayer`] produces.
#[derive(Clone)]
pub struct TenancyService<S> {
    inner: S,
    shared: Arc<Shared>,
    /// The connection's peer, when [`MakeTenancyService`] made this service
    /// for one connection; otherwise the peer comes from the request.
    peer: Option<IpAddr>,
}

impl<S> TenancyService<S> {
    /// The make-service `axum::serve` takes: each connection gets its own
    /// service that knows the connection's peer address, which decides
    /// whether proxy headers are believed. The cheapest way to serve (no
    /// `ConnectInfo` extension per request); handlers that want the peer
    /// address themselves use
    /// [`into_make_service_with_connect_info`](Self::into_make_service_with_connect_info).
    pub fn into_make_service(self) -> MakeTenancyService<S> {
        MakeTenancyService { service: self }
    }

    /// The make-service `axum::serve` takes, adding each connection's peer
    /// address as `ConnectInfo<C>`, which the layer reads to decide whether
    /// to believe proxy headers. (axum's `ServiceExt` method of the same name,
    /// without having to name the request type.)
    pub fn into_make_service_with_connect_info<C>(self) -> IntoMakeServiceWithConnectInfo<Self, C>
    where
        Self: tower::Service<Request<Body>>,
    {
        axum::ServiceExt::<Request<Body>>::into_make_service_with_connect_info(self)
    }
}

/// Makes one [`TenancyService`] per connection, bound to the connection's
/// peer address; from [`TenancyService::into_make_service`].
#[derive(Clone)]
pub struct MakeTenancyService<S> {
    service: TenancyService<S>,
}

impl<S> std::fmt::Debug for MakeTenancyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeTenancyService").finish_non_exhaustive()
    }
}

impl<'a, L, S> tower::Service<IncomingStream<'a, L>> for MakeTenancyService<S>
where
    L: Listener,
    SocketAddr: Connected<IncomingStream<'a, L>>,
    S: Clone,
{
    type Response = TenancyService<S>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, L>) -> Self::Future {
        let peer = SocketAddr::connect_info(stream).ip();
        ready(Ok(TenancyService { peer: Some(peer), ..self.service.clone() }))
    }
}

impl<S> std::fmt::Debug for TenancyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenancyService").finish_non_exhaustive()
    }
}

fn peer_of<B>(request: &Request<B>) -> Option<IpAddr> {
    let extensions = request.extensions();
    extensions.get::<PeerAddr>().map(|p| p.0).or_else(|| extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}

/// The caller's authority, for checks the layer cannot make from the request
/// alone: an object fetched by id whose namespace is only known after loading
/// it, or a list that must be filtered to what the caller may see. The layer
/// puts one in the request extensions of every authenticated request: the
/// only extension it adds, so the caller's [`Identity`] lives here too (take
/// it with the `Identity` extractor or [`AccessCheck::identity`]).
#[derive(Clone)]
pub struct AccessCheck {
    caller: Caller,
    policy: SharedPolicy,
}

/// Who the layer let through. Small, so that moving it into the request's
/// extensions costs a few register moves rather than a `memcpy`.
#[derive(Clone)]
enum Caller {
    /// From a bearer token, or built by a handler's test.
    Identity(Box<Identity>),
    /// From trusted proxy headers: the user name stays in the header value it
    /// came in (a reference count, not a copy) until someone asks for the
    /// [`Identity`], so a handler that never does costs no allocation.
    Proxied {
        /// The user header's value.
        header: HeaderValue,
        /// Where the user name lies in `header` (prefix and blanks removed).
        user: Range<usize>,
        /// The identity: built on first use, or at once when the caller has
        /// groups (they are not kept apart from it).
        identity: OnceLock<Box<Identity>>,
    },
}

impl Caller {
    fn from_claim(claim: &ProxyClaim<'_>) -> Self {
        let identity = match claim.groups {
            Some(_) => OnceLock::from(Box::new(claim.to_identity())),
            None => OnceLock::new(),
        };
        Caller::Proxied { header: claim.header.clone(), user: claim.start..claim.start + claim.user.len(), identity }
    }

    fn identity(&self) -> &Identity {
        match self {
            Caller::Identity(identity) => identity,
            Caller::Proxied { header, user, identity } => identity.get_or_init(|| {
                // The range came from this value's `to_str`: visible ASCII,
                // so the lossy conversion is an exact copy. Callers with
                // groups had their identity built at once.
                let name = header.as_bytes().get(user.clone()).unwrap_or_default();
                Box::new(Identity::user(String::from_utf8_lossy(name).into_owned()))
            }),
        }
    }
}

impl std::fmt::Debug for AccessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessCheck").field("identity", self.identity()).finish_non_exhaustive()
    }
}

impl AccessCheck {
    /// A check for `identity` against `policy` (the layer builds these; this is
    /// for handlers tested without it).
    pub fn new(identity: Identity, policy: SharedPolicy) -> Self {
        AccessCheck { caller: Caller::Identity(Box::new(identity)), policy }
    }

    /// The authenticated caller.
    pub fn identity(&self) -> &Identity {
        self.caller.identity()
    }

    /// The authenticated caller, by value.
    pub fn into_identity(self) -> Identity {
        match self.caller {
            Caller::Identity(identity) => *identity,
            proxied => proxied.identity().clone(),
        }
    }

    /// Whether the caller may apply `verb` to `resource` in `namespace`.
    /// Handlers answer a denied by-id read with 404, not 403, so ids in other
    /// namespaces are indistinguishable from ids that do not exist.
    pub fn allows(&self, namespace: &str, verb: Verb, resource: &str) -> bool {
        let policy = self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        policy.allows(&AccessRequest { identity: self.identity(), namespace, verb, resource })
    }

    /// Keeps the items whose namespace the caller may `list` as `resource`.
    pub fn filter_visible<T>(&self, items: Vec<T>, resource: &str, namespace_of: impl Fn(&T) -> &str) -> Vec<T> {
        let identity = self.identity();
        let policy = self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        items
            .into_iter()
            .filter(|item| {
                let ask = AccessRequest { identity, namespace: namespace_of(item), verb: Verb::List, resource };
                policy.allows(&ask)
            })
            .collect()
    }
}

/// Why the layer answered instead of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denial {
    /// No credentials where they are needed: 401.
    Unauthenticated,
    /// Credentials that do not verify: 401.
    InvalidCredentials,
    /// Authenticated but not allowed (or the target does not exist): 403.
    Forbidden,
}

impl Denial {
    fn into_response(self) -> Response<Body> {
        let (status, body) = match self {
            Denial::Unauthenticated => (StatusCode::UNAUTHORIZED, r#"{"error":"authentication required"}"#),
            Denial::InvalidCredentials => (StatusCode::UNAUTHORIZED, r#"{"error":"invalid credentials"}"#),
            Denial::Forbidden => (StatusCode::FORBIDDEN, r#"{"error":"forbidden"}"#),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl Shared {
    /// The layer's verdict: the caller to pass on, or why not.
    /// `peer` is the connection's peer when the service knows it; otherwise
    /// the request's `PeerAddr` or `ConnectInfo` says.
    fn admit<B>(&self, peer: Option<IpAddr>, request: &Request<B>) -> Result<Option<Caller>, Denial> {
        let head = RequestHead { method: request.method(), uri: request.uri(), headers: request.headers() };
        let access = (self.scope)(&head);
        let peer = peer.or_else(|| peer_of(request));
        match self.authenticator.credential(peer, request.headers()) {
            Credential::Proxy(claim) => self.decide(&access, &claim).then(|| Some(Caller::from_claim(&claim))),
            Credential::Checked(Authentication::Authenticated(identity)) => {
                self.decide(&access, &identity).then(|| Some(Caller::Identity(Box::new(identity))))
            }
            Credential::Checked(Authentication::Anonymous) => {
                return match access {
                    Access::Public => Ok(None),
                    _ => Err(Denial::Unauthenticated),
                };
            }
            Credential::Checked(Authentication::Rejected(_)) => return Err(Denial::InvalidCredentials),
        }
        .ok_or(Denial::Forbidden)
    }

    /// Whether an authenticated caller may make a request of this access.
    fn decide(&self, access: &Access<'_>, who: &impl Principal) -> bool {
        // A poisoned lock only means a writer panicked between two whole
        // updates; the policy it guards is still a consistent value.
        let policy = self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        match access {
            Access::Public | Access::Authenticated => true,
            Access::ClusterAdmin => policy.is_cluster_admin_principal(who),
            Access::Namespaced { namespace, resource, verb } => {
                policy.allows_principal(who, namespace, *verb, resource)
            }
        }
    }
}

impl<S, B> tower::Service<Request<B>> for TenancyService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Self::Response, Self::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.shared.admit(self.peer, &request) {
            Ok(caller) => {
                // One extension, the caller moved into it: each extension is
                // a box, and a second one grows axum's extension map.
                if let Some(caller) = caller {
                    request.extensions_mut().insert(AccessCheck { caller, policy: Arc::clone(&self.shared.policy) });
                }
                // `call` runs right after `poll_ready` on this same service, so
                // the inner service driven to readiness serves the request
                // directly; cloning it (a boxed `Route` under axum: one
                // allocation) is only needed when the call happens later.
                Either::Left(self.inner.call(request))
            }
            Err(denial) => Either::Right(ready(Ok(denial.into_response()))),
        }
    }
}

/// The caller the layer authenticated; 401 where there is none (a public
/// route called anonymously, or a handler not behind the layer).
impl<S: Send + Sync> FromRequestParts<S> for AccessCheck {
    type Rejection = Response<Body>;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AccessCheck>().cloned().ok_or_else(|| Denial::Unauthenticated.into_response())
    }
}

/// The caller on routes that also serve anonymous callers.
impl<S: Send + Sync> OptionalFromRequestParts<S> for AccessCheck {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AccessCheck>().cloned())
    }
}

/// The caller's identity, from the [`AccessCheck`] the layer added; 401 where
/// there is none.
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = Response<Body>;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessCheck>()
            .map(|c| c.identity().clone())
            .ok_or_else(|| Denial::Unauthenticated.into_response())
    }
}

/// The caller's identity on routes that also serve anonymous callers.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<AccessCheck>().map(|c| c.identity().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The identity a handler gets from a proxy-header caller (built
        /// lazily from the header bytes, or at once with groups) is exactly
        /// the one `ProxyTrust::identify` reads, which the layer decided on.
        #[test]
        fn the_lazy_identity_is_the_one_the_headers_carry(
            user in "[ -~]{0,16}", prefixed in any::<bool>(), groups in prop::option::of("[ -~]{0,16}"),
            prefix in prop::sample::select(vec!["", "accounts.google.com:"]),
        ) {
            let trust = crate::ProxyTrust::parse(&["10.0.0.2"]).unwrap().with_user_prefix(prefix);
            let mut headers = http::HeaderMap::new();
            let value = if prefixed { format!("{prefix}{user}") } else { user };
            headers.insert("kubeflow-userid", HeaderValue::from_str(&value).unwrap());
            if let Some(groups) = &groups {
                headers.insert("kubeflow-groups", HeaderValue::from_str(groups).unwrap());
            }
            let peer = Some(IpAddr::from([10, 0, 0, 2]));
            let lazy = trust.claim(peer, &headers).map(|claim| Caller::from_claim(&claim).identity().clone());
            prop_assert_eq!(lazy, trust.identify(peer, &headers));
        }

        /// The byte scan finds the same segments as splitting on `/`.
        #[test]
        fn path_segments_match_split(path in "[/a-zé%0-9]{0,24}", index in 0usize..6) {
            let expected = path.split('/').filter(|s| !s.is_empty()).nth(index);
            prop_assert_eq!(nth_path_segment(&path, index), expected);
        }
    }
}
