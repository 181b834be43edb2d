//! The checks every [`ArtifactStore`] backend passes (memory, a directory,
//! S3): one suite, all backends.

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::artifact_store::{ArtifactStore, FileKey, FileName};

fn key(model: i64, version: i64, name: &str) -> FileKey {
    FileKey { model, version, file: FileName::parse(name).expect("a valid test file name") }
}

fn chunks(parts: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, String>> + Unpin + Send {
    futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p))).collect::<Vec<_>>())
}

async fn read(store: &ArtifactStore, key: &FileKey) -> Vec<u8> {
    let file = store.get(key).await.unwrap_or_else(|e| panic!("{}: {e}", key.relative()));
    let parts: Vec<Bytes> = file.bytes.try_collect().await.unwrap_or_else(|e| panic!("{}: {e}", key.relative()));
    let bytes = parts.concat();
    assert_eq!(bytes.len() as u64, file.size, "{}: the size given with the stream", key.relative());
    bytes
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Runs every check on `store`, under `models/<model>/…` (pass a model id
/// the store holds no files for); panics with a description on the first failure.
///
/// ```
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let store = kf_registry::artifact_store::ArtifactStore::in_memory();
/// rt.block_on(kf_registry::testing::artifact_store_suite(&store, 1));
/// ```
pub async fn artifact_store_suite(store: &ArtifactStore, model: i64) {
    // round trip, in uneven chunks, with size, digest and URI
    let k = key(model, 1, "model.onnx");
    let file = store.put(&k, chunks(vec![b"hel".to_vec(), b"lo".to_vec()])).await.expect("put");
    assert_eq!((file.size, file.sha256.as_deref()), (5, Some(sha256(b"hello").as_str())));
    assert_eq!(file.uri, format!("{}/models/{model}/versions/1/model.onnx", store.root_uri()));
    assert_eq!(read(store, &k).await, b"hello");

    // an empty file is a file
    let empty = key(model, 1, "empty");
    assert_eq!(store.put(&empty, chunks(vec![])).await.expect("empty put").size, 0);
    assert_eq!(read(store, &empty).await, b"");

    // a second put replaces the bytes
    store.put(&k, chunks(vec![b"second".to_vec()])).await.expect("replace");
    assert_eq!(read(store, &k).await, b"second");

    // many parts (object_store writes 5 MiB parts): 11 MiB + 1 byte
    let big: Vec<u8> = (0..(11u32 << 20) + 1).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let big_key = key(model, 2, "big.bin");
    let file = store.put(&big_key, chunks(big.chunks(1 << 20).map(<[u8]>::to_vec).collect())).await.expect("big put");
    assert_eq!((file.size, file.sha256), (big.len() as u64, Some(sha256(&big))));
    assert!(read(store, &big_key).await == big, "11 MiB read back differ");

    // listing: by name, one version only
    let listed = store.list(model, 1).await.expect("list");
    let names: Vec<(&str, u64)> = listed.iter().map(|f| (f.name.as_str(), f.size)).collect();
    assert_eq!(names, [("empty", 0), ("model.onnx", 6)]);
    assert_eq!(listed[1].uri, format!("{}/models/{model}/versions/1/model.onnx", store.root_uri()));
    assert!(store.list(model, 3).await.expect("list").is_empty());

    // over the limit while streaming: 413, the previous file stays, a new name is not created
    let limited = store.clone().with_max_file_bytes(4);
    let err = limited.put(&k, chunks(vec![b"ab".to_vec(), b"cd".to_vec(), b"e".to_vec()])).await.expect_err("413");
    assert_eq!(err.status(), 413, "{err}");
    assert_eq!(read(store, &k).await, b"second", "a refused upload keeps the previous file");
    let fresh = key(model, 1, "fresh.bin");
    limited.put(&fresh, chunks(vec![vec![0; 3], vec![0; 3]])).await.expect_err("413");
    assert!(matches!(store.get(&fresh).await, Err(Error::NotFound { .. })), "a refused upload leaves nothing");

    // a stream that breaks off: 400 naming the cause, nothing stored
    let broken = futures::stream::iter(vec![Ok(Bytes::from_static(b"a")), Err("connection reset".to_owned())]);
    let err = store.put(&fresh, broken).await.expect_err("a broken stream");
    assert_eq!(err.status(), 400, "{err}");
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert!(matches!(store.get(&fresh).await, Err(Error::NotFound { .. })));
    assert_eq!(store.list(model, 1).await.expect("list").len(), 2);

    // a missing file is NotFound (404), not a storage error
    assert!(matches!(store.get(&key(model, 9, "model.onnx")).await, Err(Error::NotFound { .. })));
}
