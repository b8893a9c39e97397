//! Web Mercator tile math shared by the CLI and the browser, so both cut identical model inputs.
//!
//! Conventions are those of OpenStreetMap's slippy map: 256-pixel tiles, `x` east from the
//! antimeridian, `y` south from 85.0511°N, `2^z` tiles per axis at zoom `z`.

use image::{Rgb, RgbImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Side of one map tile in pixels.
pub const TILE_SIZE: u32 = 256;
/// Latitude limit of the Web Mercator projection.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;
/// Highest zoom the tile math accepts.
pub const MAX_ZOOM: u8 = 24;

/// One tile address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

impl TileId {
    /// Whether the address names a tile of the world (`x` and `y` below `2^z`, `z` at most 30).
    pub fn in_world(self) -> bool {
        self.z <= 30 && u64::from(self.x) < 1u64 << self.z && u64::from(self.y) < 1u64 << self.z
    }
}

fn check_zoom(z: u8) -> Result<(), CoreError> {
    if z > MAX_ZOOM { Err(CoreError::ZoomOutOfRange(z)) } else { Ok(()) }
}

/// Global pixel coordinates `(x, y)` of a point at zoom `z` (origin at the north-west corner).
pub fn lat_lon_to_pixel(lat: f64, lon: f64, z: u8) -> Result<(f64, f64), CoreError> {
    check_zoom(z)?;
    validate_lat_lon(lat, lon)?;
    let world = f64::from(TILE_SIZE) * f64::from(1u32 << z);
    let x = (lon + 180.0) / 360.0 * world;
    let lat_rad = lat.to_radians();
    let y = (1.0 - (lat_rad.tan() + 1.0 / lat_rad.cos()).ln() / std::f64::consts::PI) / 2.0 * world;
    Ok((x, y))
}

/// Inverse of [`lat_lon_to_pixel`]: `(lat, lon)` of a global pixel position at zoom `z`.
pub fn pixel_to_lat_lon(x: f64, y: f64, z: u8) -> Result<(f64, f64), CoreError> {
    check_zoom(z)?;
    let world = f64::from(TILE_SIZE) * f64::from(1u32 << z);
    let lon = x / world * 360.0 - 180.0;
    let n = std::f64::consts::PI * (1.0 - 2.0 * y / world);
    let lat = n.sinh().atan().to_degrees();
    Ok((lat, lon))
}

/// The tile that contains a point.
pub fn lat_lon_to_tile(lat: f64, lon: f64, z: u8) -> Result<TileId, CoreError> {
    let (x, y) = lat_lon_to_pixel(lat, lon, z)?;
    let n = 1u32 << z;
    let tx = ((x / f64::from(TILE_SIZE)).floor() as i64).clamp(0, i64::from(n) - 1) as u32;
    let ty = ((y / f64::from(TILE_SIZE)).floor() as i64).clamp(0, i64::from(n) - 1) as u32;
    Ok(TileId { z, x: tx, y: ty })
}

/// `(west, south, east, north)` in degrees of a tile.
pub fn tile_bounds(t: TileId) -> Result<(f64, f64, f64, f64), CoreError> {
    let s = f64::from(TILE_SIZE);
    let (north, west) = pixel_to_lat_lon(f64::from(t.x) * s, f64::from(t.y) * s, t.z)?;
    let (south, east) = pixel_to_lat_lon(f64::from(t.x + 1) * s, f64::from(t.y + 1) * s, t.z)?;
    Ok((west, south, east, north))
}

/// A square window of `size` pixels centred on a point, and the tiles that cover it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub zoom: u8,
    pub size: u32,
    /// Global pixel of the window's top-left corner (may be negative near the map's edges).
    pub left: i64,
    pub top: i64,
}

/// Where one tile lands in a [`Window`]: paste the tile with its top-left at `(dest_x, dest_y)`
/// (window coordinates, may be negative) and keep what falls inside the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub tile: TileId,
    pub dest_x: i64,
    pub dest_y: i64,
}

impl Window {
    /// The window of `size` pixels whose centre pixel contains the point.
    pub fn centered(lat: f64, lon: f64, zoom: u8, size: u32) -> Result<Self, CoreError> {
        let (x, y) = lat_lon_to_pixel(lat, lon, zoom)?;
        let half = i64::from(size / 2);
        Ok(Self { zoom, size, left: x.floor() as i64 - half, top: y.floor() as i64 - half })
    }

    /// Tiles covering the window, row by row, with where each lands. Columns wrap around the
    /// antimeridian; rows beyond the poles are left out (they stay blank).
    pub fn placements(&self) -> Vec<Placement> {
        let ts = i64::from(TILE_SIZE);
        let n = 1i64 << self.zoom;
        let size = i64::from(self.size);
        let (x0, x1) = (self.left.div_euclid(ts), (self.left + size - 1).div_euclid(ts));
        let (y0, y1) = (self.top.div_euclid(ts), (self.top + size - 1).div_euclid(ts));
        let mut out = Vec::new();
        for ty in y0..=y1 {
            if ty < 0 || ty >= n {
                continue;
            }
            for tx in x0..=x1 {
                out.push(Placement {
                    tile: TileId { z: self.zoom, x: tx.rem_euclid(n) as u32, y: ty as u32 },
                    dest_x: tx * ts - self.left,
                    dest_y: ty * ts - self.top,
                });
            }
        }
        out
    }

    /// Pastes the given tiles into the window. Tiles not given (failed, beyond the poles) stay
    /// `background`. Transparent tile pixels are composited over the background. Tiles may be
    /// given owned or borrowed (a cache shares one tile among many windows without copies).
    pub fn stitch<T: std::borrow::Borrow<RgbaImage>>(
        &self,
        tiles: &[(Placement, T)],
        background: [u8; 3],
    ) -> RgbImage {
        let mut out = RgbImage::from_pixel(self.size, self.size, Rgb(background));
        let size = i64::from(self.size);
        for (p, img) in tiles {
            let img: &RgbaImage = img.borrow();
            // The part of the tile inside the window.
            let (tw, th) = (i64::from(img.width()), i64::from(img.height()));
            let (x0, x1) = ((-p.dest_x).max(0), (size - p.dest_x).min(tw));
            let (y0, y1) = ((-p.dest_y).max(0), (size - p.dest_y).min(th));
            for ty in y0..y1 {
                let wy = (p.dest_y + ty) as u32;
                for tx in x0..x1 {
                    let px = img.get_pixel(tx as u32, ty as u32);
                    let dst = out.get_pixel_mut((p.dest_x + tx) as u32, wy);
                    match px[3] {
                        255 => dst.0 = [px[0], px[1], px[2]],
                        0 => {}
                        a => {
                            let a = u16::from(a);
                            for c in 0..3 {
                                let v =
                                    (u16::from(px[c]) * a + u16::from(dst[c]) * (255 - a) + 127)
                                        / 255;
                                dst[c] = v as u8;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Colour of window pixels no tile covers (beyond the poles), and the renderer's land colour:
/// one value for `collect` and the browser, so both fill inputs the same way.
pub const FILL: [u8; 3] = [242, 239, 233];

/// Subdomains `{s}` cycles through in XYZ templates.
pub const SUBDOMAINS: [&str; 3] = ["a", "b", "c"];

/// The URL of tile `t` from an XYZ template (`{z}`, `{x}`, `{y}`, `{s}` for a subdomain chosen
/// by the tile so requests spread deterministically, `{r}` for a retina suffix, left empty).
pub fn expand_template(template: &str, t: TileId) -> String {
    let s = SUBDOMAINS[((t.x + t.y) % 3) as usize];
    template
        .replace("{z}", &t.z.to_string())
        .replace("{x}", &t.x.to_string())
        .replace("{y}", &t.y.to_string())
        .replace("{s}", s)
        .replace("{r}", "")
}

/// An area as `min_lon,min_lat,max_lon,max_lat` (WGS84 degrees, OSM's `bbox` order).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BBox {
    pub min_lon: f64,
    pub min_lat: f64,
    pub max_lon: f64,
    pub max_lat: f64,
}

impl BBox {
    /// Everything.
    pub const WORLD: BBox = BBox { min_lon: -180.0, min_lat: -90.0, max_lon: 180.0, max_lat: 90.0 };

    /// Parses `min_lon,min_lat,max_lon,max_lat`: four finite numbers, minimum below maximum,
    /// inside the Web Mercator range. The error says which rule failed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(format!(
                "`{text}` is not min_lon,min_lat,max_lon,max_lat ({} numbers)",
                parts.len()
            ));
        }
        let mut v = [0.0f64; 4];
        for (x, p) in v.iter_mut().zip(&parts) {
            *x = p.parse().map_err(|_| format!("`{p}` is not a number"))?;
            if !x.is_finite() {
                return Err(format!("`{p}` is not a finite number"));
            }
        }
        let b = Self { min_lon: v[0], min_lat: v[1], max_lon: v[2], max_lat: v[3] };
        if b.min_lon >= b.max_lon || b.min_lat >= b.max_lat {
            return Err(format!(
                "`{text}` is inverted or empty (each minimum must be below its maximum)"
            ));
        }
        for (lat, lon) in [(b.min_lat, b.min_lon), (b.max_lat, b.max_lon)] {
            validate_lat_lon(lat, lon).map_err(|e| e.to_string())?;
        }
        Ok(b)
    }

    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        (self.min_lat..=self.max_lat).contains(&lat) && (self.min_lon..=self.max_lon).contains(&lon)
    }

    /// How many tiles cover the box at zooms `lo..=hi` (counted, not listed: a caller checks
    /// a bound before it asks for [`BBox::tiles`]).
    pub fn tile_count(&self, lo: u8, hi: u8) -> Result<u64, CoreError> {
        let mut n = 0u64;
        for z in lo..=hi {
            let (a, b) = self.corner_tiles(z)?;
            n += u64::from(b.x - a.x + 1) * u64::from(b.y - a.y + 1);
        }
        Ok(n)
    }

    /// Every tile of the box at zooms `lo..=hi`, zoom by zoom, row by row.
    pub fn tiles(&self, lo: u8, hi: u8) -> Result<Vec<TileId>, CoreError> {
        let mut out = Vec::new();
        for z in lo..=hi {
            let (a, b) = self.corner_tiles(z)?;
            for y in a.y..=b.y {
                for x in a.x..=b.x {
                    out.push(TileId { z, x, y });
                }
            }
        }
        Ok(out)
    }

    /// The north-west and south-east tiles at zoom `z`.
    fn corner_tiles(&self, z: u8) -> Result<(TileId, TileId), CoreError> {
        Ok((
            lat_lon_to_tile(self.max_lat, self.min_lon, z)?,
            lat_lon_to_tile(self.min_lat, self.max_lon, z)?,
        ))
    }

    /// The area in km² (on the sphere).
    pub fn area_km2(&self) -> f64 {
        let mid = (self.min_lat + self.max_lat) / 2.0;
        let h = distance_m(self.min_lat, self.min_lon, self.max_lat, self.min_lon);
        let w = distance_m(mid, self.min_lon, mid, self.max_lon);
        h * w / 1e6
    }
}

/// Great-circle distance in metres between two WGS84 points (haversine, mean Earth radius).
pub fn distance_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const R: f64 = 6_371_008.8;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * R * a.sqrt().asin()
}

/// Checks that `lat`/`lon` are finite WGS84 degrees inside the Web Mercator range.
pub fn validate_lat_lon(lat: f64, lon: f64) -> Result<(), CoreError> {
    if !lat.is_finite() || !(-MAX_LATITUDE..=MAX_LATITUDE).contains(&lat) {
        return Err(CoreError::LatitudeOutOfRange(lat));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(CoreError::LongitudeOutOfRange(lon));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bboxes_parse_and_refuse_with_the_reason() {
        let b = BBox::parse("24.93, 60.16,24.95,60.17").unwrap();
        assert!(b.contains(60.165, 24.94) && !b.contains(60.18, 24.94));
        let a = b.area_km2();
        assert!((a - 1.11 * 1.11).abs() < 0.1, "{a}");
        assert!(BBox::parse("24.95,60.16,24.93,60.17").unwrap_err().contains("inverted"));
        assert!(BBox::parse("1,2,3").unwrap_err().contains("3 numbers"));
        assert!(BBox::parse("a,2,3,4").unwrap_err().contains("`a`"));
        assert!(BBox::parse("NaN,2,3,4").unwrap_err().contains("finite"));
        assert!(BBox::parse("0,89,1,89.5").unwrap_err().contains("latitude"));
        assert!((distance_m(60.17, 24.94, 60.17001, 24.94) - 1.11).abs() < 0.01);
    }

    /// The listed tiles are the counted ones, each tile once, and they cover the box's corners.
    #[test]
    fn a_box_lists_the_tiles_it_counts() {
        let b = BBox::parse("24.940,60.165,24.955,60.172").unwrap();
        let tiles = b.tiles(15, 19).unwrap();
        assert_eq!(tiles.len() as u64, b.tile_count(15, 19).unwrap());
        let unique: std::collections::BTreeSet<_> = tiles.iter().collect();
        assert_eq!(unique.len(), tiles.len());
        for z in 15..=19 {
            for (lat, lon) in [(b.min_lat, b.min_lon), (b.max_lat, b.max_lon)] {
                assert!(tiles.contains(&lat_lon_to_tile(lat, lon, z).unwrap()), "z{z}");
            }
        }
        // One more zoom level is about four times the tiles.
        let (a, c) = (b.tile_count(18, 18).unwrap(), b.tile_count(19, 19).unwrap());
        assert!(c >= 3 * a && c <= 5 * a, "{a} {c}");
        assert!(b.tiles(25, 25).is_err());
    }

    #[test]
    fn known_tile_of_helsinki_cathedral() {
        // Helsinki Cathedral, 60.1705 N 24.9522 E: OSM tile z=19 x=298483 y=151755 (computed independently
        // with the OSM wiki formula in Python).
        let t = lat_lon_to_tile(60.1705, 24.9522, 19).unwrap();
        assert_eq!((t.x, t.y), (298_483, 151_755));
        let z0 = lat_lon_to_tile(0.0, 0.0, 0).unwrap();
        assert_eq!((z0.x, z0.y), (0, 0));
    }

    #[test]
    fn pixel_round_trip() {
        for &(lat, lon) in &[(60.17, 24.94), (-33.86, 151.2), (0.0, 0.0), (84.9, -179.9)] {
            let (x, y) = lat_lon_to_pixel(lat, lon, 17).unwrap();
            let (la, lo) = pixel_to_lat_lon(x, y, 17).unwrap();
            assert!((la - lat).abs() < 1e-9 && (lo - lon).abs() < 1e-9, "{lat},{lon}");
        }
    }

    #[test]
    fn tile_bounds_contain_the_point() {
        let t = lat_lon_to_tile(60.1705, 24.9522, 19).unwrap();
        let (w, s, e, n) = tile_bounds(t).unwrap();
        assert!(w <= 24.9522 && 24.9522 < e && s < 60.1705 && 60.1705 <= n);
    }

    #[test]
    fn window_covers_with_the_right_tiles_and_offsets() {
        let w = Window::centered(60.1705, 24.9522, 19, 224).unwrap();
        let p = w.placements();
        assert!((1..=4).contains(&p.len()));
        // every window pixel is covered by exactly one placement
        for (wx, wy) in [(0i64, 0i64), (223, 0), (0, 223), (223, 223), (112, 112)] {
            let hits = p
                .iter()
                .filter(|q| {
                    (q.dest_x..q.dest_x + 256).contains(&wx)
                        && (q.dest_y..q.dest_y + 256).contains(&wy)
                })
                .count();
            assert_eq!(hits, 1, "pixel {wx},{wy}");
        }
        // the centre pixel lies in the point's own tile
        let own = lat_lon_to_tile(60.1705, 24.9522, 19).unwrap();
        let q = p.iter().find(|q| q.tile == own).unwrap();
        assert!(
            (q.dest_x..q.dest_x + 256).contains(&112) && (q.dest_y..q.dest_y + 256).contains(&112)
        );
    }

    #[test]
    fn window_wraps_at_the_antimeridian_and_skips_the_poles() {
        let w = Window::centered(0.0, 179.9999, 2, 224).unwrap();
        let xs: Vec<u32> = w.placements().iter().map(|p| p.tile.x).collect();
        assert!(xs.contains(&3) && xs.contains(&0), "{xs:?}");
        let w = Window::centered(MAX_LATITUDE, 0.0, 3, 224).unwrap();
        assert!(w.placements().iter().all(|p| p.tile.y == 0));
    }

    #[test]
    fn stitch_places_pixels_exactly() {
        let w = Window { zoom: 1, size: 4, left: 254, top: 254 };
        let p = w.placements();
        assert_eq!(p.len(), 4);
        let tiles: Vec<_> = p
            .iter()
            .map(|q| {
                let shade = (q.tile.x * 100 + q.tile.y * 50) as u8;
                (*q, RgbaImage::from_pixel(256, 256, image::Rgba([shade, 0, 0, 255])))
            })
            .collect();
        let img = w.stitch(&tiles, [1, 2, 3]);
        assert_eq!(img.get_pixel(0, 0)[0], 0); // tile (0,0)
        assert_eq!(img.get_pixel(3, 0)[0], 100); // tile (1,0)
        assert_eq!(img.get_pixel(0, 3)[0], 50); // tile (0,1)
        assert_eq!(img.get_pixel(3, 3)[0], 150); // tile (1,1)
        let blank = w.stitch::<RgbaImage>(&[], [1, 2, 3]);
        assert_eq!(blank.get_pixel(2, 2).0, [1, 2, 3]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(lat_lon_to_pixel(91.0, 0.0, 3).is_err());
        assert!(lat_lon_to_tile(0.0, 0.0, 30).is_err());
    }

    #[test]
    fn templates_expand() {
        let t = TileId { z: 19, x: 291_432, y: 148_244 };
        assert_eq!(
            expand_template("https://{s}.tile.example/{z}/{x}/{y}{r}.png", t),
            "https://c.tile.example/19/291432/148244.png"
        );
        assert_eq!(
            expand_template("/tiles/{z}/{x}/{y}.png", TileId { z: 1, x: 1, y: 0 }),
            "/tiles/1/1/0.png"
        );
    }
}
