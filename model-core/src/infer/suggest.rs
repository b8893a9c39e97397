//! The one suggestion rule: what `accessatlas suggest`, `GET /api/suggest`, `evaluate` and the
//! page's scan all make of a candidate the model scored. Pure: no I/O.
//!
//! A suggestion names the prediction's most probable feature type
//! ([`Prediction::top_feature`]); it stands when that type's probability reaches the threshold
//! (from 0.5 up it then also beats `none`) and no mapped feature of the type lies within
//! [`ALREADY_MAPPED_M`] of the point; suggestions are listed most confident first.

use std::cmp::Ordering;

use crate::Prediction;
pub use crate::data::candidates::ALREADY_MAPPED_M;
use crate::data::candidates::{MappedFeature, nearest_mapped};

/// The suggestions' threshold for a bundle that has not chosen one: from 0.5 up, a suggested
/// type also beats `none`.
pub const DEFAULT_SUGGEST_THRESHOLD: f32 = 0.5;

/// The largest area one request for suggestions may cover, km² (the CLI's `--bbox` and the
/// API's `bbox` alike).
pub const MAX_AREA_KM2: f64 = 25.0;

/// The threshold that applies: the one asked for, else the bundle's chosen one, else
/// [`DEFAULT_SUGGEST_THRESHOLD`].
pub fn threshold_or_default(asked: Option<f32>, chosen: Option<f32>) -> f32 {
    asked.or(chosen).unwrap_or(DEFAULT_SUGGEST_THRESHOLD)
}

/// The threshold that applies at one place: the one asked for, else the own threshold of the
/// trained area there (`area_own`: its region's rule), else the bundle's chosen one, else
/// [`DEFAULT_SUGGEST_THRESHOLD`]. The CLI, the API and the page's scan all apply this
/// (`Predictor::threshold_at`, the page's `ModelInfo::threshold_at`).
pub fn threshold_at_place(asked: Option<f32>, area_own: Option<f32>, chosen: Option<f32>) -> f32 {
    threshold_or_default(asked.or(area_own), chosen)
}

/// A threshold a user gave: a probability, from 0 to 1.
pub fn check_threshold(t: f32) -> Result<f32, String> {
    if (0.0..=1.0).contains(&t) { Ok(t) } else { Err(format!("{t} is not a number from 0 to 1")) }
}

/// Whether a suggestion of `confidence` stands at `threshold`.
pub fn passes(confidence: f32, threshold: f32) -> bool {
    confidence >= threshold
}

/// What the rule makes of one scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A suggestion of `label` with the probability of that type.
    Suggest { label: String, confidence: f32 },
    /// No feature type reaches the threshold.
    Unsure,
    /// A feature of the suggested type is already mapped within [`ALREADY_MAPPED_M`].
    AlreadyMapped,
}

/// The rule for one candidate at `lat`/`lon` scored `p`.
pub fn judge(
    p: &Prediction,
    lat: f64,
    lon: f64,
    mapped: &[MappedFeature],
    threshold: f32,
) -> Verdict {
    let Some((label, confidence)) = p.top_feature() else {
        return Verdict::Unsure;
    };
    if !passes(confidence, threshold) {
        return Verdict::Unsure;
    }
    if nearest_mapped(mapped, label, lat, lon, ALREADY_MAPPED_M).is_some() {
        return Verdict::AlreadyMapped;
    }
    Verdict::Suggest { label: label.to_string(), confidence }
}

/// The suggestions' order: most confident first, then by latitude and longitude, so the same
/// area lists the same way every time.
pub fn most_confident_first(a: (f32, f64, f64), b: (f32, f64, f64)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.total_cmp(&b.1)).then(a.2.total_cmp(&b.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelVocab;

    fn prediction(probs: [f32; 6]) -> Prediction {
        let logits: Vec<f32> = probs.iter().map(|p| p.max(1e-9).ln()).collect();
        Prediction::from_logits(&logits, &LabelVocab::with_none(), 1.0)
    }

    /// The top feature type at or above the threshold is suggested, below it not, and a
    /// mapped feature of that type nearby (not of another type) makes it already mapped.
    #[test]
    fn the_rule_suggests_the_top_feature_unless_unsure_or_already_mapped() {
        // ramp, elevator, entrance, tactile_path, obstacle, none
        let p = prediction([0.05, 0.0, 0.4, 0.0, 0.05, 0.5]);
        let (lat, lon) = (60.17, 24.94);
        match judge(&p, lat, lon, &[], 0.3) {
            Verdict::Suggest { label, confidence } => {
                assert_eq!(label, "entrance");
                assert!((confidence - 0.4).abs() < 1e-4, "{confidence}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(judge(&p, lat, lon, &[], 0.45), Verdict::Unsure);
        let point = |label: &str| MappedFeature {
            id: "node/1".into(),
            label: label.into(),
            lat: lat + 0.00002,
            lon,
            line: Vec::new(),
        };
        let near = point("entrance");
        assert_eq!(judge(&p, lat, lon, std::slice::from_ref(&near), 0.3), Verdict::AlreadyMapped);
        let other = point("ramp");
        assert!(matches!(judge(&p, lat, lon, &[other], 0.3), Verdict::Suggest { .. }));
        let all_none = prediction([0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        assert!(matches!(judge(&all_none, lat, lon, &[], 0.0), Verdict::Suggest { .. }));
    }

    #[test]
    fn thresholds_are_probabilities_and_default_to_the_bundles_then_a_half() {
        assert_eq!(check_threshold(0.25), Ok(0.25));
        assert!(check_threshold(1.5).unwrap_err().contains("1.5"));
        assert!(check_threshold(f32::NAN).is_err());
        assert_eq!(threshold_or_default(Some(0.2), Some(0.3)), 0.2);
        assert_eq!(threshold_or_default(None, Some(0.3)), 0.3);
        assert_eq!(threshold_or_default(None, None), DEFAULT_SUGGEST_THRESHOLD);
        assert_eq!(threshold_at_place(Some(0.2), Some(0.4), Some(0.3)), 0.2);
        assert_eq!(threshold_at_place(None, Some(0.4), Some(0.3)), 0.4);
        assert_eq!(threshold_at_place(None, None, Some(0.3)), 0.3);
        assert_eq!(threshold_at_place(None, None, None), DEFAULT_SUGGEST_THRESHOLD);
        let mut v = vec![(0.4, 60.2, 24.9), (0.9, 60.1, 24.9), (0.4, 60.1, 24.9)];
        v.sort_by(|a, b| most_confident_first(*a, *b));
        assert_eq!(v, [(0.9, 60.1, 24.9), (0.4, 60.1, 24.9), (0.4, 60.2, 24.9)]);
    }
}
