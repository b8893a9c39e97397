//! `preprocessing_metadata.json`: what preprocessing decided, read back by training,
//! evaluation, export and the browser.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::metadata::Scaler;
use crate::{CoreError, LabelVocab, SourceVocab};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessingMetadata {
    /// Class names in model-index order.
    pub labels: Vec<String>,
    /// Known sources in one-hot order (the `unknown` bucket follows them).
    pub sources: Vec<String>,
    /// Lat/lon scaler fitted on the training split (population std).
    pub scaler: Scaler,
    /// `n_samples / (n_classes * n_class)` on the training split; 0 for absent classes.
    pub class_weights: BTreeMap<String, f32>,
    /// Examples per split (`train`, `val`, `test`) and class.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
    pub seed: u64,
    /// Zoom of the map cells tags are grouped by before splitting.
    pub group_zoom: u8,
    /// SHA-256 of the `tags.csv` that was split.
    pub input_hash: String,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl PreprocessingMetadata {
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        let m: Self =
            serde_json::from_str(text).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        m.label_vocab()?;
        m.source_vocab()?;
        Ok(m)
    }

    pub fn label_vocab(&self) -> Result<LabelVocab, CoreError> {
        LabelVocab::new(self.labels.clone())
    }

    pub fn source_vocab(&self) -> Result<SourceVocab, CoreError> {
        SourceVocab::new(self.sources.clone())
    }

    /// Whether `self` and `other` describe the same split of the same tags: the file split, its
    /// seed and cell zoom, and the examples per split and class (a `--hold-out` changes those
    /// alone). A run continues (`train --resume`, the pipeline) only on the split it began on;
    /// `cargo xtask reference regions` applies the same four fields to the JSON.
    pub fn same_split(&self, other: &Self) -> bool {
        (&self.input_hash, self.seed, self.group_zoom, &self.counts)
            == (&other.input_hash, other.seed, other.group_zoom, &other.counts)
    }

    /// Class weights in model-index order.
    pub fn weights_in_order(&self) -> Vec<f32> {
        self.labels.iter().map(|l| self.class_weights.get(l).copied().unwrap_or(0.0)).collect()
    }
}
