//! The prediction API beside the app, for clients that cannot run the model themselves:
//!
//! - `POST /api/predict`: multipart or JSON (see [`request`]) -> `{type, confidence,
//!   probabilities}`, the schema of `accessatlas predict --json`; concurrent requests queue for
//!   one model thread, which runs up to `max_batch` of them as a batch ([`batcher`]);
//! - `GET /api/health`, `GET /api/model` (config, vocabularies, scaler, provenance, metrics);
//! - `GET /api/openapi.json`: the OpenAPI 3.1 description (`openapi.json` beside this file).
//!
//! Limits ([`ApiConfig`]): body size, image pixels (checked from the header, before decoding),
//! time to read a body and to get a prediction, requests in flight. Bad input is a 4xx with a
//! JSON body naming the field ([`error::ApiError`]); nothing a client sends panics the server.

pub mod batcher;
pub mod error;
pub mod request;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model_core::data::preprocess::{ModelInput, decode_rgb_limited};
use model_core::data::tile::BBox;
use model_core::infer::Predictor;
use model_core::infer::bundle::{BundleManifest, TileSourceSpec};
use model_core::wire::{
    CandidateProperties, Feature, FeatureCollection, Health, MappedProperties, ModelInfo,
    ServedModel,
};
use tokio::sync::Semaphore;

use crate::osm::Labelled;
use crate::suggestions::AreaError;
use batcher::Batcher;
use error::{ApiError, Code};

/// The OpenAPI description served at `/api/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Limits of the API; the defaults suit map tiles (a few KB to a few MB).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Largest image, pixels (width x height, from the header).
    pub max_pixels: u64,
    /// Time to receive the whole body.
    pub read_timeout: Duration,
    /// Time from a parsed request to its prediction (queueing included).
    pub predict_timeout: Duration,
    /// Requests handled at once; more get 503 with `Retry-After`.
    pub max_concurrent: usize,
    /// Largest batch the model runs: requests that queue while the model is busy go together.
    /// 16: on the CPU model-core's kernels run a batch for less per image than one by one
    /// (`cargo xtask bench api`, 8 clients); a lone client is never batched (nothing queues).
    pub max_batch: usize,
    /// Largest area a `bbox` may cover, km².
    pub max_area_km2: f64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_pixels: model_core::data::preprocess::MAX_IMAGE_PIXELS,
            read_timeout: Duration::from_secs(30),
            predict_timeout: Duration::from_secs(30),
            max_concurrent: 64,
            max_batch: 16,
            max_area_km2: crate::suggestions::MAX_AREA_KM2,
        }
    }
}

/// The API's state: the batching model thread and what `/api/model` reports.
pub struct Api {
    cfg: ApiConfig,
    batcher: Batcher,
    /// The model's config and scaler, to build inputs on the request's own task.
    config: model_core::ModelConfig,
    scaler: model_core::data::metadata::Scaler,
    info: model_core::wire::ModelInfo,
    in_flight: Arc<Semaphore>,
    started: Instant,
    /// What the served extract already maps (`/api/features`); `None` without an extract.
    features: Option<Vec<Labelled>>,
    /// `/api/suggest`, when the model's tiles are the server's own rendered ones.
    suggest: Option<SuggestContext>,
}

/// What `/api/suggest` runs on: its own predictor (suggestions take seconds; predictions
/// must not wait behind them), the model's tile source and the server's rendered tiles and
/// extract.
pub struct SuggestContext {
    pub predictor: std::sync::Mutex<Predictor>,
    pub spec: TileSourceSpec,
    pub tiles: Arc<crate::tiles::rendered::TileRenderer>,
    pub mapped: Vec<model_core::data::candidates::MappedFeature>,
}

impl Api {
    /// Starts the model thread. `info` is what `/api/model` returns.
    pub fn new(
        predictor: Predictor,
        info: model_core::wire::ModelInfo,
        cfg: ApiConfig,
        features: Option<Vec<Labelled>>,
    ) -> Result<Self> {
        let config = predictor.config.clone();
        let scaler = predictor.scaler.clone();
        let batcher = Batcher::start(predictor, cfg.max_batch, cfg.max_concurrent)
            .context("starting the model thread")?;
        Ok(Self {
            in_flight: Arc::new(Semaphore::new(cfg.max_concurrent.max(1))),
            cfg,
            batcher,
            config,
            scaler,
            info,
            started: Instant::now(),
            features,
            suggest: None,
        })
    }

    fn input(&self, r: &request::PredictRequest) -> Result<ModelInput, ApiError> {
        // Coordinates first: cheap, and a bad one should not cost a decode.
        model_core::data::tile::validate_lat_lon(r.lat, r.lon).map_err(ApiError::from_core)?;
        let img = decode_rgb_limited(&r.image, self.cfg.max_pixels).map_err(ApiError::from_core)?;
        ModelInput::from_rgb_sized(
            &img,
            self.config.image_size,
            r.lat,
            r.lon,
            &r.source,
            &self.scaler,
            &self.config.sources,
        )
        .map_err(ApiError::from_core)
    }
}

impl Api {
    /// The API `accessatlas serve` runs: the model in `model` (a bundle or a training run), what
    /// the served extract maps, and suggestions when the model is a bundle trained on the
    /// server's rendered tiles (`tiles`). Without an extract (`serve --tiles FILE` alone),
    /// features and suggestions answer 501 and say so.
    pub fn serving(
        model: &std::path::Path,
        tiles: Option<Arc<crate::tiles::rendered::TileRenderer>>,
        cfg: ApiConfig,
    ) -> Result<Self> {
        let device = burn::tensor::Device::flex();
        let predictor = crate::run::load_predictor(model, &device)
            .with_context(|| format!("loading the model {}", model.display()))?;
        let manifest = model.join(model_core::infer::bundle::BUNDLE_CONFIG_FILE);
        // The model's limits, as the predictor applies them: the area it reads position in
        // (recorded, or implied by an older bundle's scaler) and the types it never saw.
        let (served, unlearned_types) = match std::fs::read_to_string(&manifest) {
            Ok(text) => {
                let mut m = BundleManifest::from_json(&text)
                    .with_context(|| format!("reading {}", manifest.display()))?;
                m.scaler = predictor.scaler.clone();
                let unlearned = m.unlearned_types();
                (ServedModel::Bundle(Box::new(m)), unlearned)
            }
            Err(_) => (
                ServedModel::Run {
                    config: predictor.config.clone(),
                    temperature: predictor.temperature,
                    scaler: predictor.scaler.clone(),
                },
                Vec::new(),
            ),
        };
        let info = ModelInfo {
            model: served,
            trained_areas: predictor.scaler.areas.clone(),
            unlearned_types,
        };
        let Some(tiles) = tiles else {
            return Api::new(predictor, info, cfg, None);
        };
        let rules = crate::osm::rules::Rules::default_rules(&model_core::LabelVocab::default())?;
        let features = crate::osm::labelled_features(tiles.map(), &rules);
        // The same features, as the already-mapped rule reads them (labelled once).
        let mapped = features.iter().map(crate::osm::Labelled::mapped).collect();
        let mut api = Api::new(predictor, info, cfg, Some(features))?;
        if let Ok((manifest, weights)) = crate::run::read_bundle(model)
            && matches!(manifest.tile_source, TileSourceSpec::Render { .. })
        {
            let predictor = Predictor::from_bundle(&manifest, &weights, &device)?;
            api = api.with_suggestions(SuggestContext {
                predictor: std::sync::Mutex::new(predictor),
                spec: manifest.tile_source,
                mapped,
                tiles,
            });
        }
        Ok(api)
    }

    /// Turns on `/api/suggest`.
    pub fn with_suggestions(mut self, ctx: SuggestContext) -> Self {
        self.suggest = Some(ctx);
        self
    }
}

/// Every route under `/api`, with its method and handler. The router is built from this list,
/// and the OpenAPI description names exactly these (tested).
fn routes() -> Vec<(&'static str, &'static str, axum::routing::MethodRouter<Arc<Api>>)> {
    vec![
        ("/predict", "post", axum::routing::post(predict)),
        ("/health", "get", get(health)),
        ("/model", "get", get(model)),
        ("/openapi.json", "get", get(openapi)),
        ("/features", "get", get(features)),
        ("/suggest", "get", get(suggest)),
        ("/candidates", "get", get(candidates_in)),
    ]
}

/// The API's routes, to be nested under `/api`, with their own body limit and a JSON 404.
pub fn router(api: Arc<Api>) -> Router {
    let limit = api.cfg.max_body_bytes;
    let mut r = Router::new();
    for (path, _, handler) in routes() {
        r = r.route(path, handler);
    }
    r.fallback(not_found).layer(DefaultBodyLimit::max(limit)).with_state(api)
}

#[derive(serde::Deserialize)]
struct AreaQuery {
    bbox: Option<String>,
    threshold: Option<String>,
}

type AreaQueryResult =
    Result<axum::extract::Query<AreaQuery>, axum::extract::rejection::QueryRejection>;

/// The query of an area endpoint and its checked `bbox`.
fn area_query(query: AreaQueryResult, max_km2: f64) -> Result<(AreaQuery, BBox), ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| {
        ApiError::bad_request(Code::BadQuery, format!("the query does not parse: {e}"))
    })?;
    let bbox = area(q.bbox.as_deref(), max_km2)?;
    Ok((q, bbox))
}

/// What candidates and suggestions run on: a bundle trained on the server's rendered tiles.
fn suggest_context(api: &Api) -> Result<&SuggestContext, ApiError> {
    api.suggest.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            Code::NotAvailable,
            "candidates and suggestions need the extract (`serve --osm`) and a model bundle trained on this server's rendered tiles",
        )
    })
}

/// `GET /api/candidates?bbox=...`: the candidate points of the served extract in the area
/// (model-core's `data::candidates`), as GeoJSON points with their kinds: what the page's
/// "Scan this view" asks the model about.
async fn candidates_in(
    State(api): State<Arc<Api>>,
    query: AreaQueryResult,
) -> Result<Response, ApiError> {
    let (_, bbox) = area_query(query, api.cfg.max_area_km2)?;
    let ctx = suggest_context(&api)?;
    let found: FeatureCollection<CandidateProperties> =
        crate::suggestions::candidates_in(ctx.tiles.map(), &bbox)
            .iter()
            .map(|c| Feature::point(c.lat, c.lon, CandidateProperties { candidate: c.reasons() }))
            .collect();
    Ok(axum::Json(found).into_response())
}

/// `GET /api/suggest?bbox=...&threshold=...`: `accessatlas suggest`'s pipeline for the served
/// extract and model, as GeoJSON (the CLI's `--format geojson`).
async fn suggest(
    State(api): State<Arc<Api>>,
    query: AreaQueryResult,
) -> Result<Response, ApiError> {
    let (q, bbox) = area_query(query, api.cfg.max_area_km2)?;
    // Absent: the model's default threshold, as the CLI's.
    let threshold = match q.threshold.as_deref() {
        None => None,
        Some(t) => Some(
            t.trim()
                .parse::<f32>()
                .map_err(|_| format!("`{t}` is not a number from 0 to 1"))
                .and_then(model_core::infer::suggest::check_threshold)
                .map_err(|e| ApiError::bad_request(Code::BadThreshold, e).field("threshold"))?,
        ),
    };
    suggest_context(&api)?;
    let Ok(_permit) = api.in_flight.clone().try_acquire_owned() else {
        return Err(ApiError::busy("the server is at its limit of requests; retry shortly"));
    };
    let api2 = api.clone();
    let result = tokio::task::spawn_blocking(move || {
        let ctx = api2.suggest.as_ref().expect("checked above");
        let predictor = ctx.predictor.lock().expect("suggestion predictor lock");
        crate::suggestions::suggest(
            &predictor,
            &ctx.spec,
            ctx.tiles.as_ref(),
            ctx.tiles.map(),
            &ctx.mapped,
            &bbox,
            threshold,
        )
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, e.to_string()))?;
    match result {
        Ok(s) => Ok(axum::Json(crate::suggestions::to_geojson(&s)).into_response()),
        Err(e) if e.to_string().contains("nothing in this bbox") => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::OutsideExtract,
            format!("{e:#}"),
        )
        .field("bbox")),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "suggest failed");
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, format!("{e:#}")))
        }
    }
}

/// `GET /api/features?bbox=min_lon,min_lat,max_lon,max_lat`: every feature of the served
/// extract that the rules give a type, as GeoJSON points (OSM type and id, AccessAtlas type,
/// OSM tags).
async fn features(
    State(api): State<Arc<Api>>,
    query: AreaQueryResult,
) -> Result<Response, ApiError> {
    let (_, bbox) = area_query(query, api.cfg.max_area_km2)?;
    let all = api.features.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            Code::NotAvailable,
            "this server holds no extract (it serves pre-rendered tiles): start it with --osm FILE for features",
        )
    })?;
    let found: FeatureCollection<MappedProperties> = all
        .iter()
        .filter(|f| bbox.contains(f.lat, f.lon))
        .filter_map(|f| {
            let tags = f.tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            // A way's whole line goes too: the page's "already mapped" rule measures to it,
            // as the CLI's does.
            Feature::mapped(&f.mapped(), tags)
        })
        .collect();
    Ok(axum::Json(found).into_response())
}

/// The `bbox` parameter, checked: present, well formed (400) and no larger than the cap (422).
fn area(bbox: Option<&str>, max_km2: f64) -> Result<BBox, ApiError> {
    let text = bbox.ok_or_else(|| {
        ApiError::bad_request(
            Code::MissingField,
            "the query has no `bbox` (min_lon,min_lat,max_lon,max_lat)",
        )
        .field("bbox")
    })?;
    crate::suggestions::area(text, max_km2).map_err(|e| match e {
        AreaError::Malformed(m) => ApiError::bad_request(Code::BadBbox, m).field("bbox"),
        AreaError::TooLarge(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, Code::AreaTooLarge, m).field("bbox")
        }
    })
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        format!("no endpoint {} /api{} (see /api/openapi.json)", req.method(), req.uri().path()),
    )
}

async fn predict(State(api): State<Arc<Api>>, req: Request) -> Response {
    let Ok(_permit) = api.in_flight.clone().try_acquire_owned() else {
        return ApiError::busy(format!(
            "the server is handling {} requests, its limit; retry shortly",
            api.cfg.max_concurrent
        ))
        .into_response();
    };
    match run_predict(&api, req).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(code = e.code.as_str(), error = %e.error, "predict failed");
            } else {
                tracing::info!(code = e.code.as_str(), field = ?e.field, error = %e.error, "predict rejected");
            }
            e.into_response()
        }
    }
}

async fn run_predict(api: &Arc<Api>, req: Request) -> Result<model_core::Prediction, ApiError> {
    let parsed =
        tokio::time::timeout(api.cfg.read_timeout, request::parse(req, api.cfg.max_body_bytes))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    Code::Timeout,
                    format!("the body took longer than {:?} to arrive", api.cfg.read_timeout),
                )
            })??;
    if api.config.sources.lookup(&parsed.source).is_none() {
        tracing::warn!(source = %parsed.source, "source not in the model's vocabulary; using `unknown`");
    }
    let work = async {
        // Decoding and resizing are CPU work: off the async threads, in parallel per request.
        let a = api.clone();
        let input =
            tokio::task::spawn_blocking(move || a.input(&parsed)).await.map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, e.to_string())
            })??;
        let rx = api
            .batcher
            .submit(input)
            .map_err(|_| ApiError::busy("the model's queue is full; retry shortly"))?;
        rx.await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Code::Internal,
                    "the model thread stopped",
                )
            })?
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, e))
    };
    tokio::time::timeout(api.cfg.predict_timeout, work).await.map_err(|_| {
        ApiError::busy(format!("no prediction within {:?}; retry shortly", api.cfg.predict_timeout))
    })?
}

async fn health(State(api): State<Arc<Api>>) -> impl IntoResponse {
    axum::Json(Health {
        status: "ok".into(),
        uptime_s: api.started.elapsed().as_secs_f64(),
        in_flight: api.cfg.max_concurrent - api.in_flight.available_permits(),
        queued: api.batcher.queued(),
        encoder: api.config.encoder.name().into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn model(State(api): State<Arc<Api>>) -> impl IntoResponse {
    axum::Json(api.info.clone())
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], OPENAPI)
}

#[cfg(test)]
mod tests {
    /// The description names exactly the router's routes, each with its method.
    #[test]
    fn the_openapi_description_names_every_route_and_no_other() {
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        assert!(v["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut described: Vec<(String, String)> = Vec::new();
        for (path, ops) in v["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                described.push((path.clone(), method.clone()));
            }
        }
        let mut routed: Vec<(String, String)> =
            super::routes().iter().map(|(p, m, _)| (format!("/api{p}"), m.to_string())).collect();
        described.sort();
        routed.sort();
        assert_eq!(described, routed);
        let responses = v["paths"]["/api/predict"]["post"]["responses"].as_object().unwrap();
        for code in ["200", "400", "408", "413", "415", "422", "503"] {
            assert!(responses.contains_key(code), "{code} is not described");
        }
    }

    /// Each answer's wire type against its schema in the description, field by field: every
    /// field a full example serialises is described (with its JSON type, constant or enum),
    /// every described property is a field of the type, and the required ones are there. The
    /// served answers are checked against the same schemas by Schemathesis (`tests/api_fuzz.rs`).
    #[test]
    fn every_answer_type_is_described_field_by_field() {
        use model_core::wire::*;
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let schema = |name: &str| v["components"]["schemas"][name].clone();
        let way = model_core::data::candidates::MappedFeature {
            id: "way/240859307".into(),
            label: "obstacle".into(),
            lat: 60.17,
            lon: 24.94,
            line: vec![[60.17, 24.94], [60.171, 24.941]],
        };
        let tags = [("barrier".to_string(), "bollard".to_string())].into();
        let mapped = FeatureCollection::new(vec![Feature::mapped(&way, tags).unwrap()]);
        let candidates = FeatureCollection::new(vec![Feature::point(
            60.17,
            24.94,
            CandidateProperties { candidate: "crossing+kerb".into() },
        )]);
        let probabilities = model_core::infer::prediction::Probabilities(vec![
            ("ramp".into(), 0.75),
            ("none".into(), 0.25),
        ]);
        let suggestion = SuggestionProperties {
            label: "ramp".into(),
            confidence: 0.75,
            candidate: "kerb".into(),
            probabilities: probabilities.clone(),
            outside_trained_area: false,
        };
        let suggestions = Suggestions {
            collection: FeatureCollection::new(vec![Feature::point(60.17, 24.94, suggestion)]),
            candidates: 12,
            already_mapped: 3,
            outside_trained_area: 0,
        };
        let health = Health {
            status: "ok".into(),
            uptime_s: 1.5,
            in_flight: 1,
            queued: 0,
            encoder: "efficientnet_lite0".into(),
            version: "0.1.0".into(),
        };
        let error =
            ErrorBody { code: Code::BadBbox, error: "no".into(), field: Some("bbox".into()) };
        let prediction = model_core::Prediction {
            label: "ramp".into(),
            confidence: 0.75,
            probabilities,
            outside_trained_area: true,
        };
        let answers = [
            ("MappedFeatures", serde_json::to_value(mapped).unwrap()),
            ("Candidates", serde_json::to_value(candidates).unwrap()),
            ("Suggestions", serde_json::to_value(suggestions).unwrap()),
            ("Health", serde_json::to_value(health).unwrap()),
            ("Error", serde_json::to_value(error).unwrap()),
            ("Prediction", serde_json::to_value(prediction).unwrap()),
        ];
        for (name, answer) in &answers {
            conforms(answer, &schema(name), &v, name, true);
        }
        // The model: the shipped bundle's manifest (every field), and a training run's (the
        // required ones), each with its limits.
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/model/model.json"),
        )
        .unwrap();
        let manifest = model_core::infer::bundle::BundleManifest::from_json(&text).unwrap();
        let info = |model: ServedModel| ModelInfo {
            trained_areas: manifest.scaler.areas.clone(),
            unlearned_types: vec!["tactile_path".into()],
            model,
        };
        let run = ServedModel::Run {
            config: manifest.config.clone(),
            temperature: 1.0,
            scaler: manifest.scaler.clone(),
        };
        for (model, full) in [(ServedModel::Bundle(Box::new(manifest.clone())), true), (run, false)]
        {
            let answer = serde_json::to_value(info(model.clone())).unwrap();
            conforms(&answer, &schema("ModelInfo"), &v, "ModelInfo", full);
            // What a client reads back is what was sent.
            let back: ModelInfo = serde_json::from_value(answer).unwrap();
            assert_eq!(back.model, model);
        }
        // And the operations answer with these schemas.
        for (path, name) in [
            ("/api/features", "MappedFeatures"),
            ("/api/candidates", "Candidates"),
            ("/api/suggest", "Suggestions"),
            ("/api/health", "Health"),
            ("/api/model", "ModelInfo"),
        ] {
            let s = &v["paths"][path]["get"]["responses"]["200"]["content"]["application/json"];
            assert_eq!(s["schema"]["$ref"], format!("#/components/schemas/{name}"), "{path}");
        }
    }

    /// `value` against `schema` (the subset of JSON Schema the description uses), both ways
    /// for objects: no undescribed field, no required property the value lacks, and, for a
    /// `full` example (one with every optional field too), no described property it lacks.
    fn conforms(
        value: &serde_json::Value,
        schema: &serde_json::Value,
        doc: &serde_json::Value,
        at: &str,
        full: bool,
    ) {
        use serde_json::Value;
        if let Some(r) = schema["$ref"].as_str() {
            let name = r.trim_start_matches("#/components/schemas/");
            return conforms(value, &doc["components"]["schemas"][name], doc, at, full);
        }
        if let Some(c) = schema.get("const") {
            assert_eq!(value, c, "{at}");
        }
        if let Some(e) = schema["enum"].as_array() {
            assert!(e.contains(value), "{at}: {value} is not one of {e:?}");
        }
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if let Some(t) = schema["type"].as_str() {
            assert!(
                t == kind || (t == "number" && kind == "integer"),
                "{at}: {kind}, described {t}"
            );
        }
        match value {
            Value::Object(fields) => {
                let props = schema["properties"].as_object();
                for (k, x) in fields {
                    match props.and_then(|p| p.get(k)) {
                        Some(s) => conforms(x, s, doc, &format!("{at}.{k}"), full),
                        None => match &schema["additionalProperties"] {
                            s @ Value::Object(_) => conforms(x, s, doc, &format!("{at}.{k}"), full),
                            _ => panic!("{at}: field `{k}` is not described"),
                        },
                    }
                }
                for k in props.into_iter().flat_map(|p| p.keys()).filter(|_| full) {
                    assert!(fields.contains_key(k), "{at}: described `{k}` is not a field");
                }
                for k in schema["required"].as_array().into_iter().flatten() {
                    assert!(fields.contains_key(k.as_str().unwrap()), "{at}: {k} is required");
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    conforms(x, &schema["items"], doc, &format!("{at}[{i}]"), full);
                }
            }
            _ => {}
        }
    }

    /// The description's error codes are exactly those the server can answer with: every
    /// error is built from [`super::error::Code`], whose list this compares.
    #[test]
    fn every_error_code_the_server_answers_is_described() {
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let described: Vec<&str> =
            v["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c.as_str())
                .collect();
        let answered: Vec<&str> = super::Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(described, answered);
        for code in ["bad_bbox", "area_too_large", "outside_extract", "bad_threshold"] {
            assert!(described.contains(&code), "{code}");
        }
    }

    /// The types the description names are the feature-type table's, in its order.
    #[test]
    fn the_openapi_types_are_the_feature_table_s() {
        let names = model_core::data::features::FeatureTypes::builtin().names();
        let v: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let examples = &v["components"]["schemas"]["Prediction"]["properties"]["type"]["examples"];
        assert_eq!(examples, &serde_json::json!(names));
        let intro = v["info"]["description"].as_str().unwrap();
        assert!(intro.contains(&format!("({})", names.join(", "))), "{intro}");
    }
}
