//! A fake Qdrant on loopback: the gRPC services qdrant-client calls (`Qdrant`, `Collections`,
//! `Points`), generated server traits from `qdrant_client::qdrant::*_server`, over an in-memory
//! store with real cosine scores and real filter evaluation.
//!
//! Only the calls `QdrantIndex` makes are implemented; any other answers `Unimplemented`, and a
//! filter condition the fake does not understand is refused rather than ignored. Every query must
//! carry a `creator_id` match in `must`: one without is refused, recorded, and fails the test when
//! the fake is dropped.

#![allow(dead_code)] // each test binary uses part of the fake

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ::qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use ::qdrant_client::qdrant::condition::ConditionOneOf;
use ::qdrant_client::qdrant::r#match::MatchValue;
use ::qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use ::qdrant_client::qdrant::points_server::{Points, PointsServer};
use ::qdrant_client::qdrant::qdrant_server::{Qdrant, QdrantServer};
use ::qdrant_client::qdrant::value::Kind;
use ::qdrant_client::qdrant::*;
use tokio::sync::oneshot;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The tenant field the adapter must filter every query on.
const TENANT_FIELD: &str = "creator_id";

/// A running fake; stops (and checks that every query was tenant-filtered) when dropped.
pub struct FakeQdrant {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct State {
    /// When set, every call must carry this `api-key` header.
    api_key: Option<String>,
    collections: BTreeMap<String, Collection>,
    calls: Vec<Call>,
    /// Queries that came without a `creator_id` filter: must stay empty.
    unfiltered_queries: Vec<String>,
}

/// A collection as the fake keeps it.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    pub dimensions: usize,
    pub distance: i32,
    /// Field name → (field type, is_tenant).
    pub payload_indexes: BTreeMap<String, (i32, bool)>,
    /// Point id (as text) → point.
    pub points: BTreeMap<String, StoredPoint>,
}

#[derive(Debug, Clone)]
pub struct StoredPoint {
    pub vector: Vec<f32>,
    pub payload: HashMap<String, Value>,
}

/// One call the fake answered, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    CreateCollection {
        collection: String,
    },
    CreateFieldIndex {
        collection: String,
        field: String,
    },
    Upsert {
        collection: String,
        points: usize,
        wait: bool,
    },
    /// `creator`: the `creator_id` the delete filter required, if any.
    DeleteByFilter {
        collection: String,
        creator: Option<String>,
    },
    /// `creator`: the `creator_id` the query filter required.
    Query {
        collection: String,
        creator: String,
        limit: u64,
    },
}

impl FakeQdrant {
    pub async fn start() -> Self {
        Self::start_with_api_key(None).await
    }

    pub async fn start_with_api_key(api_key: Option<&str>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State { api_key: api_key.map(str::to_owned), ..State::default() }));
        let service = Service(state.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            Server::builder()
                .add_service(QdrantServer::new(service.clone()))
                .add_service(CollectionsServer::new(service.clone()))
                .add_service(PointsServer::new(service))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    stopped.await.ok();
                }),
        );
        Self { addr, state, stop: Some(stop) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state lock")
    }

    pub fn collection(&self, name: &str) -> Option<Collection> {
        self.state().collections.get(name).cloned()
    }

    pub fn collection_names(&self) -> Vec<String> {
        self.state().collections.keys().cloned().collect()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Queries that came without a tenant filter, forgotten once read (so the drop check passes
    /// in the test that sends one on purpose).
    pub fn take_unfiltered_queries(&self) -> Vec<String> {
        std::mem::take(&mut self.state().unfiltered_queries)
    }
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        let unfiltered = std::mem::take(&mut self.state().unfiltered_queries);
        if !unfiltered.is_empty() && !std::thread::panicking() {
            panic!("queries without a creator_id filter reached the fake Qdrant: {unfiltered:?}");
        }
    }
}

#[derive(Clone)]
struct Service(Arc<Mutex<State>>);

impl Service {
    /// The state, after checking the caller's API key.
    fn state<T>(&self, request: &Request<T>) -> Result<MutexGuard<'_, State>, Status> {
        let state = self.0.lock().map_err(|_| Status::internal("fake state poisoned"))?;
        if let Some(key) = &state.api_key {
            let sent = request.metadata().get("api-key").and_then(|v| v.to_str().ok());
            if sent != Some(key.as_str()) {
                return Err(Status::unauthenticated("wrong or missing api-key"));
            }
        }
        Ok(state)
    }
}

fn collection<'a>(state: &'a mut State, name: &str) -> Result<&'a mut Collection, Status> {
    state.collections.get_mut(name).ok_or_else(|| Status::not_found(format!("Collection `{name}` doesn't exist!")))
}

fn done() -> PointsOperationResponse {
    PointsOperationResponse {
        result: Some(UpdateResult { operation_id: Some(0), status: UpdateStatus::Completed as i32 }),
        time: 0.0,
        usage: None,
    }
}

fn id_text(id: Option<&PointId>) -> Result<String, Status> {
    match id.and_then(|id| id.point_id_options.as_ref()) {
        Some(point_id::PointIdOptions::Uuid(uuid)) => Ok(uuid.clone()),
        Some(point_id::PointIdOptions::Num(n)) => Ok(n.to_string()),
        None => Err(Status::invalid_argument("a point without an id")),
    }
}

fn text_id(text: &str) -> PointId {
    PointId { point_id_options: Some(point_id::PointIdOptions::Uuid(text.to_owned())) }
}

fn dense(vectors: Option<&Vectors>) -> Result<Vec<f32>, Status> {
    match vectors.and_then(|v| v.vectors_options.as_ref()) {
        Some(vectors::VectorsOptions::Vector(Vector { vector: Some(vector::Vector::Dense(d)), .. })) => {
            Ok(d.data.clone())
        }
        _ => Err(Status::unimplemented("the fake stores single dense vectors only")),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let norms = norm(a) * norm(b);
    if norms == 0.0 { 0.0 } else { dot / norms }
}

/// The `creator_id` a filter requires in `must`, if any.
fn required_creator(filter: Option<&Filter>) -> Option<String> {
    filter?.must.iter().find_map(|condition| match &condition.condition_one_of {
        Some(ConditionOneOf::Field(FieldCondition {
            key,
            r#match: Some(Match { match_value: Some(MatchValue::Keyword(value)) }),
            ..
        })) if key == TENANT_FIELD && !value.is_empty() => Some(value.clone()),
        _ => None,
    })
}

fn keyword<'a>(point: &'a StoredPoint, key: &str) -> Option<&'a str> {
    match point.payload.get(key).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(s)) => Some(s),
        _ => None,
    }
}

fn integer(point: &StoredPoint, key: &str) -> Option<i64> {
    match point.payload.get(key).and_then(|v| v.kind.as_ref()) {
        Some(Kind::IntegerValue(n)) => Some(*n),
        _ => None,
    }
}

/// Qdrant's filter semantics for the conditions the adapter uses.
fn matches(filter: &Filter, id: &str, point: &StoredPoint) -> Result<bool, Status> {
    if filter.min_should.is_some() {
        return Err(Status::unimplemented("min_should"));
    }
    for condition in &filter.must {
        if !condition_holds(condition, id, point)? {
            return Ok(false);
        }
    }
    for condition in &filter.must_not {
        if condition_holds(condition, id, point)? {
            return Ok(false);
        }
    }
    if filter.should.is_empty() {
        return Ok(true);
    }
    for condition in &filter.should {
        if condition_holds(condition, id, point)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn condition_holds(condition: &Condition, id: &str, point: &StoredPoint) -> Result<bool, Status> {
    match &condition.condition_one_of {
        Some(ConditionOneOf::HasId(HasIdCondition { has_id })) => {
            Ok(has_id.iter().map(|i| id_text(Some(i))).collect::<Result<Vec<_>, _>>()?.iter().any(|i| i == id))
        }
        Some(ConditionOneOf::Filter(nested)) => matches(nested, id, point),
        Some(ConditionOneOf::Field(field)) => {
            let unsupported = field.range.is_some()
                || field.geo_bounding_box.is_some()
                || field.geo_radius.is_some()
                || field.values_count.is_some()
                || field.geo_polygon.is_some()
                || field.datetime_range.is_some()
                || field.is_empty.is_some()
                || field.is_null.is_some();
            if unsupported {
                return Err(Status::unimplemented(format!("the fake matches fields only: {field:?}")));
            }
            let value = field.r#match.as_ref().and_then(|m| m.match_value.as_ref());
            match value {
                Some(MatchValue::Keyword(k)) => Ok(keyword(point, &field.key) == Some(k.as_str())),
                Some(MatchValue::Keywords(RepeatedStrings { strings })) => {
                    Ok(keyword(point, &field.key).is_some_and(|v| strings.iter().any(|s| s == v)))
                }
                Some(MatchValue::ExceptKeywords(RepeatedStrings { strings })) => {
                    Ok(keyword(point, &field.key).is_some_and(|v| strings.iter().all(|s| s != v)))
                }
                Some(MatchValue::Integer(n)) => Ok(integer(point, &field.key) == Some(*n)),
                other => Err(Status::unimplemented(format!("the fake does not match {other:?}"))),
            }
        }
        other => Err(Status::unimplemented(format!("the fake does not evaluate {other:?}"))),
    }
}

/// Declares the RPCs of a generated server trait the adapter never calls: `Unimplemented`.
macro_rules! fake_service {
    ($trait:ident { $($implemented:tt)* } unimplemented { $($name:ident($req:ty) -> $resp:ty;)* }) => {
        #[tonic::async_trait]
        impl $trait for Service {
            $($implemented)*
            $(
                async fn $name(&self, _request: Request<$req>) -> Result<Response<$resp>, Status> {
                    Err(Status::unimplemented(concat!("the fake Qdrant has no ", stringify!($name))))
                }
            )*
        }
    };
}

fake_service!(Qdrant {
    async fn health_check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckReply>, Status> {
        let _checked = self.state(&request)?;
        Ok(Response::new(HealthCheckReply {
            title: "fake qdrant".into(),
            version: "1.20.0".into(),
            commit: None,
        }))
    }
} unimplemented {});

fake_service!(Collections {
    async fn list(&self, request: Request<ListCollectionsRequest>) -> Result<Response<ListCollectionsResponse>, Status> {
        let state = self.state(&request)?;
        let collections = state.collections.keys().map(|name| CollectionDescription { name: name.clone() }).collect();
        Ok(Response::new(ListCollectionsResponse { collections, time: 0.0 }))
    }

    async fn collection_exists(
        &self,
        request: Request<CollectionExistsRequest>,
    ) -> Result<Response<CollectionExistsResponse>, Status> {
        let state = self.state(&request)?;
        let exists = state.collections.contains_key(&request.get_ref().collection_name);
        Ok(Response::new(CollectionExistsResponse { result: Some(CollectionExists { exists }), time: 0.0 }))
    }

    async fn create(&self, request: Request<CreateCollection>) -> Result<Response<CollectionOperationResponse>, Status> {
        let mut state = self.state(&request)?;
        let create = request.get_ref();
        if state.collections.contains_key(&create.collection_name) {
            return Err(Status::already_exists(format!("Collection `{}` already exists!", create.collection_name)));
        }
        let params = match create.vectors_config.as_ref().and_then(|c| c.config.as_ref()) {
            Some(vectors_config::Config::Params(params)) => params,
            _ => return Err(Status::unimplemented("the fake keeps one unnamed dense vector per point")),
        };
        let collection = Collection {
            dimensions: usize::try_from(params.size).map_err(|_| Status::invalid_argument("size"))?,
            distance: params.distance,
            ..Collection::default()
        };
        state.collections.insert(create.collection_name.clone(), collection);
        state.calls.push(Call::CreateCollection { collection: create.collection_name.clone() });
        Ok(Response::new(CollectionOperationResponse { result: true, time: 0.0 }))
    }

    async fn delete(&self, request: Request<DeleteCollection>) -> Result<Response<CollectionOperationResponse>, Status> {
        let mut state = self.state(&request)?;
        let result = state.collections.remove(&request.get_ref().collection_name).is_some();
        Ok(Response::new(CollectionOperationResponse { result, time: 0.0 }))
    }
} unimplemented {
    get(GetCollectionInfoRequest) -> GetCollectionInfoResponse;
    update(UpdateCollection) -> CollectionOperationResponse;
    update_aliases(ChangeAliases) -> CollectionOperationResponse;
    list_collection_aliases(ListCollectionAliasesRequest) -> ListAliasesResponse;
    list_aliases(ListAliasesRequest) -> ListAliasesResponse;
    collection_cluster_info(CollectionClusterInfoRequest) -> CollectionClusterInfoResponse;
    update_collection_cluster_setup(UpdateCollectionClusterSetupRequest) -> UpdateCollectionClusterSetupResponse;
    create_shard_key(CreateShardKeyRequest) -> CreateShardKeyResponse;
    delete_shard_key(DeleteShardKeyRequest) -> DeleteShardKeyResponse;
    list_shard_keys(ListShardKeysRequest) -> ListShardKeysResponse;
});

fake_service!(Points {
    async fn create_field_index(
        &self,
        request: Request<CreateFieldIndexCollection>,
    ) -> Result<Response<PointsOperationResponse>, Status> {
        let mut state = self.state(&request)?;
        let index = request.get_ref();
        let is_tenant = match index.field_index_params.as_ref().and_then(|p| p.index_params.as_ref()) {
            Some(payload_index_params::IndexParams::KeywordIndexParams(k)) => k.is_tenant.unwrap_or(false),
            _ => false,
        };
        let field_type = index.field_type.ok_or_else(|| Status::invalid_argument("a field index without a type"))?;
        collection(&mut state, &index.collection_name)?
            .payload_indexes
            .insert(index.field_name.clone(), (field_type, is_tenant));
        state.calls.push(Call::CreateFieldIndex {
            collection: index.collection_name.clone(),
            field: index.field_name.clone(),
        });
        Ok(Response::new(done()))
    }

    async fn upsert(&self, request: Request<UpsertPoints>) -> Result<Response<PointsOperationResponse>, Status> {
        let mut state = self.state(&request)?;
        let upsert = request.get_ref();
        let target = collection(&mut state, &upsert.collection_name)?;
        // Like Qdrant: the whole request is refused if one vector has the wrong size.
        let mut points = Vec::with_capacity(upsert.points.len());
        for point in &upsert.points {
            let vector = dense(point.vectors.as_ref())?;
            if vector.len() != target.dimensions {
                return Err(Status::invalid_argument(format!(
                    "Wrong input: Vector dimension error: expected dim: {}, got {}",
                    target.dimensions,
                    vector.len()
                )));
            }
            points.push((id_text(point.id.as_ref())?, StoredPoint { vector, payload: point.payload.clone() }));
        }
        target.points.extend(points);
        state.calls.push(Call::Upsert {
            collection: upsert.collection_name.clone(),
            points: upsert.points.len(),
            wait: upsert.wait == Some(true),
        });
        Ok(Response::new(done()))
    }

    async fn delete(&self, request: Request<DeletePoints>) -> Result<Response<PointsOperationResponse>, Status> {
        let mut state = self.state(&request)?;
        let delete = request.get_ref();
        let target = collection(&mut state, &delete.collection_name)?;
        let call = match delete.points.as_ref().and_then(|p| p.points_selector_one_of.as_ref()) {
            Some(PointsSelectorOneOf::Points(PointsIdsList { ids })) => {
                for id in ids {
                    target.points.remove(&id_text(Some(id))?);
                }
                None
            }
            Some(PointsSelectorOneOf::Filter(filter)) => {
                let mut doomed = Vec::new();
                for (id, point) in &target.points {
                    if matches(filter, id, point)? {
                        doomed.push(id.clone());
                    }
                }
                for id in doomed {
                    target.points.remove(&id);
                }
                Some(Call::DeleteByFilter {
                    collection: delete.collection_name.clone(),
                    creator: required_creator(Some(filter)),
                })
            }
            None => return Err(Status::invalid_argument("a delete without a selector")),
        };
        state.calls.extend(call);
        Ok(Response::new(done()))
    }

    async fn query(&self, request: Request<QueryPoints>) -> Result<Response<QueryResponse>, Status> {
        let mut state = self.state(&request)?;
        let query = request.get_ref();
        let Some(creator) = required_creator(query.filter.as_ref()) else {
            state.unfiltered_queries.push(format!("{query:?}"));
            return Err(Status::permission_denied("the fake Qdrant refuses a query without a creator_id filter"));
        };
        let nearest = match query.query.as_ref().and_then(|q| q.variant.as_ref()) {
            Some(query::Variant::Nearest(VectorInput { variant: Some(vector_input::Variant::Dense(d)) })) => &d.data,
            other => return Err(Status::unimplemented(format!("the fake answers dense nearest queries only: {other:?}"))),
        };
        if !query.prefetch.is_empty() || query.using.is_some() || query.score_threshold.is_some() {
            return Err(Status::unimplemented("prefetch, named vectors and score thresholds"));
        }
        let with_payload = matches!(
            query.with_payload.as_ref().and_then(|w| w.selector_options.as_ref()),
            Some(with_payload_selector::SelectorOptions::Enable(true))
        );
        let limit = query.limit.unwrap_or(10);
        let offset = query.offset.unwrap_or(0);
        let target = collection(&mut state, &query.collection_name)?;
        if nearest.len() != target.dimensions {
            return Err(Status::invalid_argument(format!(
                "Wrong input: Vector dimension error: expected dim: {}, got {}",
                target.dimensions,
                nearest.len()
            )));
        }
        let mut scored = Vec::new();
        for (id, point) in &target.points {
            if query.filter.as_ref().map(|f| matches(f, id, point)).transpose()?.unwrap_or(true) {
                scored.push(ScoredPoint {
                    id: Some(text_id(id)),
                    payload: if with_payload { point.payload.clone() } else { HashMap::new() },
                    score: cosine(nearest, &point.vector),
                    ..ScoredPoint::default()
                });
            }
        }
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        let result = scored.into_iter().skip(offset as usize).take(limit as usize).collect();
        state.calls.push(Call::Query { collection: query.collection_name.clone(), creator, limit });
        Ok(Response::new(QueryResponse { result, time: 0.0, usage: None }))
    }
} unimplemented {
    get(GetPoints) -> GetResponse;
    update_vectors(UpdatePointVectors) -> PointsOperationResponse;
    delete_vectors(DeletePointVectors) -> PointsOperationResponse;
    set_payload(SetPayloadPoints) -> PointsOperationResponse;
    overwrite_payload(SetPayloadPoints) -> PointsOperationResponse;
    delete_payload(DeletePayloadPoints) -> PointsOperationResponse;
    clear_payload(ClearPayloadPoints) -> PointsOperationResponse;
    delete_field_index(DeleteFieldIndexCollection) -> PointsOperationResponse;
    create_vector_name(CreateVectorNameRequest) -> PointsOperationResponse;
    delete_vector_name(DeleteVectorNameRequest) -> PointsOperationResponse;
    search(SearchPoints) -> SearchResponse;
    search_batch(SearchBatchPoints) -> SearchBatchResponse;
    search_groups(SearchPointGroups) -> SearchGroupsResponse;
    scroll(ScrollPoints) -> ScrollResponse;
    recommend(RecommendPoints) -> RecommendResponse;
    recommend_batch(RecommendBatchPoints) -> RecommendBatchResponse;
    recommend_groups(RecommendPointGroups) -> RecommendGroupsResponse;
    discover(DiscoverPoints) -> DiscoverResponse;
    discover_batch(DiscoverBatchPoints) -> DiscoverBatchResponse;
    count(CountPoints) -> CountResponse;
    update_batch(UpdateBatchPoints) -> UpdateBatchResponse;
    query_batch(QueryBatchPoints) -> QueryBatchResponse;
    query_groups(QueryPointGroups) -> QueryGroupsResponse;
    facet(FacetCounts) -> FacetResponse;
    search_matrix_pairs(SearchMatrixPoints) -> SearchMatrixPairsResponse;
    search_matrix_offsets(SearchMatrixPoints) -> SearchMatrixOffsetsResponse;
});
