//! What the server knows about the visible map: its bbox, the features OpenStreetMap maps
//! there (`/api/features`) and the candidate points of its geometry (`/api/candidates`). Used
//! by the scan, "Learn this area", the tag form and the map's "already mapped" layer.

use leptos::prelude::*;

use super::Ctx;
use crate::protocol::ScanPoint;
use model_core::wire::{CandidateProperties, Feature, FeatureCollection, MappedProperties};

/// The visible map as the API's `bbox` (`min_lon,min_lat,max_lon,max_lat`) and as
/// `[south, west, north, east]`.
pub fn view_bbox(ctx: &Ctx) -> Option<(String, [f64; 4])> {
    Some(bounds_bbox(&ctx.map.leaflet.with_value(|m| m.as_ref().map(|m| m.get_bounds()))?))
}

/// Map bounds as [`view_bbox`] gives them. The "already mapped" layer asks `/api/features` with
/// this text too, so a view saved for offline is found again under the same address.
pub fn bounds_bbox(bounds: &leptos_leaflet::leaflet::LatLngBounds) -> (String, [f64; 4]) {
    let (sw, ne) = (bounds.get_south_west(), bounds.get_north_east());
    let (s, w, n, e) = (sw.lat(), sw.lng(), ne.lat(), ne.lng());
    (format!("{w:.6},{s:.6},{e:.6},{n:.6}"), [s, w, n, e])
}

/// What the server's extract already maps in `bbox` (`/api/features`).
pub async fn features_in(
    bbox: &str,
) -> Result<Vec<model_core::data::candidates::MappedFeature>, String> {
    let found: FeatureCollection<MappedProperties> = get_json(&features_url(bbox)).await?;
    Ok(found.features.iter().map(Feature::to_mapped).collect())
}

/// `/api/features`' address for `bbox` (what "Save this area for offline" keeps).
pub fn features_url(bbox: &str) -> String {
    format!("{}api/features?bbox={bbox}", super::base_url())
}

/// `/api/candidates`' address for `bbox`.
pub fn candidates_url(bbox: &str) -> String {
    format!("{}api/candidates?bbox={bbox}", super::base_url())
}

/// A JSON answer of the server as the wire type `T`, or the error the server named.
async fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, String> {
    let text = crate::net::begin(url).text().await?;
    model_core::wire::read_answer(&text)
}

/// The candidate points of the map's geometry in `bbox` (`/api/candidates`), with their kinds.
pub async fn candidates_in(bbox: &str) -> Result<Vec<ScanPoint>, String> {
    let found: FeatureCollection<CandidateProperties> = get_json(&candidates_url(bbox)).await?;
    Ok(found
        .features
        .into_iter()
        .map(|x| {
            let (lat, lon) = x.lat_lon();
            ScanPoint { lat, lon, reasons: x.properties.candidate }
        })
        .collect())
}
