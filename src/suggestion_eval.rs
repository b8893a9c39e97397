//! The suggestion evaluation `accessatlas evaluate` runs on the test split's map cells: the
//! extract with the test split's features removed (as if never surveyed), candidates in those
//! cells, the suggestion pipeline (`crate::suggestions`), and one-to-one matching against the
//! removed features (model-core's `train::suggestion_metrics`). Writes
//! `errors/suggestions_test.csv`, `errors/candidates_test.csv`, `errors/suggestions_eval.json`
//! and `errors/suggestions_pr.png`.

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use model_core::LabelVocab;
use model_core::data::candidates::{Candidate, MappedFeature};
use model_core::data::split::group_of;
use model_core::data::tags::Tag;
use model_core::data::tile::{BBox, TileId, tile_bounds};
use model_core::data::vocab::NONE_LABEL;
use model_core::infer::Predictor;
use model_core::infer::bundle::TileSourceSpec;
use model_core::infer::prior::CandidatePrior;
use model_core::train::suggestion_metrics::{
    LiftInterval, MIN_MATCHED, OperatingPoint, RegionQuality, Suggested, SuggestionEval,
    TARGET_LIFT, candidate_prior, lift_interval, match_suggestions, operating_point, pr_curves,
    threshold_grid,
};

use crate::fsutil::write_atomic;
use crate::osm::rules::Rules;
use crate::osm::{OsmMap, mapped_features};
use crate::run::RunDir;
use crate::suggestions::{ALREADY_MAPPED_M, Suggestion, candidates_in, predict_at, select};
use crate::tiles::Politeness;
use model_core::infer::suggest::passes;

/// Suggestions match true features within this radius (the "already mapped" radius).
pub const MATCH_RADIUS_M: f64 = ALREADY_MAPPED_M;
/// The name of the candidates outside every trained area in [`SuggestionEval::by_region`].
pub const ELSEWHERE: &str = "elsewhere";
/// Seed of the lift's bootstrap over cells.
const LIFT_SEED: u64 = 17;

/// What the evaluation needs from its caller.
pub struct Inputs<'a> {
    pub predictor: &'a Predictor,
    pub spec: &'a TileSourceSpec,
    pub politeness: Politeness,
    pub rules: &'a Rules,
    pub group_zoom: u8,
}

/// One region's share of a measurement: the extract its rows were collected from and its rows
/// of one split. A measurement over several regions pools their cells: each region's
/// candidates, tiles and "already mapped" come from its own extract.
#[derive(Clone, Copy)]
pub struct Part<'a> {
    pub map: &'a OsmMap,
    pub tags: &'a [Tag],
}

/// The cells' bounding box (`(x, y)` at `zoom`).
fn cells_bbox(cells: &HashSet<(u32, u32)>, zoom: u8) -> Result<BBox> {
    let mut b = BBox { min_lon: 180.0, min_lat: 90.0, max_lon: -180.0, max_lat: -90.0 };
    for &(x, y) in cells {
        let (west, south, east, north) = tile_bounds(TileId { z: zoom, x, y })?;
        b.min_lon = b.min_lon.min(west);
        b.min_lat = b.min_lat.min(south);
        b.max_lon = b.max_lon.max(east);
        b.max_lat = b.max_lat.max(north);
    }
    Ok(b)
}

fn suggested(s: &Suggestion) -> Suggested {
    Suggested {
        lat: s.candidate.lat,
        lon: s.candidate.lon,
        label: s.prediction.label.clone(),
        confidence: s.prediction.confidence,
    }
}

/// The cells of `tags` as if never surveyed: the extract without the tags' features, its
/// candidates in those cells, and the removed features (the truth).
pub struct Unsurveyed {
    pub map: OsmMap,
    pub candidates: Vec<Candidate>,
    pub truth: Vec<MappedFeature>,
    pub cells: HashSet<(u32, u32)>,
}

pub fn unsurveyed(map: &OsmMap, rules: &Rules, tags: &[Tag], zoom: u8) -> Result<Unsurveyed> {
    let truth: Vec<MappedFeature> = tags
        .iter()
        .filter(|t| t.label != NONE_LABEL)
        .map(|t| MappedFeature {
            id: t.id.clone(),
            label: t.label.clone(),
            lat: t.lat,
            lon: t.lon,
            line: Vec::new(),
        })
        .collect();
    let cells: HashSet<(u32, u32)> =
        tags.iter().filter_map(|t| group_of(t.lat, t.lon, zoom).ok()).collect();
    // As if never surveyed: neither the candidates nor "already mapped" can see them.
    let ids: HashSet<String> = truth.iter().map(|t| t.id.clone()).collect();
    let map = map.without_features(&ids, |k, v| rules.is_accessibility(k, v));
    let candidates = if cells.is_empty() {
        Vec::new()
    } else {
        candidates_in(&map, &cells_bbox(&cells, zoom)?)
            .into_iter()
            .filter(|c| group_of(c.lat, c.lon, zoom).is_ok_and(|g| cells.contains(&g)))
            .collect()
    };
    Ok(Unsurveyed { map, candidates, truth, cells })
}

/// The candidates' class prior, overall and per kind, on the training split's cells of every
/// part (as if never surveyed, like the test cells; the regions' candidates pooled), with a
/// record of what it was measured on.
pub fn candidate_prior_on(
    train: &[Part],
    rules: &Rules,
    zoom: u8,
    labels: &LabelVocab,
) -> Result<(CandidatePrior, serde_json::Value)> {
    let (mut candidates, mut truth, mut cells) = (Vec::new(), Vec::new(), 0);
    for p in train {
        let u = unsurveyed(p.map, rules, p.tags, zoom)?;
        candidates.extend(u.candidates);
        truth.extend(u.truth);
        cells += u.cells.len();
    }
    let prior = candidate_prior(&candidates, &truth, labels, MATCH_RADIUS_M);
    let json = serde_json::json!({
        "labels": labels.names(),
        "prior": prior.overall,
        "by_kind": prior.by_kind,
        "candidates": candidates.len(),
        "cells": cells,
        "regions": train.iter().filter(|p| !p.tags.is_empty()).count(),
        "measured_on": "the training split's cells, its features removed",
    });
    Ok((prior, json))
}

/// [`candidate_prior_on`], written to the run's `suggestion_prior.json`.
pub fn measure_candidate_prior(
    run: &RunDir,
    train: &[Part],
    rules: &Rules,
    zoom: u8,
    labels: &LabelVocab,
) -> Result<CandidatePrior> {
    let (prior, json) = candidate_prior_on(train, rules, zoom, labels)?;
    write_atomic(&run.suggestion_prior(), serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(prior)
}

/// The pipeline on the cells of `tags` (background rows included: their cells count) as if
/// never surveyed: every candidate scored, none dropped by a threshold yet.
/// Several parts pool their candidates, truth, cells and suggestions.
#[derive(Default)]
struct Scored {
    candidates: Vec<Candidate>,
    truth: Vec<MappedFeature>,
    cells: HashSet<(u32, u32)>,
    eligible: Vec<Suggestion>,
    already_mapped: usize,
}

impl Scored {
    fn new(i: &Inputs, parts: &[Part]) -> Result<Self> {
        let mut s = Self::default();
        for p in parts.iter().filter(|p| !p.tags.is_empty()) {
            let u = unsurveyed(p.map, i.rules, p.tags, i.group_zoom)?;
            let mapped = mapped_features(&u.map, i.rules);
            let scored = {
                let source = crate::tiles::open(i.spec, &u.map, i.politeness.clone())?;
                predict_at(i.predictor, i.spec, source.as_ref(), &u.candidates)?
            };
            let (eligible, already_mapped) = select(scored, &mapped, 0.0);
            s.eligible.extend(eligible);
            s.already_mapped += already_mapped;
            s.candidates.extend(u.candidates);
            s.truth.extend(u.truth);
            s.cells.extend(u.cells);
        }
        Ok(s)
    }

    fn suggested(&self) -> Vec<Suggested> {
        self.eligible.iter().map(suggested).collect()
    }

    fn points(&self) -> Vec<(f64, f64)> {
        self.candidates.iter().map(|c| (c.lat, c.lon)).collect()
    }
}

/// The overall lift at `threshold` with its bootstrap interval over the cells (at `zoom`) of
/// the candidates `points`.
fn cell_lift_interval(
    eligible: &[Suggested],
    points: &[(f64, f64)],
    truth: &[MappedFeature],
    threshold: f32,
    zoom: u8,
) -> Option<LiftInterval> {
    let cell = |lat, lon| group_of(lat, lon, zoom).ok();
    lift_interval(eligible, points, truth, threshold, MATCH_RADIUS_M, cell, LIFT_SEED)
}

/// The suggestions' threshold chosen on the validation split's cells of every part (pooled;
/// [`operating_point`]; `None` when no threshold gets there), with what it gave there.
pub fn threshold_on(
    i: &Inputs,
    val: &[Part],
) -> Result<(Option<OperatingPoint>, serde_json::Value)> {
    let s = Scored::new(i, val)?;
    let (eligible, points, truth) = (s.suggested(), s.points(), &s.truth);
    let labels: Vec<String> =
        i.predictor.config.labels.feature_names().map(str::to_string).collect();
    let point =
        operating_point(&eligible, &points, truth, &labels, &threshold_grid(), MATCH_RADIUS_M);
    let interval = point
        .as_ref()
        .and_then(|p| cell_lift_interval(&eligible, &points, truth, p.threshold, i.group_zoom));
    let json = serde_json::json!({
        "threshold": point.as_ref().map(|p| p.threshold),
        "at_threshold": point,
        "lift": point.as_ref().and_then(|p| p.quality.lift()),
        "lift_interval": interval,
        "rule": format!(
            "the lowest threshold whose suggestions are right at least {TARGET_LIFT} times as \
             often as a candidate picked blindly (the base rate), on at least {MIN_MATCHED} \
             right suggestions"
        ),
        "candidates": s.candidates.len(),
        "true_features": s.truth.len(),
        "cells": s.cells.len(),
        "regions": val.iter().filter(|p| !p.tags.is_empty()).count(),
        "measured_on": "the validation split's cells, its features removed",
    });
    Ok((point, json))
}

/// Where the candidates lie in more than one region (the trained areas of `p`; any other place
/// is [`ELSEWHERE`]), each region's share of the evaluation of `kept` (the suggestions that
/// passed their threshold), with the threshold it was held to there.
fn by_region(
    p: &Predictor,
    threshold: Option<f32>,
    kept: &[Suggested],
    points: &[(f64, f64)],
    truth: &[MappedFeature],
    labels: &[String],
) -> BTreeMap<String, RegionQuality> {
    let region = |lat, lon| p.scaler.area_of(lat, lon).map_or(ELSEWHERE, |a| a.region.as_str());
    let mut at: BTreeMap<&str, f32> = BTreeMap::new();
    for &(lat, lon) in points {
        at.insert(region(lat, lon), p.threshold_at(lat, lon, threshold));
    }
    if at.len() < 2 {
        return BTreeMap::new();
    }
    at.into_iter()
        .map(|(r, threshold)| {
            let here = |lat, lon| region(lat, lon) == r;
            let k: Vec<Suggested> = kept.iter().filter(|s| here(s.lat, s.lon)).cloned().collect();
            let c: Vec<(f64, f64)> = points.iter().filter(|c| here(c.0, c.1)).copied().collect();
            let t: Vec<MappedFeature> =
                truth.iter().filter(|f| here(f.lat, f.lon)).cloned().collect();
            let e = SuggestionEval::compute(&k, &c, &t, labels, 0.0, MATCH_RADIUS_M);
            (r.to_string(), RegionQuality { threshold, candidates: c.len(), overall: e.overall })
        })
        .collect()
}

/// Runs the evaluation on the test split's cells of every part (`test`: its rows, background
/// rows included; pooled) and writes its files into the run's `errors/`. Each suggestion must
/// reach `threshold` when set, else the model's own threshold where it lies
/// ([`Predictor::threshold_at`]: its region's, else the overall one); `threshold` in the
/// result is the overall one, and the file names each region's that was used.
pub fn evaluate_suggestions(
    run: &RunDir,
    i: &Inputs,
    test: &[Part],
    threshold: Option<f32>,
) -> Result<SuggestionEval> {
    let scored = Scored::new(i, test)?;
    let points = scored.points();
    let Scored { candidates: found, truth, cells, eligible, already_mapped } = scored;
    let labels: Vec<String> =
        i.predictor.config.labels.feature_names().map(str::to_string).collect();
    let p = i.predictor;
    let at = |s: &Suggestion| p.threshold_at(s.candidate.lat, s.candidate.lon, threshold);
    // Each suggestion dropped under its own threshold first; the measures then take them all.
    let kept: Vec<&Suggestion> =
        eligible.iter().filter(|s| passes(s.prediction.confidence, at(s))).collect();
    let kept_s: Vec<Suggested> = kept.iter().map(|s| suggested(s)).collect();
    let eval = SuggestionEval {
        threshold: threshold.unwrap_or(p.default_threshold()),
        lift_interval: cell_lift_interval(&kept_s, &points, &truth, 0.0, i.group_zoom),
        by_region: by_region(p, threshold, &kept_s, &points, &truth, &labels),
        ..SuggestionEval::compute(&kept_s, &points, &truth, &labels, 0.0, MATCH_RADIUS_M)
    };
    let eligible_s: Vec<Suggested> = eligible.iter().map(suggested).collect();

    std::fs::create_dir_all(run.errors())?;
    let matched = match_suggestions(&kept_s, &truth, MATCH_RADIUS_M);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["lat", "lon", "type", "confidence", "candidate", "matched_id"])?;
    for (s, m) in kept.iter().zip(&matched) {
        w.write_record([
            format!("{:.7}", s.candidate.lat),
            format!("{:.7}", s.candidate.lon),
            s.prediction.label.clone(),
            format!("{:.6}", s.prediction.confidence),
            s.candidate.reasons(),
            m.map(|j| truth[j].id.clone()).unwrap_or_default(),
        ])?;
    }
    write_atomic(&run.suggestions_test(), &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["lat", "lon", "candidate"])?;
    for c in &found {
        w.write_record([format!("{:.7}", c.lat), format!("{:.7}", c.lon), c.reasons()])?;
    }
    write_atomic(&run.candidates_test(), &w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;

    let thresholds = threshold_grid();
    let curves: BTreeMap<String, Vec<(f32, f64, f64)>> =
        pr_curves(&eligible_s, &truth, &labels, &thresholds, MATCH_RADIUS_M)
            .into_iter()
            .filter(|(l, _)| l == "all" || eval.per_type.get(l).is_some_and(|q| q.support > 0))
            .collect();
    let mut json = serde_json::to_value(&eval)?;
    json["already_mapped"] = serde_json::json!(already_mapped);

    json["test_cells"] = serde_json::json!(cells.len());
    json["curve"] = serde_json::json!(
        curves
            .iter()
            .map(|(l, pts)| (
                l.clone(),
                pts.iter()
                    .map(
                        |(t, p, r)| serde_json::json!({"threshold": t, "precision": p, "recall": r})
                    )
                    .collect::<serde_json::Value>()
            ))
            .collect::<serde_json::Map<_, _>>()
    );
    write_atomic(&run.suggestions_eval(), serde_json::to_string_pretty(&json)?.as_bytes())?;
    crate::plot::precision_recall(&curves, eval.overall.base_rate, &run.suggestions_pr())?;
    Ok(eval)
}
