//! Classification metrics: confusion matrix, accuracy, precision/recall/F1 per class, macro
//! and weighted averages.
//!
//! Zero-division rule (as scikit-learn's `zero_division=0`): a class never predicted has
//! precision 0; a class with no true examples has recall 0; F1 is 0 when precision + recall is
//! 0. Macro averages run over the classes that have support (true examples), so a class absent
//! from the evaluation set neither helps nor hurts; weighted averages weight by support.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::vocab::LabelVocab;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub labels: Vec<String>,
    /// Rows are true classes, columns predicted classes.
    pub matrix: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    #[serde(rename = "macro")]
    pub macro_avg: Averages,
    pub weighted: Averages,
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub confusion_matrix: ConfusionMatrix,
}

fn div(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl Metrics {
    /// Metrics of predicted vs true class indices.
    pub fn compute(truth: &[usize], pred: &[usize], labels: &[String]) -> Self {
        let k = labels.len();
        let mut m = vec![vec![0usize; k]; k];
        for (&t, &p) in truth.iter().zip(pred) {
            m[t][p] += 1;
        }
        let n = truth.len() as f64;
        let correct: usize = (0..k).map(|i| m[i][i]).sum();
        let mut per_class = BTreeMap::new();
        let (mut macro_sum, mut weighted) = ([0.0; 3], [0.0; 3]);
        let mut with_support = 0usize;
        for c in 0..k {
            let tp = m[c][c] as f64;
            let support: usize = m[c].iter().sum();
            let predicted: usize = (0..k).map(|r| m[r][c]).sum();
            let precision = div(tp, predicted as f64);
            let recall = div(tp, support as f64);
            let f1 = div(2.0 * precision * recall, precision + recall);
            if support > 0 {
                with_support += 1;
                macro_sum[0] += precision;
                macro_sum[1] += recall;
                macro_sum[2] += f1;
                let w = support as f64;
                weighted[0] += w * precision;
                weighted[1] += w * recall;
                weighted[2] += w * f1;
            }
            per_class.insert(labels[c].clone(), ClassMetrics { precision, recall, f1, support });
        }
        let d = with_support as f64;
        Self {
            accuracy: div(correct as f64, n),
            macro_avg: Averages {
                precision: div(macro_sum[0], d),
                recall: div(macro_sum[1], d),
                f1: div(macro_sum[2], d),
            },
            weighted: Averages {
                precision: div(weighted[0], n),
                recall: div(weighted[1], n),
                f1: div(weighted[2], n),
            },
            per_class,
            confusion_matrix: ConfusionMatrix { labels: labels.to_vec(), matrix: m },
        }
    }

    /// The feature types alone, the figure every report calls "macro-F1 over feature types":
    /// the rows whose true class is a feature type, each predicted as its most likely feature
    /// type (`none` set aside). `scores[i]` are row `i`'s probabilities or logits (any
    /// order-keeping scale). Without a `none` class, every row and its most likely class.
    pub fn feature_types<S: AsRef<[f32]>>(
        truth: &[usize],
        scores: &[S],
        labels: &LabelVocab,
    ) -> Self {
        let none = labels.none_index();
        let best = |p: &[f32]| {
            (0..p.len())
                .filter(|&c| Some(c) != none)
                .max_by(|&a, &b| p[a].total_cmp(&p[b]))
                .unwrap_or(0)
        };
        let (truth, pred): (Vec<usize>, Vec<usize>) = truth
            .iter()
            .zip(scores)
            .filter(|(t, _)| Some(**t) != none)
            .map(|(&t, p)| (t, best(p.as_ref())))
            .unzip();
        let names: Vec<String> = match none {
            Some(_) => labels.feature_names().map(str::to_string).collect(),
            None => labels.names().to_vec(),
        };
        Self::compute(&truth, &pred, &names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_example_with_a_never_predicted_class() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // truth: a a a b b c ; pred: a a b b a a   (c is never predicted)
        let m = Metrics::compute(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 0, 0], &labels);
        assert!((m.accuracy - 3.0 / 6.0).abs() < 1e-12);
        let a = m.per_class["a"];
        assert!((a.precision - 2.0 / 4.0).abs() < 1e-12 && (a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.f1 - 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0)).abs() < 1e-12);
        let b = m.per_class["b"];
        assert!((b.precision - 0.5).abs() < 1e-12 && (b.recall - 0.5).abs() < 1e-12);
        let c = m.per_class["c"];
        assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 1));
        let macro_f1 = (a.f1 + b.f1 + 0.0) / 3.0;
        assert!((m.macro_avg.f1 - macro_f1).abs() < 1e-12);
        let weighted_f1 = (3.0 * a.f1 + 2.0 * b.f1) / 6.0;
        assert!((m.weighted.f1 - weighted_f1).abs() < 1e-12);
        // rows sum to supports
        for (i, l) in labels.iter().enumerate() {
            assert_eq!(m.confusion_matrix.matrix[i].iter().sum::<usize>(), m.per_class[l].support);
        }
    }

    #[test]
    fn feature_types_set_none_aside_in_truth_and_in_prediction() {
        let labels = LabelVocab::with_none();
        let none = labels.none_index().unwrap();
        let row = |best: usize, second: usize| {
            let mut p = vec![0.0f32; labels.len()];
            p[best] = 0.7;
            p[second] = 0.2;
            p
        };
        // A `none` row is left out; a feature row whose best is `none` counts as its second.
        let truth = [0, 0, 2, none];
        let scores = [row(0, 1), row(none, 0), row(none, 1), row(2, 0)];
        let m = Metrics::feature_types(&truth, &scores, &labels);
        assert_eq!(m.confusion_matrix.labels.len(), labels.len() - 1);
        assert_eq!(m.confusion_matrix.matrix.iter().flatten().sum::<usize>(), 3);
        assert!((m.accuracy - 2.0 / 3.0).abs() < 1e-12, "{}", m.accuracy);
        assert_eq!(m.per_class["ramp"].support, 2);
        assert_eq!(m.per_class["entrance"].recall, 0.0);
        // Without `none`, every row and its most likely class.
        let plain = LabelVocab::default();
        let m = Metrics::feature_types(&[0, 1], &[vec![0.9, 0.1], vec![0.8, 0.2]], &plain);
        assert_eq!(m.accuracy, 0.5);
    }

    #[test]
    fn a_class_without_support_is_left_out_of_the_macro_average() {
        let labels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let m = Metrics::compute(&[0, 0], &[0, 0], &labels);
        assert_eq!(m.macro_avg.f1, 1.0);
        assert_eq!(m.per_class["b"].support, 0);
        let empty = Metrics::compute(&[], &[], &labels);
        assert_eq!(empty.accuracy, 0.0);
    }
}
