//! `accessatlas suggest`: suggestions a mapper can review, for an area (the pipeline is
//! `crate::suggestions`, shared with `GET /api/suggest`). A run goes cell by cell; with
//! `--out` it records each finished cell beside the output (`crate::cell_log`), so the same
//! command after a stop goes on where it stopped.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::Args;
use model_core::infer::Predictor;

use crate::cell_log::{CellLog, Found, RunKey, partial_path};
use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{OsmMap, mapped_features};
use crate::run::read_bundle;
use crate::suggestions::{
    CELL_ZOOM, MAX_RUN_AREA_KM2, Run, Suggested, area, candidate_bar, to_csv, to_geojson,
    to_maproulette,
};
use crate::tiles::Politeness;

#[derive(Args, Debug)]
pub struct SuggestArgs {
    /// The model bundle (`export` writes one; default: the shipped model).
    #[arg(long, default_value = "assets/model")]
    pub model: PathBuf,
    /// The area: min_lon,min_lat,max_lon,max_lat (WGS84 degrees), up to 1,000 km².
    #[arg(long, allow_hyphen_values = true)]
    pub bbox: String,
    /// The OSM extract: its geometry gives the candidates, its features what is mapped
    /// (default: the bundled one).
    #[arg(long)]
    pub osm: Option<PathBuf>,
    /// Lowest confidence of a suggestion (default: the model's own, which `evaluate` chose on
    /// the validation cells: inside a region the model was trained on, that region's; elsewhere
    /// the one of all its regions; 0.5 for a model without one).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// `csv` (lat,lon,type,confidence,candidate,p_<type>...), `geojson`, or `maproulette` (a
    /// MapRoulette challenge: line-by-line GeoJSON, one task per suggestion with the type's
    /// default OSM tags, for mappers to review one by one).
    #[arg(long, default_value = "csv", value_parser = ["csv", "geojson", "maproulette"])]
    pub format: String,
    /// Output file (default: standard output). Written whole at the end; meanwhile
    /// `FILE.partial` records each finished cell, and the same command after a stop goes on
    /// from there.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The zoom of the cells the run goes by (the unit that a stopped run resumes from):
    /// 16 is about 300 m across at 60°N.
    #[arg(long, default_value_t = CELL_ZOOM, value_parser = clap::value_parser!(u8).range(12..=19))]
    pub cell_zoom: u8,
}

pub fn run(args: SuggestArgs) -> Result<()> {
    let bbox = area(&args.bbox, MAX_RUN_AREA_KM2).map_err(|e| anyhow::anyhow!("--bbox: {e}"))?;
    if let Some(t) = args.threshold {
        model_core::infer::suggest::check_threshold(t)
            .map_err(|e| anyhow::anyhow!("--threshold: {e}"))?;
    }
    let (manifest, weights) = read_bundle(&args.model).with_context(|| {
        format!("--model {} (a bundle, as `export` writes)", args.model.display())
    })?;
    let predictor = Predictor::from_bundle(&manifest, &weights, &Device::flex())?;
    let (map, osm_name) = OsmMap::open(args.osm.as_deref())?;
    let mapped = mapped_features(&map, &Rules::default_rules(&manifest.config.labels)?);
    let politeness = Politeness {
        token: None,
        cache_dir: std::env::temp_dir().join("accessatlas-tile-cache"),
        retries: 2,
        backoff: std::time::Duration::from_millis(500),
        timeout: std::time::Duration::from_secs(30),
    };
    let source = crate::tiles::open(&manifest.tile_source, &map, politeness)?;
    // The user's threshold, else the model's own at each place (its region's, else overall).
    let threshold = args.threshold;
    let run = Run {
        predictor: &predictor,
        spec: &manifest.tile_source,
        source: source.as_ref(),
        map: &map,
        mapped: &mapped,
        threshold,
    };
    let mut cells = run
        .cells(&bbox, args.cell_zoom)
        .map_err(|e| anyhow::anyhow!("--bbox {}: {e:#}", args.bbox))?;
    let all_cells = cells.len();
    let mut finished = Vec::new();
    let mut log = match &args.out {
        None => None,
        Some(out) => {
            let key = RunKey {
                bbox: format!(
                    "{},{},{},{}",
                    bbox.min_lon, bbox.min_lat, bbox.max_lon, bbox.max_lat
                ),
                threshold,
                cell_zoom: args.cell_zoom,
                model: crate::pretrained::sha256_hex(
                    &[manifest.to_json().as_bytes(), &weights].concat(),
                ),
                osm: format!("{osm_name} ({} nodes)", map.coords.len()),
            };
            crate::fsutil::sweep_stale_temps(&crate::fsutil::folder_of(out), false);
            let (log, found) = CellLog::open(&partial_path(out), &key)?;
            let at = log.path().display().to_string();
            match found {
                Found::Nothing => {}
                Found::Resumed { cells: done, cut_off } => {
                    if cut_off {
                        eprintln!(
                            "{at}: its last cell was cut off by the stop; that cell runs again"
                        );
                    }
                    for c in done {
                        if cells.remove(&c.cell).is_some() {
                            finished.push(c);
                        }
                    }
                    eprintln!(
                        "resuming from {at}: {} of {all_cells} cells were done already",
                        finished.len()
                    );
                }
                Found::OtherRun(d) => {
                    eprintln!("{at} records a run with another {}: starting over", d.join(", "))
                }
                Found::Unreadable(why) => {
                    eprintln!("{at} is not a run's record ({why}): starting over")
                }
            }
            Some(log)
        }
    };
    let bar = candidate_bar(cells.values().map(Vec::len).sum::<usize>() as u64);
    let scored = run.each_cell(cells, &bar, |c| {
        if let Some(log) = log.as_mut() {
            log.append(&c)?;
        }
        finished.push(c);
        Ok(())
    });
    bar.finish_and_clear();
    if let Err(e) = scored {
        return Err(match &log {
            Some(log) => e.context(format!(
                "stopped after {} of {all_cells} cells; they are kept in {}: the same command \
                 goes on from there",
                finished.len(),
                log.path().display()
            )),
            None => e,
        });
    }
    let s = Suggested::from_cells(finished, predictor.config.labels.names().to_vec());
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
    if let Some(log) = log {
        log.finish()?;
    }
    eprintln!(
        "{} suggestion(s) from {} candidate(s) in {all_cells} cell(s); {} already mapped",
        s.suggestions.len(),
        s.candidates,
        s.already_mapped
    );
    Ok(())
}
