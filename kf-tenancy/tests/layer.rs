//! The tenancy layer in front of routers shaped like kf-serve and kf-registry
//! (defined here: crates do not depend on each other). Drives the whole
//! matrix of callers × namespaces × verbs without sockets.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http::{Request, StatusCode};
use jsonwebtoken::{EncodingKey, Header};
use kf_tenancy::{
    Access, ApiTokens, Authenticator, Identity, JwtVerifier, PeerAddr, Policy, ProxyTrust, RequestHead, Role,
    RoleTable, Subject, TenancyLayer, TenancyService, VerificationKey,
};
use tower::ServiceExt;

const PROXY: &str = "10.0.0.2";
const POD: &str = "10.1.7.7";

fn policy() -> Arc<RwLock<Policy>> {
    let mut p = Policy::new(RoleTable::default());
    p.add_cluster_admin(&Subject::Group("platform-admins".into()));
    p.set_owner("team-a", Subject::User("alice@example.com".into()));
    p.bind("team-a", Subject::User("vic@example.com".into()), Role::View);
    p.bind("team-a", Subject::User("eve@example.com".into()), Role::Edit);
    p.set_owner("team-b", Subject::User("bob@example.com".into()));
    Arc::new(RwLock::new(p))
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn authenticator() -> Authenticator {
    let mut tokens = ApiTokens::new();
    tokens.insert("ci-token-0123456789", Identity::user("eve@example.com"));
    let rsa = VerificationKey::rs256_pem(include_bytes!("keys/rsa-public.pem")).unwrap();
    Authenticator::new()
        .with_proxy(ProxyTrust::parse(&[PROXY]).unwrap())
        .with_jwt(JwtVerifier::new("https://dex.example.com", "kf", vec![rsa]))
        .with_tokens(tokens)
}

fn jwt(email: &str, audience: &str, exp: u64) -> String {
    let claims = serde_json::json!({"iss": "https://dex.example.com", "aud": audience, "exp": exp, "email": email});
    let key = EncodingKey::from_rsa_pem(include_bytes!("keys/rsa-private.pem")).unwrap();
    jsonwebtoken::encode(&Header::new(jsonwebtoken::Algorithm::RS256), &claims, &key).unwrap()
}

async fn whoami(identity: Option<Identity>) -> String {
    identity.map(|i| i.user).unwrap_or_else(|| "anonymous".into())
}

/// A kf-serve-like router: public health, namespaced models.
fn serve_like() -> Router {
    serve_like_routes().layer(TenancyLayer::new(authenticator(), policy(), serve_like_scope))
}

/// The same, the layer wrapped around the whole router.
fn serve_like_wrapped() -> TenancyService<Router> {
    TenancyLayer::new(authenticator(), policy(), serve_like_scope).wrap(serve_like_routes())
}

fn serve_like_scope<'a>(head: &RequestHead<'a>) -> Access<'a> {
    match head.path_segment(0) {
        Some("v2") if head.path_segment(1) == Some("health") => Access::Public,
        Some("v2") if head.path_segment(1).is_none() => Access::Authenticated,
        Some("namespaces") => match head.path_segment(1) {
            Some(ns) => {
                Access::Namespaced { namespace: ns.into(), resource: "inferenceservices".into(), verb: head.verb() }
            }
            None => Access::ClusterAdmin,
        },
        _ => Access::ClusterAdmin,
    }
}

fn serve_like_routes() -> Router {
    Router::new()
        .route("/v2/health/live", get(whoami))
        .route("/v2/health/whoami", get(|who: Identity| async move { who.user }))
        .route("/v2", get(whoami))
        .route("/namespaces/{ns}/models/{model}/infer", get(whoami).post(whoami))
        .route("/namespaces/{ns}/groups", get(|who: Identity| async move { who.groups.join(",") }))
        .route("/namespaces", get(whoami))
}

/// A kf-registry-like router: the namespace comes from a query parameter.
fn registry_like() -> Router {
    fn scope<'a>(head: &RequestHead<'a>) -> Access<'a> {
        match head.query("namespace") {
            Some(ns) if !ns.is_empty() => {
                Access::Namespaced { namespace: ns.into(), resource: "registeredmodels".into(), verb: head.verb() }
            }
            _ => Access::ClusterAdmin,
        }
    }
    Router::new()
        .route("/api/model_registry/v1alpha3/registered_models", get(whoami).post(whoami))
        .layer(TenancyLayer::new(authenticator(), policy(), scope))
}

enum Caller<'a> {
    Anonymous,
    Header { peer: &'a str, user: &'a str, groups: &'a str },
    Bearer(String),
}

async fn call<S>(router: &S, method: &str, uri: &str, caller: Caller<'_>) -> (StatusCode, String)
where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible> + Clone,
{
    let mut builder = Request::builder().method(method).uri(uri);
    let peer: IpAddr = match &caller {
        Caller::Header { peer, .. } => peer.parse().unwrap(),
        _ => POD.parse().unwrap(),
    };
    match caller {
        Caller::Anonymous => {}
        Caller::Header { user, groups, .. } => {
            builder = builder.header("kubeflow-userid", user).header("kubeflow-groups", groups);
        }
        Caller::Bearer(token) => builder = builder.header("authorization", format!("Bearer {token}")),
    }
    let mut request = builder.body(Body::empty()).unwrap();
    request.extensions_mut().insert(PeerAddr(peer));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn via_proxy(user: &'static str) -> Caller<'static> {
    Caller::Header { peer: PROXY, user, groups: "" }
}

#[tokio::test]
async fn serve_like_router_matrix() {
    serve_like_matrix(&serve_like()).await;
}

#[tokio::test]
async fn the_whole_router_wrapped_answers_the_same_matrix() {
    serve_like_matrix(&serve_like_wrapped()).await;
}

async fn serve_like_matrix<S>(r: &S)
where
    S: tower::Service<Request<Body>, Response = axum::response::Response, Error = Infallible> + Clone,
{
    let infer_a = "/namespaces/team-a/models/iris/infer";
    let infer_b = "/namespaces/team-b/models/iris/infer";
    let cases: Vec<(&str, &str, Caller<'_>, StatusCode, &str)> = vec![
        ("GET", "/v2/health/live", Caller::Anonymous, StatusCode::OK, "anonymous"),
        ("GET", "/v2", Caller::Anonymous, StatusCode::UNAUTHORIZED, ""),
        ("GET", "/v2", via_proxy("vic@example.com"), StatusCode::OK, "vic@example.com"),
        ("GET", infer_a, Caller::Anonymous, StatusCode::UNAUTHORIZED, ""),
        // headers from a pod that is not the proxy are ignored (kubeflow#6702)
        (
            "GET",
            infer_a,
            Caller::Header { peer: POD, user: "alice@example.com", groups: "" },
            StatusCode::UNAUTHORIZED,
            "",
        ),
        (
            "GET",
            infer_a,
            Caller::Header { peer: POD, user: "x", groups: "platform-admins" },
            StatusCode::UNAUTHORIZED,
            "",
        ),
        ("GET", infer_a, via_proxy("alice@example.com"), StatusCode::OK, "alice@example.com"),
        ("POST", infer_a, via_proxy("alice@example.com"), StatusCode::OK, "alice@example.com"),
        ("GET", infer_a, via_proxy("vic@example.com"), StatusCode::OK, "vic@example.com"),
        ("POST", infer_a, via_proxy("vic@example.com"), StatusCode::FORBIDDEN, ""),
        ("POST", infer_a, via_proxy("eve@example.com"), StatusCode::OK, "eve@example.com"),
        ("GET", infer_b, via_proxy("alice@example.com"), StatusCode::FORBIDDEN, ""),
        ("GET", "/namespaces/ghost/models/iris/infer", via_proxy("alice@example.com"), StatusCode::FORBIDDEN, ""),
        ("GET", "/namespaces", via_proxy("alice@example.com"), StatusCode::FORBIDDEN, ""),
        (
            "GET",
            "/namespaces",
            Caller::Header { peer: PROXY, user: "ops", groups: "platform-admins" },
            StatusCode::OK,
            "ops",
        ),
        (
            "GET",
            infer_b,
            Caller::Header { peer: PROXY, user: "ops", groups: "ml,platform-admins" },
            StatusCode::OK,
            "ops",
        ),
        ("POST", infer_a, Caller::Bearer("ci-token-0123456789".into()), StatusCode::OK, "eve@example.com"),
        ("GET", infer_a, Caller::Bearer("ci-token-wrong".into()), StatusCode::UNAUTHORIZED, ""),
        ("GET", infer_a, Caller::Bearer(jwt("vic@example.com", "kf", now() + 600)), StatusCode::OK, "vic@example.com"),
        ("GET", infer_a, Caller::Bearer(jwt("vic@example.com", "kf", now() - 600)), StatusCode::UNAUTHORIZED, ""),
        (
            "GET",
            infer_a,
            Caller::Bearer(jwt("vic@example.com", "other-app", now() + 600)),
            StatusCode::UNAUTHORIZED,
            "",
        ),
    ];
    for (method, uri, caller, status, body) in cases {
        let (got, text) = call(r, method, uri, caller).await;
        assert_eq!(got, status, "{method} {uri}: {text}");
        if status == StatusCode::OK {
            assert_eq!(text, body, "{method} {uri}: the handler sees the caller's identity");
        }
    }
}

#[tokio::test]
async fn handlers_see_the_groups_the_proxy_vouched_for() {
    for r in [serve_like(), Router::new().fallback_service(serve_like_wrapped())] {
        let vic = Caller::Header { peer: PROXY, user: " vic@example.com ", groups: "ml, ops,," };
        assert_eq!(call(&r, "GET", "/namespaces/team-a/groups", vic).await, (StatusCode::OK, "ml,ops".into()));
        let spoofed = Caller::Header { peer: POD, user: "vic@example.com", groups: "platform-admins" };
        assert_eq!(call(&r, "GET", "/namespaces/team-a/groups", spoofed).await.0, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_identity_extractor_refuses_anonymous_callers_on_public_routes() {
    let r = serve_like_wrapped();
    assert_eq!(call(&r, "GET", "/v2/health/whoami", Caller::Anonymous).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&r, "GET", "/v2/health/whoami", via_proxy("vic@example.com")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "vic@example.com"));
}

#[tokio::test]
async fn wrapped_routers_answer_unknown_paths_only_to_callers_allowed_there() {
    let r = serve_like_wrapped();
    assert_eq!(call(&r, "GET", "/namespaces/team-a/secrets", Caller::Anonymous).await.0, StatusCode::UNAUTHORIZED);
    let other = call(&r, "GET", "/namespaces/team-b/secrets", via_proxy("alice@example.com")).await;
    assert_eq!(other.0, StatusCode::FORBIDDEN, "no 404 that would confirm the namespace's routes");
    let own = call(&r, "GET", "/namespaces/team-a/secrets", via_proxy("alice@example.com")).await;
    assert_eq!(own.0, StatusCode::NOT_FOUND);
}

/// Over TCP with `into_make_service`: the connection's peer decides whether
/// identity headers are believed.
#[tokio::test]
async fn served_per_connection_the_peer_address_decides() {
    async fn get_as(trusted: &str, user: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let authn = Authenticator::new().with_proxy(ProxyTrust::parse(&[trusted]).unwrap());
        let app = TenancyLayer::new(authn, policy(), serve_like_scope).wrap(serve_like_routes());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app.into_make_service()).await });
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /namespaces/team-a/models/iris/infer HTTP/1.1\r\nHost: x\r\nkubeflow-userid: {user}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        server.abort();
        response
    }
    let believed = get_as("127.0.0.1", "alice@example.com").await;
    assert!(believed.starts_with("HTTP/1.1 200") && believed.ends_with("alice@example.com"), "{believed}");
    let ignored = get_as(PROXY, "alice@example.com").await;
    assert!(ignored.starts_with("HTTP/1.1 401"), "headers from a peer that is not the proxy: {ignored}");
}

#[tokio::test]
async fn denials_do_not_reveal_what_exists() {
    let r = serve_like();
    let other = call(&r, "GET", "/namespaces/team-b/models/iris/infer", via_proxy("alice@example.com")).await;
    let missing = call(&r, "GET", "/namespaces/ghost/models/none/infer", via_proxy("alice@example.com")).await;
    assert_eq!(other, missing);
    assert_eq!(other.1, r#"{"error":"forbidden"}"#);
}

#[tokio::test]
async fn registry_like_router_scopes_by_query() {
    let r = registry_like();
    let list = "/api/model_registry/v1alpha3/registered_models";
    let (status, _) = call(&r, "GET", &format!("{list}?namespace=team-a"), via_proxy("vic@example.com")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&r, "POST", &format!("{list}?namespace=team-a"), via_proxy("vic@example.com")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer cannot write");
    let (status, _) =
        call(&r, "GET", &format!("{list}?pageSize=10&namespace=team-b"), via_proxy("vic@example.com")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no reads across namespaces by list");
    let (status, _) = call(&r, "GET", list, via_proxy("vic@example.com")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an unscoped list is for cluster admins only");
}

#[tokio::test]
async fn policy_changes_apply_to_the_next_request() {
    let shared = policy();
    fn scope<'a>(head: &RequestHead<'a>) -> Access<'a> {
        Access::Namespaced {
            namespace: head.path_segment(0).unwrap_or_default().into(),
            resource: "runs".into(),
            verb: head.verb(),
        }
    }
    let r = Router::new().route("/{ns}", get(whoami)).layer(TenancyLayer::new(authenticator(), shared.clone(), scope));
    assert_eq!(call(&r, "GET", "/team-b", via_proxy("zoe@example.com")).await.0, StatusCode::FORBIDDEN);
    shared.write().unwrap().bind("team-b", Subject::User("zoe@example.com".into()), Role::View);
    assert_eq!(call(&r, "GET", "/team-b", via_proxy("zoe@example.com")).await.0, StatusCode::OK);
}

/// A registry-like router addressing objects by id and listing across
/// namespaces: the namespace is known only after loading, so handlers use the
/// `AccessCheck` the layer hands them.
fn by_id_router() -> Router {
    use axum::extract::{Path, Query};
    use kf_tenancy::{AccessCheck, Verb, artifact::ArtifactScope};
    use std::collections::HashMap;

    let models: Arc<HashMap<u32, (&'static str, &'static str)>> =
        Arc::new(HashMap::from([(1, ("team-a", "iris")), (2, ("team-b", "secret-model")), (3, ("team-a", "mnist"))]));
    let by_id = {
        let models = Arc::clone(&models);
        move |Path(id): Path<u32>, Extension(check): Extension<AccessCheck>| async move {
            match models.get(&id) {
                Some((ns, name)) if check.allows(ns, Verb::Get, "registeredmodels") => {
                    (StatusCode::OK, name.to_string())
                }
                // another namespace's id looks exactly like a missing one
                _ => (StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.to_string()),
            }
        }
    };
    let list = {
        let models = Arc::clone(&models);
        move |Extension(check): Extension<AccessCheck>, Query(q): Query<HashMap<String, String>>| async move {
            let mut all: Vec<(&str, &str)> = models.values().copied().collect();
            if let Some(name) = q.get("name") {
                all.retain(|(_, n)| n == name);
            }
            let mut visible: Vec<&str> =
                check.filter_visible(all, "registeredmodels", |(ns, _)| ns).into_iter().map(|(_, n)| n).collect();
            visible.sort();
            visible.join(",")
        }
    };
    let artifact = |Extension(check): Extension<AccessCheck>, Query(q): Query<HashMap<String, String>>| async move {
        let scope = ArtifactScope::new("s3://kf-artifacts/runs");
        let uri = q.get("uri").cloned().unwrap_or_default();
        // the namespace the URI claims, checked twice: the caller may read it, and the URI stays inside it
        let claimed = uri.strip_prefix("s3://kf-artifacts/runs/").and_then(|r| r.split('/').next()).unwrap_or("");
        if check.allows(claimed, Verb::Get, "artifacts") && scope.check(claimed, &uri).is_ok() {
            (StatusCode::OK, format!("contents of {uri}"))
        } else {
            (StatusCode::NOT_FOUND, r#"{"error":"not found"}"#.to_string())
        }
    };
    fn scope<'a>(_: &RequestHead<'a>) -> Access<'a> {
        Access::Authenticated
    }
    Router::new()
        .route("/models/{id}", get(by_id))
        .route("/models", get(list))
        .route("/artifacts", get(artifact))
        .layer(TenancyLayer::new(authenticator(), policy(), scope))
}

#[tokio::test]
async fn other_namespaces_stay_invisible_by_id_list_filter_and_artifact_uri() {
    let r = by_id_router();
    let alice = || via_proxy("alice@example.com");
    assert_eq!(call(&r, "GET", "/models/1", alice()).await, (StatusCode::OK, "iris".into()));
    let by_foreign_id = call(&r, "GET", "/models/2", alice()).await;
    let by_missing_id = call(&r, "GET", "/models/99", alice()).await;
    assert_eq!(by_foreign_id, by_missing_id, "by id: a foreign id is indistinguishable from a missing one");
    assert_eq!(by_foreign_id.0, StatusCode::NOT_FOUND);
    assert_eq!(call(&r, "GET", "/models", alice()).await.1, "iris,mnist", "by list: only team-a's models");
    assert_eq!(call(&r, "GET", "/models?name=secret-model", alice()).await.1, "", "by filter: nothing from team-b");
    assert_eq!(call(&r, "GET", "/models", via_proxy("bob@example.com")).await.1, "secret-model");

    let ok = call(&r, "GET", "/artifacts?uri=s3://kf-artifacts/runs/team-a/run-1/model.onnx", alice()).await;
    assert_eq!(ok.0, StatusCode::OK);
    for uri in [
        "s3://kf-artifacts/runs/team-b/run-1/model.onnx",
        "s3://kf-artifacts/runs/team-a/../team-b/run-1/model.onnx",
        "s3://kf-artifacts/runs/team-a/%2e%2e/team-b/model.onnx",
        "file:///etc/passwd",
    ] {
        let denied = call(&r, "GET", &format!("/artifacts?uri={uri}"), alice()).await;
        assert_eq!(denied.0, StatusCode::NOT_FOUND, "{uri} must not be served to alice");
    }
}
