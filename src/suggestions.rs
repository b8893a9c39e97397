//! Suggestions for an area, one pipeline for `accessatlas suggest` and `GET /api/suggest`:
//! candidate points from the map's geometry (model-core's `data::candidates`), the model's
//! prediction at each from its own tile source, then the threshold, nothing already mapped (a
//! feature of the predicted type within [`ALREADY_MAPPED_M`]), most confident first.
//!
//! The work goes cell by cell ([`suggest_by_cell`]: the Web Mercator tiles at a cell zoom,
//! [`CELL_ZOOM`] by default), so a long run reports each cell as it finishes and can resume
//! after a stop (`crate::suggest_run`); a request is the same run with nothing done yet.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use indicatif::ProgressBar;
use model_core::Prediction;
use model_core::data::candidates::{Candidate, MappedFeature, candidates};
use model_core::data::tile::{BBox, TileId, Window, lat_lon_to_tile};
use model_core::infer::Predictor;
use model_core::infer::bundle::TileSourceSpec;
use model_core::infer::suggest::{Verdict, judge, most_confident_first};
use model_core::wire::{Feature, SuggestionProperties, Suggestions};
use rayon::prelude::*;

use crate::osm::{OsmMap, geometry_in};
use crate::render::style;
use crate::tiles::{Fetched, TileSource, fetch_all, fetch_with};

pub use model_core::infer::suggest::{ALREADY_MAPPED_M, MAX_AREA_KM2};

/// The zoom of the cells a run goes by: a z16 tile is about 300 m across at 60°N, a few
/// hundred to a few thousand candidates in a city centre.
pub const CELL_ZOOM: u8 = 16;

/// The largest area one `accessatlas suggest` run may cover, km²: a large city. It goes cell
/// by cell and resumes after a stop, but holds the area's candidates in memory (a few
/// thousand per km² in a city centre). One request (the API's, the page's) stays under
/// [`MAX_AREA_KM2`].
pub const MAX_RUN_AREA_KM2: f64 = 1_000.0;

/// One suggestion.
#[derive(Debug, Clone)]
pub struct Suggestion {
    pub candidate: Candidate,
    pub prediction: Prediction,
}

/// What a run found: suggestions (most confident first), how many candidates there were and
/// how many were skipped as already mapped.
pub struct Suggested {
    pub suggestions: Vec<Suggestion>,
    pub candidates: usize,
    pub already_mapped: usize,
    /// Candidates outside the area the model was trained on (their predictions ignore
    /// position: guesses until the model is adapted to the area).
    pub outside_trained_area: usize,
    pub labels: Vec<String>,
}

/// The pipeline on `map` in `bbox`, with `source` the model's own tile source (`spec`), at
/// the user's `threshold`, else the model's own at each place ([`Predictor::threshold_at`]).
pub fn suggest(
    predictor: &Predictor,
    spec: &TileSourceSpec,
    source: &dyn TileSource,
    map: &OsmMap,
    mapped: &[MappedFeature],
    bbox: &BBox,
    threshold: Option<f32>,
) -> Result<Suggested> {
    let run = Run { predictor, spec, source, map, mapped, threshold };
    let found = run.cells(bbox, CELL_ZOOM)?;
    let mut cells = Vec::new();
    run.each_cell(found, &ProgressBar::hidden(), |c| {
        cells.push(c);
        Ok(())
    })?;
    Ok(Suggested::from_cells(cells, predictor.config.labels.names().to_vec()))
}

/// A progress bar over a run's `len` candidates.
pub fn candidate_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "suggest {bar:40} {pos}/{len} candidates {per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}

/// What one cell of a run found: its suggestions (in the order scored) and counts.
#[derive(Debug, Clone)]
pub struct CellResult {
    pub cell: TileId,
    pub candidates: usize,
    pub already_mapped: usize,
    pub outside_trained_area: usize,
    pub suggestions: Vec<Suggestion>,
}

impl Suggested {
    /// The whole run from its cells: every cell's suggestions, most confident first.
    pub fn from_cells(cells: Vec<CellResult>, labels: Vec<String>) -> Self {
        let mut s = Suggested {
            suggestions: Vec::new(),
            candidates: 0,
            already_mapped: 0,
            outside_trained_area: 0,
            labels,
        };
        for c in cells {
            s.candidates += c.candidates;
            s.already_mapped += c.already_mapped;
            s.outside_trained_area += c.outside_trained_area;
            s.suggestions.extend(c.suggestions);
        }
        s.suggestions.sort_by(|a, b| most_confident_first(order_key(a), order_key(b)));
        s
    }
}

/// What a run needs: the model, its tile source, the extract and what it maps, and the
/// user's threshold (`None`: the model's own at each place, [`Predictor::threshold_at`]).
pub struct Run<'a> {
    pub predictor: &'a Predictor,
    pub spec: &'a TileSourceSpec,
    pub source: &'a dyn TileSource,
    pub map: &'a OsmMap,
    pub mapped: &'a [MappedFeature],
    pub threshold: Option<f32>,
}

impl Run<'_> {
    /// The candidates of `bbox`, by the cell (tile at `cell_zoom`) each lies in, cells in order.
    pub fn cells(&self, bbox: &BBox, cell_zoom: u8) -> Result<BTreeMap<TileId, Vec<Candidate>>> {
        if self.map.coords.values().all(|(la, lo)| !bbox.contains(la, lo)) {
            bail!("the extract has nothing in this bbox");
        }
        let mut cells: BTreeMap<TileId, Vec<Candidate>> = BTreeMap::new();
        for c in candidates_in(self.map, bbox) {
            cells.entry(lat_lon_to_tile(c.lat, c.lon, cell_zoom)?).or_default().push(c);
        }
        Ok(cells)
    }

    /// Scores `cells` one after another and hands each cell's result to `done` as it
    /// finishes, advancing `bar` by each cell's candidates. Tiles the previous cell fetched
    /// are reused where the windows overlap.
    pub fn each_cell(
        &self,
        cells: BTreeMap<TileId, Vec<Candidate>>,
        bar: &ProgressBar,
        mut done: impl FnMut(CellResult) -> Result<()>,
    ) -> Result<()> {
        let mut tiles = Fetched::new();
        for (cell, found) in cells {
            let scored = predict_with(self.predictor, self.spec, self.source, &found, &mut tiles)?;
            let outside_trained_area =
                scored.iter().filter(|g| g.prediction.outside_trained_area).count();
            let (suggestions, already_mapped) = select_with(scored, self.mapped, |c| {
                self.predictor.threshold_at(c.lat, c.lon, self.threshold)
            });
            bar.inc(found.len() as u64);
            done(CellResult {
                cell,
                candidates: found.len(),
                already_mapped,
                outside_trained_area,
                suggestions,
            })?;
        }
        Ok(())
    }
}

/// The candidates of `map` inside `bbox`.
pub fn candidates_in(map: &OsmMap, bbox: &BBox) -> Vec<Candidate> {
    candidates(&geometry_in(map, bbox))
        .into_iter()
        .filter(|c| bbox.contains(c.lat, c.lon))
        .collect()
}

/// The model's prediction at every candidate, in their order, from the model's own tiles,
/// in batches, under the prior of each candidate's kind when the model has one
/// ([`Predictor::at_candidate`]).
pub fn predict_at(
    predictor: &Predictor,
    spec: &TileSourceSpec,
    source: &dyn TileSource,
    found: &[Candidate],
) -> Result<Vec<Suggestion>> {
    let windows = windows(predictor, spec, found)?;
    let tiles = fetch_all(source, &needed(&windows), "tiles");
    score(predictor, found, &windows, &tiles)
}

/// [`predict_at`], taking what tiles it can from `tiles` (the previous cell's) and leaving
/// there the tiles of these candidates.
fn predict_with(
    predictor: &Predictor,
    spec: &TileSourceSpec,
    source: &dyn TileSource,
    found: &[Candidate],
    tiles: &mut Fetched,
) -> Result<Vec<Suggestion>> {
    let windows = windows(predictor, spec, found)?;
    let needed = needed(&windows);
    let missing: Vec<TileId> = needed.iter().filter(|t| !tiles.contains_key(t)).copied().collect();
    let fetched = fetch_with(source, &missing, &ProgressBar::hidden());
    let keep: BTreeSet<TileId> = needed.into_iter().collect();
    tiles.retain(|t, _| keep.contains(t));
    tiles.extend(fetched);
    score(predictor, found, &windows, tiles)
}

fn windows(
    predictor: &Predictor,
    spec: &TileSourceSpec,
    found: &[Candidate],
) -> Result<Vec<Window>> {
    Ok(found.iter().map(|c| predictor.window(spec, c.lat, c.lon)).collect::<Result<_, _>>()?)
}

/// The tiles `windows` cover, each once, in order.
fn needed(windows: &[Window]) -> Vec<TileId> {
    let set: BTreeSet<TileId> =
        windows.iter().flat_map(|w| w.placements()).map(|p| p.tile).collect();
    set.into_iter().collect()
}

/// The predictions at `found` (their `windows`) from `tiles`, in batches of 16.
fn score(
    predictor: &Predictor,
    found: &[Candidate],
    windows: &[Window],
    tiles: &Fetched,
) -> Result<Vec<Suggestion>> {
    let mut out = Vec::with_capacity(found.len());
    let pairs: Vec<(&Candidate, &Window)> = found.iter().zip(windows).collect();
    for chunk in pairs.chunks(16) {
        // The batch's images stitched and preprocessed on every core (serial, the cores
        // waited between batches for a twentieth of the run).
        let inputs = chunk
            .par_iter()
            .map(|(c, w)| {
                let mut parts = Vec::new();
                for p in w.placements() {
                    match &tiles[&p.tile] {
                        Ok((img, _)) => parts.push((p, img)),
                        Err(e) => bail!("tile {}/{}/{}: {e:#}", p.tile.z, p.tile.x, p.tile.y),
                    }
                }
                let img = w.stitch(&parts, style::BACKGROUND);
                Ok(predictor.input(&img, c.lat, c.lon, "osm")?)
            })
            .collect::<Result<Vec<_>>>()?;
        for ((c, _), p) in chunk.iter().zip(predictor.predict_batch(&inputs)?) {
            let prediction = predictor.at_candidate(p, &c.reasons(), c.lat, c.lon);
            out.push(Suggestion { candidate: (*c).clone(), prediction });
        }
    }
    Ok(out)
}

/// The suggestions among scored candidates, by model-core's one rule
/// ([`model_core::infer::suggest::judge`]: the top feature type at `threshold`, nothing of
/// that type mapped within [`ALREADY_MAPPED_M`]), most confident first; also how many were
/// skipped as already mapped.
pub fn select(
    scored: Vec<Suggestion>,
    mapped: &[MappedFeature],
    threshold: f32,
) -> (Vec<Suggestion>, usize) {
    select_with(scored, mapped, |_| threshold)
}

/// [`select`] with each candidate's own threshold (the rule of the region it lies in).
pub fn select_with(
    scored: Vec<Suggestion>,
    mapped: &[MappedFeature],
    threshold: impl Fn(&Candidate) -> f32,
) -> (Vec<Suggestion>, usize) {
    let (mut suggestions, mut already_mapped) = (Vec::new(), 0);
    for mut g in scored {
        let t = threshold(&g.candidate);
        match judge(&g.prediction, g.candidate.lat, g.candidate.lon, mapped, t) {
            Verdict::Suggest { label, confidence } => {
                g.prediction.label = label;
                g.prediction.confidence = confidence;
                suggestions.push(g);
            }
            Verdict::AlreadyMapped => already_mapped += 1,
            Verdict::Unsure => {}
        }
    }
    suggestions.sort_by(|a, b| most_confident_first(order_key(a), order_key(b)));
    (suggestions, already_mapped)
}

/// What [`most_confident_first`] orders suggestions by.
fn order_key(g: &Suggestion) -> (f32, f64, f64) {
    (g.prediction.confidence, g.candidate.lat, g.candidate.lon)
}

/// Why an area is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum AreaError {
    /// Not four finite numbers in order, or outside the Web Mercator range.
    Malformed(String),
    /// Larger than the cap.
    TooLarge(String),
}

impl std::fmt::Display for AreaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AreaError::Malformed(m) | AreaError::TooLarge(m) => f.write_str(m),
        }
    }
}

/// Checks an area for the pipeline (the CLI's `--bbox`, the API's `bbox`): well formed (see
/// `BBox::parse`) and at most `max_km2`.
pub fn area(text: &str, max_km2: f64) -> Result<BBox, AreaError> {
    let b = BBox::parse(text).map_err(AreaError::Malformed)?;
    let km2 = b.area_km2();
    if km2 > max_km2 {
        return Err(AreaError::TooLarge(format!(
            "the area is {km2:.1} km², over the limit of {max_km2} km²"
        )));
    }
    Ok(b)
}

/// `lat,lon,type,confidence,candidate,p_<type>...`
pub fn to_csv(s: &Suggested) -> Result<String> {
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
            g.candidate.reasons(),
        ];
        row.extend(s.labels.iter().map(|l| {
            let p = g.prediction.probabilities.0.iter().find(|(k, _)| k == l).map(|(_, v)| *v);
            format!("{:.6}", p.unwrap_or(0.0))
        }));
        w.write_record(&row)?;
    }
    Ok(String::from_utf8(w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?)
}

/// A MapRoulette challenge file (model-core's `osm_edit::maproulette`): one task per
/// suggestion, most confident first, proposing the type's default preset, with the model's
/// type, confidence and candidate kind beside the OSM tags.
pub fn to_maproulette(s: &Suggested) -> Result<String> {
    use model_core::data::osm_edit::{NewNode, Task, maproulette};
    let types = model_core::data::features::FeatureTypes::builtin();
    let tasks = s
        .suggestions
        .iter()
        .map(|g| -> Result<Task> {
            let ty = types.get(&g.prediction.label)?;
            Ok(Task {
                node: NewNode {
                    lat: g.candidate.lat,
                    lon: g.candidate.lon,
                    tags: ty.preset(None)?.pairs(),
                },
                info: vec![
                    ("accessatlas:type".into(), g.prediction.label.clone().into()),
                    (
                        "accessatlas:confidence".into(),
                        serde_json::json!((g.prediction.confidence * 1e4).round() / 1e4),
                    ),
                    ("accessatlas:candidate".into(), g.candidate.reasons().into()),
                ],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(maproulette(&tasks))
}

/// A GeoJSON FeatureCollection of points (`type`, `confidence`, `candidate`, `probabilities`),
/// with what the area held: `/api/suggest`'s answer, [`model_core::wire::Suggestions`].
pub fn to_geojson(s: &Suggested) -> Suggestions {
    let collection = s
        .suggestions
        .iter()
        .map(|g| {
            let p = &g.prediction;
            let properties = SuggestionProperties {
                label: p.label.clone(),
                confidence: p.confidence,
                candidate: g.candidate.reasons(),
                probabilities: p.probabilities.clone(),
                outside_trained_area: p.outside_trained_area,
            };
            Feature::point(g.candidate.lat, g.candidate.lon, properties)
        })
        .collect();
    Suggestions {
        collection,
        candidates: s.candidates,
        already_mapped: s.already_mapped,
        outside_trained_area: s.outside_trained_area,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::osm::rules::Rules;
    use crate::osm::{BUNDLED_OSM, labelled_features};
    use model_core::data::candidates::CandidateKind;

    /// The bundled extract's obstacles mapped as ways (bollard rows such as way/240859307):
    /// a candidate predicted `obstacle` within 5 m of any segment of one is already mapped,
    /// even far from the way's representative point; a point 10 m off every segment is not.
    #[test]
    fn nothing_is_suggested_within_5_m_of_a_feature_mapped_as_a_line() {
        let map = OsmMap::from_bytes(BUNDLED_OSM, "bundled").unwrap();
        let labels = model_core::LabelVocab::with_none();
        let features = labelled_features(&map, &Rules::default_rules(&labels).unwrap());
        let mapped: Vec<MappedFeature> = features.iter().map(|f| f.mapped()).collect();
        let row = features
            .iter()
            .find(|f| f.id == "way/240859307")
            .expect("the bollard row of the issue is in the bundled extract");
        assert_eq!(row.label, "obstacle");
        assert!(row.line.len() >= 2, "{:?}", row.line);
        // Along every segment, 3 m to one side, and 10 m to the side of its midpoint.
        let m_lat = 1.0 / 111_195.0;
        let (mut near, mut far) = (Vec::new(), Vec::new());
        for seg in row.line.windows(2) {
            for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
                let lat = seg[0][0] + t * (seg[1][0] - seg[0][0]);
                let lon = seg[0][1] + t * (seg[1][1] - seg[0][1]);
                near.push((lat + 3.0 * m_lat, lon));
            }
        }
        let probs = |label: &str| {
            let mut logits = vec![0.0f32; labels.len()];
            logits[labels.names().iter().position(|l| l == label).unwrap()] = 5.0;
            Prediction::from_logits(&logits, &labels, 1.0)
        };
        let scored = |pts: &[(f64, f64)]| -> Vec<Suggestion> {
            pts.iter()
                .map(|&(lat, lon)| Suggestion {
                    candidate: Candidate { lat, lon, kinds: vec![CandidateKind::PathNode] },
                    prediction: probs("obstacle"),
                })
                .collect()
        };
        let far_from_rep = near
            .iter()
            .filter(|(la, lo)| model_core::data::tile::distance_m(*la, *lo, row.lat, row.lon) > 5.0)
            .count();
        assert!(far_from_rep > 0, "the test must include points the old point rule missed");
        let (kept, skipped) = select(scored(&near), &mapped, 0.5);
        assert!(kept.is_empty(), "suggested next to the row: {:?}", kept[0].candidate);
        assert_eq!(skipped, near.len());
        // 10 m beside the row's midpoint (and no other obstacle that near) is suggested.
        let mid = row.line[row.line.len() / 2];
        far.push((mid[0] + 10.0 * m_lat, mid[1]));
        let nearest_other = mapped
            .iter()
            .filter(|m| m.label == "obstacle")
            .map(|m| m.distance_m(far[0].0, far[0].1))
            .fold(f64::INFINITY, f64::min);
        if nearest_other > ALREADY_MAPPED_M {
            assert_eq!(select(scored(&far), &mapped, 0.5).0.len(), 1);
        }
    }
}
