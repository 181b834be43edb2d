//! `kf registry`: wiring for kf-registry. `serve` runs the Model Registry REST
//! API (both path prefixes) on a SQLite or PostgreSQL store until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use kf_registry::postgres::PostgresStore;
use kf_registry::sqlite::SqliteStore;
use kf_registry::{Registry, RegistryStore};

use crate::pending;

/// `kf registry …`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RegistryCommand {
    /// Serve the Model Registry REST API (/api/model_registry/v1alpha3 and /v1).
    Serve {
        /// Database: `sqlite://PATH`, a file path, `:memory:`, or `postgres://USER@HOST/DB`.
        #[arg(long, env = "KF_REGISTRY_DB", default_value = ":memory:")]
        db: String,
        /// Address to listen on.
        #[arg(long, env = "KF_REGISTRY_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
    /// Commands that are not built yet (models, versions, register, get).
    #[command(external_subcommand)]
    Other(Vec<String>),
}

/// Runs `kf registry …`.
pub fn run(args: Args) -> ExitCode {
    match args.command {
        RegistryCommand::Serve { db, addr } => match serve(&db, addr) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("kf registry serve: {err}");
                ExitCode::FAILURE
            }
        },
        RegistryCommand::Other(words) => pending::report(
            &format!("kf registry {}", words.first().map_or("", String::as_str)),
            "the kf-registry CLI for people (issue #11)",
        ),
    }
}

fn serve(db: &str, addr: SocketAddr) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            serve_store(PostgresStore::open(db).await.map_err(|e| format!("{db}: {e}"))?, addr).await
        } else {
            serve_store(SqliteStore::open(db).await.map_err(|e| format!("{db}: {e}"))?, addr).await
        }
    })
}

async fn serve_store<S: RegistryStore + 'static>(store: S, addr: SocketAddr) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // The first line on stdout is the address, so scripts can start on port 0.
    outln!("kf registry listening on http://{local}");
    kf_registry::server::serve(Arc::new(Registry::new(store)), listener, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
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
