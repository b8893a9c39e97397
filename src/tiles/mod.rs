//! Where map tiles come from: the offline renderer, an XYZ tile server, or an MBTiles file.
//! Every source hands out decoded 256x256 RGBA tiles; `fetch_all` runs a source over a tile
//! list on a few worker threads with a progress bar.

pub mod mbtiles;
pub mod rendered;
pub mod xyz;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use image::RgbaImage;
use indicatif::{ProgressBar, ProgressStyle};
use model_core::data::tile::TileId;

use crate::render::Renderer;

/// How to be polite to an XYZ server (the other sources need nothing).
#[derive(Debug, Clone)]
pub struct Politeness {
    /// Value for `{token}` in the template.
    pub token: Option<String>,
    pub cache_dir: std::path::PathBuf,
    pub retries: u32,
    pub backoff: std::time::Duration,
    pub timeout: std::time::Duration,
}

impl Politeness {
    /// The defaults `collect` uses, caching in the data folder.
    pub fn for_data(data: &crate::run::DataDir) -> Self {
        Self {
            token: std::env::var("ACCESSATLAS_TILE_TOKEN").ok(),
            cache_dir: data.tile_cache(),
            retries: 4,
            backoff: std::time::Duration::from_millis(500),
            timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The client of a tile source: the one place a source kind meets its code (the renderer
/// draws from `map`; an XYZ server and an MBTiles file are read as the spec says).
pub fn open<'a>(
    spec: &model_core::infer::bundle::TileSourceSpec,
    map: &'a crate::osm::OsmMap,
    xyz: Politeness,
) -> Result<Box<dyn TileSource + 'a>> {
    use model_core::infer::bundle::TileSourceSpec as S;
    Ok(match spec {
        S::Render { zoom, .. } => Box::new(Renderer::new(map, *zoom)?),
        S::Xyz { url, .. } => Box::new(xyz::XyzClient::new(xyz::XyzOptions {
            template: url.clone(),
            token: xyz.token,
            cache_dir: xyz.cache_dir,
            retries: xyz.retries,
            backoff: xyz.backoff,
            timeout: xyz.timeout,
        })?),
        S::Mbtiles { path, .. } => Box::new(mbtiles::MbTiles::open(std::path::Path::new(path))?),
    })
}

/// How a tile was obtained, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Rendered,
    Cached,
    Fetched,
    Read,
}

pub trait TileSource: Sync {
    /// One line naming the source (for logs and the model bundle's provenance).
    fn describe(&self) -> String;
    /// Threads that may call `get` at once (e.g. 2 connections per host).
    fn workers(&self) -> usize {
        2
    }
    fn get(&self, t: TileId) -> Result<(RgbaImage, Origin)>;
}

impl TileSource for Renderer<'_> {
    fn describe(&self) -> String {
        format!("render:{}", crate::render::style::STYLE_VERSION)
    }
    fn get(&self, t: TileId) -> Result<(RgbaImage, Origin)> {
        Ok((self.render_tile(t), Origin::Rendered))
    }
}

/// What `serve` answers `/tiles/{z}/{x}/{y}.png` from: the tiles drawn on request from an
/// extract ([`rendered::TileRenderer`]) or read from a pre-rendered MBTiles file
/// ([`mbtiles::MbTiles`], `tiles render`), which needs no extract in memory.
pub trait ServedTiles: Send + Sync {
    /// The PNG bytes of tile `t`; an error (answered 404) names why there is none.
    fn png(&self, t: TileId) -> Result<axum::body::Bytes>;
    /// The style the tiles were drawn with (the `X-AccessAtlas-Style` header).
    fn style(&self) -> String;
    /// The zoom levels it has.
    fn zooms(&self) -> (u8, u8);
}

impl ServedTiles for rendered::TileRenderer {
    fn png(&self, t: TileId) -> Result<axum::body::Bytes> {
        rendered::TileRenderer::png(self, t)
    }
    fn style(&self) -> String {
        crate::render::style::STYLE_VERSION.to_string()
    }
    fn zooms(&self) -> (u8, u8) {
        (0, rendered::MAX_RENDER_ZOOM)
    }
}

impl ServedTiles for mbtiles::MbTiles {
    fn png(&self, t: TileId) -> Result<axum::body::Bytes> {
        anyhow::ensure!(t.in_world(), "tile {}/{}/{} is outside the world", t.z, t.x, t.y);
        match self.bytes(t)? {
            Some(b) => Ok(b.into()),
            None => anyhow::bail!("tile {}/{}/{} is not in {}", t.z, t.x, t.y, self.describe()),
        }
    }
    fn style(&self) -> String {
        self.metadata(mbtiles::STYLE_KEY).unwrap_or_else(|| "mbtiles".into())
    }
    fn zooms(&self) -> (u8, u8) {
        let z = |k: &str, d: u8| self.metadata(k).and_then(|v| v.trim().parse().ok()).unwrap_or(d);
        (z("minzoom", 0), z("maxzoom", rendered::MAX_RENDER_ZOOM))
    }
}

/// Decodes tile bytes to RGBA, refusing anything that is not a 256x256 image.
pub fn decode_tile(bytes: &[u8]) -> Result<RgbaImage> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| anyhow::anyhow!("corrupt tile bytes ({} bytes): {e}", bytes.len()))?;
    let img = img.to_rgba8();
    anyhow::ensure!(
        img.width() == model_core::data::tile::TILE_SIZE
            && img.height() == model_core::data::tile::TILE_SIZE,
        "tile is {}x{}, expected 256x256",
        img.width(),
        img.height()
    );
    Ok(img)
}

pub type Fetched = BTreeMap<TileId, Result<(RgbaImage, Origin)>>;

/// Gets every tile from `source`, in parallel up to `source.workers()`, with a progress bar.
pub fn fetch_all(source: &dyn TileSource, tiles: &[TileId], label: &str) -> Fetched {
    let bar = ProgressBar::new(tiles.len() as u64);
    bar.set_style(tile_bar_style(label));
    let out = fetch_with(source, tiles, &bar);
    bar.finish_and_clear();
    out
}

/// The style of a tile progress bar named `label`.
pub fn tile_bar_style(label: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{label} {{bar:40}} {{pos}}/{{len}} tiles {{per_sec}} eta {{eta}}"
    ))
    .expect("valid template")
}

/// Gets every tile from `source`, in parallel up to `source.workers()`, advancing `bar` by one
/// per tile.
pub fn fetch_with(source: &dyn TileSource, tiles: &[TileId], bar: &ProgressBar) -> Fetched {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(BTreeMap::new());
    std::thread::scope(|s| {
        for _ in 0..source.workers().max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&t) = tiles.get(i) else { break };
                    let r = source.get(t);
                    out.lock().expect("no panics while holding").insert(t, r);
                    bar.inc(1);
                }
            });
        }
    });
    out.into_inner().expect("threads joined")
}
