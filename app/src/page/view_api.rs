//! What the server knows about the visible map: its bbox, the features OpenStreetMap maps
//! there (`/api/features`) and the candidate points of its geometry (`/api/candidates`). Used
//! by the scan, "Learn this area", the tag form and the map's "already mapped" layer.

use leptos::prelude::*;

use super::Ctx;
use crate::protocol::ScanPoint;

/// The visible map as the API's `bbox` (`min_lon,min_lat,max_lon,max_lat`) and as
/// `[south, west, north, east]`.
pub fn view_bbox(ctx: &Ctx) -> Option<(String, [f64; 4])> {
    Some(bounds_bbox(&ctx.map.with_value(|m| m.as_ref().map(|m| m.get_bounds()))?))
}

/// Map bounds as [`view_bbox`] gives them. The "already mapped" layer asks `/api/features` with
/// this text too, so a view saved for offline is found again under the same address.
pub fn bounds_bbox(bounds: &leptos_leaflet::leaflet::LatLngBounds) -> (String, [f64; 4]) {
    let (sw, ne) = (bounds.get_south_west(), bounds.get_north_east());
    let (s, w, n, e) = (sw.lat(), sw.lng(), ne.lat(), ne.lng());
    (format!("{w:.6},{s:.6},{e:.6},{n:.6}"), [s, w, n, e])
}

/// A GeoJSON answer's features, or the error it names.
fn features(v: &serde_json::Value) -> Result<Vec<serde_json::Value>, String> {
    v["features"]
        .as_array()
        .cloned()
        .ok_or_else(|| v["error"].as_str().map_or("no answer".to_string(), str::to_string))
}

/// A GeoJSON point feature's `(lat, lon)`.
fn point(x: &serde_json::Value) -> Option<(f64, f64)> {
    let at = &x["geometry"]["coordinates"];
    Some((at[1].as_f64()?, at[0].as_f64()?))
}

/// `/api/features`' answer as the features it lists.
fn mapped_features(
    v: &serde_json::Value,
) -> Result<Vec<model_core::data::candidates::MappedFeature>, String> {
    Ok(features(v)?
        .iter()
        .filter_map(|x| {
            let (lat, lon) = point(x)?;
            let p = &x["properties"];
            // A way's whole line, when the server sends it ([lon, lat] pairs).
            let line = p["line"]
                .as_array()
                .map(|pts| {
                    pts.iter()
                        .filter_map(|q| Some([q.get(1)?.as_f64()?, q.get(0)?.as_f64()?]))
                        .collect()
                })
                .unwrap_or_default();
            Some(model_core::data::candidates::MappedFeature {
                id: format!("{}/{}", p["osm_type"].as_str()?, p["osm_id"].as_i64()?),
                label: p["type"].as_str()?.to_string(),
                lat,
                lon,
                line,
            })
        })
        .collect())
}

/// What the server's extract already maps in `bbox` (`/api/features`).
pub async fn features_in(
    bbox: &str,
) -> Result<Vec<model_core::data::candidates::MappedFeature>, String> {
    mapped_features(&get_json(&features_url(bbox)).await?)
}

/// `/api/features`' address for `bbox` (what "Save this area for offline" keeps).
pub fn features_url(bbox: &str) -> String {
    format!("{}api/features?bbox={bbox}", super::base_url())
}

/// `/api/candidates`' address for `bbox`.
pub fn candidates_url(bbox: &str) -> String {
    format!("{}api/candidates?bbox={bbox}", super::base_url())
}

/// A JSON answer of the server.
async fn get_json(url: &str) -> Result<serde_json::Value, String> {
    let text = crate::net::begin(url).text().await?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The candidate points of the map's geometry in `bbox` (`/api/candidates`), with their kinds.
pub async fn candidates_in(bbox: &str) -> Result<Vec<ScanPoint>, String> {
    let c = get_json(&candidates_url(bbox)).await?;
    Ok(features(&c)?
        .iter()
        .filter_map(|x| {
            let kinds = x["properties"]["candidate"].as_str().unwrap_or("");
            let (lat, lon) = point(x)?;
            Some(ScanPoint { lat, lon, reasons: kinds.to_string() })
        })
        .collect())
}
