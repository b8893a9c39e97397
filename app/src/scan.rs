//! What the page's scan makes of the points it scored, as plain functions (the page's
//! `page/suggestions_panel.rs` and `Ctx::visible_suggestions` call them; tested natively and, against the
//! CLI's list, in wasm): model-core's one rule at threshold 0 for each result as it arrives,
//! since the mapper's slider filters later, then the list shown at the slider's threshold,
//! most confident first, as `accessatlas suggest` lists it. And how a scan's points are
//! shared between its two workers ([`halves`]).

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

/// Points with their place in a scan, in order of place.
pub type Placed<T> = Vec<(usize, T)>;

/// A scan's queue split between two workers (`(place in the scan, point)`, in order of
/// place): the points the scan must score whatever the time (place below `first`) halved, and
/// the rest halved, each by where the points lie: across the longer side of their extent, the
/// western (or southern) half to the first worker and the other to the second, each half in
/// its order of place. Neighbouring points share map tiles, so each worker fetches and
/// decodes fewer of them than when the points alternate (the first 48 of the bench's view
/// needed 22 + 28 tile requests for 28 tiles that way). The first worker gets the odd point
/// of each half.
pub fn halves<T>(
    queue: Placed<T>,
    first: usize,
    at: impl Fn(&T) -> (f64, f64),
) -> (Placed<T>, Placed<T>) {
    let (must, rest): (Vec<_>, Vec<_>) = queue.into_iter().partition(|(i, _)| *i < first);
    let (mut a, mut b) = halve(must, &at);
    let (ra, rb) = halve(rest, &at);
    a.extend(ra);
    b.extend(rb);
    (a, b)
}

/// `group` halved across the longer side of its extent (metres east-west and north-south),
/// each half in its order of place.
fn halve<T>(group: Placed<T>, at: &impl Fn(&T) -> (f64, f64)) -> (Placed<T>, Placed<T>) {
    let places: Vec<(f64, f64)> = group.iter().map(|(_, p)| at(p)).collect();
    let extent = |f: &dyn Fn(&(f64, f64)) -> f64| {
        let v = places.iter().map(f);
        v.clone().fold(f64::NEG_INFINITY, f64::max) - v.fold(f64::INFINITY, f64::min)
    };
    let mid_lat = places.iter().map(|p| p.0).sum::<f64>() / places.len().max(1) as f64;
    let across = extent(&|p| p.1) * mid_lat.to_radians().cos() > extent(&|p| p.0);
    let key = |k: usize| if across { places[k].1 } else { places[k].0 };
    let mut by_side: Vec<usize> = (0..group.len()).collect();
    by_side.sort_by(|&x, &y| key(x).total_cmp(&key(y)).then(group[x].0.cmp(&group[y].0)));
    let mut near = vec![false; group.len()];
    for &k in &by_side[..group.len().div_ceil(2)] {
        near[k] = true;
    }
    let (a, b): (Vec<_>, Vec<_>) = group.into_iter().zip(near).partition(|(_, n)| *n);
    (a.into_iter().map(|(p, _)| p).collect(), b.into_iter().map(|(p, _)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model_core::LabelVocab;

    /// Each worker gets half of the points the scan must score and half of the rest, on its
    /// own side of the view, each in the scan's order.
    #[test]
    fn halves_split_by_place_and_keep_the_order() {
        // Twelve points on a line east-west at 60 N, in a shuffled order of place.
        let lons =
            [24.95, 24.90, 24.99, 24.91, 24.97, 24.93, 24.92, 24.98, 24.94, 24.96, 24.905, 24.985];
        let queue: Vec<(usize, (f64, f64))> =
            lons.iter().enumerate().map(|(i, &lon)| (i, (60.0 + i as f64 * 1e-5, lon))).collect();
        let (a, b) = halves(queue, 7, |p| *p);
        let place = |v: &[(usize, (f64, f64))]| v.iter().map(|x| x.0).collect::<Vec<_>>();
        // The first 7: the 4 westmost to the first worker, the 3 eastmost to the second; of
        // the other 5, the 3 westmost and the 2 eastmost.
        assert_eq!(place(&a), [1, 3, 5, 6, 8, 9, 10]);
        assert_eq!(place(&b), [0, 2, 4, 7, 11]);
        // A view taller than wide is cut north-south.
        let queue: Vec<(usize, (f64, f64))> = (0..4)
            .map(|i| (i, (60.0 + [0.03, 0.01, 0.02, 0.0][i], 24.9 + i as f64 * 1e-4)))
            .collect();
        let (a, b) = halves(queue, 48, |p| *p);
        assert_eq!((place(&a), place(&b)), (vec![1, 3], vec![0, 2]));
        // One point: the first worker's.
        let (a, b) = halves(vec![(0, (60.0, 24.9))], 48, |p| *p);
        assert_eq!((a.len(), b.len()), (1, 0));
    }

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
