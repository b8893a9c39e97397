//! Suggestions for an area, one pipeline for `accessatlas suggest` and `GET /api/suggest`:
//! candidate points from the map's geometry (model-core's `data::candidates`), the model's
//! prediction at each from its own tile source, then the threshold, nothing already mapped (a
//! feature of the predicted type within [`ALREADY_MAPPED_M`]), most confident first.

use std::collections::BTreeSet;

use anyhow::{Result, bail};
use model_core::Prediction;
use model_core::data::candidates::{Candidate, MappedFeature, candidates};
use model_core::data::tile::{BBox, TileId, Window};
use model_core::infer::Predictor;
use model_core::infer::bundle::TileSourceSpec;
use model_core::infer::suggest::{Verdict, judge, most_confident_first};

use crate::osm::{OsmMap, geometry_in};
use crate::render::style;
use crate::tiles::{TileSource, fetch_all};

pub use model_core::infer::suggest::{ALREADY_MAPPED_M, MAX_AREA_KM2};

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

/// The pipeline on `map` in `bbox`, with `source` the model's own tile source (`spec`).
pub fn suggest(
    predictor: &Predictor,
    spec: &TileSourceSpec,
    source: &dyn TileSource,
    map: &OsmMap,
    mapped: &[MappedFeature],
    bbox: &BBox,
    threshold: f32,
) -> Result<Suggested> {
    if map.coords.values().all(|(la, lo)| !bbox.contains(la, lo)) {
        bail!("the extract has nothing in this bbox");
    }
    let found = candidates_in(map, bbox);
    let scored = predict_at(predictor, spec, source, &found)?;
    let outside_trained_area = scored.iter().filter(|g| g.prediction.outside_trained_area).count();
    let (suggestions, already_mapped) = select(scored, mapped, threshold);
    let labels = predictor.config.labels.names().to_vec();
    Ok(Suggested {
        suggestions,
        candidates: found.len(),
        already_mapped,
        outside_trained_area,
        labels,
    })
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
    let windows: Vec<Window> =
        found.iter().map(|c| predictor.window(spec, c.lat, c.lon)).collect::<Result<_, _>>()?;
    let needed: BTreeSet<TileId> =
        windows.iter().flat_map(|w| w.placements()).map(|p| p.tile).collect();
    let needed: Vec<TileId> = needed.into_iter().collect();
    let tiles = fetch_all(source, &needed, "tiles");
    let mut out = Vec::with_capacity(found.len());
    let pairs: Vec<(&Candidate, &Window)> = found.iter().zip(&windows).collect();
    for chunk in pairs.chunks(16) {
        let mut inputs = Vec::with_capacity(chunk.len());
        for (c, w) in chunk {
            let mut parts = Vec::new();
            for p in w.placements() {
                match &tiles[&p.tile] {
                    Ok((img, _)) => parts.push((p, img)),
                    Err(e) => bail!("tile {}/{}/{}: {e:#}", p.tile.z, p.tile.x, p.tile.y),
                }
            }
            let img = w.stitch(&parts, style::BACKGROUND);
            inputs.push(predictor.input(&img, c.lat, c.lon, "osm")?);
        }
        for ((c, _), p) in chunk.iter().zip(predictor.predict_batch(&inputs)?) {
            let prediction = predictor.at_candidate(p, &c.reasons());
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
    let (mut suggestions, mut already_mapped) = (Vec::new(), 0);
    for mut g in scored {
        match judge(&g.prediction, g.candidate.lat, g.candidate.lon, mapped, threshold) {
            Verdict::Suggest { label, confidence } => {
                g.prediction.label = label;
                g.prediction.confidence = confidence;
                suggestions.push(g);
            }
            Verdict::AlreadyMapped => already_mapped += 1,
            Verdict::Unsure => {}
        }
    }
    let key = |g: &Suggestion| (g.prediction.confidence, g.candidate.lat, g.candidate.lon);
    suggestions.sort_by(|a, b| most_confident_first(key(a), key(b)));
    (suggestions, already_mapped)
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

/// A GeoJSON FeatureCollection of points (`type`, `confidence`, `candidate`, `probabilities`).
pub fn to_geojson(s: &Suggested) -> serde_json::Value {
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
                    "candidate": g.candidate.reasons(),
                    "probabilities": g.prediction.probabilities,
                    "outside_trained_area": g.prediction.outside_trained_area,
                },
            })
        })
        .collect();
    serde_json::json!({
        "type": "FeatureCollection",
        "features": features,
        "candidates": s.candidates,
        "already_mapped": s.already_mapped,
        "outside_trained_area": s.outside_trained_area,
    })
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
