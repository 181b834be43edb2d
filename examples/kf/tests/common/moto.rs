//! A real S3-compatible server for `s3://` tests of the `kf` binary: moto in
//! server mode (`moto[server]`, pinned in .ci/requirements-moto.txt) on a
//! free loopback port, and the environment that points `kf` at it.
//!
//! `KF_MOTO_PYTHON` names a Python with moto (CI builds one). Without it a
//! test is skipped, unless `KF_REQUIRE_PEERS=1`, where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// A moto server, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto, or `None` (the test is skipped) when no Python with
    /// moto is configured and peers are not required.
    pub fn start() -> Option<Moto> {
        let required = std::env::var("KF_REQUIRE_PEERS").is_ok_and(|v| v == "1");
        let Ok(python) = std::env::var("KF_MOTO_PYTHON") else {
            assert!(!required, "KF_REQUIRE_PEERS=1 but KF_MOTO_PYTHON (a Python with moto[server]) is not set");
            eprintln!("skipped: set KF_MOTO_PYTHON to a Python with moto[server] (or KF_REQUIRE_PEERS=1 to fail)");
            return None;
        };
        let mut child = Command::new(&python)
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} -m moto.server: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        // Werkzeug says where it listens: " * Running on http://127.0.0.1:PORT".
        let mut endpoint = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.expect("moto's stderr");
            if let Some(at) = line.find("http://127.0.0.1:") {
                endpoint = Some(line[at..].trim().to_owned());
                break;
            }
        }
        let endpoint = endpoint.unwrap_or_else(|| panic!("{python} -m moto.server ended before listening"));
        Some(Moto { child, endpoint })
    }

    /// The `AWS_*` environment under which `kf` reaches this server.
    pub fn env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "kf-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "kf-test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Creates `bucket`.
    pub fn create_bucket(&self, bucket: &str) {
        self.put(&format!("/{bucket}"), &[]);
    }

    /// Writes `bytes` to `bucket/key`.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.put(&format!("/{bucket}/{key}"), bytes);
    }

    /// A plain (unsigned) PUT, which moto accepts.
    fn put(&self, path: &str, body: &[u8]) {
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect to moto");
        write!(
            stream,
            "PUT {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .expect("send");
        stream.write_all(body).expect("send the body");
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).expect("reply");
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200"), "PUT {path}: {reply}");
    }
}
