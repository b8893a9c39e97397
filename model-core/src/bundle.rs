//! The model bundle: what the browser app, `accessatlas predict` and the API load. A directory
//! (or an IndexedDB record) with `model.json` (this struct) and `weights.bpk` (burnpack).
//!
//! A model only understands tiles like those it was trained on, so the bundle records its tile
//! source and zoom, and every consumer cuts its input from that source.

use serde::{Deserialize, Serialize};

use crate::metadata::Scaler;
use crate::{CoreError, ModelConfig};

/// Format tag of `model.json`; bump on incompatible changes.
pub const BUNDLE_FORMAT: &str = "accessatlas-bundle/1";
pub const BUNDLE_CONFIG_FILE: &str = "model.json";
pub const BUNDLE_WEIGHTS_FILE: &str = "weights.bpk";

/// Where model inputs are cut from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TileSourceSpec {
    /// AccessAtlas's own renderer; `style` is the style version.
    Render { style: String, zoom: u8 },
    /// An XYZ tile server.
    Xyz { url: String, zoom: u8 },
    /// An MBTiles file (only meaningful on the machine that has it).
    Mbtiles { path: String, zoom: u8 },
}

impl TileSourceSpec {
    pub fn zoom(&self) -> u8 {
        match self {
            Self::Render { zoom, .. } | Self::Xyz { zoom, .. } | Self::Mbtiles { zoom, .. } => {
                *zoom
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// SHA-256 of the `tags.csv` the model was trained on.
    pub data_hash: String,
    pub git_revision: String,
    /// Test-split accuracy and macro-F1, when evaluated.
    pub test_accuracy: Option<f64>,
    pub test_macro_f1: Option<f64>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub format: String,
    pub config: ModelConfig,
    pub scaler: Scaler,
    /// Softmax temperature fitted on the validation split (1 if not calibrated).
    pub temperature: f32,
    pub class_weights: Vec<f32>,
    pub tile_source: TileSourceSpec,
    pub provenance: Provenance,
}

impl BundleManifest {
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        let m: Self =
            serde_json::from_str(text).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        if m.format != BUNDLE_FORMAT {
            return Err(CoreError::InvalidConfig(format!(
                "bundle format `{}` is not `{BUNDLE_FORMAT}`",
                m.format
            )));
        }
        m.config.validate()?;
        if m.class_weights.len() != m.config.num_classes() {
            return Err(CoreError::ConfigMismatch(format!(
                "{} class weights for {} classes",
                m.class_weights.len(),
                m.config.num_classes()
            )));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncoderKind;

    fn manifest() -> BundleManifest {
        BundleManifest {
            format: BUNDLE_FORMAT.into(),
            config: ModelConfig::new(EncoderKind::CustomCnn),
            scaler: Scaler::default(),
            temperature: 1.3,
            class_weights: vec![1.0; 5],
            tile_source: TileSourceSpec::Render { style: "s".into(), zoom: 19 },
            provenance: Provenance {
                data_hash: "h".into(),
                git_revision: "r".into(),
                test_accuracy: Some(0.5),
                test_macro_f1: None,
                created_by: "test".into(),
            },
        }
    }

    #[test]
    fn round_trips_and_refuses_other_formats_and_mismatches() {
        let m = manifest();
        assert_eq!(BundleManifest::from_json(&m.to_json()).unwrap(), m);
        let mut other = m.clone();
        other.format = "something/9".into();
        assert!(BundleManifest::from_json(&other.to_json()).is_err());
        let mut bad = m.clone();
        bad.class_weights.pop();
        assert!(BundleManifest::from_json(&bad.to_json()).is_err());
        assert_eq!(m.tile_source.zoom(), 19);
    }
}
