//! Artifacts and the step cache in S3, against a real S3-compatible server:
//! moto in server mode (`moto[server]`, pinned in .ci/requirements-moto.txt),
//! started here on a free loopback port.
//!
//! `KF_MOTO_PYTHON` names a Python with moto (CI builds one). Without it
//! the test is skipped, unless `KF_REQUIRE_PEERS=1`, where it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use futures::TryStreamExt;
use kf_dag::artifact::ArtifactStore;
use kf_dag::builder::{Dataset, PipelineBuilder};
use kf_dag::exec::RunRequest;
use kf_dag::ir::ContainerSpec;
use kf_dag::local::LocalRuns;
use kf_dag::run::{RunState, TaskState};
use kf_dag::runner::FunctionRunner;
use object_store::ObjectStore;

/// A moto server, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto() -> Option<Moto> {
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

/// Creates `bucket` with a plain (unsigned) PUT, which moto accepts.
fn create_bucket(endpoint: &str, bucket: &str) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to moto");
    write!(stream, "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "creating bucket {bucket}: {reply}");
}

fn s3(endpoint: &str, url: &str) -> ArtifactStore {
    let options = [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "kf-test"),
        ("aws_secret_access_key", "kf-test"),
        ("aws_region", "us-east-1"),
    ];
    ArtifactStore::from_url_with(url, options.map(|(k, v)| (k.to_owned(), v.to_owned()))).expect("s3 store")
}

/// Two real processes pass a Dataset through S3.
fn pipeline() -> Arc<kf_dag::Plan> {
    let mut p = PipelineBuilder::new("s3-pipeline");
    let mut write = p.container_component("write", ContainerSpec::new("alpine"));
    let data = write.output_artifact::<Dataset>("data");
    write.command(["sh", "-c", "printf 'a,b\\n1,2\\n' > \"$0\"", &data.path()]);
    let write = p.add_component(write);
    let mut count = p.container_component("count", ContainerSpec::new("alpine"));
    let input = count.input_artifact::<Dataset>("data");
    let lines = count.output::<i64>("lines");
    count.command(["sh", "-c", "wc -l < \"$0\" | tr -d ' \\n' > \"$1\"", &input.path(), &lines.file()]);
    let count = p.add_component(count);
    let written = p.task("write", &write).done();
    let counted = p.task("count", &count).set_artifact(&input, &written.output_artifact(&data)).done();
    p.output("lines", &counted.output(&lines));
    Arc::new(p.build().expect("builds"))
}

#[test]
fn artifacts_and_the_cache_live_in_s3() {
    let Some(moto) = moto() else { return };
    create_bucket(&moto.endpoint, "kf-test");
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = LocalRuns::open(&dir.path().display().to_string()).expect("store").with_object_stores(
        s3(&moto.endpoint, "s3://kf-test/kf/artifacts"),
        s3(&moto.endpoint, "s3://kf-test/kf/cache"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let run = |id: &str| {
        let executor = runs.executor(FunctionRunner::new(), true).expect("executor");
        let request = RunRequest { id: Some(id.to_owned()), ..RunRequest::default() };
        runtime.block_on(executor.run(pipeline(), request)).expect("runs")
    };

    let first = run("first");
    assert_eq!(first.state, RunState::Succeeded, "{:#?}", first.tasks);
    assert_eq!(first.outputs.parameters["lines"], serde_json::json!(2));
    assert_eq!(first.tasks["write"].state, TaskState::Succeeded);

    // The objects are in the bucket, under the prefix and nowhere else.
    let bucket = s3(&moto.endpoint, "s3://kf-test");
    let keys: Vec<String> = runtime
        .block_on(bucket.object_store().list(None).map_ok(|m| m.location.to_string()).try_collect())
        .expect("list the bucket");
    assert!(keys.contains(&"kf/artifacts/first/write/data".to_owned()), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("kf/cache/")), "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("kf/")), "{keys:?}");
    let data = runtime
        .block_on(runs.artifacts().get_at(&object_store::path::Path::from("kf/artifacts/first/write/data")))
        .expect("read back");
    assert_eq!(&data[..], b"a,b\n1,2\n");

    // A second run is answered from the cache in S3.
    let second = run("second");
    assert_eq!(second.state, RunState::Succeeded);
    assert_eq!(second.tasks["write"].state, TaskState::Cached);
    assert_eq!(second.tasks["count"].state, TaskState::Cached);
    assert_eq!(second.outputs.parameters["lines"], serde_json::json!(2));
}
