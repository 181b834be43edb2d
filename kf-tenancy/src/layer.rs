//! [`TenancyLayer`]: the tower layer that puts any router behind tenancy.
//!
//! For each request it authenticates the caller ([`Authenticator`]), asks the
//! router's [`Scope`] function what the request touches, decides with the
//! shared [`Policy`], and either answers 401/403 itself or passes the request
//! on with the caller's [`Identity`] in its extensions. A denial body never
//! says whether the namespace or resource exists.

use std::borrow::Cow;
use std::future::{Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::ConnectInfo;
use futures::future::Either;
use http::{Method, Request, Response, StatusCode, Uri};

use crate::authz::{Policy, Request as AccessRequest};
use crate::identity::{Authentication, Authenticator};
use crate::role::Verb;
use crate::subject::Identity;

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
        Verb::from_http_method(self.method.as_str()).unwrap_or(Verb::Delete)
    }
}

/// The `index`-th non-empty `/`-separated segment of `path`. A byte scan:
/// scope functions call this on every request, and `str::split` costs several
/// times more on paths this short.
fn nth_path_segment(path: &str, index: usize) -> Option<&str> {
    let bytes = path.as_bytes();
    let mut seen = 0;
    let mut start = 0;
    while start < bytes.len() {
        let end = bytes[start..].iter().position(|&b| b == b'/').map_or(bytes.len(), |at| start + at);
        if end > start {
            if seen == index {
                // `/` is ASCII, so both ends are char boundaries.
                return path.get(start..end);
            }
            seen += 1;
        }
        start = end + 1;
    }
    None
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
}

impl<S> tower::Layer<S> for TenancyLayer {
    type Service = TenancyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TenancyService { inner, shared: Arc::clone(&self.shared) }
    }
}

/// The service [`TenancyLayer`] produces.
#[derive(Clone)]
pub struct TenancyService<S> {
    inner: S,
    shared: Arc<Shared>,
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
/// puts one in the request extensions of every authenticated request.
#[derive(Clone)]
pub struct AccessCheck {
    identity: Identity,
    policy: SharedPolicy,
}

impl std::fmt::Debug for AccessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessCheck").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl AccessCheck {
    /// A check for `identity` against `policy` (the layer builds these; this is
    /// for handlers tested without it).
    pub fn new(identity: Identity, policy: SharedPolicy) -> Self {
        AccessCheck { identity, policy }
    }

    /// The authenticated caller.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Whether the caller may apply `verb` to `resource` in `namespace`.
    /// Handlers answer a denied by-id read with 404, not 403, so ids in other
    /// namespaces are indistinguishable from ids that do not exist.
    pub fn allows(&self, namespace: &str, verb: Verb, resource: &str) -> bool {
        let policy = self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        policy.allows(&AccessRequest { identity: &self.identity, namespace, verb, resource })
    }

    /// Keeps the items whose namespace the caller may `list` as `resource`.
    pub fn filter_visible<T>(&self, items: Vec<T>, resource: &str, namespace_of: impl Fn(&T) -> &str) -> Vec<T> {
        let policy = self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        items
            .into_iter()
            .filter(|item| {
                let ask = AccessRequest {
                    identity: &self.identity,
                    namespace: namespace_of(item),
                    verb: Verb::List,
                    resource,
                };
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
    /// The layer's verdict: the identity to pass on, or why not.
    fn admit<B>(&self, request: &Request<B>) -> Result<Option<Identity>, Denial> {
        let head = RequestHead { method: request.method(), uri: request.uri(), headers: request.headers() };
        let access = (self.scope)(&head);
        let identity = match self.authenticator.authenticate(peer_of(request), request.headers()) {
            Authentication::Authenticated(identity) => Some(identity),
            Authentication::Anonymous => None,
            Authentication::Rejected(_) => return Err(Denial::InvalidCredentials),
        };
        let Some(identity) = identity else {
            return match access {
                Access::Public => Ok(None),
                _ => Err(Denial::Unauthenticated),
            };
        };
        // A poisoned lock only means a writer panicked between two whole
        // updates; the policy it guards is still a consistent value.
        let policy = self.policy.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let allowed = match &access {
            Access::Public | Access::Authenticated => true,
            Access::ClusterAdmin => policy.is_cluster_admin(&identity),
            Access::Namespaced { namespace, resource, verb } => {
                policy.allows(&AccessRequest { identity: &identity, namespace, verb: *verb, resource })
            }
        };
        if allowed { Ok(Some(identity)) } else { Err(Denial::Forbidden) }
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
        match self.shared.admit(&request) {
            Ok(identity) => {
                if let Some(identity) = identity {
                    let check = AccessCheck { identity: identity.clone(), policy: Arc::clone(&self.shared.policy) };
                    request.extensions_mut().insert(identity);
                    request.extensions_mut().insert(check);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The byte scan finds the same segments as splitting on `/`.
        #[test]
        fn path_segments_match_split(path in "[/a-zé%0-9]{0,24}", index in 0usize..6) {
            let expected = path.split('/').filter(|s| !s.is_empty()).nth(index);
            prop_assert_eq!(nth_path_segment(&path, index), expected);
        }
    }
}
