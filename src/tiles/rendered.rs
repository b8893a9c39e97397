//! The server's rendered tiles: any zoom from one extract, one [`Scene`] per zoom built on
//! first use, PNGs cached in memory. `accessatlas serve` answers `/tiles/` from it, and
//! suggestions read it as a [`TileSource`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;
use model_core::data::tile::TileId;

use crate::osm::OsmMap;
use crate::render::{Scene, style::STYLE_VERSION};
use crate::tiles::{Origin, TileSource};

/// Highest zoom the tile endpoint draws (the renderer's limit is 22; 20 is the deepest a
/// Leaflet map asks for here).
pub const MAX_RENDER_ZOOM: u8 = 20;
/// Rendered PNGs kept in memory (about 5-20 KB each).
const TILE_CACHE_CAPACITY: usize = 4096;

/// Draws tiles at any zoom from one extract; one [`Scene`] per zoom, built on first use.
pub struct TileRenderer {
    map: OsmMap,
    renderers: Mutex<HashMap<u8, Arc<Scene>>>,
    cache: Mutex<HashMap<TileId, Bytes>>,
}

impl TileRenderer {
    pub fn new(map: OsmMap) -> Self {
        Self { map, renderers: Mutex::default(), cache: Mutex::default() }
    }

    fn renderer(&self, z: u8) -> Result<Arc<Scene>> {
        if let Some(r) = self.renderers.lock().expect("renderer lock").get(&z) {
            return Ok(r.clone());
        }
        let r = Arc::new(Scene::new(&self.map, z)?);
        self.renderers.lock().expect("renderer lock").insert(z, r.clone());
        Ok(r)
    }

    /// The extract it draws.
    pub fn map(&self) -> &OsmMap {
        &self.map
    }

    /// The PNG bytes of tile `t`, rendered or from the cache.
    pub fn png(&self, t: TileId) -> Result<Bytes> {
        anyhow::ensure!(t.z <= MAX_RENDER_ZOOM, "zoom {} is above {MAX_RENDER_ZOOM}", t.z);
        anyhow::ensure!(t.in_world(), "tile {}/{}/{} is outside the world", t.z, t.x, t.y);
        if let Some(b) = self.cache.lock().expect("tile cache lock").get(&t) {
            return Ok(b.clone());
        }
        let png = Bytes::from(tile_png(self.renderer(t.z)?.render_tile(&self.map, t))?);
        let mut cache = self.cache.lock().expect("tile cache lock");
        if cache.len() >= TILE_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(t, png.clone());
        Ok(png)
    }
}

/// A rendered tile as the server sends it and `tiles render` stores it: an RGB PNG.
pub fn tile_png(img: image::RgbaImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .to_rgb8()
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("encoding tile")?;
    Ok(png)
}

/// The server's rendered tiles as a tile source (for suggestions): same drawing as the PNGs.
impl TileSource for TileRenderer {
    fn describe(&self) -> String {
        format!("render:{STYLE_VERSION}")
    }
    fn get(&self, t: TileId) -> Result<(image::RgbaImage, Origin)> {
        Ok((self.renderer(t.z)?.render_tile(&self.map, t), Origin::Rendered))
    }
}
