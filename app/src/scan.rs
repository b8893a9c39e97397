//! What the page's scan makes of the points it scored, as plain functions (the page's
//! `page/suggestions_panel.rs` and `Ctx::visible_suggestions` call them; tested natively and, against the
//! CLI's list, in wasm): model-core's one rule at threshold 0 for each result as it arrives,
//! since the mapper's slider filters later, then the list shown at the slider's threshold,
//! most confident first, as `accessatlas suggest` lists it.

use model_core::Prediction;
use model_core::data::candidates::MappedFeature;
use model_core::infer::suggest::{Verdict, judge, most_confident_first, passes};

/// What the scan records for a scored point: the rule at threshold 0 (the slider moves later).
pub fn verdict(p: &Prediction, lat: f64, lon: f64, mapped: &[MappedFeature]) -> Verdict {
    judge(p, lat, lon, mapped, 0.0)
}

/// The recorded suggestions shown at `threshold` (`key`: confidence, lat, lon): those whose
/// confidence passes it, most confident first.
pub fn shown<T: Clone>(all: &[T], key: impl Fn(&T) -> (f32, f64, f64), threshold: f32) -> Vec<T> {
    let mut v: Vec<T> = all.iter().filter(|s| passes(key(s).0, threshold)).cloned().collect();
    v.sort_by(|a, b| most_confident_first(key(a), key(b)));
    v
}

/// The page's whole path over `results` (`lat`, `lon`, prediction) at `threshold`: each
/// result's verdict as it arrives, then what the list shows, as `(lat, lon, type,
/// confidence)`.
pub fn page_list(
    results: &[(f64, f64, Prediction)],
    mapped: &[MappedFeature],
    threshold: f32,
) -> Vec<(f64, f64, String, f32)> {
    let recorded: Vec<(f64, f64, String, f32)> = results
        .iter()
        .filter_map(|(lat, lon, p)| match verdict(p, *lat, *lon, mapped) {
            Verdict::Suggest { label, confidence } => Some((*lat, *lon, label, confidence)),
            _ => None,
        })
        .collect();
    shown(&recorded, |s| (s.3, s.0, s.1), threshold)
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_core::LabelVocab;

    fn p(label: usize, logit: f32) -> Prediction {
        let labels = LabelVocab::with_none();
        let mut logits = vec![0.0; labels.len()];
        logits[label] = logit;
        Prediction::from_logits(&logits, &labels, 1.0)
    }

    /// Recorded at 0, the slider then hides what is under it; the list is most confident
    /// first, and a point next to a mapped feature of its type is never listed.
    #[test]
    fn the_list_follows_the_slider_most_confident_first() {
        let mapped = vec![MappedFeature {
            id: "node/1".into(),
            label: "ramp".into(),
            lat: 60.0,
            lon: 25.0,
            line: Vec::new(),
        }];
        let results = vec![
            (60.1, 25.0, p(0, 1.0)),
            (60.2, 25.0, p(2, 4.0)),
            (60.0, 25.0, p(0, 6.0)),
            (60.3, 25.0, p(4, 2.0)),
        ];
        let all = page_list(&results, &mapped, 0.0);
        assert_eq!(all.iter().map(|s| s.0).collect::<Vec<_>>(), [60.2, 60.3, 60.1]);
        let high = page_list(&results, &mapped, all[1].3);
        assert_eq!(high.iter().map(|s| s.0).collect::<Vec<_>>(), [60.2, 60.3]);
    }

    /// The CLI's list for the fixture's results (`tests/suggest.rs` writes it from
    /// `accessatlas suggest`'s `select`) is the page's list, natively here and in wasm
    /// (`app/tests/web.rs`).
    #[test]
    fn the_page_lists_what_the_cli_lists() {
        #[derive(serde::Deserialize)]
        struct RuleCase {
            threshold: f32,
            mapped: Vec<MappedFeature>,
            results: Vec<(f64, f64, Prediction)>,
            expected: Vec<(f64, f64, String, f32)>,
        }
        let case: RuleCase =
            serde_json::from_str(include_str!("../../tests/fixtures/suggest_rule.json")).unwrap();
        assert!(!case.expected.is_empty());
        assert_eq!(page_list(&case.results, &case.mapped, case.threshold), case.expected);
    }
}
