//! A small HTTP/1.1 load generator for `kf registry serve`: 32 keep-alive
//! connections create model versions for a bounded time, then read them back
//! by id for the same time. Run the server in another process: the
//! `http_serve` example (kf-registry's router alone) or `kf registry serve`:
//!
//! ```text
//! cargo build --release -p kf-registry --features server,sqlite --example http_serve --example http_bench
//! target/release/examples/http_serve 127.0.0.1:18080 /tmp/bench.db &
//! target/release/examples/http_bench 127.0.0.1:18080 10
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;
const PREFIX: &str = "/api/model_registry/v1alpha3";

struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    async fn open(addr: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection { stream: BufReader::new(stream), host: addr.to_owned() })
    }

    async fn request(&mut self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(format!("{head}{body}").as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

fn id_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:18080".into());
    let seconds: u64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let run = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
    let mut setup = Connection::open(&addr).await?;
    let (status, body) =
        setup.request("POST", &format!("{PREFIX}/registered_models"), &format!(r#"{{"name": "bench-{run}"}}"#)).await?;
    assert_eq!(status, 201, "{body}");
    let model = id_of(&body);

    let errors = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (addr, model, errors) = (addr.clone(), model.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&addr).await?;
            let mut ids = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                let body = format!(r#"{{"name": "c{c}-{i}", "registeredModelId": "{model}", "customProperties": {{"i": {{"metadataType": "MetadataIntValue", "int_value": "{i}"}}}}}}"#);
                let (status, answer) = conn.request("POST", &format!("{PREFIX}/model_versions"), &body).await?;
                if status == 201 { ids.push(id_of(&answer)) } else { errors.fetch_add(1, Ordering::Relaxed); }
                i += 1;
            }
            Ok::<_, std::io::Error>(ids)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "POST model_versions: {} in {secs:.1}s = {:.0}/s, {} errors (c={CONNECTIONS})",
        ids.len(),
        ids.len() as f64 / secs,
        errors.load(Ordering::Relaxed)
    );

    let ids = Arc::new(ids);
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (addr, ids, errors) = (addr.clone(), ids.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::open(&addr).await?;
            let mut n = 0usize;
            while Instant::now() < until {
                let id = &ids[(c * 7919 + n * 104_729) % ids.len()];
                let (status, _) = conn.request("GET", &format!("{PREFIX}/model_versions/{id}"), "").await?;
                if status != 200 {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            Ok::<_, std::io::Error>(n)
        }));
    }
    let mut gets = 0;
    for t in tasks {
        gets += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "GET model_versions/{{id}}: {gets} in {secs:.1}s = {:.0}/s, {} errors total (c={CONNECTIONS})",
        gets as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}
