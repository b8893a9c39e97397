//! The offline tile renderer: draws 256x256 Web Mercator tiles from an OSM extract with
//! `tiny-skia`. Same input, same bytes: geometry is projected once in f64, features are drawn
//! in a fixed order, and nothing depends on time, threads or hash order.

pub mod style;

use std::collections::HashMap;

use image::RgbaImage;
use model_core::data::tile::{self, TILE_SIZE, TileId};
use tiny_skia::{
    FillRule, LineCap, LineJoin, Paint as SkPaint, PathBuilder, Pixmap, Stroke, StrokeDash,
    Transform,
};

use crate::osm::OsmMap;
use style::{Layer, Paint};

/// What a shape is drawn from: an element of the map, projected when a tile needs it.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Index into the map's ways.
    Way(u32),
    /// Index into the map's multipolygons.
    Multipolygon(u32),
}

/// One drawable feature of the map at the scene's zoom: its style and where it lies. Its
/// points are projected from the map when a tile is drawn (the same f64 arithmetic each
/// time), so a scene holds no copy of the map's geometry.
struct Shape {
    layer: Layer,
    /// Order within a layer: the OSM element kind and id, for determinism.
    order: (u8, i64),
    paint: Paint,
    source: Source,
    /// `(min_x, min_y, max_x, max_y)` of all rings, in global pixels.
    bbox: (f64, f64, f64, f64),
    /// Pixels per metre at the feature's latitude.
    px_per_m: f32,
}

/// Side of a cell of the spatial index, in pixels at the render zoom (8 tiles).
const CELL: f64 = 8.0 * TILE_SIZE as f64;
/// How far outside a tile a shape may start and still be drawn (wide strokes, casings).
const MARGIN: f64 = 64.0;

/// What to draw of one map at one zoom, and where: the styled shapes and their spatial index.
/// It refers to the map's elements by index, so it draws only with the map it was built from
/// ([`Scene::render_tile`]); [`Renderer`] keeps the two together.
pub struct Scene {
    zoom: u8,
    shapes: Vec<Shape>,
    /// The spatial index: for each cell of `CELL` pixels, the shapes (indices into `shapes`,
    /// ascending, so drawing order is kept) whose box, grown by `MARGIN`, touches it. A tile
    /// lies in one cell, so its cost depends on what is near it, not on the extract's size.
    cells: HashMap<(u32, u32), Vec<u32>>,
}

/// An extract and its [`Scene`] at one zoom, ready to draw tiles from.
pub struct Renderer<'a> {
    map: &'a OsmMap,
    scene: Scene,
}

fn closed(nodes: &[i64]) -> bool {
    nodes.len() > 3 && nodes.first() == nodes.last()
}

/// A source's rings in global pixels at `zoom` (rings of fewer than two points left out).
fn rings(map: &OsmMap, source: Source, zoom: u8) -> Vec<Vec<(f64, f64)>> {
    let project = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter().filter_map(|(la, lo)| tile::lat_lon_to_pixel(la, lo, zoom).ok()).collect()
    };
    let rings: Vec<Vec<(f64, f64)>> = match source {
        Source::Way(i) => vec![project(map.way_coords(&map.ways[i as usize]))],
        Source::Multipolygon(i) => {
            let mp = &map.multipolygons[i as usize];
            let ring =
                |id: &i64| map.way(*id).filter(|w| closed(&w.nodes)).map(|w| map.way_coords(w));
            mp.outer.iter().chain(&mp.inner).filter_map(ring).map(project).collect()
        }
    };
    rings.into_iter().filter(|r| r.len() >= 2).collect()
}

impl Scene {
    pub fn new(map: &OsmMap, zoom: u8) -> anyhow::Result<Self> {
        anyhow::ensure!(zoom <= 22, "render zoom {zoom} is above 22");
        let mut shapes = Vec::new();
        let mut push = |layer: Layer, order: (u8, i64), paint: Paint, source: Source, lat: f64| {
            let rings = rings(map, source, zoom);
            if rings.is_empty() {
                return;
            }
            let mut bbox = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
            for &(x, y) in rings.iter().flatten() {
                bbox = (bbox.0.min(x), bbox.1.min(y), bbox.2.max(x), bbox.3.max(y));
            }
            let m_per_px = 156_543.033_928 * lat.to_radians().cos() / f64::from(1u32 << zoom);
            shapes.push(Shape {
                layer,
                order,
                paint,
                source,
                bbox,
                px_per_m: (1.0 / m_per_px) as f32,
            });
        };
        for (i, w) in map.ways.iter().enumerate() {
            let Some((lat, _)) = w.nodes.iter().find_map(|n| map.coords.get(n)) else { continue };
            let is_closed = closed(&w.nodes);
            let style = if is_closed { style::area_style(&w.tags) } else { None }
                .or_else(|| style::line_style(&w.tags));
            if let Some((layer, paint)) = style {
                push(layer, (1, w.id), paint, Source::Way(i as u32), lat);
            }
        }
        for (i, mp) in map.multipolygons.iter().enumerate() {
            let Some((layer, paint)) = style::area_style(&mp.tags) else { continue };
            // The latitude of the first ring's first point (none: not drawn).
            let first_ring = mp
                .outer
                .iter()
                .chain(&mp.inner)
                .find_map(|id| map.way(*id).filter(|w| closed(&w.nodes)));
            let Some((lat, _)) =
                first_ring.and_then(|w| w.nodes.iter().find_map(|n| map.coords.get(n)))
            else {
                continue;
            };
            push(layer, (2, mp.id), paint, Source::Multipolygon(i as u32), lat);
        }
        shapes.sort_by_key(|s| (s.layer, s.order));
        shapes.shrink_to_fit();
        let mut cells: HashMap<(u32, u32), Vec<u32>> = HashMap::new();
        let max = f64::from(1u32 << zoom) * f64::from(TILE_SIZE) - 1.0;
        let cell = |v: f64| (v.clamp(0.0, max) / CELL) as u32;
        for (i, s) in shapes.iter().enumerate() {
            let (x0, y0) = (cell(s.bbox.0 - MARGIN), cell(s.bbox.1 - MARGIN));
            let (x1, y1) = (cell(s.bbox.2 + MARGIN), cell(s.bbox.3 + MARGIN));
            for cx in x0..=x1 {
                for cy in y0..=y1 {
                    cells.entry((cx, cy)).or_default().push(i as u32);
                }
            }
        }
        Ok(Self { zoom, shapes, cells })
    }

    /// The shapes to draw on tile `t`, in drawing order: those whose box meets the tile grown
    /// by `MARGIN`, found through the index.
    fn shapes_for(&self, t: TileId) -> impl Iterator<Item = &Shape> {
        let (x0, y0, x1, y1) = window(t);
        let key = ((x0 + MARGIN) / CELL) as u32;
        let key = (key, ((y0 + MARGIN) / CELL) as u32);
        self.cells
            .get(&key)
            .into_iter()
            .flatten()
            .map(|&i| &self.shapes[i as usize])
            .filter(move |s| !(s.bbox.2 < x0 || s.bbox.0 > x1 || s.bbox.3 < y0 || s.bbox.1 > y1))
    }

    /// Draws one 256x256 tile; `map` must be the map the scene was built from.
    pub fn render_tile(&self, map: &OsmMap, t: TileId) -> RgbaImage {
        assert_eq!(t.z, self.zoom, "renderer built for zoom {}", self.zoom);
        let size = TILE_SIZE;
        let mut pixmap = Pixmap::new(size, size).expect("tile size is non-zero");
        let [r, g, b] = style::BACKGROUND;
        pixmap.fill(tiny_skia::Color::from_rgba8(r, g, b, 255));
        let (ox, oy) = (f64::from(t.x) * f64::from(size), f64::from(t.y) * f64::from(size));
        for s in self.shapes_for(t) {
            draw(&mut pixmap, s, &rings(map, s.source, self.zoom), ox, oy);
        }
        let mut img = RgbaImage::new(size, size);
        for (dst, src) in img.pixels_mut().zip(pixmap.pixels()) {
            let c = src.demultiply();
            *dst = image::Rgba([c.red(), c.green(), c.blue(), c.alpha()]);
        }
        img
    }
}

impl<'a> Renderer<'a> {
    pub fn new(map: &'a OsmMap, zoom: u8) -> anyhow::Result<Self> {
        Ok(Self { map, scene: Scene::new(map, zoom)? })
    }

    /// Draws one 256x256 tile.
    pub fn render_tile(&self, t: TileId) -> RgbaImage {
        self.scene.render_tile(self.map, t)
    }
}

/// Tile `t` grown by `MARGIN`, in global pixels: `(x0, y0, x1, y1)`.
fn window(t: TileId) -> (f64, f64, f64, f64) {
    let size = f64::from(TILE_SIZE);
    let (ox, oy) = (f64::from(t.x) * size, f64::from(t.y) * size);
    (ox - MARGIN, oy - MARGIN, ox + size + MARGIN, oy + size + MARGIN)
}

fn color(c: [u8; 3]) -> SkPaint<'static> {
    let mut p = SkPaint::default();
    p.set_color_rgba8(c[0], c[1], c[2], 255);
    p.anti_alias = true;
    p
}

fn path(rings: &[Vec<(f64, f64)>], ox: f64, oy: f64, close: bool) -> Option<tiny_skia::Path> {
    let mut pb = PathBuilder::new();
    for ring in rings {
        let mut it = ring.iter();
        let &(x, y) = it.next()?;
        pb.move_to((x - ox) as f32, (y - oy) as f32);
        for &(x, y) in it {
            pb.line_to((x - ox) as f32, (y - oy) as f32);
        }
        if close {
            pb.close();
        }
    }
    pb.finish()
}

fn stroke(width: f32, dash: Option<(f32, f32)>) -> Stroke {
    Stroke {
        width: width.max(0.5),
        line_cap: if dash.is_some() { LineCap::Butt } else { LineCap::Round },
        line_join: LineJoin::Round,
        dash: dash.and_then(|(d, g)| StrokeDash::new(vec![d.max(0.5), g.max(0.5)], 0.0)),
        ..Stroke::default()
    }
}

fn draw(pixmap: &mut Pixmap, s: &Shape, rings: &[Vec<(f64, f64)>], ox: f64, oy: f64) {
    let id = Transform::identity();
    match s.paint {
        Paint::Area { fill, outline } => {
            let Some(p) = path(rings, ox, oy, true) else { return };
            pixmap.fill_path(&p, &color(fill), FillRule::EvenOdd, id, None);
            if let Some(o) = outline {
                pixmap.stroke_path(&p, &color(o), &stroke(1.0, None), id, None);
            }
        }
        Paint::Line(l) => {
            let Some(p) = path(rings, ox, oy, false) else { return };
            let w = l.width_m * s.px_per_m;
            if let Some((c, extra)) = l.casing {
                pixmap.stroke_path(&p, &color(c), &stroke(w + extra * s.px_per_m, None), id, None);
            }
            let dash = l.dash_m.map(|(d, g)| (d * s.px_per_m, g * s.px_per_m));
            pixmap.stroke_path(&p, &color(l.color), &stroke(w, dash), id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME};

    /// The index finds exactly the shapes a scan of every shape does, in the same order, on
    /// every tile of the bundled extract (and a ring of empty tiles around it).
    #[test]
    fn the_index_finds_what_the_linear_scan_did() {
        let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
        for zoom in [17, 19] {
            let r = Scene::new(&map, zoom).unwrap();
            let (mut lo, mut hi) = ((u32::MAX, u32::MAX), (0, 0));
            for s in &r.shapes {
                let (x, y) = ((s.bbox.0 / 256.0) as u32, (s.bbox.1 / 256.0) as u32);
                lo = (lo.0.min(x), lo.1.min(y));
                hi = (hi.0.max(x), hi.1.max(y));
            }
            let mut tiles = 0;
            for x in lo.0 - 1..=hi.0 + 1 {
                for y in lo.1 - 1..=hi.1 + 1 {
                    let t = TileId { z: zoom, x, y };
                    let (x0, y0, x1, y1) = window(t);
                    let linear: Vec<(u8, i64)> = r
                        .shapes
                        .iter()
                        .filter(|s| {
                            !(s.bbox.2 < x0 || s.bbox.0 > x1 || s.bbox.3 < y0 || s.bbox.1 > y1)
                        })
                        .map(|s| s.order)
                        .collect();
                    let indexed: Vec<(u8, i64)> = r.shapes_for(t).map(|s| s.order).collect();
                    assert_eq!(indexed, linear, "tile {zoom}/{x}/{y}");
                    tiles += 1;
                }
            }
            assert!(tiles > 50, "{tiles} tiles at zoom {zoom}");
        }
    }
}
