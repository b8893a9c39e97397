//! The class prior at suggestion candidates: how often a candidate holds each feature type
//! (`none`: no feature), overall and per kind of candidate, measured by `evaluate` on the
//! training cells. The model trains class-balanced, so at candidates, where features are rare,
//! its probabilities are reweighed with this prior ([`crate::Prediction::with_prior`]).
//!
//! A candidate's kind is the set of reasons it was found for
//! ([`crate::data::candidates::Candidate::reasons`], e.g. `kerb+marked_crossing`): an
//! entrance node OSM already marks holds an entrance far more often than a bare facade point.
//! A kind seen on few training candidates leans on the overall prior: its shares are blended
//! with the overall ones as if [`PRIOR_PSEUDO_COUNT`] more candidates had the overall shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The weight of the overall prior in a kind's prior, in candidates.
pub const PRIOR_PSEUDO_COUNT: f32 = 20.0;

/// The shares measured on one kind of candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindPrior {
    /// Training candidates of this kind.
    pub candidates: usize,
    /// Per class (label order), the share of them near a feature of that class (`none`: near
    /// no feature).
    pub prior: Vec<f32>,
}

/// The candidates' prior: overall, and per kind where measured.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CandidatePrior {
    /// Per class (label order), over all training candidates.
    pub overall: Vec<f32>,
    /// Per kind of candidate (its `+`-joined reasons). Empty for bundles from before kinds.
    #[serde(default)]
    pub by_kind: BTreeMap<String, KindPrior>,
}

impl CandidatePrior {
    /// The prior for a candidate found for `reasons`: the kind's shares blended with the
    /// overall ones ([`PRIOR_PSEUDO_COUNT`]); the overall prior for a kind never measured.
    pub fn for_reasons(&self, reasons: &str) -> Vec<f32> {
        match self.by_kind.get(reasons) {
            Some(k) if k.prior.len() == self.overall.len() => {
                let n = k.candidates as f32;
                k.prior
                    .iter()
                    .zip(&self.overall)
                    .map(|(p, o)| (n * p + PRIOR_PSEUDO_COUNT * o) / (n + PRIOR_PSEUDO_COUNT))
                    .collect()
            }
            _ => self.overall.clone(),
        }
    }

    /// The share of candidates found for `reasons` that hold a feature of any type: one less
    /// the `none` share ([`CandidatePrior::for_reasons`]; `none`: that class's index).
    pub fn feature_share(&self, reasons: &str, none: usize) -> f32 {
        1.0 - self.for_reasons(reasons).get(none).copied().unwrap_or(1.0)
    }

    /// The `n` of `items` whose kind (`reasons(item)`) most often holds a feature
    /// ([`CandidatePrior::feature_share`]), most promising first; equal shares keep their
    /// input order. Where only some candidates can be scored (the page scans a few dozen),
    /// these are the ones.
    pub fn most_promising<T>(
        &self,
        items: Vec<T>,
        reasons: impl Fn(&T) -> &str,
        none: usize,
        n: usize,
    ) -> Vec<T> {
        let mut ranked: Vec<(f32, T)> =
            items.into_iter().map(|x| (self.feature_share(reasons(&x), none), x)).collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranked.into_iter().take(n).map(|(_, x)| x).collect()
    }

    /// Whether every share is a finite number in 0..1 and every list has `classes` values.
    pub fn check(&self, classes: usize) -> Result<(), String> {
        let ok = |p: &[f32]| p.len() == classes && p.iter().all(|x| x.is_finite() && *x >= 0.0);
        if !ok(&self.overall) {
            return Err(format!(
                "{} values for {classes} classes, each a share in 0..1",
                self.overall.len()
            ));
        }
        match self.by_kind.iter().find(|(_, k)| !ok(&k.prior)) {
            Some((kind, k)) => Err(format!(
                "kind `{kind}`: {} values for {classes} classes, each a share in 0..1",
                k.prior.len()
            )),
            None => Ok(()),
        }
    }
}

/// The suggestion rule of one region a model was trained on: its candidates' prior and its
/// threshold, each measured on that region's own cells (`evaluate`). Inside the region (its
/// [`crate::data::metadata::TrainedArea`]) suggestions follow it; elsewhere, the bundle's
/// overall rule, pooled over every region, as in a city the model never saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaRule {
    pub candidate_prior: CandidatePrior,
    pub suggest_threshold: f32,
}

impl AreaRule {
    /// Whether the prior is valid for `classes` classes and the threshold a share in 0..1.
    pub fn check(&self, classes: usize) -> Result<(), String> {
        self.candidate_prior.check(classes).map_err(|e| format!("candidate_prior: {e}"))?;
        crate::infer::suggest::check_threshold(self.suggest_threshold)
            .map(|_| ())
            .map_err(|e| format!("suggest_threshold: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prior() -> CandidatePrior {
        CandidatePrior {
            overall: vec![0.1, 0.9],
            by_kind: BTreeMap::from([
                ("entrance".to_string(), KindPrior { candidates: 20, prior: vec![0.5, 0.5] }),
                ("rare".to_string(), KindPrior { candidates: 0, prior: vec![1.0, 0.0] }),
            ]),
        }
    }

    #[test]
    fn a_kind_blends_with_the_overall_prior_by_how_often_it_was_seen() {
        let p = prior();
        // 20 candidates against 20 pseudo-candidates: half way.
        let e = p.for_reasons("entrance");
        assert!((e[0] - 0.3).abs() < 1e-6 && (e[1] - 0.7).abs() < 1e-6, "{e:?}");
        // Never seen, or unknown: the overall prior.
        assert_eq!(p.for_reasons("rare"), vec![0.1, 0.9]);
        assert_eq!(p.for_reasons("facade"), vec![0.1, 0.9]);
        // Seen often: close to its own shares.
        let mut many = p.clone();
        many.by_kind.get_mut("entrance").unwrap().candidates = 2000;
        assert!((many.for_reasons("entrance")[0] - 0.496).abs() < 1e-3);
    }

    #[test]
    fn the_most_promising_candidates_are_the_kinds_that_most_often_hold_a_feature() {
        let p = prior();
        // `none` is class 1: entrances hold a feature 30 % of the time (blended), anything
        // else 10 %.
        assert!((p.feature_share("entrance", 1) - 0.3).abs() < 1e-6);
        assert!((p.feature_share("facade", 1) - 0.1).abs() < 1e-6);
        let items = vec![("a", "facade"), ("b", "entrance"), ("c", "rare"), ("d", "entrance")];
        let top = p.most_promising(items.clone(), |x| x.1, 1, 3);
        // Both entrances first, in input order; then the first of the equal rest.
        assert_eq!(top.iter().map(|x| x.0).collect::<Vec<_>>(), ["b", "d", "a"]);
        assert_eq!(p.most_promising(items, |x| x.1, 1, 10).len(), 4);
    }

    #[test]
    fn check_names_the_bad_list() {
        let mut p = prior();
        assert!(p.check(2).is_ok());
        assert!(p.check(3).unwrap_err().contains("2 values for 3 classes"));
        p.by_kind.get_mut("entrance").unwrap().prior = vec![f32::NAN, 1.0];
        assert!(p.check(2).unwrap_err().contains("kind `entrance`"));
    }
}
