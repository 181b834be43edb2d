//! [`Registry`]: the Model Registry's operations over any [`RegistryStore`].
//!
//! This is where the API's rules live, once for every store: which fields are
//! required and read-only, parents and references that must exist, default
//! states, what a PATCH may change, `find` by name/externalId/parent, and
//! listing with validated `pageSize`/`orderBy`/`sortOrder`, a parsed and
//! type-checked `filterQuery`, and signed keyset page tokens. It is IO-free
//! apart from the store it is given and the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::filter::CompareOp;
use crate::model::{
    Artifact, DataSet, DocArtifact, Experiment, ExperimentRun, InferenceService, ListPage, Metric, ModelArtifact,
    ModelVersion, Parameter, RegisteredModel, ServeModel, ServingEnvironment, ToFromValue,
};
use crate::query::{Column, Filter, LeafOp, ListQuery, OrderBy, SortOrder, Target};
use crate::record::{Kind, NewRecord, PropertyValue, Record};
use crate::store::RegistryStore;
use crate::token;
use crate::{CustomProperties, Error, Result};

/// Page size when the request names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page a list returns; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A wire type the registry stores: its kind and, for the typed artifact
/// structs, the one `artifactType` it stands for.
pub trait Resource: ToFromValue + Send + 'static {
    /// The record kind.
    const KIND: Kind;
    /// The `artifactType` this type is limited to (`None`: any, or not an artifact).
    const ARTIFACT_TYPE: Option<&'static str> = None;
}

macro_rules! resources {
    ($($ty:ty => $kind:ident $(, $sub:literal)?;)*) => {
        $(impl Resource for $ty {
            const KIND: Kind = Kind::$kind;
            $(const ARTIFACT_TYPE: Option<&'static str> = Some($sub);)?
        })*
    };
}

resources! {
    RegisteredModel => RegisteredModel;
    ModelVersion => ModelVersion;
    ServingEnvironment => ServingEnvironment;
    InferenceService => InferenceService;
    ServeModel => ServeModel;
    Experiment => Experiment;
    ExperimentRun => ExperimentRun;
    Artifact => Artifact;
    ModelArtifact => Artifact, "model-artifact";
    DocArtifact => Artifact, "doc-artifact";
    DataSet => Artifact, "dataset-artifact";
    Metric => Artifact, "metric";
    Parameter => Artifact, "parameter";
}

/// The rules of one kind.
struct Rules {
    /// Body field naming the parent, and the parent's kind.
    parent_field: Option<(&'static str, Kind)>,
    /// Body fields that must name an existing object of a kind.
    references: &'static [(&'static str, Kind)],
    /// Fields required on create.
    required: &'static [&'static str],
    /// The field that is the record's state, and its default.
    state: Option<(&'static str, Option<&'static str>)>,
}

fn rules(kind: Kind) -> Rules {
    let none = Rules { parent_field: None, references: &[], required: &[], state: None };
    match kind {
        Kind::RegisteredModel => Rules { required: &["name"], state: Some(("state", Some("LIVE"))), ..none },
        Kind::ModelVersion => Rules {
            parent_field: Some(("registeredModelId", Kind::RegisteredModel)),
            required: &["name", "registeredModelId"],
            state: Some(("state", Some("LIVE"))),
            ..none
        },
        Kind::Artifact | Kind::MetricHistory => Rules { state: Some(("state", Some("UNKNOWN"))), ..none },
        Kind::ServingEnvironment => Rules { required: &["name"], ..none },
        Kind::InferenceService => Rules {
            parent_field: Some(("servingEnvironmentId", Kind::ServingEnvironment)),
            references: &[("registeredModelId", Kind::RegisteredModel), ("modelVersionId", Kind::ModelVersion)],
            required: &["registeredModelId", "servingEnvironmentId"],
            state: Some(("desiredState", Some("DEPLOYED"))),
        },
        Kind::ServeModel => Rules {
            references: &[("modelVersionId", Kind::ModelVersion)],
            required: &["modelVersionId"],
            state: Some(("lastKnownState", None)),
            ..none
        },
        Kind::Experiment => Rules { required: &["name"], state: Some(("state", Some("LIVE"))), ..none },
        Kind::ExperimentRun => Rules {
            parent_field: Some(("experimentId", Kind::Experiment)),
            required: &["experimentId"],
            state: Some(("state", Some("LIVE"))),
            ..none
        },
    }
}

const READ_ONLY: [&str; 3] = ["id", "createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"];

/// Parses an id as the API writes it (`^[1-9][0-9]{0,8}$`).
///
/// ```
/// use kf_registry::registry::parse_id;
/// assert_eq!(parse_id("id", "42")?, 42);
/// assert!(parse_id("id", "042").is_err());
/// assert!(parse_id("id", "not-a-number").is_err());
/// # Ok::<(), kf_registry::Error>(())
/// ```
pub fn parse_id(field: &str, text: &str) -> Result<i64> {
    let ok = text.len() <= 9
        && text.as_bytes().first().is_some_and(|b| (b'1'..=b'9').contains(b))
        && text.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return Err(Error::invalid(
            field,
            format!("expected an id (a decimal string matching ^[1-9][0-9]{{0,8}}$), found {text:?}"),
        ));
    }
    text.parse().map_err(|_| Error::invalid(field, format!("id {text:?} out of range")))
}

/// The query parameters of a list request, as strings straight from the URL.
/// Empty strings mean "not given" (the official client sends `nextPageToken=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// `filterQuery`.
    pub filter_query: Option<String>,
    /// `pageSize`.
    pub page_size: Option<String>,
    /// `orderBy`.
    pub order_by: Option<String>,
    /// `sortOrder`.
    pub sort_order: Option<String>,
    /// `nextPageToken`.
    pub next_page_token: Option<String>,
}

/// Which records a list covers besides its filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// Children of this parent only.
    pub parent: Option<i64>,
    /// This `artifactType` only.
    pub artifact_type: Option<String>,
    /// An extra filter the endpoint itself adds (e.g. `name` or `stepIds` parameters).
    pub extra: Option<Filter>,
}

/// The lookup parameters of the `find` endpoints (`/registered_model?name=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindParams {
    /// `name`.
    pub name: Option<String>,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `parentResourceId`.
    pub parent_resource_id: Option<String>,
}

/// The Model Registry's operations over a store.
pub struct Registry<S> {
    store: S,
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(String::as_str).filter(|s| !s.is_empty())
}

fn eq_leaf(column: Column, value: PropertyValue) -> Filter {
    Filter::Leaf { target: Target::Column(column), op: LeafOp::Compare(CompareOp::Eq), values: vec![value] }
}

fn and(a: Option<Filter>, b: Option<Filter>) -> Option<Filter> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Filter::And(Box::new(a), Box::new(b))),
        (a, b) => a.or(b),
    }
}

/// The wire document of a record: its body plus id and times as strings.
pub fn to_wire(record: &Record) -> Value {
    let mut doc = record.body.clone();
    doc.insert("id".into(), Value::String(record.id.to_string()));
    doc.insert("createTimeSinceEpoch".into(), Value::String(record.create_time.to_string()));
    doc.insert("lastUpdateTimeSinceEpoch".into(), Value::String(record.update_time.to_string()));
    Value::Object(doc)
}

impl<S: RegistryStore> Registry<S> {
    /// A registry over `store`.
    pub fn new(store: S) -> Self {
        Registry { store }
    }

    /// The store underneath.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn typed<T: Resource>(record: &Record) -> Result<T> {
        // Stored documents were validated on the way in; failing here means
        // the storage was edited behind the registry's back.
        T::from_value(to_wire(record))
            .map_err(|e| Error::Storage(format!("record {} no longer parses: {e}", record.id)))
    }

    fn belongs<T: Resource>(record: &Record) -> bool {
        record.kind == T::KIND && T::ARTIFACT_TYPE.is_none_or(|t| t == record.subtype)
    }

    async fn record_of<T: Resource>(&self, id: i64) -> Result<Record> {
        match self.store.get(id).await? {
            Some(r) if Self::belongs::<T>(&r) => Ok(r),
            _ => Err(Error::NotFound { kind: kind_name::<T>(), key: format!("id {id}") }),
        }
    }

    async fn expect_kind(&self, field: &str, id_text: &str, kind: Kind) -> Result<i64> {
        let id = parse_id(field, id_text)?;
        match self.store.get(id).await? {
            Some(r) if r.kind == kind => Ok(id),
            _ => Err(Error::NotFound { kind: kind.type_name(), key: format!("id {id} (named by {field})") }),
        }
    }

    /// Checks and canonicalises a document as type `T`.
    fn canonical<T: Resource>(body: Map<String, Value>) -> Result<Map<String, Value>> {
        match T::from_value(Value::Object(body))?.to_value() {
            Value::Object(mut m) => {
                for field in READ_ONLY {
                    m.remove(field);
                }
                Ok(m)
            }
            other => Err(Error::invalid("", format!("expected a JSON object, found {other}"))),
        }
    }

    fn object(doc: Value) -> Result<Map<String, Value>> {
        match doc {
            Value::Object(m) => Ok(m),
            other => Err(Error::invalid("", format!("expected a JSON object, found {}", type_name(&other)))),
        }
    }

    fn artifact_type<T: Resource>(body: &mut Map<String, Value>) -> Result<String> {
        if T::KIND != Kind::Artifact {
            return Ok(String::new());
        }
        let given = body.get("artifactType").map(|v| v.as_str().map(str::to_owned));
        match (T::ARTIFACT_TYPE, given) {
            (_, Some(None)) => Err(Error::invalid("artifactType", "expected a string")),
            (Some(fixed), None) => {
                body.insert("artifactType".into(), Value::String(fixed.into()));
                Ok(fixed.into())
            }
            (Some(fixed), Some(Some(t))) if t != fixed => {
                Err(Error::invalid("artifactType", format!("expected {fixed:?} here, found {t:?}")))
            }
            (_, Some(Some(t))) => Ok(t),
            (None, None) => {
                Err(Error::invalid("artifactType", format!("required: one of {:?}", crate::model::ARTIFACT_TYPES)))
            }
        }
    }

    /// Creates an object of type `T` from a create document. `parent` is the
    /// parent id taken from the URL path, if the endpoint has one (it must
    /// agree with the body's parent field, if both are given).
    ///
    /// Errors: [`Error::Invalid`] for a malformed document or missing required
    /// field, [`Error::NotFound`] for a parent or reference that does not
    /// exist, [`Error::Conflict`] for a taken name or externalId.
    pub async fn create<T: Resource>(&self, doc: Value, parent: Option<i64>) -> Result<T> {
        let record = self.create_record::<T>(doc, parent).await?;
        Self::typed(&record)
    }

    async fn create_record<T: Resource>(&self, doc: Value, path_parent: Option<i64>) -> Result<Record> {
        let mut body = Self::object(doc)?;
        for field in READ_ONLY {
            body.remove(field);
        }
        let subtype = Self::artifact_type::<T>(&mut body)?;
        let rules = rules(T::KIND);
        if let (Some((field, _)), Some(p)) = (rules.parent_field, path_parent) {
            match body.get(field) {
                None | Some(Value::Null) => {
                    body.insert(field.into(), Value::String(p.to_string()));
                }
                Some(Value::String(s)) if *s == p.to_string() => {}
                Some(other) => {
                    return Err(Error::invalid(field, format!("{other} disagrees with the id {p} in the path")));
                }
            }
        }
        if let Some((field, Some(default))) = rules.state {
            body.entry(field).or_insert_with(|| Value::String(default.into()));
        }
        let body = Self::canonical::<T>(body)?;
        for field in rules.required {
            match body.get(*field) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => return Err(Error::invalid(*field, format!("required by {}", kind_name::<T>()))),
            }
        }
        if let Some(Value::String(name)) = body.get("name")
            && name.is_empty()
        {
            return Err(Error::invalid("name", "must not be empty"));
        }
        let parent = match (rules.parent_field, path_parent) {
            (Some((field, kind)), _) => match body.get(field).and_then(Value::as_str) {
                Some(id) => self.expect_kind(field, id, kind).await?,
                None => 0,
            },
            (None, Some(p)) => p,
            (None, None) => 0,
        };
        for (field, kind) in rules.references {
            if let Some(id) = body.get(*field).and_then(Value::as_str) {
                self.expect_kind(field, id, *kind).await?;
            }
        }
        let new = NewRecord {
            kind: T::KIND,
            subtype,
            parent,
            name: body.get("name").and_then(Value::as_str).map(str::to_owned),
            external_id: body.get("externalId").and_then(Value::as_str).map(str::to_owned),
            state: rules.state.and_then(|(f, _)| body.get(f)).and_then(Value::as_str).map(str::to_owned),
            time: now_millis(),
            body,
        };
        self.store.insert(new).await
    }

    /// Creates an artifact under a parent (a model version or an experiment
    /// run), or — when the document carries the `id` of an existing artifact
    /// — attaches that artifact to the parent. Returns the artifact and
    /// whether it was created (201) rather than attached (200). A metric
    /// logged under an experiment run is also appended to the run's metric history.
    pub async fn upsert_artifact(&self, parent_kind: Kind, parent: &str, doc: Value) -> Result<(Artifact, bool)> {
        let parent_id = self.expect_kind("parent", parent, parent_kind).await?;
        if let Some(id) = doc.get("id").and_then(Value::as_str) {
            let id = parse_id("id", id)?;
            let mut record = self.record_of::<Artifact>(id).await?;
            if record.parent != 0 && record.parent != parent_id {
                return Err(Error::Conflict {
                    kind: "Artifact",
                    message: format!("artifact {id} already belongs to {}", record.parent),
                });
            }
            record.parent = parent_id;
            record.update_time = now_millis().max(record.create_time);
            let record = self.store.update(record).await?;
            return Ok((Self::typed(&record)?, false));
        }
        let record = self.create_record::<Artifact>(doc, Some(parent_id)).await?;
        if parent_kind == Kind::ExperimentRun && record.subtype == "metric" {
            self.append_history(&record).await?;
        }
        Ok((Self::typed(&record)?, true))
    }

    async fn append_history(&self, metric: &Record) -> Result<()> {
        let new = NewRecord {
            kind: Kind::MetricHistory,
            subtype: "metric".into(),
            parent: metric.parent,
            name: metric.name.clone(),
            external_id: None,
            state: metric.state.clone(),
            time: metric.update_time,
            body: metric.body.clone(),
        };
        self.store.insert(new).await.map(|_| ())
    }

    /// The object of type `T` with this id (a decimal string).
    pub async fn get<T: Resource>(&self, id: &str) -> Result<T> {
        let id = parse_id("id", id)?;
        Self::typed(&self.record_of::<T>(id).await?)
    }

    /// Applies a PATCH document: fields given replace the stored ones (`null`
    /// removes), `customProperties` is replaced as a whole, read-only fields
    /// are ignored, and the name, the parent and the `artifactType` may be
    /// repeated but not changed. Nothing is stored unless the result is valid.
    pub async fn update<T: Resource>(&self, id: &str, patch: Value) -> Result<T> {
        let id = parse_id("id", id)?;
        let mut record = self.record_of::<T>(id).await?;
        let mut patch = Self::object(patch)?;
        let rules = rules(record.kind);
        let mut fixed = vec!["name", "artifactType"];
        fixed.extend(rules.parent_field.map(|(f, _)| f));
        for field in READ_ONLY {
            patch.remove(field);
        }
        for field in fixed {
            if let Some(given) = patch.remove(field)
                && record.body.get(field).is_some_and(|v| *v != given)
                && !given.is_null()
            {
                return Err(Error::invalid(
                    field,
                    format!(
                        "cannot be changed (is {}, PATCH says {given})",
                        record.body.get(field).map_or(String::new(), Value::to_string)
                    ),
                ));
            }
        }
        let mut body = record.body.clone();
        for (key, value) in patch {
            if value.is_null() {
                body.remove(&key);
            } else {
                body.insert(key, value);
            }
        }
        let body = Self::canonical::<T>(body)?;
        for (field, kind) in rules.references {
            if let Some(new_id) = body.get(*field).and_then(Value::as_str)
                && record.body.get(*field).and_then(Value::as_str) != Some(new_id)
            {
                self.expect_kind(field, new_id, *kind).await?;
            }
        }
        record.external_id = body.get("externalId").and_then(Value::as_str).map(str::to_owned);
        record.state = rules.state.and_then(|(f, _)| body.get(f)).and_then(Value::as_str).map(str::to_owned);
        record.update_time = now_millis().max(record.update_time);
        record.body = body;
        Self::typed(&self.store.update(record).await?)
    }

    /// The object of type `T` matching every given lookup parameter: a name
    /// (within the parent, when `parentResourceId` is given), an externalId,
    /// or both. At least one of name and externalId is required.
    pub async fn find<T: Resource>(&self, params: &FindParams) -> Result<T> {
        let name = non_empty(params.name.as_ref());
        let external = non_empty(params.external_id.as_ref());
        if name.is_none() && external.is_none() {
            return Err(Error::invalid("name", "give a name or an externalId to search for"));
        }
        let parent = match non_empty(params.parent_resource_id.as_ref()) {
            Some(p) => Some(parse_id("parentResourceId", p)?),
            None => None,
        };
        let filter = and(
            name.map(|n| eq_leaf(Column::Name, PropertyValue::String(n.into()))),
            external.map(|e| eq_leaf(Column::ExternalId, PropertyValue::String(e.into()))),
        );
        let query =
            ListQuery { subtype: T::ARTIFACT_TYPE.map(str::to_owned), parent, filter, ..ListQuery::all(T::KIND, 1) };
        match self.store.list(&query).await?.first() {
            Some(r) => Self::typed(r),
            None => {
                let mut key = Vec::new();
                key.extend(name.map(|n| format!("name {n:?}")));
                key.extend(external.map(|e| format!("externalId {e:?}")));
                key.extend(parent.map(|p| format!("parent {p}")));
                Err(Error::NotFound { kind: kind_name::<T>(), key: key.join(", ") })
            }
        }
    }

    /// One page of objects of type `T`. `pageSize` must match
    /// `^[1-9][0-9]{0,8}$` (clamped to [`MAX_PAGE_SIZE`]); `orderBy`,
    /// `sortOrder` and `filterQuery` are checked before the store is asked;
    /// `nextPageToken` must be one this registry issued for the same list.
    /// The store is asked for one row more than the page, to know whether a
    /// next page exists, so the last page's token is `""`.
    pub async fn list<T: Resource>(&self, params: &ListParams, scope: Scope) -> Result<ListPage<T>> {
        self.list_kind::<T>(T::KIND, params, scope).await
    }

    async fn list_kind<T: Resource>(&self, kind: Kind, params: &ListParams, scope: Scope) -> Result<ListPage<T>> {
        let page_size = match non_empty(params.page_size.as_ref()) {
            None => DEFAULT_PAGE_SIZE,
            Some(text) => u32::try_from(parse_id("pageSize", text)?).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        };
        let order_by = non_empty(params.order_by.as_ref()).map(OrderBy::parse).transpose()?.unwrap_or_default();
        let sort = non_empty(params.sort_order.as_ref()).map(SortOrder::parse).transpose()?.unwrap_or_default();
        let filter_text = non_empty(params.filter_query.as_ref()).unwrap_or("");
        let filter = if filter_text.trim().is_empty() {
            None
        } else {
            Some(Filter::resolve(&crate::filter::parse(filter_text)?)?)
        };
        let subtype = scope.artifact_type.clone().or(T::ARTIFACT_TYPE.map(str::to_owned));
        let fp = token::fingerprint(&[
            kind.as_str(),
            subtype.as_deref().unwrap_or(""),
            &scope.parent.map_or(String::new(), |p| p.to_string()),
            filter_text,
            &format!("{:?}", scope.extra),
        ]);
        let after = match non_empty(params.next_page_token.as_ref()) {
            Some(t) => Some(token::verify(self.store.token_key(), fp, order_by, sort, t)?),
            None => None,
        };
        let query = ListQuery {
            kind,
            subtype,
            parent: scope.parent,
            filter: and(filter, scope.extra),
            order_by,
            sort,
            after,
            limit: page_size as usize + 1,
        };
        let mut rows = self.store.list(&query).await?;
        let more = rows.len() > page_size as usize;
        rows.truncate(page_size as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => token::sign(
                self.store.token_key(),
                fp,
                order_by,
                sort,
                crate::query::Cursor { key: order_by.key(last), id: last.id },
            ),
            _ => String::new(),
        };
        let items = rows.iter().map(Self::typed).collect::<Result<Vec<T>>>()?;
        Ok(ListPage { size: items.len() as u32, page_size, next_page_token, items })
    }

    /// Children listed under a parent in the URL (`/registered_models/{id}/versions`):
    /// checks the parent exists and is of `parent_kind` (404 otherwise), then lists.
    pub async fn list_children<T: Resource>(
        &self,
        parent_kind: Kind,
        parent: &str,
        params: &ListParams,
        mut scope: Scope,
    ) -> Result<ListPage<T>> {
        scope.parent = Some(self.expect_kind("id", parent, parent_kind).await?);
        self.list(params, scope).await
    }

    /// Metric history of one experiment run (`run = Some`) or of all runs,
    /// optionally only metrics called `name` and steps in `step_ids`
    /// (comma-separated, as the API's `stepIds`).
    pub async fn metric_history(
        &self,
        run: Option<&str>,
        name: Option<&str>,
        step_ids: Option<&str>,
        params: &ListParams,
    ) -> Result<ListPage<Metric>> {
        let parent = match run {
            Some(r) => Some(self.expect_kind("id", r, Kind::ExperimentRun).await?),
            None => None,
        };
        let mut extra = name.filter(|n| !n.is_empty()).map(|n| eq_leaf(Column::Name, PropertyValue::String(n.into())));
        if let Some(steps) = step_ids.filter(|s| !s.is_empty()) {
            let values = steps
                .split(',')
                .map(|s| match s.parse::<i64>() {
                    Ok(n) if !s.starts_with(['+', '-']) => Ok(PropertyValue::Int(n)),
                    _ => Err(Error::invalid(
                        "stepIds",
                        format!("expected comma-separated step numbers, found {steps:?}"),
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            let leaf = Filter::Leaf {
                target: Target::Property {
                    name: "step".into(),
                    custom: false,
                    types: vec![crate::filter::ValueType::Int],
                },
                op: LeafOp::In,
                values,
            };
            extra = and(extra, Some(leaf));
        }
        self.list_kind::<Metric>(Kind::MetricHistory, params, Scope { parent, artifact_type: None, extra }).await
    }

    /// The registered model an inference service serves.
    pub async fn inference_service_model(&self, id: &str) -> Result<RegisteredModel> {
        let service: InferenceService = self.get(id).await?;
        let model = service.registered_model_id.unwrap_or_default();
        self.get(&model).await
    }

    /// The model version an inference service serves: its `modelVersionId`,
    /// or else the newest version of its registered model.
    pub async fn inference_service_version(&self, id: &str) -> Result<ModelVersion> {
        let service: InferenceService = self.get(id).await?;
        if let Some(version) = service.model_version_id {
            return self.get(&version).await;
        }
        let model = parse_id("registeredModelId", service.registered_model_id.as_deref().unwrap_or_default())?;
        let query = ListQuery {
            parent: Some(model),
            order_by: OrderBy::CreateTime,
            sort: SortOrder::Desc,
            ..ListQuery::all(Kind::ModelVersion, 1)
        };
        match self.store.list(&query).await?.first() {
            Some(r) => Self::typed(r),
            None => {
                Err(Error::NotFound { kind: "ModelVersion", key: format!("any version of registered model {model}") })
            }
        }
    }
}

impl<S: RegistryStore> Registry<S> {
    /// A model version and the registered model it belongs to.
    pub async fn version_and_model(&self, version: &str) -> Result<(ModelVersion, RegisteredModel)> {
        let version: ModelVersion = self.get(version).await?;
        let model = self.get(version.registered_model_id.as_deref().unwrap_or_default()).await?;
        Ok((version, model))
    }

    /// Points the model artifact `name` of model version `version` at a
    /// stored file: `fields` (e.g. `uri`, `state`, `modelFormatName`) replace
    /// the artifact's, and `properties` are merged into its
    /// `customProperties`. The artifact is created when the version has
    /// none by that name. Returns it and whether it was created.
    ///
    /// Two callers racing to create the same artifact both succeed: the one
    /// that loses the unique index updates what the winner created.
    pub async fn link_model_artifact(
        &self,
        version: &str,
        name: &str,
        fields: Map<String, Value>,
        properties: CustomProperties,
    ) -> Result<(ModelArtifact, bool)> {
        let version_id = self.expect_kind("modelVersionId", version, Kind::ModelVersion).await?;
        let find = FindParams {
            name: Some(name.to_owned()),
            external_id: None,
            parent_resource_id: Some(version_id.to_string()),
        };
        let properties_value = |props: &CustomProperties| {
            serde_json::to_value(props).map_err(|e| Error::invalid("customProperties", e.to_string()))
        };
        for _ in 0..2 {
            match self.find::<ModelArtifact>(&find).await {
                Ok(existing) => {
                    let mut props = existing.custom_properties.unwrap_or_default();
                    props.extend(properties.clone());
                    let mut patch = fields.clone();
                    patch.insert("customProperties".into(), properties_value(&props)?);
                    let id = existing.id.unwrap_or_default();
                    return Ok((self.update::<ModelArtifact>(&id, Value::Object(patch)).await?, false));
                }
                Err(Error::NotFound { .. }) => {
                    let mut doc = fields.clone();
                    doc.insert("artifactType".into(), Value::String("model-artifact".into()));
                    doc.insert("name".into(), Value::String(name.to_owned()));
                    doc.insert("customProperties".into(), properties_value(&properties)?);
                    match self.create::<ModelArtifact>(Value::Object(doc), Some(version_id)).await {
                        Ok(artifact) => return Ok((artifact, true)),
                        // created meanwhile by someone else: update theirs
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            kind: "ModelArtifact",
            message: format!("{name:?} of model version {version_id} changed while it was being updated; try again"),
        })
    }
}

fn kind_name<T: Resource>() -> &'static str {
    match T::ARTIFACT_TYPE {
        Some("model-artifact") => "ModelArtifact",
        Some("doc-artifact") => "DocArtifact",
        Some("dataset-artifact") => "DataSet",
        Some("metric") => "Metric",
        Some("parameter") => "Parameter",
        _ => T::KIND.type_name(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
