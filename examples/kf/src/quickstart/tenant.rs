//! Step 1 and what every later step acts through: the tenant (a Profile
//! owned by the user running the quickstart, in a durable policy store), an
//! API token that identifies that user, and the `TenancyLayer` every HTTP
//! API the quickstart serves wears. Local steps (pipeline, tuning) ask the
//! same authorizer before they start.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use kf_tenancy::{
    Access, ApiTokens, Authenticator, Identity, Profile, Request, RequestHead, RoleTable, SqlitePolicyStore, Tenancy,
    TenancyLayer, Verb,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Profile (and namespace) the quickstart runs in.
pub const PROFILE: &str = "kf-quickstart";

/// The user the quickstart acts as, and how it proves it.
pub struct Tenant {
    tenancy: Tenancy<SqlitePolicyStore>,
    owner: Identity,
    /// `Authorization: Bearer <token>` identifies the owner to every API.
    token: String,
}

impl Tenant {
    /// Creates the Profile (owned by `$USER`) in `<dir>/tenancy.db`, or finds it.
    pub async fn create(dir: &Path) -> anyhow::Result<(Self, String)> {
        let owner = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "kf-user".to_string());
        let db = dir.join("tenancy.db");
        let db_str = db.to_str().ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", db.display()))?;
        let store =
            SqlitePolicyStore::open(db_str).await.with_context(|| format!("the policy store {}", db.display()))?;
        let tenancy = Tenancy::load(store, RoleTable::default(), &[])
            .await
            .with_context(|| format!("the policy store {}", db.display()))?;
        let profile = Profile::from_value(json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "Profile",
            "metadata": {"name": PROFILE},
            "spec": {"owner": {"kind": "User", "name": owner}},
        }))?;
        tenancy.create_profile(&profile).await?;
        let token = format!("kfq-{:032x}", rand::random::<u128>());
        let detail = format!("Profile {PROFILE} owned by User {owner:?} in {}", db.display());
        Ok((Tenant { tenancy, owner: Identity::user(owner), token }, detail))
    }

    /// The token that identifies the user (`Authorization: Bearer …`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The user's name.
    pub fn user(&self) -> &str {
        &self.owner.user
    }

    /// Asks the authorizer whether the user may `verb` `resource` in the
    /// namespace; the reason when allowed, an error naming the refusal otherwise.
    pub fn authorize(&self, verb: Verb, resource: &str) -> anyhow::Result<String> {
        let decision = self.tenancy.check(&Request { identity: &self.owner, namespace: PROFILE, verb, resource });
        anyhow::ensure!(
            decision.allowed,
            "{} may not {verb:?} {resource} in {PROFILE}: {}",
            self.user(),
            decision.reason
        );
        Ok(decision.reason.to_string())
    }

    /// `router` behind the `TenancyLayer`: health probes are public, every
    /// other request touches `resource` in the quickstart's namespace and
    /// needs a caller the policy allows. Callers are known by API token.
    pub fn guard(&self, router: Router, resource: &'static str) -> Router {
        let mut tokens = ApiTokens::new();
        tokens.insert(&self.token, self.owner.clone());
        let layer = TenancyLayer::new(Authenticator::new().with_tokens(tokens), self.tenancy.policy(), move |head| {
            scope(head, resource)
        });
        router.layer(layer)
    }

    /// One HTTP/1.1 request as the user (`Authorization: Bearer …`) on a
    /// fresh connection: the status and the JSON body (null when empty).
    pub async fn call(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        http(addr, method, path, Some(&self.token), body).await
    }
}

fn scope<'a>(head: &RequestHead<'a>, resource: &'static str) -> Access<'a> {
    match head.path_segment(0) {
        // OIP v2 liveness/readiness and the server's own metrics are probes.
        Some("v2") if matches!(head.path_segment(1), Some("health")) => Access::Public,
        Some("metrics") => Access::Public,
        _ => Access::Namespaced { namespace: PROFILE.into(), resource: resource.into(), verb: head.verb() },
    }
}

/// One HTTP/1.1 request on a fresh connection, with an optional bearer token.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let body = body.map(serde_json::to_vec).transpose()?.unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    let text = String::from_utf8_lossy(&reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{method} {path}: not an HTTP reply: {head}"))?;
    let value = if body.trim().is_empty() { Value::Null } else { serde_json::from_str(body).unwrap_or(json!(body)) };
    Ok((status, value))
}

/// Serves `app` on 127.0.0.1:0 until the returned sender is dropped or fired.
pub async fn serve(app: Router) -> anyhow::Result<(SocketAddr, Server)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok((addr, Server { stop: Some(stop), task: Some(task) }))
}

/// A server started by [`serve`].
pub struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Stops accepting, waits for requests in flight.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}
