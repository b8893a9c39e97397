//! `accessatlas suggest`: suggestions a mapper can review, for an area. Candidate points come
//! from the map's own geometry (model-core's `data::candidates`: kerbs, entrances, path nodes,
//! stations, and what OSM marks but leaves untagged), the model scores each from its own tile
//! source, and what passes the threshold and is not already mapped (a feature of the predicted
//! type within 5 m) is listed, most confident first.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;
use model_core::Prediction;
use model_core::data::candidates::{Candidate, MappedFeature, candidates, nearest_mapped};
use model_core::data::tile::{BBox, TileId};

use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME, OsmMap, geometry_in, labelled_features};
use crate::render::style;
use crate::run::read_bundle;
use crate::tiles::{Politeness, fetch_all};

/// A suggestion this close to a mapped feature of its type is not made.
pub const ALREADY_MAPPED_M: f64 = 5.0;
/// The largest area, km².
pub const MAX_AREA_KM2: f64 = 25.0;

#[derive(Args, Debug)]
pub struct SuggestArgs {
    /// The model bundle (`export` writes one; default: the shipped model).
    #[arg(long, default_value = "assets/model")]
    pub model: PathBuf,
    /// The area: min_lon,min_lat,max_lon,max_lat (WGS84 degrees).
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: String,
    /// The OSM extract: its geometry gives the candidates, its features what is mapped
    /// (default: the bundled one).
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Lowest confidence of a suggestion.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// `csv` (lat,lon,type,confidence,candidate,p_<type>...) or `geojson`.
    #[arg(long, default_value = "csv", value_parser = ["csv", "geojson"])]
    pub format: String,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One suggestion.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub candidate: Candidate,
    pub prediction: Prediction,
}

/// What `suggest` found: suggestions (most confident first), how many candidates there were
/// and how many were skipped as already mapped.
pub struct Suggested {
    pub suggestions: Vec<Suggestion>,
    pub candidates: usize,
    pub already_mapped: usize,
    pub labels: Vec<String>,
}

pub fn run(args: SuggestArgs) -> Result<()> {
    let s = suggest(&args)?;
    let text = match args.format.as_str() {
        "geojson" => geojson(&s),
        _ => csv(&s)?,
    };
    match &args.out {
        Some(p) => write_atomic(p, text.as_bytes())?,
        None => print!("{text}"),
    }
    eprintln!(
        "{} suggestion(s) from {} candidate(s); {} already mapped",
        s.suggestions.len(),
        s.candidates,
        s.already_mapped
    );
    Ok(())
}

pub fn suggest(args: &SuggestArgs) -> Result<Suggested> {
    let bbox = BBox::parse(&args.bbox).map_err(|e| anyhow::anyhow!("--bbox: {e}"))?;
    let km2 = bbox.area_km2();
    if km2 > MAX_AREA_KM2 {
        bail!("--bbox: the area is {km2:.1} km², over the limit of {MAX_AREA_KM2} km²");
    }
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold: {} is not between 0 and 1", args.threshold);
    }
    let (manifest, weights) = read_bundle(&args.model).with_context(|| {
        format!("--model {} (a bundle, as `export` writes)", args.model.display())
    })?;
    let device = Device::flex();
    let predictor = model_core::infer::Predictor::from_bundle(&manifest, &weights, &device)?;
    let map = match &args.osm {
        Some(p) => OsmMap::read(p)?,
        None => OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME)?,
    };
    let found: Vec<Candidate> = candidates(&geometry_in(&map, &bbox))
        .into_iter()
        .filter(|c| bbox.contains(c.lat, c.lon))
        .collect();
    if map.coords.values().all(|&(la, lo)| !bbox.contains(la, lo)) {
        bail!("--bbox: the extract has nothing in {}", args.bbox);
    }
    let labels = manifest.config.labels.names().to_vec();
    let rules = Rules::default_rules(&manifest.config.labels)?;
    let mapped: Vec<MappedFeature> = labelled_features(&map, &rules)
        .into_iter()
        .map(|f| MappedFeature { id: f.id, label: f.label, lat: f.lat, lon: f.lon })
        .collect();

    // The model's own tiles around every candidate.
    let spec = &manifest.tile_source;
    let politeness = Politeness {
        token: None,
        cache_dir: std::env::temp_dir().join("accessatlas-tile-cache"),
        retries: 2,
        backoff: std::time::Duration::from_millis(500),
        timeout: std::time::Duration::from_secs(30),
    };
    let source = crate::tiles::open(spec, &map, politeness)?;
    let windows = found
        .iter()
        .map(|c| predictor.window(spec, c.lat, c.lon))
        .collect::<Result<Vec<_>, _>>()?;
    let needed: std::collections::BTreeSet<TileId> =
        windows.iter().flat_map(|w| w.placements()).map(|p| p.tile).collect();
    let needed: Vec<TileId> = needed.into_iter().collect();
    let tiles = fetch_all(source.as_ref(), &needed, "tiles");

    let (mut suggestions, mut already_mapped) = (Vec::new(), 0);
    let pairs: Vec<(&Candidate, &model_core::data::tile::Window)> =
        found.iter().zip(&windows).collect();
    for chunk in pairs.chunks(16) {
        let mut inputs = Vec::with_capacity(chunk.len());
        for (c, w) in chunk {
            let mut parts = Vec::new();
            for p in w.placements() {
                match &tiles[&p.tile] {
                    Ok((img, _)) => parts.push((p, img.clone())),
                    Err(e) => bail!("tile {}/{}/{}: {e:#}", p.tile.z, p.tile.x, p.tile.y),
                }
            }
            let img = w.stitch(&parts, style::BACKGROUND);
            inputs.push(predictor.input(&img, c.lat, c.lon, "osm")?);
        }
        for ((c, _), p) in chunk.iter().zip(predictor.predict_batch(&inputs)?) {
            if p.confidence < args.threshold || p.label == "none" {
                continue;
            }
            if nearest_mapped(&mapped, &p.label, c.lat, c.lon, ALREADY_MAPPED_M).is_some() {
                already_mapped += 1;
                continue;
            }
            suggestions.push(Suggestion { candidate: (*c).clone(), prediction: p });
        }
    }
    suggestions.sort_by(|a, b| {
        b.prediction.confidence.total_cmp(&a.prediction.confidence).then(
            a.candidate
                .lat
                .total_cmp(&b.candidate.lat)
                .then(a.candidate.lon.total_cmp(&b.candidate.lon)),
        )
    });
    Ok(Suggested { suggestions, candidates: found.len(), already_mapped, labels })
}

fn kinds(c: &Candidate) -> String {
    c.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("+")
}

fn csv(s: &Suggested) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> =
        ["lat", "lon", "type", "confidence", "candidate"].map(String::from).to_vec();
    header.extend(s.labels.iter().map(|l| format!("p_{l}")));
    w.write_record(&header)?;
    for g in &s.suggestions {
        let mut row = vec![
            format!("{:.7}", g.candidate.lat),
            format!("{:.7}", g.candidate.lon),
            g.prediction.label.clone(),
            format!("{:.6}", g.prediction.confidence),
            kinds(&g.candidate),
        ];
        row.extend(s.labels.iter().map(|l| {
            let p = g.prediction.probabilities.0.iter().find(|(k, _)| k == l).map(|(_, v)| *v);
            format!("{:.6}", p.unwrap_or(0.0))
        }));
        w.write_record(&row)?;
    }
    Ok(String::from_utf8(w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?)
}

fn geojson(s: &Suggested) -> String {
    let features: Vec<serde_json::Value> = s
        .suggestions
        .iter()
        .map(|g| {
            serde_json::json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [g.candidate.lon, g.candidate.lat]},
                "properties": {
                    "type": g.prediction.label,
                    "confidence": g.prediction.confidence,
                    "candidate": kinds(&g.candidate),
                    "probabilities": g.prediction.probabilities,
                },
            })
        })
        .collect();
    serde_json::to_string_pretty(
        &serde_json::json!({"type": "FeatureCollection", "features": features}),
    )
    .expect("plain JSON values")
        + "\n"
}
