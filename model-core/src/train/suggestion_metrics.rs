//! How good suggestions are, measured against features that were removed from the map before
//! the candidates were found: one-to-one matching (most confident suggestion first, to the
//! nearest unmatched true feature of its type within the match radius), precision and recall
//! per type at a threshold, the candidates' recall (could a suggestion have been made at all?)
//! and the base rate (the precision of picking candidates blindly), and the precision-recall
//! curve over thresholds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resample;
use crate::data::candidates::{Candidate, MappedFeature};
use crate::data::tile::distance_m;
use crate::infer::prior::{CandidatePrior, KindPrior};
use crate::infer::suggest::passes;

/// A suggestion as the evaluation reads it: where, which type, how sure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggested {
    pub lat: f64,
    pub lon: f64,
    pub label: String,
    pub confidence: f32,
}

/// For each suggestion, the index of the true feature it matched. Suggestions are taken most
/// confident first (ties: input order); each takes the nearest true feature of its own type
/// within `radius_m` that no earlier suggestion took.
pub fn match_suggestions(
    suggestions: &[Suggested],
    truth: &[MappedFeature],
    radius_m: f64,
) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..suggestions.len()).collect();
    order.sort_by(|&a, &b| suggestions[b].confidence.total_cmp(&suggestions[a].confidence));
    let mut taken = vec![false; truth.len()];
    let mut out = vec![None; suggestions.len()];
    for i in order {
        let s = &suggestions[i];
        let best = truth
            .iter()
            .enumerate()
            .filter(|(j, t)| !taken[*j] && t.label == s.label)
            .map(|(j, t)| (j, distance_m(s.lat, s.lon, t.lat, t.lon)))
            .filter(|(_, d)| *d <= radius_m)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((j, _)) = best {
            taken[j] = true;
            out[i] = Some(j);
        }
    }
    out
}

/// Quality of one type's suggestions (or of all of them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub precision: f64,
    pub recall: f64,
    /// True features.
    pub support: usize,
    /// Suggestions made.
    pub suggested: usize,
    /// Suggestions that matched a true feature.
    pub matched: usize,
    /// Share of candidates within the match radius of a true feature (of this type): the
    /// precision of suggesting every candidate blindly.
    pub base_rate: f64,
}

impl Quality {
    /// How many times the base rate the suggestions are right; `None` without a base rate.
    pub fn lift(&self) -> Option<f64> {
        (self.base_rate > 0.0).then(|| self.precision / self.base_rate)
    }
}

/// The suggestion evaluation, as `errors/suggestions_eval.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionEval {
    pub threshold: f32,
    pub match_radius_m: f64,
    pub candidates: usize,
    /// Share of true features with a candidate within the match radius.
    pub candidate_recall: f64,
    /// True features without a candidate within the radius, per type.
    pub missed_by_candidates: BTreeMap<String, usize>,
    pub overall: Quality,
    pub per_type: BTreeMap<String, Quality>,
    /// The precision of a blind picker that makes as many suggestions of each type as these,
    /// each at a candidate picked at random: the per-type base rates weighted by how many
    /// suggestions name each type (0 when none were made). `overall.base_rate` is stricter: a
    /// blind picker told each candidate's type for free.
    #[serde(default)]
    pub base_rate_same_types: f64,
    /// How far the overall lift can be trusted ([`lift_interval`]); set by the caller, which
    /// knows the map cells.
    #[serde(default)]
    pub lift_interval: Option<LiftInterval>,
    /// Of an evaluation over several regions, each one's share (by the trained area each
    /// candidate lies in); set by the caller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_region: BTreeMap<String, RegionQuality>,
}

/// One region's share of a suggestion evaluation over several: the threshold its suggestions
/// were held to, its candidates and how right its suggestions were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionQuality {
    pub threshold: f32,
    pub candidates: usize,
    pub overall: Quality,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn within(lat: f64, lon: f64, t: &MappedFeature, r: f64) -> bool {
    distance_m(lat, lon, t.lat, t.lon) <= r
}

impl SuggestionEval {
    /// Evaluates the suggestions at `threshold` (those under it are dropped first) against
    /// `truth`, given every candidate (`(lat, lon)`) they were chosen from. `labels`: the
    /// types to report (each gets an entry, support or not).
    pub fn compute(
        eligible: &[Suggested],
        candidates: &[(f64, f64)],
        truth: &[MappedFeature],
        labels: &[String],
        threshold: f32,
        radius_m: f64,
    ) -> Self {
        let kept: Vec<Suggested> =
            eligible.iter().filter(|s| passes(s.confidence, threshold)).cloned().collect();
        let matched = match_suggestions(&kept, truth, radius_m);
        let near = |t: &MappedFeature| candidates.iter().any(|c| within(c.0, c.1, t, radius_m));
        let covered: Vec<bool> = truth.iter().map(near).collect();
        let mut missed = BTreeMap::new();
        for (t, _) in truth.iter().zip(&covered).filter(|(_, c)| !**c) {
            *missed.entry(t.label.clone()).or_insert(0) += 1;
        }
        let quality = |label: Option<&str>| {
            let is = |l: &str| label.is_none_or(|x| x == l);
            let support = truth.iter().filter(|t| is(&t.label)).count();
            let suggested = kept.iter().filter(|s| is(&s.label)).count();
            let hits = kept.iter().zip(&matched).filter(|(s, m)| is(&s.label) && m.is_some());
            let hits = hits.count();
            let near_true = candidates
                .iter()
                .filter(|c| truth.iter().any(|t| is(&t.label) && within(c.0, c.1, t, radius_m)))
                .count();
            Quality {
                precision: ratio(hits, suggested),
                recall: ratio(hits, support),
                support,
                suggested,
                matched: hits,
                base_rate: ratio(near_true, candidates.len()),
            }
        };
        let per_type: BTreeMap<String, Quality> =
            labels.iter().map(|l| (l.clone(), quality(Some(l)))).collect();
        let overall = quality(None);
        let weighted: f64 = per_type.values().map(|q| q.suggested as f64 * q.base_rate).sum();
        Self {
            threshold,
            match_radius_m: radius_m,
            candidates: candidates.len(),
            candidate_recall: ratio(covered.iter().filter(|c| **c).count(), truth.len()),
            missed_by_candidates: missed,
            base_rate_same_types: if overall.suggested == 0 {
                0.0
            } else {
                weighted / overall.suggested as f64
            },
            overall,
            per_type,
            lift_interval: None,
            by_region: BTreeMap::new(),
        }
    }
}

/// The overall lift (precision over the base rate) with a bootstrap interval over map cells
/// ([`super::resample`]): each resample recomputes the lift from the drawn cells' suggestions,
/// matches, candidates and candidates near a true feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LiftInterval {
    pub lift: f64,
    /// Bounds of the central [`LiftInterval::level`] share of the resampled lifts.
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub resamples: usize,
    pub cells: usize,
    /// Share of resamples whose lift is at least [`TARGET_LIFT`].
    pub at_target: f64,
}

/// [`LiftInterval`] of the suggestions in `eligible` at `threshold`, the candidates they were
/// chosen from and the true features, each placed in its map cell by `cell` (points without
/// one are left out). `None` when nothing was suggested or no candidate is near a true
/// feature. Seeded: the same input gives the same interval.
pub fn lift_interval(
    eligible: &[Suggested],
    candidates: &[(f64, f64)],
    truth: &[MappedFeature],
    threshold: f32,
    radius_m: f64,
    cell: impl Fn(f64, f64) -> Option<(u32, u32)>,
    seed: u64,
) -> Option<LiftInterval> {
    let kept: Vec<Suggested> =
        eligible.iter().filter(|s| passes(s.confidence, threshold)).cloned().collect();
    let matched = match_suggestions(&kept, truth, radius_m);
    // Per cell: suggested, matched, candidates, candidates near a true feature.
    let mut counts: BTreeMap<(u32, u32), [usize; 4]> = BTreeMap::new();
    for (s, m) in kept.iter().zip(&matched) {
        if let Some(c) = cell(s.lat, s.lon) {
            let e = counts.entry(c).or_default();
            e[0] += 1;
            e[1] += usize::from(m.is_some());
        }
    }
    for &(lat, lon) in candidates {
        if let Some(c) = cell(lat, lon) {
            let e = counts.entry(c).or_default();
            e[2] += 1;
            e[3] += usize::from(truth.iter().any(|t| within(lat, lon, t, radius_m)));
        }
    }
    let cells: Vec<[usize; 4]> = counts.into_values().collect();
    let lift = |pick: &mut dyn Iterator<Item = &[usize; 4]>| {
        let t = pick.fold([0; 4], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2], a[3] + c[3]]);
        (t[0] > 0 && t[3] > 0).then(|| ratio(t[1], t[0]) / ratio(t[3], t[2]))
    };
    let value = lift(&mut cells.iter())?;
    // A resample without a suggestion or a true feature has a lift of 0.
    let lifts = resample::resampled(cells.len(), seed, |draw| {
        lift(&mut draw.iter().map(|&c| &cells[c])).unwrap_or(0.0)
    });
    let (low, high) = resample::central(&lifts);
    Some(LiftInterval {
        lift: value,
        low,
        high,
        level: resample::LEVEL,
        resamples: resample::RESAMPLES,
        cells: cells.len(),
        at_target: ratio(lifts.iter().filter(|&&l| l >= TARGET_LIFT).count(), lifts.len()),
    })
}

/// The class prior at suggestion candidates (label order), overall and per kind of candidate
/// (its [`Candidate::reasons`]): per feature type, the share of candidates within `radius_m`
/// of a mapped feature of that type; for `none`, the share near no feature at all. What the
/// class-balanced model's probabilities are reweighed with ([`crate::Prediction::with_prior`]);
/// measured on cells the model trained on, never the test.
pub fn candidate_prior(
    candidates: &[Candidate],
    features: &[MappedFeature],
    labels: &crate::LabelVocab,
    radius_m: f64,
) -> CandidatePrior {
    let none = labels.none_index();
    // Per candidate, which classes it counts for.
    let hits: Vec<Vec<bool>> = candidates
        .iter()
        .map(|c| {
            let near = |label: Option<&str>| {
                features.iter().any(|t| {
                    label.is_none_or(|l| t.label == l) && within(c.lat, c.lon, t, radius_m)
                })
            };
            let any = near(None);
            labels
                .names()
                .iter()
                .enumerate()
                .map(|(i, l)| if Some(i) == none { !any } else { any && near(Some(l)) })
                .collect()
        })
        .collect();
    let shares = |members: &[usize]| -> Vec<f32> {
        (0..labels.len())
            .map(|k| ratio(members.iter().filter(|&&i| hits[i][k]).count(), members.len()) as f32)
            .collect()
    };
    let mut kinds: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        kinds.entry(c.reasons()).or_default().push(i);
    }
    CandidatePrior {
        overall: shares(&(0..candidates.len()).collect::<Vec<_>>()),
        by_kind: kinds
            .into_iter()
            .map(|(k, members)| {
                (k, KindPrior { candidates: members.len(), prior: shares(&members) })
            })
            .collect(),
    }
}

/// The thresholds the precision-recall curve and the operating point are measured at.
pub fn threshold_grid() -> Vec<f32> {
    [0.01, 0.02, 0.03].into_iter().chain((1..=19).map(|k| k as f32 * 0.05)).collect()
}

/// How many times the base rate the suggestions at the default threshold aim to be right.
pub const TARGET_LIFT: f64 = 2.0;
/// The fewest right suggestions an operating point stands on (one lucky hit is no evidence).
pub const MIN_MATCHED: usize = 3;

/// The default threshold of a model's suggestions and what it gave where it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub threshold: f32,
    #[serde(flatten)]
    pub quality: Quality,
}

/// The lowest threshold of `thresholds` (ascending) whose suggestions are right at least
/// [`TARGET_LIFT`] times as often as a blindly picked candidate, on at least [`MIN_MATCHED`]
/// right suggestions: the most features found at that precision. `None` when no threshold
/// gets there. Chosen on cells the model did not train on (`evaluate` uses the validation
/// split's) and reported on others.
pub fn operating_point(
    eligible: &[Suggested],
    candidates: &[(f64, f64)],
    truth: &[MappedFeature],
    labels: &[String],
    thresholds: &[f32],
    radius_m: f64,
) -> Option<OperatingPoint> {
    thresholds.iter().find_map(|&threshold| {
        let quality =
            SuggestionEval::compute(eligible, candidates, truth, labels, threshold, radius_m)
                .overall;
        (quality.matched >= MIN_MATCHED && quality.precision >= TARGET_LIFT * quality.base_rate)
            .then_some(OperatingPoint { threshold, quality })
    })
}

/// Precision and recall at each threshold, per type (`labels`) and overall (`"all"`):
/// `(threshold, precision, recall)`, thresholds ascending.
pub fn pr_curves(
    eligible: &[Suggested],
    truth: &[MappedFeature],
    labels: &[String],
    thresholds: &[f32],
    radius_m: f64,
) -> BTreeMap<String, Vec<(f32, f64, f64)>> {
    let mut out: BTreeMap<String, Vec<(f32, f64, f64)>> = BTreeMap::new();
    for &th in thresholds {
        let e = SuggestionEval::compute(eligible, &[], truth, labels, th, radius_m);
        for (l, q) in e.per_type.iter().chain([(&"all".to_string(), &e.overall)]) {
            out.entry(l.clone()).or_default().push((th, q.precision, q.recall));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metres north of (60, 25) as latitude.
    fn north(m: f64) -> f64 {
        60.0 + m / 111_195.0
    }

    fn s(m: f64, label: &str, confidence: f32) -> Suggested {
        Suggested { lat: north(m), lon: 25.0, label: label.into(), confidence }
    }

    fn t(id: &str, m: f64, label: &str) -> MappedFeature {
        MappedFeature { id: id.into(), label: label.into(), lat: north(m), lon: 25.0, line: vec![] }
    }

    #[test]
    fn matching_is_one_to_one_most_confident_first_nearest_same_type() {
        let truth = [t("a", 0.0, "ramp"), t("b", 5.5, "ramp"), t("c", 1.0, "entrance")];
        // Two ramps near `a`: the surer one (at 2 m) takes `a`, the other (at 1 m) is left
        // with `b` (5 m away); an entrance suggestion never takes a ramp.
        let sug = [s(1.0, "ramp", 0.6), s(2.0, "ramp", 0.9), s(0.0, "entrance", 0.7)];
        assert_eq!(match_suggestions(&sug, &truth, 5.0), vec![Some(1), Some(0), Some(2)]);
        // Out of reach: nothing within 5 m.
        assert_eq!(match_suggestions(&[s(20.0, "ramp", 0.9)], &truth, 5.0), vec![None]);
        // One feature, two suggestions: only one matches.
        let two = [s(0.0, "entrance", 0.8), s(0.5, "entrance", 0.9)];
        assert_eq!(match_suggestions(&two, &truth, 5.0), vec![None, Some(2)]);
    }

    #[test]
    fn the_candidate_prior_is_the_share_near_each_type_and_none_near_nothing_per_kind() {
        use crate::data::candidates::CandidateKind::{Entrance, Facade, MarkedEntrance};
        let labels = crate::LabelVocab::with_none();
        let feats = [t("a", 0.0, "ramp"), t("b", 100.0, "entrance")];
        let c = |m: f64, kinds: Vec<crate::data::candidates::CandidateKind>| Candidate {
            lat: north(m),
            lon: 25.0,
            kinds,
        };
        let cands = [
            c(1.0, vec![Facade]),
            c(2.0, vec![Facade]),
            c(99.0, vec![Entrance, MarkedEntrance]),
            c(50.0, vec![Facade]),
        ];
        let p = candidate_prior(&cands, &feats, &labels, 5.0);
        assert_eq!(p.overall, vec![0.5, 0.0, 0.25, 0.0, 0.0, 0.25]);
        assert_eq!(p.by_kind.len(), 2);
        let facade = &p.by_kind["facade"];
        assert_eq!(facade.candidates, 3);
        assert_eq!(facade.prior, vec![2.0 / 3.0, 0.0, 0.0, 0.0, 0.0, 1.0 / 3.0]);
        let marked = &p.by_kind["entrance+marked_entrance"];
        assert_eq!(
            (marked.candidates, marked.prior.clone()),
            (1, vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
        );
    }

    #[test]
    fn the_operating_point_is_the_lowest_threshold_at_twice_the_base_rate_on_three_hits() {
        let labels = vec!["ramp".to_string()];
        // Ten candidates 20 m apart, three ramps among them: the base rate is 0.3.
        let truth: Vec<MappedFeature> =
            (0..3).map(|k| t(&format!("r{k}"), 20.0 * k as f64, "ramp")).collect();
        let cands: Vec<(f64, f64)> = (0..10).map(|k| (north(20.0 * k as f64), 25.0)).collect();
        // Sure of the three ramps and of one miss; unsure of the other six.
        let mut eligible: Vec<Suggested> =
            (0..3).map(|k| s(20.0 * k as f64, "ramp", 0.6 + 0.1 * k as f32)).collect();
        eligible.push(s(60.0, "ramp", 0.7));
        eligible.extend((4..10).map(|k| s(20.0 * k as f64, "ramp", 0.1)));
        let grid = threshold_grid();
        let p = operating_point(&eligible, &cands, &truth, &labels, &grid, 5.0).unwrap();
        // At 0.1 every candidate is suggested (precision 0.3, the base rate); from 0.15 the
        // four sure ones (0.75 >= 2 x 0.3) with all three ramps.
        assert_eq!(p.threshold, 0.15);
        let q = &p.quality;
        assert_eq!((q.suggested, q.matched), (4, 3));
        assert!((q.precision - 0.75).abs() < 1e-12 && (q.base_rate - 0.3).abs() < 1e-12);
        // Two hits are not enough evidence, however precise.
        let two = &eligible[1..];
        assert_eq!(operating_point(two, &cands, &truth, &labels, &grid, 5.0), None);
    }

    #[test]
    fn the_lift_interval_resamples_cells_and_holds_the_lift() {
        // Cell k lies 1 km north of cell k - 1 (the cell is the kilometre).
        let cell = |lat: f64, _lon: f64| Some((0, ((lat - 60.0) * 111.195).floor() as u32));
        let at = |k: usize, m: f64| 1000.0 * k as f64 + m;
        // Four cells alike: each has ten candidates, one ramp at a candidate, and two
        // suggestions, one of them right. Precision 0.5, base rate 0.1: a lift of 5 in every
        // resample.
        let (mut truth, mut cands, mut eligible) = (vec![], vec![], vec![]);
        for k in 0..4 {
            truth.push(t(&format!("r{k}"), at(k, 0.0), "ramp"));
            cands.extend((0..10).map(|i| (north(at(k, 20.0 * i as f64)), 25.0)));
            eligible.push(s(at(k, 0.0), "ramp", 0.9));
            eligible.push(s(at(k, 100.0), "ramp", 0.8));
        }
        let same = lift_interval(&eligible, &cands, &truth, 0.5, 5.0, cell, 7).unwrap();
        assert_eq!(same.cells, 4);
        assert!((same.lift - 5.0).abs() < 1e-9, "{same:?}");
        assert!((same.low - 5.0).abs() < 1e-9 && (same.high - 5.0).abs() < 1e-9, "{same:?}");
        assert_eq!(same.at_target, 1.0);
        // Make the cells differ: cell 0's suggestions both miss. The lift falls to 3/8 / 0.1 =
        // 3.75; resamples spread around it, and one drawing only cell 0 gets 0.
        eligible[0].lat = north(at(0, 300.0));
        let mixed = lift_interval(&eligible, &cands, &truth, 0.5, 5.0, cell, 7).unwrap();
        assert!((mixed.lift - 3.75).abs() < 1e-9, "{mixed:?}");
        assert!(mixed.low < mixed.lift && mixed.lift < mixed.high, "{mixed:?}");
        assert!(mixed.at_target > 0.5 && mixed.at_target < 1.0, "{mixed:?}");
        // Seeded: the same input gives the same interval.
        assert_eq!(lift_interval(&eligible, &cands, &truth, 0.5, 5.0, cell, 7), Some(mixed));
        // Nothing suggested: no lift to bound.
        assert_eq!(lift_interval(&eligible, &cands, &truth, 0.95, 5.0, cell, 7), None);
    }

    #[test]
    fn precision_recall_candidate_recall_and_base_rate() {
        let labels = vec!["ramp".to_string(), "entrance".to_string()];
        let truth = [t("a", 0.0, "ramp"), t("b", 100.0, "ramp"), t("c", 200.0, "entrance")];
        // Candidates near a and c, and two far from everything; none near b.
        let cands =
            [(north(1.0), 25.0), (north(201.0), 25.0), (north(50.0), 25.0), (north(150.0), 25.0)];
        let eligible = [s(1.0, "ramp", 0.9), s(50.0, "ramp", 0.8), s(201.0, "ramp", 0.3)];
        let e = SuggestionEval::compute(&eligible, &cands, &truth, &labels, 0.5, 5.0);
        assert_eq!(e.candidates, 4);
        assert!((e.candidate_recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.missed_by_candidates.get("ramp"), Some(&1));
        let ramp = e.per_type["ramp"];
        assert_eq!((ramp.suggested, ramp.matched, ramp.support), (2, 1, 2));
        assert_eq!((ramp.precision, ramp.recall), (0.5, 0.5));
        assert_eq!(ramp.base_rate, 0.25);
        let entrance = e.per_type["entrance"];
        assert_eq!((entrance.suggested, entrance.support, entrance.recall), (0, 1, 0.0));
        assert_eq!(entrance.base_rate, 0.25);
        assert_eq!(e.overall.base_rate, 0.5);
        assert_eq!((e.overall.precision, e.overall.recall), (0.5, 1.0 / 3.0));
        // Both suggestions name a ramp: a blind picker of two ramps is right a quarter of the
        // time, stricter than `overall.base_rate`'s picker, told the type for free.
        assert_eq!(e.base_rate_same_types, 0.25);
        assert_eq!(e.overall.lift(), Some(1.0));
        assert_eq!(Quality { base_rate: 0.0, ..e.overall }.lift(), None);
        // A lower threshold adds the 0.3 ramp at c, which is an entrance: precision falls.
        let low = SuggestionEval::compute(&eligible, &cands, &truth, &labels, 0.1, 5.0);
        assert_eq!(low.per_type["ramp"].suggested, 3);
        assert!((low.per_type["ramp"].precision - 1.0 / 3.0).abs() < 1e-12);
        let curves = pr_curves(&eligible, &truth, &labels, &[0.1, 0.5, 0.95], 5.0);
        assert_eq!(curves["ramp"].len(), 3);
        assert_eq!(curves["ramp"][2], (0.95, 0.0, 0.0));
        assert_eq!(curves["all"][1], (0.5, 0.5, 1.0 / 3.0));
    }
}
