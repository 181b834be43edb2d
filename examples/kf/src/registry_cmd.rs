//! `kf registry`: wiring for kf-registry. `serve` runs the Model Registry REST
//! API (both path prefixes, plus kf's file endpoints) on a SQLite or
//! PostgreSQL store until Ctrl-C or SIGTERM; `models`, `versions`, `register`
//! and `get` are the same registry for people, as tables or `--output json`.
//!
//! The commands for people open the database (`--db`) and the artifact
//! store themselves rather than calling a server: the binary has no HTTP
//! client, they work with no server running, and they go through the same
//! `Registry` rules the server does. A server on the same SQLite file sees
//! their writes at once (WAL, busy timeout), and both derive the same
//! default artifact directory from the database path, so a file registered
//! here is downloadable from the server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use kf_registry::artifact_store::{ArtifactStore, DEFAULT_MAX_FILE_BYTES, FileKey, FileName, ModelFile};
use kf_registry::postgres::PostgresStore;
use kf_registry::record::Kind;
use kf_registry::registry::{FindParams, ListParams, Scope};
use kf_registry::sqlite::SqliteStore;
use kf_registry::{
    Error, ListPage, MetadataValue, ModelArtifact, ModelVersion, RegisteredModel, Registry, RegistryStore,
};
use serde_json::{Value, json};

use crate::output::OutputFormat;

/// `kf registry …`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RegistryCommand {
    /// Serve the Model Registry REST API (/api/model_registry/v1alpha3 and /v1)
    /// and kf's file endpoints (/api/kf_registry/v1).
    Serve {
        /// Database: `sqlite://PATH`, a file path, `:memory:`, or `postgres://USER@HOST/DB`.
        #[arg(long, env = "KF_REGISTRY_DB", default_value = ":memory:")]
        db: String,
        #[command(flatten)]
        files: FileArgs,
        /// Address to listen on.
        #[arg(long, env = "KF_REGISTRY_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
    /// List registered models.
    Models {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the versions of a registered model.
    Versions {
        /// The registered model's name.
        model: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Register a model version, uploading its file or recording a URI.
    // `--version` names the model version here, not kf's version.
    #[command(disable_version_flag = true)]
    Register {
        /// The registered model's name (created if it does not exist).
        model: String,
        /// The new version's name.
        #[arg(long)]
        version: String,
        /// A model file to upload into the artifact store.
        #[arg(long, conflicts_with = "uri", required_unless_present = "uri")]
        file: Option<PathBuf>,
        /// Name to store --file under (default: its own name; letters, digits, '.', '_', '-', '+').
        #[arg(long, requires = "file")]
        file_name: Option<String>,
        /// Where the model already is (recorded as is; nothing is uploaded).
        #[arg(long)]
        uri: Option<String>,
        /// Model format, e.g. `onnx`.
        #[arg(long)]
        format: Option<String>,
        /// Model format version.
        #[arg(long)]
        format_version: Option<String>,
        /// Description of the version.
        #[arg(long)]
        description: Option<String>,
        /// Author of the version (and owner of a new model).
        #[arg(long, env = "USER")]
        author: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show a registered model and its versions (or one version), and
    /// optionally download the version's files.
    #[command(disable_version_flag = true)]
    Get {
        /// The registered model's name.
        model: String,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Write the version's stored files into this directory (needs --version).
        #[arg(long, requires = "version")]
        download: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Any other word: exits 2 naming the commands there are.
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// Where the registry and its files are, for the commands for people.
#[derive(Debug, Clone, clap::Args)]
struct StoreArgs {
    /// Database: `sqlite://PATH`, a file path, or `postgres://USER@HOST/DB`.
    #[arg(long, env = "KF_REGISTRY_DB")]
    db: String,
    #[command(flatten)]
    files: FileArgs,
}

#[derive(Debug, Clone, clap::Args)]
struct FileArgs {
    /// Artifact store for model files: a directory, `file:///DIR`, `memory:///`
    /// or `s3://BUCKET/PREFIX`. Default: the directory `<db file>-artifacts`
    /// beside a SQLite file; memory for `:memory:`; none for PostgreSQL.
    #[arg(long, env = "KF_REGISTRY_ARTIFACTS")]
    artifacts: Option<String>,
    /// Largest model file accepted, in bytes (larger uploads are refused with 413).
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_BYTES)]
    max_file_bytes: u64,
}

impl FileArgs {
    /// The artifact store for `db`: the one given, or the default beside it.
    fn open(&self, db: &str) -> anyhow::Result<Option<ArtifactStore>> {
        let location = match &self.artifacts {
            Some(location) => Some(location.clone()),
            None if is_postgres(db) => None,
            None => match sqlite_path(db) {
                None => Some("memory:///".to_owned()),
                Some(path) => Some(format!("{path}-artifacts")),
            },
        };
        let Some(location) = location else { return Ok(None) };
        let store = ArtifactStore::from_url(&location).with_context(|| format!("--artifacts {location}"))?;
        Ok(Some(store.with_max_file_bytes(self.max_file_bytes)))
    }
}

/// The registry's REST API (and its file endpoints when `artifacts` gives a
/// store) over the database at `db`: `sqlite://PATH`, a path, or
/// `postgres://…`. The database opens first: a bad one must not leave an
/// artifact directory behind. Errors name the database, password redacted.
pub async fn router_for(
    db: &str,
    artifacts: impl FnOnce() -> anyhow::Result<Option<ArtifactStore>>,
) -> anyhow::Result<axum::Router> {
    let named = || format!("the registry database {}", redact(db));
    Ok(if is_postgres(db) {
        let store = PostgresStore::open(db).await.with_context(named)?;
        kf_registry::server::router_with_artifacts(Arc::new(Registry::new(store)), artifacts()?)
    } else {
        let store = SqliteStore::open(db).await.with_context(named)?;
        kf_registry::server::router_with_artifacts(Arc::new(Registry::new(store)), artifacts()?)
    })
}

/// A database URL fit for messages: the password, if any, replaced by `***`.
pub fn redact(db: &str) -> String {
    match url::Url::parse(db) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => db.to_owned(),
    }
}

fn is_postgres(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// The file of a SQLite location, `None` for an in-memory database.
fn sqlite_path(db: &str) -> Option<&str> {
    let path = db.strip_prefix("sqlite://").unwrap_or(db);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Runs `kf registry …`.
pub fn run(args: Args, output: OutputFormat) -> ExitCode {
    let (name, result) = match args.command {
        RegistryCommand::Serve { db, files, addr } => ("serve", serve(&db, &files, addr)),
        RegistryCommand::Other(words) => {
            return crate::pending::report(
                &format!("kf registry {}", words.first().map_or("", String::as_str)),
                "a kf-registry command by that name (there are: serve, models, versions, register, get)",
            );
        }
        command => (command_name(&command), people(command, output)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kf registry {name}: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn command_name(command: &RegistryCommand) -> &'static str {
    match command {
        RegistryCommand::Serve { .. } => "serve",
        RegistryCommand::Models { .. } => "models",
        RegistryCommand::Versions { .. } => "versions",
        RegistryCommand::Register { .. } => "register",
        RegistryCommand::Get { .. } => "get",
        RegistryCommand::Other(_) => "",
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn serve(db: &str, files: &FileArgs, addr: SocketAddr) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let app = router_for(db, || {
            let artifacts = files.open(db)?;
            match &artifacts {
                Some(store) => eprintln!("kf registry: model files in {}", store.root_uri()),
                None => eprintln!("kf registry: no artifact store (--artifacts URL); file uploads are refused"),
            }
            Ok(artifacts)
        })
        .await?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        // The first line on stdout is the address, so scripts can start on port 0.
        outln!("kf registry listening on http://{}", listener.local_addr()?);
        kf_registry::server::serve_router(app, listener, shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

fn people(command: RegistryCommand, output: OutputFormat) -> anyhow::Result<()> {
    let store = match &command {
        RegistryCommand::Models { store }
        | RegistryCommand::Versions { store, .. }
        | RegistryCommand::Register { store, .. }
        | RegistryCommand::Get { store, .. } => store,
        RegistryCommand::Serve { .. } | RegistryCommand::Other(_) => bail!("not a command for people"),
    };
    if sqlite_path(&store.db).is_none() && !is_postgres(&store.db) {
        bail!(
            "--db {}: an in-memory registry is empty in every new process; give a file or a postgres:// URL",
            store.db
        );
    }
    if let Some(path) = sqlite_path(&store.db).filter(|_| !is_postgres(&store.db))
        && !Path::new(path).exists()
        && !matches!(command, RegistryCommand::Register { .. })
    {
        // Opening would create an empty registry: a typo should not do that.
        bail!("--db {}: no such file (`kf registry serve --db {path}` creates one)", store.db);
    }
    // Only these touch files; the others must not create an artifact directory.
    let needs_files = matches!(command, RegistryCommand::Register { file: Some(_), .. } | RegistryCommand::Get { .. });
    let StoreArgs { db, files } = store.clone();
    // The database opens first, as for serve: a bad --db leaves no directory behind.
    let artifacts = || if needs_files { files.open(&db) } else { Ok(None) };
    runtime()?.block_on(async {
        if is_postgres(&db) {
            let store = PostgresStore::open(&db).await.with_context(|| redact(&db))?;
            execute(&Registry::new(store), artifacts()?.as_ref(), command, output).await
        } else {
            let store = SqliteStore::open(&db).await.with_context(|| redact(&db))?;
            execute(&Registry::new(store), artifacts()?.as_ref(), command, output).await
        }
    })
}

async fn execute<S: RegistryStore>(
    registry: &Registry<S>,
    artifacts: Option<&ArtifactStore>,
    command: RegistryCommand,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Models { .. } => {
            let models: Vec<RegisteredModel> =
                all(|params| async move { registry.list(&params, Scope::default()).await }).await?;
            match output {
                OutputFormat::Json => outln!("{}", json!(models)),
                OutputFormat::Text => {
                    let rows = models.iter().map(|m| {
                        vec![
                            text(&m.id),
                            text(&m.name),
                            m.state.map_or("-", |s| s.as_str()).to_owned(),
                            text(&m.owner),
                            age(&m.last_update_time_since_epoch),
                        ]
                    });
                    print_table(&["ID", "NAME", "STATE", "OWNER", "UPDATED"], rows);
                }
            }
        }
        RegistryCommand::Versions { model, .. } => {
            let model = find_model(registry, &model).await?;
            let versions = versions_of(registry, &model).await?;
            let mut described = Vec::new();
            for version in versions {
                let artifacts = artifacts_of(registry, &version).await?;
                described.push((version, artifacts));
            }
            match output {
                OutputFormat::Json => {
                    let docs: Vec<Value> =
                        described.iter().map(|(v, a)| json!({"version": v, "artifacts": a})).collect();
                    outln!("{}", json!(docs));
                }
                OutputFormat::Text => {
                    let rows = described.iter().map(|(v, a)| {
                        vec![
                            text(&v.id),
                            text(&v.name),
                            v.state.map_or("-", |s| s.as_str()).to_owned(),
                            text(&v.author),
                            a.first().map_or("-".to_owned(), |a| text(&a.uri)),
                            age(&v.create_time_since_epoch),
                        ]
                    });
                    print_table(&["ID", "VERSION", "STATE", "AUTHOR", "URI", "CREATED"], rows);
                }
            }
        }
        RegistryCommand::Register {
            model,
            version,
            file,
            file_name,
            uri,
            format,
            format_version,
            description,
            author,
            ..
        } => {
            let upload = match &file {
                Some(path) => {
                    let store = artifacts.ok_or_else(|| {
                        anyhow!(
                            "--file needs an artifact store: give --artifacts URL (there is no default for PostgreSQL)"
                        )
                    })?;
                    let name = match &file_name {
                        Some(name) => FileName::parse(name).context("--file-name")?,
                        None => {
                            let own = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                            FileName::parse(own)
                                .with_context(|| format!("--file {} (--file-name gives another)", path.display()))?
                        }
                    };
                    // fail before anything is registered if the file cannot be read
                    std::fs::File::open(path).with_context(|| format!("--file {}", path.display()))?;
                    Some((store, name, path))
                }
                None => None,
            };
            let model = match registry.find::<RegisteredModel>(&by_name(&model, None)).await {
                Ok(found) => found,
                Err(Error::NotFound { .. }) => {
                    let mut doc = json!({"name": model});
                    if let Some(author) = &author {
                        doc["owner"] = json!(author);
                    }
                    registry.create(doc, None).await?
                }
                Err(e) => return Err(e.into()),
            };
            let model_id = text(&model.id);
            if registry.find::<ModelVersion>(&by_name(&version, Some(&model_id))).await.is_ok() {
                bail!("{} already has a version {version:?}", text(&model.name));
            }
            let mut doc = json!({"name": version, "registeredModelId": model_id});
            if let Some(author) = &author {
                doc["author"] = json!(author);
            }
            if let Some(description) = &description {
                doc["description"] = json!(description);
            }
            let version: ModelVersion = registry.create(doc, None).await?;
            let version_id = text(&version.id);
            let mut fields = serde_json::Map::new();
            let mut properties = kf_registry::CustomProperties::new();
            let stored = match upload {
                Some((store, name, path)) => {
                    let key = FileKey { model: model_id.parse()?, version: version_id.parse()?, file: name };
                    let stored = store.put_file(&key, path).await?;
                    properties
                        .insert("kf.sha256".into(), MetadataValue::string(stored.sha256.clone().unwrap_or_default()));
                    properties.insert("kf.size_bytes".into(), MetadataValue::double(stored.size as f64));
                    fields.insert("uri".into(), json!(stored.uri));
                    Some(stored)
                }
                None => {
                    fields.insert("uri".into(), json!(uri.unwrap_or_default()));
                    None
                }
            };
            fields.insert("state".into(), json!("LIVE"));
            if let Some(format) = format {
                fields.insert("modelFormatName".into(), json!(format));
            }
            if let Some(format_version) = format_version {
                fields.insert("modelFormatVersion".into(), json!(format_version));
            }
            let (artifact, _) =
                registry.link_model_artifact(&version_id, &text(&model.name), fields, properties).await?;
            match output {
                OutputFormat::Json => {
                    outln!("{}", json!({"model": model, "version": version, "artifact": artifact, "file": stored}))
                }
                OutputFormat::Text => {
                    let what = match &stored {
                        Some(f) => format!(" ({} bytes, {})", f.size, f.sha256.as_deref().unwrap_or("-")),
                        None => String::new(),
                    };
                    outln!(
                        "registered {} version {} (id {version_id}): {}{what}",
                        text(&model.name),
                        text(&version.name),
                        text(&artifact.uri)
                    );
                }
            }
        }
        RegistryCommand::Get { model, version, download, .. } => {
            let model = find_model(registry, &model).await?;
            let versions = match &version {
                Some(name) => {
                    let id = text(&model.id);
                    match registry.find::<ModelVersion>(&by_name(name, Some(&id))).await {
                        Ok(v) => vec![v],
                        Err(Error::NotFound { .. }) => bail!("{} has no version {name:?}", text(&model.name)),
                        Err(e) => return Err(e.into()),
                    }
                }
                None => versions_of(registry, &model).await?,
            };
            let mut described = Vec::new();
            for version in versions {
                let model_artifacts = artifacts_of(registry, &version).await?;
                let files = match artifacts {
                    Some(store) => store.list(text(&model.id).parse()?, text(&version.id).parse()?).await?,
                    None => Vec::new(),
                };
                described.push((version, model_artifacts, files));
            }
            let mut saved = Vec::new();
            if let (Some(dir), Some(store), Some((version, _, files))) = (&download, artifacts, described.first()) {
                if files.is_empty() {
                    bail!("version {} of {} has no stored files to download", text(&version.name), text(&model.name));
                }
                std::fs::create_dir_all(dir).with_context(|| format!("--download {}", dir.display()))?;
                for file in files {
                    let key = FileKey {
                        model: text(&model.id).parse()?,
                        version: text(&version.id).parse()?,
                        file: FileName::parse(&file.name)?,
                    };
                    let to = dir.join(&file.name);
                    let size = store.save(&key, &to).await?;
                    saved.push((to, size));
                }
            } else if download.is_some() {
                bail!("--download needs an artifact store: give --artifacts URL");
            }
            print_details(&model, &described, &saved, output);
        }
        RegistryCommand::Serve { .. } | RegistryCommand::Other(_) => bail!("not a command for people"),
    }
    Ok(())
}

fn print_details(
    model: &RegisteredModel,
    versions: &[(ModelVersion, Vec<ModelArtifact>, Vec<ModelFile>)],
    saved: &[(PathBuf, u64)],
    output: OutputFormat,
) {
    match output {
        OutputFormat::Json => {
            let versions: Vec<Value> =
                versions.iter().map(|(v, a, f)| json!({"version": v, "artifacts": a, "files": f})).collect();
            let saved: Vec<Value> =
                saved.iter().map(|(p, size)| json!({"path": p.display().to_string(), "size": size})).collect();
            outln!("{}", json!({"model": model, "versions": versions, "downloaded": saved}));
        }
        OutputFormat::Text => {
            outln!("model        {} (id {})", text(&model.name), text(&model.id));
            outln!("state        {}", model.state.map_or("-", |s| s.as_str()));
            outln!("owner        {}", text(&model.owner));
            if let Some(description) = &model.description {
                outln!("description  {description}");
            }
            for (version, artifacts, files) in versions {
                outln!();
                outln!("version      {} (id {})", text(&version.name), text(&version.id));
                outln!("state        {}", version.state.map_or("-", |s| s.as_str()));
                outln!("author       {}", text(&version.author));
                outln!("created      {}", age(&version.create_time_since_epoch));
                if let Some(description) = &version.description {
                    outln!("description  {description}");
                }
                for artifact in artifacts {
                    let format = match (&artifact.model_format_name, &artifact.model_format_version) {
                        (Some(n), Some(v)) => format!(" [{n} {v}]"),
                        (Some(n), None) => format!(" [{n}]"),
                        _ => String::new(),
                    };
                    outln!("artifact     {}: {}{format}", text(&artifact.name), text(&artifact.uri));
                }
                for file in files {
                    outln!("file         {} ({} bytes)", file.name, file.size);
                }
            }
            for (path, size) in saved {
                outln!("downloaded   {} ({size} bytes)", path.display());
            }
        }
    }
}

fn by_name(name: &str, parent: Option<&str>) -> FindParams {
    FindParams { name: Some(name.to_owned()), external_id: None, parent_resource_id: parent.map(str::to_owned) }
}

async fn find_model<S: RegistryStore>(registry: &Registry<S>, name: &str) -> anyhow::Result<RegisteredModel> {
    match registry.find(&by_name(name, None)).await {
        Ok(model) => Ok(model),
        Err(Error::NotFound { .. }) => bail!("no registered model {name:?}"),
        Err(e) => Err(e.into()),
    }
}

async fn versions_of<S: RegistryStore>(
    registry: &Registry<S>,
    model: &RegisteredModel,
) -> anyhow::Result<Vec<ModelVersion>> {
    let id = &text(&model.id);
    all(|params| async move { registry.list_children(Kind::RegisteredModel, id, &params, Scope::default()).await })
        .await
}

async fn artifacts_of<S: RegistryStore>(
    registry: &Registry<S>,
    version: &ModelVersion,
) -> anyhow::Result<Vec<ModelArtifact>> {
    let id = &text(&version.id);
    all(|params| async move { registry.list_children(Kind::ModelVersion, id, &params, Scope::default()).await }).await
}

/// Every item of a list, page after page, oldest first.
async fn all<T, F, Fut>(page: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(ListParams) -> Fut,
    Fut: Future<Output = kf_registry::Result<ListPage<T>>>,
{
    let mut params = ListParams {
        page_size: Some("1000".into()),
        order_by: Some("ID".into()),
        sort_order: Some("ASC".into()),
        ..ListParams::default()
    };
    let mut items = Vec::new();
    loop {
        let next = page(params.clone()).await?;
        items.extend(next.items);
        if next.next_page_token.is_empty() {
            return Ok(items);
        }
        params.next_page_token = Some(next.next_page_token);
    }
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

/// "3 minutes ago" for a time in milliseconds since the epoch (a decimal string).
fn age(millis: &Option<String>) -> String {
    let Some(millis) = millis.as_deref().and_then(|m| m.parse::<u64>().ok()) else { return "-".to_owned() };
    let then = UNIX_EPOCH + Duration::from_millis(millis);
    match SystemTime::now().duration_since(then) {
        Ok(ago) if ago < Duration::from_secs(1) => "just now".to_owned(),
        Ok(ago) => format!("{} ago", indicatif::HumanDuration(ago)),
        Err(_) => "just now".to_owned(),
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn print_table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        let padded: Vec<String> = cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i == last { c } else { format!("{c:<width$}", width = widths[i]) })
            .collect();
        outln!("{}", padded.join("  "));
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row);
    }
}
