//! The conformance suite every [`RegistryStore`] runs, public so that
//! out-of-tree stores can run it too (as object_store ships its backend tests).
//!
//! [`run_all`] drives a [`Registry`] over the store through the API's rules:
//! round-trips of every metadata type, uniqueness, PATCH semantics, `find`,
//! parents, artifacts, metric history, and listing — every order, both
//! directions, keyset stability under inserts, tamper-evident tokens, and the
//! `filterQuery` language. The checks create objects whose names start with a
//! caller-chosen tag, so the suite can run against a store that already holds data.
//!
//! With feature `postgres`, [`TempPostgres`] starts a throwaway PostgreSQL
//! server to run it against. With feature `artifacts`,
//! `artifact_store_suite` is the same idea for `ArtifactStore` backends.
//!
//! ```
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! rt.block_on(kf_registry::testing::run_all(kf_registry::MemoryStore::new(), "doc"));
//! ```

use std::collections::BTreeSet;

#[cfg(feature = "artifacts")]
mod artifact_suite;
#[cfg(feature = "artifacts")]
pub use artifact_suite::artifact_store_suite;
#[cfg(feature = "postgres")]
mod temp_postgres;
#[cfg(feature = "postgres")]
pub use temp_postgres::TempPostgres;

use serde_json::{Value, json};

use crate::model::{Artifact, ExperimentRun, Metric, ModelArtifact, ModelVersion, RegisteredModel, ServeModel};
use crate::record::Kind;
use crate::registry::{FindParams, ListParams, Scope};
use crate::{Error, Experiment, InferenceService, Registry, RegistryStore, Resource, ServingEnvironment, ToFromValue};

/// Runs every check against `store`; panics with a description on the first failure.
pub async fn run_all<S: RegistryStore>(store: S, tag: &str) {
    let r = Registry::new(store);
    round_trip(&r, tag).await;
    uniqueness(&r, tag).await;
    patch(&r, tag).await;
    find(&r, tag).await;
    parents_and_references(&r, tag).await;
    artifacts(&r, tag).await;
    serving(&r, tag).await;
    experiments(&r, tag).await;
    paging(&r, tag).await;
    filters(&r, tag).await;
}

/// 200 creates at once, every fourth asking for the same name: exactly one
/// of those 50 wins, the other 49 are 409s that store nothing, and every
/// other create succeeds. For stores that take concurrent writes (the SQL
/// stores, whose unique indexes must decide the race); runs on the caller's
/// tokio runtime, a multi-threaded one for a real race.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub async fn racing_creates<S: RegistryStore + 'static>(r: std::sync::Arc<Registry<S>>, tag: &str) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let r = r.clone();
        let name = if i % 4 == 0 { format!("{tag}-race-contested") } else { format!("{tag}-race-{i}") };
        tasks.push(tokio::spawn(async move {
            r.create::<RegisteredModel>(json!({"name": name}), None).await.map_err(|e| e.status())
        }));
    }
    let (mut created, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await {
            Ok(Ok(_)) => created += 1,
            Ok(Err(409)) => conflicts += 1,
            Ok(Err(other)) => panic!("racing creates: unexpected status {other}"),
            Err(e) => panic!("racing creates: a task failed: {e}"),
        }
    }
    assert_eq!((created, conflicts), (151, 49), "racing creates: (created, conflicts)");
    let (items, _) = walk(&r, params(&format!("name LIKE '{tag}-race-%'"), "1000", "", "")).await;
    assert_eq!(items.len(), 151, "racing creates: stored models");
}

/// For persistent stores: data and the page-token key outlive the store.
/// `open` opens the same database each time; the first store is dropped
/// before the second opens, and a token the first issued still pages the second.
pub async fn survives_reopen<S, F, Fut>(open: F, tag: &str)
where
    S: RegistryStore,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let p = params(&format!("name LIKE '{tag}-reopen-%'"), "2", "", "");
    let (made, first, token) = {
        let r = Registry::new(open().await);
        let mut made = Vec::new();
        for i in 0..5 {
            made.push(model(&r, json!({"name": format!("{tag}-reopen-{i}")})).await);
        }
        let page = r.list::<RegisteredModel>(&p, Scope::default()).await.expect("list before the reopen");
        (made, page.items, page.next_page_token)
    };
    assert_eq!(first, made[..2]);
    let r = Registry::new(open().await);
    let again = r.list::<RegisteredModel>(&p, Scope::default()).await.expect("list after the reopen");
    assert_eq!(again.items, first, "the same first page after a reopen");
    // a token issued before the reopen still works: the key is stored with the data
    let next = ListParams { next_page_token: Some(token), ..p };
    let page = r.list::<RegisteredModel>(&next, Scope::default()).await.expect("an old token after the reopen");
    assert_eq!(page.items, made[2..4]);
}

async fn model<S: RegistryStore>(r: &Registry<S>, doc: Value) -> RegisteredModel {
    r.create(doc, None).await.unwrap_or_else(|e| panic!("create model: {e}"))
}

fn id<T: Resource>(t: &T) -> String {
    t.to_value()["id"].as_str().unwrap_or_default().to_owned()
}

fn status<T: std::fmt::Debug>(result: Result<T, Error>) -> u16 {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.status(),
    }
}

fn all_types() -> Value {
    json!({
        "s": {"metadataType": "MetadataStringValue", "string_value": "hello, registry"},
        "i": {"metadataType": "MetadataIntValue", "int_value": "-42"},
        "d": {"metadataType": "MetadataDoubleValue", "double_value": 2.0},
        "b": {"metadataType": "MetadataBoolValue", "bool_value": false},
        "st": {"metadataType": "MetadataStructValue", "struct_value": "eyJhIjogMX0="},
        "p": {"metadataType": "MetadataProtoValue", "type": "type.example/x", "proto_value": "AAE="},
    })
}

/// Every metadata type and every optional field comes back exactly as sent.
pub async fn round_trip<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let sent = json!({"name": format!("{tag}-rt"), "description": "d", "owner": "o", "externalId": format!("{tag}-rt-ext"),
        "language": ["en", "cz"], "customProperties": all_types(), "futureField": {"kept": [1, 2]}});
    let created = model(r, sent.clone()).await;
    let got: RegisteredModel = r.get(&id(&created)).await.expect("get");
    assert_eq!(got, created);
    let mut doc = got.to_value();
    for key in ["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"] {
        let value = doc.as_object_mut().and_then(|m| m.remove(key)).expect("server field");
        assert!(value.as_str().is_some_and(|s| s.parse::<u64>().is_ok()), "{key} must be a decimal string: {value}");
    }
    let mut want = sent;
    want["state"] = json!("LIVE"); // the default state is filled in
    assert_eq!(doc, want);
    let bad = json!({"name": format!("{tag}-bad"), "customProperties": {"k": {"metadataType": "MetadataIntValue", "int_value": "abc"}}});
    assert_eq!(status(r.create::<RegisteredModel>(bad, None).await), 400);
    assert_eq!(status(r.create::<RegisteredModel>(json!({}), None).await), 400);
    assert_eq!(status(r.create::<RegisteredModel>(json!({"name": 42}), None).await), 400);
    assert_eq!(status(r.create::<RegisteredModel>(json!([1]), None).await), 400);
    assert_eq!(status(r.get::<RegisteredModel>("999999999").await), 404);
    assert_eq!(status(r.get::<RegisteredModel>("abc").await), 400);
    // an id of another kind is not found as this kind
    assert_eq!(status(r.get::<ModelVersion>(&id(&created)).await), 404);
}

/// Names are unique per kind (and parent); externalIds per kind.
pub async fn uniqueness<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let a = model(r, json!({"name": format!("{tag}-u-a")})).await;
    let b = model(r, json!({"name": format!("{tag}-u-b"), "externalId": format!("{tag}-u-ext")})).await;
    assert_eq!(status(r.create::<RegisteredModel>(json!({"name": format!("{tag}-u-a")}), None).await), 409);
    assert_eq!(
        status(
            r.create::<RegisteredModel>(
                json!({"name": format!("{tag}-u-c"), "externalId": format!("{tag}-u-ext")}),
                None
            )
            .await
        ),
        409
    );
    for m in [&a, &b] {
        let v: ModelVersion =
            r.create(json!({"name": "1", "registeredModelId": id(m)}), None).await.expect("version 1");
        assert_eq!(status(r.create::<ModelVersion>(json!({"name": "1", "registeredModelId": id(m)}), None).await), 409);
        // artifacts repeat names across versions
        let art = json!({"artifactType": "model-artifact", "name": format!("{tag}-u"), "uri": "s3://x"});
        let (_, created) = r.upsert_artifact(Kind::ModelVersion, &id(&v), art.clone()).await.expect("artifact");
        assert!(created);
        assert_eq!(status(r.upsert_artifact(Kind::ModelVersion, &id(&v), art).await), 409);
    }
    // a failed create stored nothing
    let page = r
        .list::<RegisteredModel>(&params(&format!("name LIKE '{tag}-u-%'"), "", "ID", "ASC"), Scope::default())
        .await
        .expect("list");
    assert_eq!(page.items.len(), 2);
}

/// PATCH replaces the fields it names and nothing else; invalid patches change nothing.
pub async fn patch<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let m = model(r, json!({"name": format!("{tag}-p"), "owner": "o", "externalId": format!("{tag}-p-ext"), "customProperties": all_types()})).await;
    let patched: RegisteredModel =
        r.update(&id(&m), json!({"description": "new", "state": "ARCHIVED"})).await.expect("patch");
    assert_eq!(patched.description.as_deref(), Some("new"));
    assert_eq!(patched.name, m.name);
    assert_eq!(patched.owner.as_deref(), Some("o"));
    assert_eq!(patched.custom_properties, m.custom_properties);
    assert_eq!(patched.create_time_since_epoch, m.create_time_since_epoch);
    let (before, after) = (m.last_update_time_since_epoch.clone(), patched.last_update_time_since_epoch.clone());
    assert!(
        after.unwrap_or_default().parse::<i64>().unwrap_or(0) >= before.unwrap_or_default().parse::<i64>().unwrap_or(0)
    );
    let props = json!({"team": {"metadataType": "MetadataStringValue", "string_value": "ml"}});
    let replaced: RegisteredModel = r.update(&id(&m), json!({"customProperties": props})).await.expect("patch props");
    assert_eq!(replaced.to_value()["customProperties"], props);
    assert_eq!(status(r.update::<RegisteredModel>(&id(&m), json!({"state": "DELETED"})).await), 400);
    assert_eq!(status(r.update::<RegisteredModel>(&id(&m), json!({"name": "renamed"})).await), 400);
    assert_eq!(status(r.update::<RegisteredModel>("999999999", json!({"description": "x"})).await), 404);
    // repeating the name is fine; so is sending read-only fields back
    let same: RegisteredModel =
        r.update(&id(&m), json!({"name": m.name, "id": "1", "createTimeSinceEpoch": "0"})).await.expect("noop patch");
    assert_eq!(same.state, Some(crate::model::LiveState::Archived));
    assert_eq!(same.create_time_since_epoch, m.create_time_since_epoch);
    let got: RegisteredModel = r.get(&id(&m)).await.expect("get");
    assert_eq!(got, same);
}

/// `find` by name, externalId and parent.
pub async fn find<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let m = model(r, json!({"name": format!("{tag}-f"), "externalId": format!("{tag}-f-ext")})).await;
    let other = model(r, json!({"name": format!("{tag}-f2")})).await;
    let by = |name: Option<String>, ext: Option<String>, parent: Option<String>| FindParams {
        name,
        external_id: ext,
        parent_resource_id: parent,
    };
    let found: RegisteredModel = r.find(&by(m.name.clone(), None, None)).await.expect("by name");
    assert_eq!(found, m);
    let found: RegisteredModel = r.find(&by(None, m.external_id.clone(), None)).await.expect("by externalId");
    assert_eq!(found, m);
    assert_eq!(status(r.find::<RegisteredModel>(&by(Some(format!("{tag}-nope")), None, None)).await), 404);
    assert_eq!(status(r.find::<RegisteredModel>(&by(None, None, None)).await), 400);
    let v1: ModelVersion = r.create(json!({"name": "1.0", "registeredModelId": id(&m)}), None).await.expect("v");
    let v2: ModelVersion = r.create(json!({"name": "1.0", "registeredModelId": id(&other)}), None).await.expect("v");
    let found: ModelVersion = r.find(&by(Some("1.0".into()), None, Some(id(&m)))).await.expect("by parent");
    assert_eq!(found, v1);
    let found: ModelVersion = r.find(&by(Some("1.0".into()), None, Some(id(&other)))).await.expect("by parent");
    assert_eq!(found, v2);
    let art = json!({"artifactType": "model-artifact", "name": format!("{tag}-f"), "uri": "s3://1"});
    let (a1, _) = r.upsert_artifact(Kind::ModelVersion, &id(&v1), art.clone()).await.expect("a1");
    r.upsert_artifact(Kind::ModelVersion, &id(&v2), art).await.expect("a2");
    let found: ModelArtifact = r.find(&by(Some(format!("{tag}-f")), None, Some(id(&v1)))).await.expect("artifact");
    assert_eq!(Artifact::Model(found), a1);
}

/// Parents and references must exist; children list under their parent only.
pub async fn parents_and_references<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    assert_eq!(status(r.create::<ModelVersion>(json!({"name": "orphan"}), None).await), 400);
    assert_eq!(
        status(r.create::<ModelVersion>(json!({"name": "x", "registeredModelId": "999999999"}), None).await),
        404
    );
    let m = model(r, json!({"name": format!("{tag}-par")})).await;
    // the parent in the path fills in the body; a disagreeing body is rejected
    let v: ModelVersion = r.create(json!({"name": "a"}), Some(id(&m).parse().unwrap_or(0))).await.expect("via path");
    assert_eq!(v.registered_model_id, m.id);
    assert_eq!(
        status(
            r.create::<ModelVersion>(
                json!({"name": "b", "registeredModelId": "999"}),
                Some(id(&m).parse().unwrap_or(0))
            )
            .await
        ),
        400
    );
    // a version is not a registered model
    assert_eq!(status(r.create::<ModelVersion>(json!({"name": "c", "registeredModelId": id(&v)}), None).await), 404);
    let page = r
        .list_children::<ModelVersion>(Kind::RegisteredModel, &id(&m), &ListParams::default(), Scope::default())
        .await
        .expect("children");
    assert_eq!(page.items, vec![v.clone()]);
    assert_eq!(
        status(
            r.list_children::<ModelVersion>(Kind::RegisteredModel, &id(&v), &ListParams::default(), Scope::default())
                .await
        ),
        404
    );
    assert_eq!(status(r.update::<ModelVersion>(&id(&v), json!({"registeredModelId": "12345"})).await), 400);
}

/// Artifacts of every type; typed views see only their type; upsert attaches.
pub async fn artifacts<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let m = model(r, json!({"name": format!("{tag}-art")})).await;
    let v: ModelVersion = r.create(json!({"name": "1", "registeredModelId": id(&m)}), None).await.expect("v");
    let docs = [
        json!({"artifactType": "model-artifact", "name": "m", "uri": "s3://m", "modelFormatName": "onnx", "storageKey": "k"}),
        json!({"artifactType": "doc-artifact", "name": "d", "uri": "s3://d"}),
        json!({"artifactType": "dataset-artifact", "name": "ds", "digest": "sha", "schema": "{}"}),
        json!({"artifactType": "metric", "name": "acc", "value": 0.9, "step": 2, "timestamp": "5"}),
        json!({"artifactType": "parameter", "name": "lr", "value": "0.1", "parameterType": "number"}),
    ];
    let mut ids = Vec::new();
    for doc in &docs {
        let (a, created) = r.upsert_artifact(Kind::ModelVersion, &id(&v), doc.clone()).await.expect("artifact");
        assert!(created);
        let mut back = a.to_value();
        for key in ["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"] {
            back.as_object_mut().map(|o| o.remove(key));
        }
        let mut want = doc.clone();
        want["state"] = json!("UNKNOWN");
        assert_eq!(back, want);
        ids.push(id(&a));
    }
    assert_eq!(status(r.get::<ModelArtifact>(&ids[1]).await), 404, "a doc artifact is not a model artifact");
    let got: Artifact = r.get(&ids[1]).await.expect("any artifact");
    assert_eq!(got.artifact_type(), "doc-artifact");
    let all = r
        .list_children::<Artifact>(Kind::ModelVersion, &id(&v), &ListParams::default(), Scope::default())
        .await
        .expect("list");
    assert_eq!(all.items.len(), 5);
    let docs_only = Scope { artifact_type: Some("doc-artifact".into()), ..Scope::default() };
    let only = r
        .list_children::<Artifact>(Kind::ModelVersion, &id(&v), &ListParams::default(), docs_only)
        .await
        .expect("list");
    assert_eq!(only.items.len(), 1);
    let models = r
        .list::<ModelArtifact>(&params("name = 'm' AND uri = 's3://m'", "", "", ""), Scope::default())
        .await
        .expect("list");
    assert!(
        models.items.iter().all(|a| a.artifact_type.as_deref() == Some("model-artifact")) && !models.items.is_empty()
    );
    // PATCH through the typed view, artifactType repeated as the client does
    let patched: ModelArtifact = r
        .update(&ids[0], json!({"artifactType": "model-artifact", "storagePath": "p", "uri": "s3://m"}))
        .await
        .expect("patch");
    assert_eq!(patched.storage_path.as_deref(), Some("p"));
    assert_eq!(patched.storage_key.as_deref(), Some("k"));
    assert_eq!(status(r.update::<Artifact>(&ids[0], json!({"artifactType": "doc-artifact"})).await), 400);
    // upsert an existing standalone artifact into a version: attached, not created
    let standalone: Artifact = r
        .create(json!({"artifactType": "doc-artifact", "name": format!("{tag}-loose")}), None)
        .await
        .expect("standalone");
    let (attached, created) =
        r.upsert_artifact(Kind::ModelVersion, &id(&v), json!({"id": id(&standalone)})).await.expect("attach");
    assert!(!created);
    assert_eq!(id(&attached), id(&standalone));
    assert_eq!(status(r.create::<Artifact>(json!({"name": "no type"}), None).await), 400);
}

/// Serving environments, inference services and serve models.
pub async fn serving<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let m = model(r, json!({"name": format!("{tag}-srv")})).await;
    let v1: ModelVersion = r.create(json!({"name": "1", "registeredModelId": id(&m)}), None).await.expect("v1");
    let v2: ModelVersion = r.create(json!({"name": "2", "registeredModelId": id(&m)}), None).await.expect("v2");
    let env: ServingEnvironment = r.create(json!({"name": format!("{tag}-env")}), None).await.expect("env");
    let env_id = id(&env).parse().unwrap_or(0);
    let isvc: InferenceService =
        r.create(json!({"name": "svc", "registeredModelId": id(&m)}), Some(env_id)).await.expect("isvc");
    assert_eq!(isvc.desired_state, Some(crate::model::InferenceServiceState::Deployed));
    assert_eq!(
        status(r.create::<InferenceService>(json!({"name": "svc", "registeredModelId": id(&m)}), Some(env_id)).await),
        409
    );
    assert_eq!(
        status(r.create::<InferenceService>(json!({"name": "x", "registeredModelId": "999999"}), Some(env_id)).await),
        404
    );
    assert_eq!(r.inference_service_model(&id(&isvc)).await.expect("model"), m);
    let latest = r.inference_service_version(&id(&isvc)).await.expect("latest");
    assert!(latest == v2 || latest.create_time_since_epoch == v1.create_time_since_epoch, "latest version by creation");
    let pinned: InferenceService = r.update(&id(&isvc), json!({"modelVersionId": id(&v1)})).await.expect("pin");
    assert_eq!(r.inference_service_version(&id(&pinned)).await.expect("pinned"), v1);
    let serve: ServeModel = r
        .create(json!({"modelVersionId": id(&v1), "lastKnownState": "RUNNING"}), Some(id(&isvc).parse().unwrap_or(0)))
        .await
        .expect("serve");
    let serves = r
        .list_children::<ServeModel>(Kind::InferenceService, &id(&isvc), &ListParams::default(), Scope::default())
        .await
        .expect("serves");
    assert_eq!(serves.items, vec![serve]);
}

/// Experiments, runs, and a run's metric history.
pub async fn experiments<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let exp: Experiment = r.create(json!({"name": format!("{tag}-exp"), "owner": "me"}), None).await.expect("exp");
    let run: ExperimentRun =
        r.create(json!({"name": "run-1", "experimentId": id(&exp), "status": "RUNNING"}), None).await.expect("run");
    assert_eq!(status(r.create::<ExperimentRun>(json!({"name": "run-1", "experimentId": id(&exp)}), None).await), 409);
    for step in 1..=3 {
        let metric = json!({"artifactType": "metric", "name": "loss", "value": 1.0 / f64::from(step), "step": step});
        if step == 1 {
            r.upsert_artifact(Kind::ExperimentRun, &id(&run), metric).await.expect("metric");
        } else {
            // the same metric name again is a conflict for the artifact but history keeps every step
            let err = r.upsert_artifact(Kind::ExperimentRun, &id(&run), metric).await;
            assert_eq!(status(err), 409);
        }
    }
    let acc = json!({"artifactType": "metric", "name": "acc", "value": 0.5, "step": 7});
    r.upsert_artifact(Kind::ExperimentRun, &id(&run), acc).await.expect("acc");
    let history: crate::ListPage<Metric> =
        r.metric_history(Some(&id(&run)), Some("loss"), None, &ListParams::default()).await.expect("history");
    assert_eq!(history.items.len(), 1);
    let steps = r.metric_history(Some(&id(&run)), None, Some("7,8"), &ListParams::default()).await.expect("steps");
    assert_eq!(steps.items.iter().map(|m| m.name.clone().unwrap_or_default()).collect::<Vec<_>>(), ["acc"]);
    assert_eq!(status(r.metric_history(Some(&id(&run)), None, Some("x"), &ListParams::default()).await), 400);
    let runs = r
        .list_children::<ExperimentRun>(Kind::Experiment, &id(&exp), &ListParams::default(), Scope::default())
        .await
        .expect("runs");
    assert_eq!(runs.items.len(), 1);
}

fn params(filter: &str, size: &str, order: &str, sort: &str) -> ListParams {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ListParams {
        filter_query: opt(filter),
        page_size: opt(size),
        order_by: opt(order),
        sort_order: opt(sort),
        next_page_token: None,
    }
}

async fn walk<S: RegistryStore>(r: &Registry<S>, mut p: ListParams) -> (Vec<RegisteredModel>, Vec<String>) {
    let (mut items, mut tokens) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let page = r.list::<RegisteredModel>(&p, Scope::default()).await.unwrap_or_else(|e| panic!("list {p:?}: {e}"));
        assert_eq!(page.size as usize, page.items.len());
        items.extend(page.items);
        tokens.push(page.next_page_token.clone());
        if page.next_page_token.is_empty() {
            return (items, tokens);
        }
        p.next_page_token = Some(page.next_page_token);
    }
    panic!("the token never became empty");
}

/// Paging: every order and direction, stable keysets, tamper-evident tokens.
pub async fn paging<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let mut made = Vec::new();
    for i in 0..7 {
        let props = json!({"page": {"metadataType": "MetadataStringValue", "string_value": tag}});
        made.push(model(r, json!({"name": format!("{tag}-pg-{i}"), "customProperties": props})).await);
    }
    let tagged = format!("page = '{tag}'");
    let (items, tokens) = walk(r, params(&tagged, "3", "ID", "ASC")).await;
    assert_eq!(items, made);
    assert_eq!(tokens.len(), 3);
    for (order, sort) in [("CREATE_TIME", "DESC"), ("LAST_UPDATE_TIME", "ASC"), ("ID", "DESC"), ("CREATE_TIME", "ASC")]
    {
        let (items, _) = walk(r, params(&tagged, "2", order, sort)).await;
        let key = |m: &RegisteredModel| {
            let t = match order {
                "CREATE_TIME" => m.create_time_since_epoch.clone(),
                "LAST_UPDATE_TIME" => m.last_update_time_since_epoch.clone(),
                _ => m.id.clone(),
            };
            (t.unwrap_or_default().parse::<i64>().unwrap_or(0), id(m).parse::<i64>().unwrap_or(0))
        };
        let keys: Vec<_> = items.iter().map(key).collect();
        let mut want = keys.clone();
        want.sort();
        if sort == "DESC" {
            want.reverse();
        }
        assert_eq!(keys, want, "{order} {sort}");
        assert_eq!(items.iter().map(id).collect::<BTreeSet<_>>().len(), 7, "{order} {sort}: every item exactly once");
    }
    // keyset: an insert between pages does not shift the next page
    let p = params(&tagged, "3", "ID", "DESC");
    let first = r.list::<RegisteredModel>(&p, Scope::default()).await.expect("page 1");
    model(r, json!({"name": format!("{tag}-pg-late"), "customProperties": {"page": {"metadataType": "MetadataStringValue", "string_value": tag}}})).await;
    let (rest, _) = walk(r, ListParams { next_page_token: Some(first.next_page_token.clone()), ..p.clone() }).await;
    assert_eq!(rest.iter().map(id).collect::<Vec<_>>(), made[..4].iter().rev().map(id).collect::<Vec<_>>());
    // tokens are tamper-evident and bound to their query
    let token = first.next_page_token;
    let mut edited = token.clone().into_bytes();
    edited[40] = if edited[40] == b'0' { b'1' } else { b'0' };
    let edited = String::from_utf8(edited).unwrap_or_default();
    for (bad, p) in [
        (edited, p.clone()),
        ("' OR 1=1 --".to_owned(), p.clone()),
        (token.clone(), params(&format!("{tagged} AND name != 'x'"), "3", "ID", "DESC")),
        (token.clone(), params(&tagged, "3", "ID", "ASC")),
        (token.clone(), params(&tagged, "3", "CREATE_TIME", "DESC")),
    ] {
        let result =
            r.list::<RegisteredModel>(&ListParams { next_page_token: Some(bad.clone()), ..p }, Scope::default()).await;
        assert!(matches!(result, Err(Error::PageToken(_))), "token {bad:?} accepted");
    }
    // an empty token is the first page
    let again = r
        .list::<RegisteredModel>(&ListParams { next_page_token: Some(String::new()), ..p.clone() }, Scope::default())
        .await
        .expect("empty token");
    assert_eq!(again.items.len(), 3);
    for bad in [
        params("", "0", "", ""),
        params("", "many", "", ""),
        params("", "", "NAME_OF_MY_CHOICE", ""),
        params("", "", "", "SIDEWAYS"),
    ] {
        assert_eq!(status(r.list::<RegisteredModel>(&bad, Scope::default()).await), 400, "{bad:?}");
    }
    let page = r.list::<RegisteredModel>(&params(&tagged, "2", "", ""), Scope::default()).await.expect("list");
    assert_eq!(page.page_size, 2);
}

/// The `filterQuery` language against both columns and typed properties.
pub async fn filters<S: RegistryStore>(r: &Registry<S>, tag: &str) {
    let t = format!("{tag}-flt");
    for i in 0..7 {
        let mut props = json!({
            "probe_page": {"metadataType": "MetadataStringValue", "string_value": t},
            "rank": {"metadataType": "MetadataIntValue", "int_value": i.to_string()},
            "score": {"metadataType": "MetadataDoubleValue", "double_value": f64::from(i) / 10.0},
            "even": {"metadataType": "MetadataBoolValue", "bool_value": i % 2 == 0},
        });
        if i == 3 {
            props["probe-flag"] = json!({"metadataType": "MetadataStringValue", "string_value": "yes"});
        }
        let state = if i == 6 { "ARCHIVED" } else { "LIVE" };
        model(r, json!({"name": format!("{t}-page-{i}"), "owner": format!("owner-{}", i % 3), "state": state, "customProperties": props})).await;
    }
    let tagged = |extra: &str| {
        format!(
            "probe_page.string_value = '{t}'{}",
            if extra.is_empty() { String::new() } else { format!(" AND {extra}") }
        )
    };
    let cases: Vec<(String, Vec<i32>)> = vec![
        (format!("name = '{t}-page-3'"), vec![3]),
        (tagged("rank >= 4"), vec![4, 5, 6]),
        (tagged("(rank = 1 OR rank = 5)"), vec![1, 5]),
        (tagged("score > 0.45"), vec![5, 6]),
        (tagged("score >= 0 AND score < 0.25"), vec![0, 1, 2]),
        (tagged("rank > 2.5"), vec![3, 4, 5, 6]),
        (tagged("even = true"), vec![0, 2, 4, 6]),
        (tagged("rank.int_value < 2"), vec![0, 1]),
        (tagged("rank.double_value < 2"), vec![]),
        (tagged("rank IN (2, 3)"), vec![2, 3]),
        (format!("name LIKE '{t}-page-%'"), (0..7).collect()),
        (format!("name LIKE '{}-PAGE-%'", t.to_uppercase()), vec![]),
        (format!("name ILIKE '{}-PAGE-0'", t.to_uppercase()), vec![0]),
        (format!("name LIKE '{t}-page-_'"), (0..7).collect()),
        (tagged("state = 'LIVE' AND rank != 0 AND rank <> 6"), vec![1, 2, 3, 4, 5]),
        (tagged("`probe-flag` = 'yes'"), vec![3]),
        (tagged("`probe-flag` != 'yes'"), vec![]),
        (format!("name = \"{t}-page-2\""), vec![2]),
        (tagged("owner = 'owner-1'"), vec![1, 4]),
        (tagged("owner IN ('owner-0', 'owner-2') AND NOT_A_PROP = 1"), vec![]),
        (tagged("(owner = 'owner-0' OR even = false) AND rank < 5"), vec![0, 1, 3]),
        (tagged("state = 'ARCHIVED'"), vec![6]),
    ];
    for (query, want) in cases {
        let (items, _) = walk(r, params(&query, "2", "", "")).await;
        let mut got: Vec<i32> =
            items.iter().filter_map(|m| m.name.as_deref()?.strip_prefix(&format!("{t}-page-"))?.parse().ok()).collect();
        got.sort();
        assert_eq!(got, want, "filterQuery {query}");
        assert_eq!(items.len(), want.len(), "filterQuery {query}: stray items");
    }
    // LIKE has no escape character (a backslash is itself), and ILIKE folds
    // ASCII letters only, whatever the database's locale would do.
    let odd = model(r, json!({"name": format!("{t}-odd\\É")})).await;
    let upper = t.to_ascii_uppercase();
    for (query, hit) in [
        (format!("name LIKE '{t}-odd\\\\%'"), true),
        (format!("name LIKE '{t}-odd\\\\_'"), true),
        (format!("name LIKE '{t}-odd_%'"), true),
        (format!("name LIKE '{t}-odd%%'"), true),
        (format!("name LIKE '{t}-odd\\\\'"), false),
        (format!("name ILIKE '{upper}-ODD\\\\É'"), true),
        (format!("name ILIKE '{t}-odd\\\\é'"), false),
        (format!("name ILIKE '{upper}-ODD_É'"), true),
    ] {
        let (items, _) = walk(r, params(&query, "", "", "")).await;
        assert_eq!(
            items.iter().map(id).collect::<Vec<_>>(),
            if hit { vec![id(&odd)] } else { vec![] },
            "filterQuery {query}"
        );
    }
    for bad in ["name = ", "rank >>> 3", "(name = 'x'", "name = 'unterminated", "name = 3", "id LIKE 'x'"] {
        assert_eq!(status(r.list::<RegisteredModel>(&params(bad, "", "", ""), Scope::default()).await), 400, "{bad}");
    }
}
