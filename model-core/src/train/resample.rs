//! How far a test figure could move with another draw of the data: a bootstrap over map cells.
//! The split assigns whole cells and features cluster within them, so another draw of the data
//! changes cells, not single places: each resample draws as many cells as there are, with
//! replacement, and measures the figure again on their rows. A region with few test cells (a
//! small town, or a view in the page) gets a wide interval, and a report can say so instead of
//! a bare figure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use crate::data::vocab::LabelVocab;

/// How many cell resamples an interval draws.
pub const RESAMPLES: usize = 2000;
/// The central share of the resampled figures an interval reports.
pub const LEVEL: f64 = 0.9;
/// The seed of the cell resamples behind the intervals the CLI reports (`evaluate`, `pool`),
/// so the same rows give the same interval whichever reports it.
pub const REPORT_SEED: u64 = 23;

/// `stat` of [`RESAMPLES`] draws of `cells` cells with replacement (each call gets the drawn
/// cells' indices), sorted. Seeded: the same seed gives the same draws.
pub fn resampled(cells: usize, seed: u64, mut stat: impl FnMut(&[usize]) -> f64) -> Vec<f64> {
    let mut rng = crate::rng::Rng::new(seed);
    let mut draw = vec![0; cells];
    let mut out: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            for d in draw.iter_mut() {
                *d = rng.below(cells);
            }
            stat(&draw)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// The bounds of the central [`LEVEL`] share of `sorted` (ascending, not empty).
pub fn central(sorted: &[f64]) -> (f64, f64) {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let tail = (1.0 - LEVEL) / 2.0;
    (at(tail), at(1.0 - tail))
}

/// A figure measured on the test cells, and where the central [`LEVEL`] share of its cell
/// resamples lies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub resamples: usize,
    pub cells: usize,
}

/// A model's feature-type macro-F1 against a baseline's on the same rows: both figures, and
/// the interval of the difference (after - before) over cell resamples, each resample scoring
/// both models on the same drawn rows (a paired bootstrap).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub before: f64,
    pub after: f64,
    /// `after - before`, and the central [`LEVEL`] share of its resamples.
    pub change: Interval,
    /// Share of resamples in which the model scored higher than the baseline.
    pub higher: f64,
}

/// The rows of each map cell (`cells[i]` is row `i`'s), rows with a feature only: the others
/// do not enter the feature-type macro-F1.
fn rows_by_cell(truth: &[usize], labels: &LabelVocab, cells: &[(u32, u32)]) -> Vec<Vec<usize>> {
    let none = labels.none_index();
    let mut by: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
    for (i, (&t, &c)) in truth.iter().zip(cells).enumerate() {
        if Some(t) != none {
            by.entry(c).or_default().push(i);
        }
    }
    by.into_values().collect()
}

fn macro_f1<S: AsRef<[f32]>>(
    truth: &[usize],
    scores: &[S],
    labels: &LabelVocab,
    rows: &[usize],
) -> f64 {
    let t: Vec<usize> = rows.iter().map(|&i| truth[i]).collect();
    let s: Vec<&[f32]> = rows.iter().map(|&i| scores[i].as_ref()).collect();
    Metrics::feature_types(&t, &s, labels).macro_avg.f1
}

/// Every row with a feature, `stat` (of the rows it is given) sorted over [`RESAMPLES`] draws
/// of those rows' map cells (`cells[i]` is row `i`'s), and the number of cells; `None` when no
/// row holds a feature.
fn over_cells(
    truth: &[usize],
    labels: &LabelVocab,
    cells: &[(u32, u32)],
    seed: u64,
    mut stat: impl FnMut(&[usize]) -> f64,
) -> Option<(Vec<usize>, Vec<f64>, usize)> {
    let by_cell = rows_by_cell(truth, labels, cells);
    if by_cell.is_empty() {
        return None;
    }
    let all: Vec<usize> = by_cell.iter().flatten().copied().collect();
    let mut rows = Vec::new();
    let values = resampled(by_cell.len(), seed, |draw| {
        rows.clear();
        rows.extend(draw.iter().flat_map(|&c| by_cell[c].iter().copied()));
        stat(&rows)
    });
    Some((all, values, by_cell.len()))
}

impl Interval {
    fn of(value: f64, sorted: &[f64], cells: usize) -> Self {
        let (low, high) = central(sorted);
        Self { value, low, high, level: LEVEL, resamples: RESAMPLES, cells }
    }
}

/// The feature-type macro-F1 ([`Metrics::feature_types`]) of `scores` on rows of true classes
/// `truth`, with its [`Interval`] over the rows' map cells (`cells[i]` is row `i`'s). `None`
/// when no row holds a feature.
pub fn feature_f1_interval<S: AsRef<[f32]>>(
    truth: &[usize],
    scores: &[S],
    labels: &LabelVocab,
    cells: &[(u32, u32)],
    seed: u64,
) -> Option<Interval> {
    let f1 = |rows: &[usize]| macro_f1(truth, scores, labels, rows);
    let (all, values, n) = over_cells(truth, labels, cells, seed, f1)?;
    Some(Interval::of(f1(&all), &values, n))
}

/// [`Change`] of the feature-type macro-F1 from `before`'s scores to `after`'s on the same
/// rows (as [`feature_f1_interval`] takes them). `None` when no row holds a feature.
pub fn feature_f1_change<S: AsRef<[f32]>, T: AsRef<[f32]>>(
    truth: &[usize],
    before: &[S],
    after: &[T],
    labels: &LabelVocab,
    cells: &[(u32, u32)],
    seed: u64,
) -> Option<Change> {
    let b = |rows: &[usize]| macro_f1(truth, before, labels, rows);
    let a = |rows: &[usize]| macro_f1(truth, after, labels, rows);
    let (all, diffs, n) = over_cells(truth, labels, cells, seed, |rows| a(rows) - b(rows))?;
    let (before, after) = (b(&all), a(&all));
    Some(Change {
        before,
        after,
        change: Interval::of(after - before, &diffs, n),
        higher: diffs.iter().filter(|&&d| d > 0.0).count() as f64 / diffs.len() as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Probabilities that name class `c` (feature types first, `none` last).
    fn says(labels: &LabelVocab, c: usize) -> Vec<f32> {
        let mut p = vec![0.01; labels.len()];
        p[c] = 0.9;
        p
    }

    #[test]
    fn resamples_draw_cells_with_replacement_and_are_seeded() {
        // The mean of the drawn cells' values 0..10: its resamples spread around 4.5.
        let mean = |d: &[usize]| d.iter().sum::<usize>() as f64 / d.len() as f64;
        let v = resampled(10, 3, mean);
        assert_eq!(v.len(), RESAMPLES);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
        let (low, high) = central(&v);
        assert!(low < 4.5 && 4.5 < high && low >= 0.0 && high <= 9.0, "{low} {high}");
        assert_eq!(resampled(10, 3, mean), v);
        assert_ne!(resampled(10, 4, mean), v);
    }

    #[test]
    fn few_cells_give_a_wide_interval_and_many_a_narrow_one() {
        let labels = LabelVocab::with_none();
        let none = labels.none_index().unwrap();
        // Per cell: two ramps (row 0 right, row 1 named an elevator) and an elevator named
        // right, and a `none` row (left out of the feature types).
        let cellwise = |n: u32| {
            let (mut truth, mut scores, mut cells) = (vec![], vec![], vec![]);
            for k in 0..n {
                for (t, p) in [(0, 0), (0, 1), (1, 1), (none, 0)] {
                    truth.push(t);
                    scores.push(says(&labels, p));
                    cells.push((k, k % 3));
                }
            }
            (truth, scores, cells)
        };
        let (t, s, c) = cellwise(40);
        let many = feature_f1_interval(&t, &s, &labels, &c, 1).unwrap();
        // Ramp: precision 1, recall 1/2, F1 2/3; elevator: precision 1/2, recall 1, F1 2/3.
        assert!((many.value - 2.0 / 3.0).abs() < 1e-9, "{many:?}");
        assert_eq!(many.cells, 40);
        // Every cell alike: every resample scores the same.
        assert!((many.low - many.value).abs() < 1e-9 && (many.high - many.value).abs() < 1e-9);
        // Make one cell in ten all wrong: the figure falls and the resamples spread.
        let spread = |cells: u32| {
            let (t, mut s, c) = cellwise(cells);
            for k in (0..cells as usize).step_by(10) {
                for r in 0..3 {
                    s[4 * k + r] = says(&labels, 2);
                }
            }
            feature_f1_interval(&t, &s, &labels, &c, 1).unwrap()
        };
        let (wide, narrow) = (spread(10), spread(200));
        assert!(wide.low < wide.value && wide.value < wide.high, "{wide:?}");
        assert!(narrow.low <= narrow.value && narrow.value <= narrow.high, "{narrow:?}");
        assert!(wide.high - wide.low > 2.0 * (narrow.high - narrow.low), "{wide:?} {narrow:?}");
        // No feature row: nothing to measure.
        assert_eq!(feature_f1_interval(&[none], &[says(&labels, 0)], &labels, &[(0, 0)], 1), None);
    }

    #[test]
    fn the_change_is_paired_and_says_how_often_the_model_did_better() {
        let labels = LabelVocab::with_none();
        // 30 cells, each a ramp and an elevator. The baseline names every row a ramp; the
        // model gets the elevators right as well, in every cell.
        let (mut truth, mut cells) = (vec![], vec![]);
        for k in 0..30 {
            truth.extend([0, 1]);
            cells.extend([(k, 0), (k, 0)]);
        }
        let before: Vec<Vec<f32>> = truth.iter().map(|_| says(&labels, 0)).collect();
        let after: Vec<Vec<f32>> = truth.iter().map(|&t| says(&labels, t)).collect();
        let c = feature_f1_change(&truth, &before, &after, &labels, &cells, 5).unwrap();
        // Before: ramp precision 1/2, recall 1, F1 2/3; elevator 0: macro 1/3. After: 1.
        assert!((c.before - 1.0 / 3.0).abs() < 1e-9 && (c.after - 1.0).abs() < 1e-9, "{c:?}");
        assert!((c.change.value - 2.0 / 3.0).abs() < 1e-9);
        // Paired: every resample holds the same rows for both, so the change never varies.
        assert!((c.change.low - c.change.value).abs() < 1e-9, "{c:?}");
        assert_eq!(c.higher, 1.0);
        // Against itself: no change in any resample, and never higher.
        let same = feature_f1_change(&truth, &after, &after, &labels, &cells, 5).unwrap();
        assert_eq!((same.change.low, same.change.high, same.higher), (0.0, 0.0, 0.0));
    }
}
