//! Calibration: expected calibration error, reliability bins, and temperature scaling fitted
//! on held-out logits (Guo et al., 2017).

use serde::{Deserialize, Serialize};

use crate::infer::prediction::softmax;

/// One reliability bin: predictions whose confidence falls in `[lo, hi)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub count: usize,
    pub accuracy: f64,
    pub confidence: f64,
}

/// Expected calibration error over `bins` equal-width confidence bins, and the bins.
pub fn expected_calibration_error(
    confidence: &[f32],
    correct: &[bool],
    bins: usize,
) -> (f64, Vec<Bin>) {
    let bins = bins.max(1);
    let mut out: Vec<Bin> = (0..bins)
        .map(|i| Bin {
            lo: i as f64 / bins as f64,
            hi: (i + 1) as f64 / bins as f64,
            count: 0,
            accuracy: 0.0,
            confidence: 0.0,
        })
        .collect();
    for (&c, &ok) in confidence.iter().zip(correct) {
        let i = ((f64::from(c) * bins as f64) as usize).min(bins - 1);
        out[i].count += 1;
        out[i].accuracy += f64::from(u8::from(ok));
        out[i].confidence += f64::from(c);
    }
    let n = confidence.len().max(1) as f64;
    let mut ece = 0.0;
    for b in &mut out {
        if b.count > 0 {
            b.accuracy /= b.count as f64;
            b.confidence /= b.count as f64;
            ece += b.count as f64 / n * (b.accuracy - b.confidence).abs();
        }
    }
    (ece, out)
}

/// Mean negative log-likelihood of `labels` under `softmax(logits / t)`.
pub fn nll(logits: &[Vec<f32>], labels: &[usize], t: f32) -> f64 {
    let n = logits.len().max(1) as f64;
    logits
        .iter()
        .zip(labels)
        .map(|(l, &y)| -f64::from(softmax(l, t)[y].max(1e-12)).ln())
        .sum::<f64>()
        / n
}

/// The temperature in `[0.05, 100]` that minimises the NLL (golden-section search on log t;
/// the NLL is unimodal in t). Returns 1 for empty input.
pub fn fit_temperature(logits: &[Vec<f32>], labels: &[usize]) -> f32 {
    if logits.is_empty() {
        return 1.0;
    }
    let f = |x: f64| nll(logits, labels, x.exp() as f32);
    let (mut a, mut b) = (0.05f64.ln(), 100f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    for _ in 0..60 {
        if f(c) < f(d) {
            b = d;
        } else {
            a = c;
        }
        c = b - g * (b - a);
        d = a + g * (b - a);
    }
    ((a + b) / 2.0).exp() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_of_a_hand_example() {
        // two predictions at 0.95 (one right), two at 0.65 (both right)
        let (ece, bins) =
            expected_calibration_error(&[0.95, 0.95, 0.65, 0.65], &[true, false, true, true], 10);
        // bin 9: acc 0.5 conf 0.95 -> 0.45 * 2/4; bin 6: acc 1 conf 0.65 -> 0.35 * 2/4
        assert!((ece - 0.4).abs() < 1e-6, "{ece}");
        assert_eq!(bins[9].count, 2);
        assert_eq!(bins[6].count, 2);
    }

    #[test]
    fn overconfident_logits_get_a_temperature_above_one() {
        // Logits that always claim ~100 % but are right only 60 % of the time.
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..100 {
            logits.push(vec![10.0, 0.0]);
            labels.push(if i % 5 < 3 { 0 } else { 1 });
        }
        let t = fit_temperature(&logits, &labels);
        assert!(t > 1.0, "{t}");
        assert!(nll(&logits, &labels, t) < nll(&logits, &labels, 1.0));
        // the optimum makes p(class 0) ~ 0.6
        let p = softmax(&[10.0, 0.0], t)[0];
        assert!((p - 0.6).abs() < 0.01, "{p}");
    }
}
