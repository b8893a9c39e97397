//! Turning logits into what users see: softmax, the top class, every class's probability.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::LabelVocab;

/// Probabilities per class in vocabulary order; serialises as a JSON object `{type: p}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probabilities(pub Vec<(String, f32)>);

impl Serialize for Probabilities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Probabilities {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Probabilities;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of class name to probability")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Probabilities, A::Error> {
                let mut v = Vec::new();
                while let Some((k, p)) = a.next_entry::<String, f32>()? {
                    v.push((k, p));
                }
                Ok(Probabilities(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// The answer for one example (the seed's inference output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    #[serde(rename = "type")]
    pub label: String,
    pub confidence: f32,
    pub probabilities: Probabilities,
    /// The place lies outside the area the model was trained on: the model read its position
    /// as the area's centre and answered from the tile and source alone, a guess until the
    /// model is adapted to that area.
    #[serde(default)]
    pub outside_trained_area: bool,
}

/// Numerically stable softmax of one row of logits, optionally divided by a temperature first.
pub fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let t = if temperature > 0.0 && temperature.is_finite() { temperature } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| ((l - max) / t).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

impl Prediction {
    /// Prediction from one row of logits. Ties go to the lowest class index.
    pub fn from_logits(logits: &[f32], labels: &LabelVocab, temperature: f32) -> Self {
        assert_eq!(logits.len(), labels.len(), "one logit per class");
        let probs = softmax(logits, temperature);
        let mut best = 0;
        for (i, &p) in probs.iter().enumerate() {
            if p > probs[best] {
                best = i;
            }
        }
        Self {
            label: labels.names()[best].clone(),
            confidence: probs[best],
            probabilities: Probabilities(
                labels.names().iter().cloned().zip(probs.iter().copied()).collect(),
            ),
            outside_trained_area: false,
        }
    }

    /// The most probable feature type (`none` set aside) and its probability: what a
    /// suggestion names. Its probability reaching a threshold of 0.5 or more means it also
    /// beats `none`.
    pub fn top_feature(&self) -> Option<(&str, f32)> {
        self.probabilities
            .0
            .iter()
            .filter(|(l, _)| l != crate::data::vocab::NONE_LABEL)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, p)| (l.as_str(), *p))
    }

    /// The prediction under other class priors: each probability times `prior[c]` (label
    /// order), renormalised: Bayes' rule for a prior shift. The model trains class-balanced
    /// (its own prior is uniform), so at suggestion candidates, where a feature is rare, the
    /// candidates' base rates are the prior ([`crate::infer::Predictor::candidate_prior`]).
    /// A prior of another length, or one that zeroes everything, leaves the prediction as is.
    pub fn with_prior(&self, prior: &[f32]) -> Self {
        let p = &self.probabilities.0;
        if prior.len() != p.len() {
            return self.clone();
        }
        let w: Vec<f32> = p.iter().zip(prior).map(|((_, q), r)| q * r.max(0.0)).collect();
        let sum: f32 = w.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            return self.clone();
        }
        let mut best = 0;
        for (i, &x) in w.iter().enumerate() {
            if x > w[best] {
                best = i;
            }
        }
        Self {
            label: p[best].0.clone(),
            confidence: w[best] / sum,
            probabilities: Probabilities(
                p.iter().zip(&w).map(|((l, _), x)| (l.clone(), x / sum)).collect(),
            ),
            outside_trained_area: self.outside_trained_area,
        }
    }

    /// One prediction per row of a `[batch, classes]` row-major logits buffer.
    pub fn batch_from_logits(logits: &[f32], labels: &LabelVocab, temperature: f32) -> Vec<Self> {
        logits.chunks(labels.len()).map(|row| Self::from_logits(row, labels, temperature)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_is_stable() {
        let p = softmax(&[1000.0, 1000.0, 0.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-6);
    }

    #[test]
    fn a_prior_shift_reweighs_and_renormalises() {
        let labels = LabelVocab::with_none();
        // The model: entrance 0.6, none 0.3; at candidates entrances are rare.
        let p = Prediction::from_logits(
            &[0.1f32.ln(), 1e-9f32.ln(), 0.6f32.ln(), 1e-9f32.ln(), 1e-9f32.ln(), 0.3f32.ln()],
            &labels,
            1.0,
        );
        assert_eq!(p.label, "entrance");
        let prior = [0.01, 0.01, 0.04, 0.0, 0.02, 0.92];
        let q = p.with_prior(&prior);
        assert_eq!(q.label, "none");
        let sum: f32 = q.probabilities.0.iter().map(|(_, v)| v).sum();
        assert!((sum - 1.0).abs() < 1e-5);
        let e = q.probabilities.0[2].1;
        assert!((e - 0.6 * 0.04 / (0.1 * 0.01 + 0.6 * 0.04 + 0.3 * 0.92)).abs() < 1e-4, "{e}");
        assert_eq!(q.top_feature(), Some(("entrance", e)));
        // A uniform prior changes nothing; a wrong-sized one is ignored.
        assert_eq!(p.with_prior(&[0.5; 6]).label, p.label);
        assert!((p.with_prior(&[0.5; 6]).confidence - p.confidence).abs() < 1e-6);
        assert_eq!(p.with_prior(&[1.0; 5]), p);
    }

    #[test]
    fn temperature_flattens() {
        let sharp = softmax(&[2.0, 0.0], 1.0);
        let flat = softmax(&[2.0, 0.0], 4.0);
        assert!(flat[0] < sharp[0] && flat[0] > 0.5);
    }

    #[test]
    fn prediction_picks_the_top_class_and_serialises_as_the_seed_output() {
        let labels = LabelVocab::default();
        let p = Prediction::from_logits(&[0.0, 0.0, 3.0, 0.0, 1.0], &labels, 1.0);
        assert_eq!(p.label, "entrance");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["type"], "entrance");
        let probs = json["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 5);
        assert!((probs["entrance"].as_f64().unwrap() as f32 - p.confidence).abs() < 1e-7);
        // Order of the probabilities is the vocabulary's, also after a round trip.
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.find("\"ramp\"").unwrap() < text.find("\"obstacle\"").unwrap());
        let back: Prediction = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
    }
}
