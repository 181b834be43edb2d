//! kf-tenancy inside your own binary: a Kubeflow Profile, a contributor,
//! the authorizer's answers with their reasons, and the TenancyLayer in front
//! of a small axum router of your own, answering 401, 403 and 200 over HTTP.
//!
//! Run with `cargo run -p kf-tenancy --features server --example embed`. The
//! guide that walks through it is docs/guides/kf-tenancy.md.

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use kf_tenancy::{
    Access, Authenticator, Identity, MemoryPolicyStore, Profile, ProxyTrust, Request, RequestHead, Role, RoleTable,
    Subject, Tenancy, TenancyLayer, Verb,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // guide: profile
    // The Profile is the kubeflow.org/v1 document; `Tenancy` keeps the policy
    // and its store in step (MemoryPolicyStore here, SqlitePolicyStore with
    // feature sqlite). Kubeflow's default roles: view < edit < admin.
    let profile = Profile::from_value(serde_json::json!({
        "apiVersion": "kubeflow.org/v1", "kind": "Profile",
        "metadata": {"name": "team-a"},
        "spec": {"owner": {"kind": "User", "name": "alice@example.com"}},
    }))?;
    profile.validate()?;
    let tenancy = Tenancy::load(MemoryPolicyStore::default(), RoleTable::default(), &[]).await?;
    tenancy.create_profile(&profile).await?;
    // guide: end

    // guide: roles
    // Contributors are granted by someone whose role manages bindings (admin,
    // and the owner), never above the granter's own role. Alice (owner) makes
    // Bob an editor; an editor cannot grant anything, so Bob cannot add Carol.
    let (alice, bob) = (Identity::user("alice@example.com"), Identity::user("bob@example.com"));
    tenancy.grant(&alice, "team-a", &Subject::User("bob@example.com".into()), Role::Edit).await?;
    let refused = tenancy.grant(&bob, "team-a", &Subject::User("carol@example.com".into()), Role::Admin).await;
    println!("bob grants carol admin: {}", refused.map_or_else(|e| e.to_string(), |d| d.reason.to_string()));
    // guide: end

    // guide: decide
    // The authorizer is a pure function of (identity, namespace, verb,
    // resource), answering with a reason.
    let carol = Identity::user("carol@example.com");
    for (who, verb, resource) in [
        (&alice, Verb::Delete, "runs"),
        (&bob, Verb::Create, "runs"),
        (&bob, Verb::Delete, "bindings"),
        (&carol, Verb::Get, "runs"),
    ] {
        let decision = tenancy.check(&Request { identity: who, namespace: "team-a", verb, resource });
        let answer = if decision.allowed { "allow" } else { "deny" };
        println!("{:<18} {:<6} {resource:<8} in team-a: {answer} ({})", who.user, verb.as_str(), decision.reason);
    }
    // guide: end

    // guide: layer
    // Your router: /healthz is public, /{namespace}/runs is a namespaced
    // resource. The scope function tells the layer which is which; the
    // handler takes the authenticated caller as an extractor.
    fn scope<'a>(head: &RequestHead<'a>) -> Access<'a> {
        match head.path_segment(0) {
            Some("healthz") => Access::Public,
            Some(ns) => Access::Namespaced { namespace: Cow::Borrowed(ns), resource: "runs".into(), verb: head.verb() },
            None => Access::ClusterAdmin,
        }
    }
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/{ns}/runs", get(|who: Identity| async move { format!("runs for {}", who.user) }));
    // Identity headers (kubeflow-userid) are believed only from the gateway's
    // address; here the gateway is this process, on 127.0.0.1. The layer
    // wraps the whole router: cheaper than `router.layer(..)`, which axum
    // applies route by route.
    let layer =
        TenancyLayer::new(Authenticator::new().with_proxy(ProxyTrust::parse(&["127.0.0.1"])?), tenancy.policy(), scope);
    let app = layer.wrap(router);
    // guide: end

    // guide: serve
    // Each connection's service learns the connection's peer address, which
    // decides whether the identity headers are believed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app.into_make_service()).await });
    for (path, user) in [
        ("/healthz", None),
        ("/team-a/runs", None),
        ("/team-a/runs", Some("carol@example.com")),
        ("/team-a/runs", Some("bob@example.com")),
    ] {
        println!("GET {path:<13} as {:<18} → {}", user.unwrap_or("(nobody)"), call(addr, path, user).await?);
    }
    server.abort();
    // guide: end
    Ok(())
}

/// One HTTP/1.1 GET, as the gateway would forward it; returns the status line and body.
async fn call(addr: SocketAddr, path: &str, user: Option<&str>) -> std::io::Result<String> {
    let header = user.map(|u| format!("kubeflow-userid: {u}\r\n")).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}Connection: close\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().trim_start_matches("HTTP/1.1 ").to_string();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    Ok(format!("{status} {body}"))
}
