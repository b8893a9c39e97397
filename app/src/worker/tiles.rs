//! The map tiles behind a run of crops (a scan's points, a fine-tune's places): each tile
//! fetched and decoded once, and the next places' tiles requested while the current place is
//! computed, so the network works while the model does.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use image::{RgbImage, RgbaImage};
use model_core::data::tile::{FILL, TileId, Window};

use super::Loaded;
use crate::net::{Pending, begin};

/// Decoded tiles kept for a run: 64 RGBA tiles of 256 px are 16 MB, more than a zoom-17 view
/// needs at the model's zoom and little enough for a phone.
const KEEP: usize = 64;

pub(crate) struct Tiles {
    pending: HashMap<TileId, Pending>,
    ready: HashMap<TileId, Rc<RgbaImage>>,
    /// `ready`'s tiles, oldest first (the first to go past [`KEEP`]).
    order: VecDeque<TileId>,
}

impl Tiles {
    pub(crate) fn new() -> Self {
        Self { pending: HashMap::new(), ready: HashMap::new(), order: VecDeque::new() }
    }

    fn window(m: &Loaded, lat: f64, lon: f64) -> Result<Window, String> {
        m.predictor.window(&m.manifest.tile_source, lat, lon).map_err(|e| e.to_string())
    }

    /// Requests the tiles of the crop at `lat`/`lon` that are neither decoded nor on their way.
    pub(crate) fn want(&mut self, m: &Loaded, lat: f64, lon: f64) -> Result<(), String> {
        for p in Self::window(m, lat, lon)?.placements() {
            if !self.ready.contains_key(&p.tile) && !self.pending.contains_key(&p.tile) {
                let req = Self::request(m, p.tile)?;
                self.pending.insert(p.tile, req);
            }
        }
        Ok(())
    }

    fn request(m: &Loaded, tile: TileId) -> Result<Pending, String> {
        let url = m.manifest.tile_source.tile_url(&m.base, tile).map_err(|e| e.to_string())?;
        Ok(begin(&url))
    }

    /// The model's crop at `lat`/`lon`, cut from its own tiles (fetched where not yet here).
    pub(crate) async fn crop(
        &mut self,
        m: &Loaded,
        lat: f64,
        lon: f64,
    ) -> Result<RgbImage, String> {
        let window = Self::window(m, lat, lon)?;
        // Every tile of the window is requested at once, then each is awaited in turn.
        self.want(m, lat, lon)?;
        let placements = window.placements();
        let mut tiles = Vec::with_capacity(placements.len());
        for p in placements {
            let img = match self.ready.get(&p.tile) {
                Some(img) => img.clone(),
                None => {
                    // On its way, or (pushed out by this crop's own tiles) asked for again.
                    let req = match self.pending.remove(&p.tile) {
                        Some(req) => req,
                        None => Self::request(m, p.tile)?,
                    };
                    let bytes = req.bytes().await.map_err(|e| format!("map tile: {e}"))?;
                    let t = p.tile;
                    let img = image::load_from_memory(&bytes)
                        .map_err(|e| format!("map tile {}/{}/{}: {e}", t.z, t.x, t.y))?
                        .to_rgba8();
                    self.keep(t, Rc::new(img))
                }
            };
            tiles.push((p, img));
        }
        Ok(window.stitch(&tiles, FILL))
    }

    fn keep(&mut self, tile: TileId, img: Rc<RgbaImage>) -> Rc<RgbaImage> {
        self.ready.insert(tile, img.clone());
        self.order.push_back(tile);
        while self.order.len() > KEEP {
            if let Some(old) = self.order.pop_front() {
                self.ready.remove(&old);
            }
        }
        img
    }
}
