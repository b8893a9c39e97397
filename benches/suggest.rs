//! Suggestion benchmark (run by `cargo xtask bench`, never as a test): the suggestion pipeline
//! `accessatlas suggest` and `GET /api/suggest` run (`accessatlas::suggestions::suggest`), with
//! the shipped bundle on the CPU (Burn `flex`), over a square area of the bundled extract.
//!
//! `cargo bench --bench suggest -- [--side-m 500] [--lat 60.1690] [--lon 24.9420]`. One JSON
//! line: candidates, suggestions, seconds (candidates, tiles and model together), per second.

mod util;
use util::arg;

use std::time::Instant;

use accessatlas::osm::rules::Rules;
use accessatlas::osm::{OsmMap, mapped_features};
use accessatlas::run::read_bundle;
use accessatlas::suggestions::suggest;
use accessatlas::tiles::{Politeness, open};
use burn::tensor::Device;
use model_core::data::tile::BBox;
use model_core::infer::Predictor;
use serde_json::json;

fn main() {
    let side: f64 = arg("--side-m", 500.0);
    let (lat, lon): (f64, f64) = (arg("--lat", 60.1690), arg("--lon", 24.9420));
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/model"));
    let (manifest, weights) = read_bundle(dir).unwrap();
    let predictor = Predictor::from_bundle(&manifest, &weights, &Device::flex()).unwrap();
    let (map, _) = OsmMap::open(None).unwrap();
    let mapped = mapped_features(&map, &Rules::default_rules(&manifest.config.labels).unwrap());
    let half_lat = side / 2.0 / 111_195.0;
    let half_lon = half_lat / lat.to_radians().cos();
    let bbox = BBox {
        min_lon: lon - half_lon,
        min_lat: lat - half_lat,
        max_lon: lon + half_lon,
        max_lat: lat + half_lat,
    };
    let politeness = Politeness {
        token: None,
        cache_dir: std::env::temp_dir().join("accessatlas-bench-tiles"),
        retries: 0,
        backoff: std::time::Duration::from_millis(1),
        timeout: std::time::Duration::from_secs(5),
    };
    let source = open(&manifest.tile_source, &map, politeness).unwrap();
    let t = Instant::now();
    // At the model's own threshold there, as `accessatlas suggest` runs without one.
    let (mid_lat, mid_lon) =
        ((bbox.min_lat + bbox.max_lat) / 2.0, (bbox.min_lon + bbox.max_lon) / 2.0);
    let threshold = predictor.threshold_at(mid_lat, mid_lon, None);
    let s = suggest(&predictor, &manifest.tile_source, source.as_ref(), &map, &mapped, &bbox, None)
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "bench": "suggest_cli",
            "side_m": side,
            "area_km2": bbox.area_km2(),
            "candidates": s.candidates,
            "suggestions": s.suggestions.len(),
            "already_mapped": s.already_mapped,
            "threshold": threshold,
            "seconds": secs,
            "candidates_per_s": s.candidates as f64 / secs,
            "suggestions_per_s": s.suggestions.len() as f64 / secs,
            "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    );
}
