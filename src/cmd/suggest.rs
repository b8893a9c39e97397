//! `accessatlas suggest`: suggestions a mapper can review, for an area (the pipeline is
//! `crate::suggestions`, shared with `GET /api/suggest`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::Args;
use model_core::infer::Predictor;

use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{OsmMap, mapped_features};
use crate::run::read_bundle;
use crate::suggestions::{MAX_AREA_KM2, area, suggest, to_csv, to_geojson, to_maproulette};
use crate::tiles::Politeness;

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
    /// Lowest confidence of a suggestion (default: the model's, which `evaluate` chose on
    /// the validation cells; 0.5 for a model without one).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// `csv` (lat,lon,type,confidence,candidate,p_<type>...), `geojson`, or `maproulette` (a
    /// MapRoulette challenge: line-by-line GeoJSON, one task per suggestion with the type's
    /// default OSM tags, for mappers to review one by one).
    #[arg(long, default_value = "csv", value_parser = ["csv", "geojson", "maproulette"])]
    pub format: String,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: SuggestArgs) -> Result<()> {
    let bbox = area(&args.bbox, MAX_AREA_KM2).map_err(|e| anyhow::anyhow!("--bbox: {e}"))?;
    if let Some(t) = args.threshold {
        model_core::infer::suggest::check_threshold(t)
            .map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
    }
    let (manifest, weights) = read_bundle(&args.model).with_context(|| {
        format!("--model {} (a bundle, as `export` writes)", args.model.display())
    })?;
    let predictor = Predictor::from_bundle(&manifest, &weights, &Device::flex())?;
    let (map, _) = OsmMap::open(args.osm.as_deref())?;
    let mapped = mapped_features(&map, &Rules::default_rules(&manifest.config.labels)?);
    let politeness = Politeness {
        token: None,
        cache_dir: std::env::temp_dir().join("accessatlas-tile-cache"),
        retries: 2,
        backoff: std::time::Duration::from_millis(500),
        timeout: std::time::Duration::from_secs(30),
    };
    let source = crate::tiles::open(&manifest.tile_source, &map, politeness)?;
    let s = suggest(
        &predictor,
        &manifest.tile_source,
        source.as_ref(),
        &map,
        &mapped,
        &bbox,
        args.threshold.unwrap_or(predictor.default_threshold()),
    )
    .map_err(|e| anyhow::anyhow!("--bbox {}: {e:#}", args.bbox))?;
    if s.outside_trained_area > 0 {
        let area = predictor.scaler.describe_areas();
        tracing::warn!(
            "{} of {} candidates lie outside the area the model was trained on ({area}): there \
             it ignores position and its suggestions are guesses until it is adapted to the area \
             (train --init on an extract of it)",
            s.outside_trained_area,
            s.candidates
        );
    }
    let text = match args.format.as_str() {
        "geojson" => serde_json::to_string_pretty(&to_geojson(&s))? + "\n",
        "maproulette" => to_maproulette(&s)?,
        _ => to_csv(&s)?,
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
