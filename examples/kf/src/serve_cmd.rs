//! `kf serve`: serve ONNX models over the Open Inference Protocol v2.
//!
//! Wiring only: parse the flags, load the models into a
//! `kf_serve::ModelRepository`, hand it to `kf_serve::server::run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use kf_serve::server::{DEFAULT_BODY_LIMIT, REQUEST_TIMEOUT, ServerOptions};
use kf_serve::store::RepositoryStore;
use kf_serve::{Model, ModelRepository, OnnxModel, RemoteModel, RemoteOptions};

/// Serve ONNX models over the Open Inference Protocol v2 (REST, with the
/// binary tensor extension) until Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model to serve, as NAME=PATH.onnx, served as version 1 (repeatable).
    #[arg(long = "model", value_name = "NAME=PATH", value_parser = parse_model)]
    models: Vec<(String, PathBuf)>,

    /// A model another Open Inference Protocol v2 server serves, as
    /// NAME=URL: `http://host:port` serves its model NAME,
    /// `http://host:port/v2/models/OTHER[/versions/V]` its model OTHER
    /// (repeatable). Its metadata is read at start (a backend that does not
    /// answer stops the server); afterwards requests are forwarded over
    /// pooled connections with timeouts and safe retries, and a backend that
    /// goes away is 503 until it comes back.
    #[arg(long = "remote", value_name = "NAME=URL", value_parser = parse_remote)]
    remotes: Vec<(String, Remote)>,

    /// A model repository laid out as `<repo>/<model>/<version>/model.onnx`
    /// (+ optional `<repo>/<model>/config.toml`): a directory, a `file://`
    /// URL or `s3://bucket/prefix` (credentials and `AWS_ENDPOINT_URL` from
    /// the `AWS_*` environment). Models that fail to load are served as
    /// unavailable (503), with the reason in POST /v2/repository/index;
    /// POST /v2/repository/models/NAME/load reloads one without a restart.
    #[arg(long, value_name = "DIR_OR_URL")]
    model_repository: Option<String>,

    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Largest request body accepted, in bytes (larger requests get 413).
    #[arg(long, default_value_t = DEFAULT_BODY_LIMIT)]
    max_body_bytes: usize,

    /// Longest an inference request may take, in seconds, before it is
    /// answered 503 (0: no limit).
    #[arg(long, default_value_t = REQUEST_TIMEOUT.as_secs_f64())]
    request_timeout: f64,

    /// A KServe InferenceGraph (YAML) over the served models, answered at
    /// `POST /graphs/<its name>` (repeatable).
    #[arg(long = "graph", value_name = "FILE")]
    graphs: Vec<PathBuf>,

    /// A canary split (JSON, as kf-serve's InferenceService controller
    /// writes it: `{"model", "stable": {"version"}, "canary": {"version"},
    /// "canaryPercent"}`): requests naming no version, and the canary's
    /// version, go `canaryPercent` % to the canary and the rest to stable.
    #[arg(long, value_name = "FILE")]
    traffic: Option<PathBuf>,
}

/// Reads a traffic file into the canary setting kf server uses too.
fn load_traffic(path: &std::path::Path) -> anyhow::Result<crate::server::serving::CanaryConfig> {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let text = |pointer: &str| -> anyhow::Result<String> {
        doc.pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("{}: expected a string", pointer.trim_start_matches('/').replace('/', ".")))
    };
    let percent = doc
        .get("canaryPercent")
        .and_then(serde_json::Value::as_u64)
        .and_then(|p| u8::try_from(p).ok())
        .filter(|p| *p <= 100)
        .ok_or_else(|| anyhow::anyhow!("canaryPercent: expected an integer from 0 to 100"))?;
    Ok(crate::server::serving::CanaryConfig {
        model: text("/model")?,
        stable: text("/stable/version")?,
        canary: text("/canary/version")?,
        percent,
    })
}

/// Reads an InferenceGraph file into a router over `repo`.
fn load_graph(
    path: &std::path::Path,
    repo: &Arc<ModelRepository>,
) -> anyhow::Result<(String, Arc<kf_serve::router::GraphRouter>)> {
    use kf_serve::kserve::InferenceGraph;
    use kf_serve::router::{GraphPlan, GraphRouter};
    let text = std::fs::read_to_string(path)?;
    let value: serde_json::Value =
        crate::documents::yaml_values(&text)?.into_iter().next().ok_or_else(|| anyhow::anyhow!("no document"))?;
    let graph = InferenceGraph::from_value(value)?;
    let name = graph
        .metadata
        .as_ref()
        .and_then(|m| m.name.clone())
        .ok_or_else(|| anyhow::anyhow!("metadata.name: missing"))?;
    let router = GraphRouter::new(GraphPlan::build(&graph)?, repo.clone());
    Ok((name, Arc::new(router)))
}

fn parse_model(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_string(), PathBuf::from(path))),
        _ => Err(format!("expected NAME=PATH.onnx, found {value:?}")),
    }
}

/// Where a `--remote` model lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Remote {
    base: String,
    model: String,
    version: Option<String>,
}

fn parse_remote(value: &str) -> Result<(String, Remote), String> {
    let usage = || format!("expected NAME=http://HOST:PORT[/v2/models/MODEL[/versions/V]], found {value:?}");
    let (name, url) = value.split_once('=').filter(|(n, u)| !n.is_empty() && !u.is_empty()).ok_or_else(usage)?;
    let (base, model, version) = match url.split_once("/v2/models/") {
        None => (url.trim_end_matches('/'), name, None),
        Some((base, rest)) => match rest.trim_end_matches('/').split_once("/versions/") {
            Some((model, version)) if !model.is_empty() && !version.is_empty() && !version.contains('/') => {
                (base, model, Some(version.to_string()))
            }
            None if !rest.is_empty() && !rest.contains('/') => (base, rest.trim_end_matches('/'), None),
            _ => return Err(usage()),
        },
    };
    if !base.starts_with("http://") || base.len() <= "http://".len() {
        return Err(format!("{value:?}: the URL must start with http://HOST:PORT"));
    }
    Ok((name.to_string(), Remote { base: base.to_string(), model: model.to_string(), version }))
}

fn load_onnx(name: &str, path: &std::path::Path) -> kf_serve::Result<Arc<dyn Model>> {
    Ok(Arc::new(OnnxModel::load(name, path)?))
}

/// Loads every model of the repository at `location` into `repo`; returns
/// the store, which reloads models on request.
fn load_repository(location: &str, repo: &ModelRepository) -> kf_serve::Result<Arc<RepositoryStore>> {
    let store = RepositoryStore::open(location, |name: &str, bytes: &[u8]| -> kf_serve::Result<Arc<dyn Model>> {
        Ok(Arc::new(OnnxModel::from_bytes(name, bytes)?))
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
        kf_serve::Error::Internal { message: format!("cannot start a runtime to load the repository: {e}") }
    })?;
    runtime.block_on(store.load_all(repo))?;
    Ok(Arc::new(store))
}

pub fn run(args: Args) -> ExitCode {
    if args.models.is_empty() && args.remotes.is_empty() && args.model_repository.is_none() {
        eprintln!(
            "kf serve: nothing to serve: give --model NAME=PATH.onnx, --remote NAME=URL or --model-repository DIR_OR_URL"
        );
        return ExitCode::from(2);
    }
    let repo = Arc::new(ModelRepository::new());
    for (name, path) in &args.models {
        match load_onnx(name, path) {
            Ok(model) => repo.insert(name, "1", model),
            Err(e) => {
                eprintln!("kf serve: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    for (name, remote) in &args.remotes {
        let connected =
            RemoteModel::connect(&remote.base, &remote.model, remote.version.as_deref(), RemoteOptions::default());
        match connected {
            Ok(model) => repo.insert(name, "1", Arc::new(model)),
            Err(e) => {
                eprintln!("kf serve: --remote {name}={}: {e}", remote.base);
                return ExitCode::FAILURE;
            }
        }
    }
    let request_timeout = match args.request_timeout {
        0.0 => None,
        t if t.is_finite() && t > 0.0 => Some(std::time::Duration::from_secs_f64(t)),
        t => {
            eprintln!("kf serve: --request-timeout: expected seconds (0 for no limit), found {t}");
            return ExitCode::from(2);
        }
    };
    let mut options = ServerOptions { body_limit: args.max_body_bytes, request_timeout, ..Default::default() };
    if let Some(location) = &args.model_repository {
        match load_repository(location, &repo) {
            Ok(store) => options.loader = Some(store),
            Err(e) => {
                eprintln!("kf serve: {e}");
                return ExitCode::FAILURE;
            }
        }
        for entry in repo.index().into_iter().filter(|e| e.reason.is_some()) {
            eprintln!(
                "kf serve: {}:{} is unavailable: {}",
                entry.name,
                entry.version,
                entry.reason.unwrap_or_default()
            );
        }
    }
    if let Some(path) = &args.traffic {
        let installed = load_traffic(path)
            .and_then(|canary| crate::server::serving::install(&repo, std::slice::from_ref(&canary)).map(|_| canary));
        match installed {
            Ok(c) => eprintln!(
                "kf serve: {}: version {} gets {} % of requests naming no version (stable: version {})",
                c.model, c.canary, c.percent, c.stable
            ),
            Err(e) => {
                eprintln!("kf serve: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    for path in &args.graphs {
        match load_graph(path, &repo) {
            Ok((name, graph)) => {
                options.graphs.insert(name, graph);
            }
            Err(e) => {
                eprintln!("kf serve: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
        }
    }
    let served = kf_serve::server::run(args.addr, repo, options, |addr| {
        outln!("kf serve: listening on http://{addr}");
        // Scripts wait for this line; do not leave it in a buffer.
        let _ = std::io::Write::flush(&mut std::io::stdout());
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kf serve: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(base: &str, model: &str, version: Option<&str>) -> Remote {
        Remote { base: base.into(), model: model.into(), version: version.map(str::to_string) }
    }

    #[test]
    fn remote_flags_name_the_backend_model() {
        let cases = [
            ("iris=http://10.0.0.7:8080", remote("http://10.0.0.7:8080", "iris", None)),
            ("iris=http://10.0.0.7:8080/", remote("http://10.0.0.7:8080", "iris", None)),
            ("iris=http://h:1/prefix/v2/models/flowers", remote("http://h:1/prefix", "flowers", None)),
            ("iris=http://h:1/v2/models/flowers/versions/3", remote("http://h:1", "flowers", Some("3"))),
        ];
        for (flag, want) in cases {
            assert_eq!(parse_remote(flag), Ok(("iris".to_string(), want)), "{flag}");
        }
        for bad in [
            "iris",
            "=http://h:1",
            "iris=",
            "iris=https://h:1",
            "iris=http://",
            "iris=http://h:1/v2/models/",
            "iris=http://h:1/v2/models/a/b",
            "iris=http://h:1/v2/models/a/versions/",
        ] {
            assert!(parse_remote(bad).is_err(), "{bad}");
        }
    }
}
