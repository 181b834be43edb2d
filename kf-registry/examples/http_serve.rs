//! The REST API on a SQLite file, served by kf-registry's own router with
//! nothing else around it: the server side of `http_bench`, built from this
//! crate alone (no need to build the `kf` binary to measure the HTTP path).
//!
//! ```text
//! cargo build --release -p kf-registry --features server,sqlite --example http_serve --example http_bench
//! target/release/examples/http_serve 127.0.0.1:18080 /tmp/bench.db &
//! target/release/examples/http_bench 127.0.0.1:18080 10
//! ```
//!
//! ADDR defaults to 127.0.0.1:18080; without a DB path it uses a fresh file
//! in a temporary directory. It serves until killed.

use std::sync::Arc;

use kf_registry::Registry;
use kf_registry::sqlite::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:18080".into());
    let dir = tempfile::tempdir()?;
    let db = match args.get(2) {
        Some(path) => path.clone(),
        None => dir.path().join("bench.db").display().to_string(),
    };
    let registry = Arc::new(Registry::new(SqliteStore::open(&db).await?));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving {db} on http://{}", listener.local_addr()?);
    kf_registry::server::serve(registry, listener, std::future::pending()).await?;
    Ok(())
}
