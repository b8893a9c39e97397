//! The web server behind `accessatlas serve`: the built app, the model bundle, and the
//! renderer's tiles drawn on the fly, so in-page predictions see exactly what training saw.
//!
//! Routes:
//! - `/tiles/{z}/{x}/{y}.png`: a 256x256 tile from [`crate::render::Renderer`] (same code as
//!   `collect --tiles render`), cached in memory, or from a pre-rendered MBTiles file
//!   (`serve --tiles`, [`ServedTiles`]); CORS-open, `X-AccessAtlas-Style` names the style
//!   version; at most [`TileLimits::renders`] at once, and a request that waits longer than
//!   [`TileLimits::wait`] for its turn gets 503 with `Retry-After` (a flood of new tiles
//!   meets bounded CPU and memory, and an answer rather than a stall);
//! - `/tiles/style`: the style version and zoom range as JSON;
//! - `/model/...`: the model bundle directory (`model.json`, `weights.bpk`);
//! - `/api/...`: the prediction API ([`crate::api`]), when enabled;
//! - everything else: the app's `dist/` directory (`index.html` for unknown paths), when there
//!   is one.
//!
//! Responses are gzip-compressed when the client accepts it; `.wasm` is served as
//! `application/wasm`; hashed build outputs are cached for a year, the rest revalidated.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use model_core::data::tile::TileId;
use model_core::infer::bundle::RENDERED_TILES_PATH;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::tiles::ServedTiles;

/// How many tiles the server draws or reads at once, and how long a request waits for its
/// turn before a 503.
#[derive(Debug, Clone, Copy)]
pub struct TileLimits {
    pub renders: usize,
    pub wait: std::time::Duration,
}

impl Default for TileLimits {
    /// One per core; two seconds.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self { renders: cores, wait: std::time::Duration::from_secs(2) }
    }
}

/// The tiles' route's state: the tiles and their turns.
#[derive(Clone)]
struct TileState {
    tiles: Arc<dyn ServedTiles>,
    turns: Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
}

/// What the server serves.
pub struct ServeConfig {
    /// The built app (`trunk build` output); `None` serves the API, model and tiles only.
    pub dist: Option<PathBuf>,
    /// The model bundle directory.
    pub model: PathBuf,
    pub tiles: Arc<dyn ServedTiles>,
    /// The prediction API under `/api/`.
    pub api: Option<Arc<crate::api::Api>>,
    pub tile_limits: TileLimits,
}

/// The whole application router.
pub fn router(cfg: ServeConfig) -> Router {
    // The rendered tiles' route is the bundle's tile-source rule (model-core), as the page
    // asks it: `{RENDERED_TILES_PATH}/{z}/{x}/{y}.png`.
    let state = TileState {
        tiles: cfg.tiles,
        turns: Arc::new(tokio::sync::Semaphore::new(cfg.tile_limits.renders.max(1))),
        wait: cfg.tile_limits.wait,
    };
    let tiles = Router::new()
        .route(&format!("/{RENDERED_TILES_PATH}/style"), get(style_info))
        .route(&format!("/{RENDERED_TILES_PATH}/{{z}}/{{x}}/{{file}}"), get(tile))
        .with_state(state);
    let model = ServeDir::new(&cfg.model);
    let mut app = tiles.nest_service("/model", model);
    app = match cfg.dist {
        Some(dist) => {
            // The page for any other address of the app (`/`, `/?backend=cpu`), but a file that
            // is not there (a last segment with a `.`) is a 404, not the page in its place: a
            // missing script or wasm must not arrive as HTML with 200, which the service worker
            // would keep for offline use under the file's name.
            let index = dist.join("index.html");
            let page = get(move |uri: axum::http::Uri| {
                let index = index.clone();
                async move {
                    let last = uri.path().rsplit('/').next().unwrap_or("");
                    if last.contains('.') {
                        return (StatusCode::NOT_FOUND, "no such file in the app").into_response();
                    }
                    match tokio::fs::read(&index).await {
                        Ok(page) => axum::response::Html(page).into_response(),
                        Err(e) => (
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("reading the app's page {}: {e}", index.display()),
                        )
                            .into_response(),
                    }
                }
            });
            app.fallback_service(ServeDir::new(&dist).fallback(page))
        }
        None => app.fallback(|| async {
            (StatusCode::NOT_FOUND, "no web app here: this server was started without dist/")
        }),
    };
    if let Some(api) = cfg.api {
        app = app.nest("/api", crate::api::router(api));
    }
    app.layer(axum::middleware::from_fn(cache_headers))
        .layer(axum::middleware::from_fn(access_log))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CompressionLayer::new().gzip(true))
}

async fn style_info(State(state): State<TileState>) -> impl IntoResponse {
    let tiles = state.tiles;
    let (min_zoom, max_zoom) = tiles.zooms();
    (
        [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")],
        axum::Json(serde_json::json!({
            "style": tiles.style(),
            "min_zoom": min_zoom,
            "max_zoom": max_zoom,
        })),
    )
}

async fn tile(
    State(state): State<TileState>,
    UrlPath((z, x, file)): UrlPath<(u8, u32, String)>,
) -> Response {
    let Some(y) = file.strip_suffix(".png").and_then(|s| s.parse::<u32>().ok()) else {
        return (StatusCode::NOT_FOUND, "tile paths end in {y}.png").into_response();
    };
    let t = TileId { z, x, y };
    let Ok(Ok(_turn)) = tokio::time::timeout(state.wait, state.turns.clone().acquire_owned()).await
    else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "the server is drawing as many tiles as it can; retry shortly",
        )
            .into_response();
    };
    let tiles = state.tiles;
    let style =
        HeaderValue::from_str(&tiles.style()).unwrap_or(HeaderValue::from_static("unknown"));
    match tokio::task::spawn_blocking(move || tiles.png(t)).await {
        Ok(Ok(png)) => {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
            h.insert("x-accessatlas-style", style);
            (h, png).into_response()
        }
        Ok(Err(e)) => (StatusCode::NOT_FOUND, format!("{e:#}")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// One structured log event per request: method, path, status, milliseconds. API requests at
/// INFO, static files and tiles at DEBUG (`ACCESSATLAS_LOG=debug` shows them).
async fn access_log(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let status = res.status().as_u16();
    if path.starts_with("/api/") {
        tracing::info!(target: "accessatlas::access", %method, %path, status, ms, "request");
    } else {
        tracing::debug!(target: "accessatlas::access", %method, %path, status, ms, "request");
    }
    res
}

/// Trunk names its outputs `name-<hash>.ext`: those never change and are cached for a year;
/// everything else (index.html, the model bundle) is revalidated on each load.
async fn cache_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    if res.headers().contains_key(header::CACHE_CONTROL) || !res.status().is_success() {
        return res;
    }
    let value =
        if is_hashed_asset(&path) { "public, max-age=31536000, immutable" } else { "no-cache" };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    res
}

fn is_hashed_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let stem = name.split('.').next().unwrap_or("");
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    stem.rsplit_once('-').is_some_and(|(_, h)| {
        (8..=16).contains(&h.len()) && h.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Binds `addr` and serves until Ctrl-C or SIGTERM, then finishes the requests in flight.
/// `on_ready` gets the bound address (port 0 picks one).
pub async fn serve(
    cfg: ServeConfig,
    addr: SocketAddr,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    on_ready(listener.local_addr()?);
    axum::serve(listener, router(cfg))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_assets_are_recognised() {
        assert!(is_hashed_asset("/app-3f2a9c0d1e2b4a5f_bg.wasm"));
        assert!(is_hashed_asset("/app-3f2a9c0d1e2b4a5f.js"));
        assert!(!is_hashed_asset("/index.html"));
        assert!(!is_hashed_asset("/model/model.json"));
        assert!(!is_hashed_asset("/leaflet-1.9.4.css"));
    }
}
