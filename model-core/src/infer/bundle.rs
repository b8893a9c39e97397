//! The model bundle: what the browser app, `accessatlas predict` and the API load. A directory
//! (or an IndexedDB record) with `model.json` (this struct) and `weights.bpk` (burnpack).
//!
//! A model only understands tiles like those it was trained on, so the bundle records its tile
//! source and zoom, and every consumer cuts its input from that source.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::metadata::Scaler;
use crate::data::tile::{TileId, expand_template};
use crate::infer::prior::{AreaRule, CandidatePrior, KindPrior};
use crate::{CoreError, ModelConfig};

/// Format tag of `model.json`; bump on incompatible changes.
pub const BUNDLE_FORMAT: &str = "accessatlas-bundle/1";
pub const BUNDLE_CONFIG_FILE: &str = "model.json";
pub const BUNDLE_WEIGHTS_FILE: &str = "weights.bpk";
/// What `export` measured of a bundle with reduced-precision weights, beside them.
pub const PRECISION_REPORT_FILE: &str = "precision.json";
/// Where a bundle keeps its compact (f16 or int8) copy for the page: a bundle of its own,
/// with its [`PRECISION_REPORT_FILE`].
pub const COMPACT_DIR: &str = "compact";
/// How much a compact copy may lose on the test split, in accuracy and in macro-F1 each
/// (1 point), for the page to load it instead of the f32 weights.
pub const PAGE_PRECISION_BUDGET: f64 = 0.01;

/// The path under which `accessatlas serve` serves rendered tiles (`tiles/{z}/{x}/{y}.png`,
/// relative to the app's base URL).
pub const RENDERED_TILES_PATH: &str = "tiles";
/// The attribution of AccessAtlas's rendered tiles (the map data is ODbL).
pub const RENDERED_TILES_ATTRIBUTION: &str =
    "Rendered by AccessAtlas from &copy; OpenStreetMap contributors (ODbL)";

/// Where model inputs are cut from: the one rule for where a source's tiles are, asked by the
/// server (its route), the page (the model's inputs and "what the model sees") and the CLI.
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
    /// The kinds of source, by the name `collect --tiles` takes.
    pub const KINDS: [&'static str; 3] = ["render", "xyz", "mbtiles"];

    /// A source of kind `kind` (one of [`Self::KINDS`]) at `zoom`. `location` is the XYZ URL
    /// template or the MBTiles path; the renderer needs its style version instead.
    pub fn from_kind(
        kind: &str,
        location: Option<&str>,
        style: &str,
        zoom: u8,
    ) -> Result<Self, CoreError> {
        let located = |what: &str| {
            location.map(str::to_string).ok_or_else(|| {
                CoreError::InvalidConfig(format!("a `{kind}` tile source needs its {what}"))
            })
        };
        match kind {
            "render" => Ok(Self::Render { style: style.to_string(), zoom }),
            "xyz" => Ok(Self::Xyz { url: located("URL template")?, zoom }),
            "mbtiles" => Ok(Self::Mbtiles { path: located("file")?, zoom }),
            other => Err(CoreError::InvalidConfig(format!(
                "unknown tile source `{other}` (expected one of: {})",
                Self::KINDS.join(", ")
            ))),
        }
    }

    /// The rendered tiles' URL template for a page served at `base` (ending in `/`).
    pub fn rendered_template(base: &str) -> String {
        format!("{base}{RENDERED_TILES_PATH}/{{z}}/{{x}}/{{y}}.png")
    }

    /// This source's URL template (`{z}`, `{x}`, `{y}`, maybe `{s}`) as a page at `base` reaches
    /// it: the renderer's tiles from `accessatlas serve`, an XYZ server as recorded. An MBTiles
    /// file exists only on the machine that trained the model: an error saying so.
    pub fn url_template(&self, base: &str) -> Result<String, CoreError> {
        match self {
            Self::Render { .. } => Ok(Self::rendered_template(base)),
            Self::Xyz { url, .. } => Ok(url.clone()),
            Self::Mbtiles { path, .. } => Err(CoreError::TileSourceUnreachable(format!(
                "the model was trained on tiles from the MBTiles file {path}, which a browser \
                 cannot read; export a model trained on rendered or XYZ tiles"
            ))),
        }
    }

    /// The URL of one tile of this source (see [`Self::url_template`]).
    pub fn tile_url(&self, base: &str, t: TileId) -> Result<String, CoreError> {
        Ok(expand_template(&self.url_template(base)?, t))
    }

    /// What a map showing these tiles must credit (empty where the source is the user's own).
    pub fn attribution(&self) -> &'static str {
        match self {
            Self::Render { .. } => RENDERED_TILES_ATTRIBUTION,
            Self::Xyz { .. } | Self::Mbtiles { .. } => "",
        }
    }

    /// Whether a tile URL template is the rendered tiles of the app's own server.
    pub fn is_rendered_template(template: &str) -> bool {
        let t = template
            .split_once("://")
            .map_or(template, |(_, rest)| rest.split_once('/').map_or("", |(_, path)| path));
        t.trim_start_matches('/') == Self::rendered_template("")
    }

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
    /// Per class (label order), how often a suggestion candidate has that feature (`none`:
    /// none), measured on the training cells by `evaluate`: the prior the suggestion pipeline
    /// reweighs the class-balanced model's probabilities with. Absent in older bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_prior: Option<Vec<f32>>,
    /// The same per kind of candidate (its `+`-joined reasons), with how many training
    /// candidates each was measured on ([`crate::infer::prior`]). Absent in older bundles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_prior_by_kind: Option<BTreeMap<String, KindPrior>>,
    /// The suggestions' default threshold, chosen by `evaluate` on the validation cells
    /// ([`crate::train::suggestion_metrics::operating_point`]). Absent: 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggest_threshold: Option<f32>,
    /// Per region the model was trained on (a name among `scaler.areas`), the prior and
    /// threshold measured on that region's own cells: suggestions inside it follow these, and
    /// the overall `candidate_prior` and `suggest_threshold` (pooled over every region) hold
    /// everywhere else. Absent in older bundles and for one region.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub area_rules: BTreeMap<String, AreaRule>,
}

impl BundleManifest {
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        let mut m: Self =
            serde_json::from_str(text).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        // A bundle written before the trained area was recorded: the area its scaler implies,
        // so position stays bounded outside it (`data::metadata`).
        m.scaler = m.scaler.with_area_or_derived();
        if m.format != BUNDLE_FORMAT {
            return Err(CoreError::InvalidConfig(format!(
                "bundle format `{}` is not `{BUNDLE_FORMAT}`",
                m.format
            )));
        }
        m.config.validate()?;
        if m.candidate_prior_by_kind.is_some() && m.candidate_prior.is_none() {
            return Err(CoreError::ConfigMismatch(
                "candidate_prior_by_kind without candidate_prior".into(),
            ));
        }
        if let Some(t) = m.suggest_threshold {
            crate::infer::suggest::check_threshold(t)
                .map_err(|e| CoreError::ConfigMismatch(format!("suggest_threshold: {e}")))?;
        }
        if let Some(p) = m.candidate_prior() {
            p.check(m.config.num_classes())
                .map_err(|e| CoreError::ConfigMismatch(format!("candidate_prior: {e}")))?;
        }
        for (region, rule) in &m.area_rules {
            if !m.scaler.areas.iter().any(|a| &a.region == region) {
                return Err(CoreError::ConfigMismatch(format!(
                    "area_rules: `{region}` is not a region the scaler records ({})",
                    m.scaler.describe_areas()
                )));
            }
            rule.check(m.config.num_classes())
                .map_err(|e| CoreError::ConfigMismatch(format!("area_rules.{region}.{e}")))?;
        }
        if m.class_weights.len() != m.config.num_classes() {
            return Err(CoreError::ConfigMismatch(format!(
                "{} class weights for {} classes",
                m.class_weights.len(),
                m.config.num_classes()
            )));
        }
        Ok(m)
    }

    /// The types the model never saw an example of (class weight 0: absent from its training
    /// split). It cannot predict them: callers say so instead of showing a probability.
    pub fn unlearned_types(&self) -> Vec<String> {
        self.config
            .labels
            .names()
            .iter()
            .zip(&self.class_weights)
            .filter(|(_, w)| **w == 0.0)
            .map(|(l, _)| l.clone())
            .collect()
    }

    /// The candidates' prior, overall and per kind, when measured.
    pub fn candidate_prior(&self) -> Option<CandidatePrior> {
        self.candidate_prior.as_ref().map(|overall| CandidatePrior {
            overall: overall.clone(),
            by_kind: self.candidate_prior_by_kind.clone().unwrap_or_default(),
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }
}

/// What `export --format burn-f16|burn-int8` measured: sizes, and the test split's accuracy and
/// macro-F1 with the f32 weights and with the reduced ones (when the run's data was at hand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionReport {
    /// `burn-f16` or `burn-int8`.
    pub format: String,
    pub f32_bytes: usize,
    pub bytes: usize,
    /// `bytes / f32_bytes`.
    pub size_ratio: f64,
    pub test_examples: Option<usize>,
    pub test_accuracy_f32: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub test_macro_f1_f32: Option<f64>,
    pub test_macro_f1: Option<f64>,
    /// Test examples whose predicted class changed.
    pub changed_predictions: Option<usize>,
}

impl PrecisionReport {
    /// Measured, and neither accuracy nor macro-F1 dropped by more than
    /// [`PAGE_PRECISION_BUDGET`]: the page may load these weights instead of f32.
    pub fn within_budget(&self) -> bool {
        let within = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => a - b <= PAGE_PRECISION_BUDGET + 1e-12,
            _ => false,
        };
        within(self.test_accuracy_f32, self.test_accuracy)
            && within(self.test_macro_f1_f32, self.test_macro_f1)
    }

    /// One line for people: the format, the size and the measured change.
    pub fn summary(&self) -> String {
        let precision = self.format.trim_start_matches("burn-");
        match (
            self.test_accuracy_f32,
            self.test_accuracy,
            self.test_macro_f1_f32,
            self.test_macro_f1,
        ) {
            (Some(a0), Some(a1), Some(f0), Some(f1)) => format!(
                "{precision} weights, {:.1} MB ({:.2}x f32); test accuracy {a0:.3} -> {a1:.3}, macro-F1 {f0:.3} -> {f1:.3}",
                self.bytes as f64 / 1e6,
                self.size_ratio
            ),
            _ => format!(
                "{precision} weights, {:.1} MB ({:.2}x f32); not measured (no test split at hand)",
                self.bytes as f64 / 1e6,
                self.size_ratio
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_copy_is_for_the_page_only_when_measured_within_a_point() {
        let r = PrecisionReport {
            format: "burn-f16".into(),
            f32_bytes: 100,
            bytes: 50,
            size_ratio: 0.5,
            test_examples: Some(208),
            test_accuracy_f32: Some(0.486),
            test_accuracy: Some(0.481),
            test_macro_f1_f32: Some(0.356),
            test_macro_f1: Some(0.360),
            changed_predictions: Some(1),
        };
        assert!(r.within_budget());
        assert!(r.summary().contains("0.486 -> 0.481"), "{}", r.summary());
        let worse = PrecisionReport { test_macro_f1: Some(0.345), ..r.clone() };
        assert!(!worse.within_budget(), "1.1 points of macro-F1 lost");
        let unmeasured = PrecisionReport { test_accuracy: None, ..r.clone() };
        assert!(!unmeasured.within_budget());
        assert!(unmeasured.summary().contains("not measured"));
    }
    use crate::EncoderKind;

    #[test]
    fn tile_urls_follow_the_model_source() {
        let t = TileId { z: 19, x: 1, y: 2 };
        let r = TileSourceSpec::Render { style: "s".into(), zoom: 19 };
        assert_eq!(r.tile_url("http://h:1/", t).unwrap(), "http://h:1/tiles/19/1/2.png");
        assert_eq!(r.attribution(), RENDERED_TILES_ATTRIBUTION);
        let x = TileSourceSpec::Xyz { url: "https://{s}.t/{z}/{x}/{y}.png".into(), zoom: 19 };
        assert_eq!(x.tile_url("/", t).unwrap(), "https://a.t/19/1/2.png");
        assert_eq!(x.url_template("/").unwrap(), "https://{s}.t/{z}/{x}/{y}.png");
        let m = TileSourceSpec::Mbtiles { path: "a.mbtiles".into(), zoom: 19 };
        assert!(m.tile_url("/", t).unwrap_err().to_string().contains("MBTiles"));
    }

    #[test]
    fn the_rendered_template_is_recognised_wherever_it_is_served() {
        for t in [
            "tiles/{z}/{x}/{y}.png",
            "/tiles/{z}/{x}/{y}.png",
            "http://127.0.0.1:8080/tiles/{z}/{x}/{y}.png",
        ] {
            assert!(TileSourceSpec::is_rendered_template(t), "{t}");
        }
        for t in ["https://tile.openstreetmap.org/{z}/{x}/{y}.png", "/tiles/{z}/{y}/{x}.png"] {
            assert!(!TileSourceSpec::is_rendered_template(t), "{t}");
        }
    }

    fn manifest() -> BundleManifest {
        BundleManifest {
            format: BUNDLE_FORMAT.into(),
            config: ModelConfig::new(EncoderKind::CustomCnn),
            scaler: Scaler::default(),
            temperature: 1.3,
            class_weights: vec![1.0; 5],
            tile_source: TileSourceSpec::Render { style: "s".into(), zoom: 19 },
            candidate_prior: None,
            candidate_prior_by_kind: None,
            suggest_threshold: None,
            area_rules: BTreeMap::new(),
            provenance: Provenance {
                data_hash: "h".into(),
                git_revision: "r".into(),
                test_accuracy: Some(0.5),
                test_macro_f1: None,
                created_by: "test".into(),
            },
        }
    }

    /// A bundle from before the trained area was recorded gets the area its scaler implies
    /// as it loads, so position stays bounded; one that records it keeps it.
    #[test]
    fn a_bundle_always_knows_its_trained_area() {
        let mut m = manifest();
        m.scaler = Scaler { mean: [60.17, 24.94], std: [0.003, 0.005], areas: Vec::new() };
        let loaded = BundleManifest::from_json(&m.to_json()).unwrap();
        let area = &loaded.scaler.areas[0];
        assert!((area.min_lat - 60.164).abs() < 1e-9 && (area.max_lon - 24.95).abs() < 1e-9);
        assert!(!loaded.scaler.covers(-33.9, 18.4));
        // Binary-exact figures: JSON round-trips them bit for bit.
        m.scaler = Scaler::fit(&[[42.5, 1.5], [42.75, 1.75]]).unwrap();
        assert_eq!(BundleManifest::from_json(&m.to_json()).unwrap().scaler, m.scaler);
    }

    #[test]
    fn round_trips_and_refuses_other_formats_and_mismatches() {
        let mut m = manifest();
        m.scaler = Scaler::fit(&[[60.0, 24.75], [60.5, 25.0]]).unwrap();
        assert_eq!(BundleManifest::from_json(&m.to_json()).unwrap(), m);
        let mut other = m.clone();
        other.format = "something/9".into();
        assert!(BundleManifest::from_json(&other.to_json()).is_err());
        // A candidate prior round-trips; one of the wrong length or negative is refused.
        let mut with = m.clone();
        with.candidate_prior = Some(vec![0.1, 0.0, 0.05, 0.0, 0.02]);
        assert_eq!(BundleManifest::from_json(&with.to_json()).unwrap(), with);
        with.candidate_prior = Some(vec![0.1; 4]);
        assert!(BundleManifest::from_json(&with.to_json()).is_err());
        with.candidate_prior = Some(vec![0.1, -1.0, 0.0, 0.0, 0.0]);
        assert!(BundleManifest::from_json(&with.to_json()).is_err());
        // So does one per kind; a kind's list of the wrong length, or kinds without the
        // overall prior, are refused.
        with.candidate_prior = Some(vec![0.1, 0.0, 0.05, 0.0, 0.02]);
        let kind = KindPrior { candidates: 7, prior: vec![0.0, 0.0, 0.5, 0.0, 0.0] };
        with.candidate_prior_by_kind = Some(BTreeMap::from([("entrance".to_string(), kind)]));
        let back = BundleManifest::from_json(&with.to_json()).unwrap();
        assert_eq!(back, with);
        assert_eq!(
            back.candidate_prior().unwrap().for_reasons("facade"),
            with.candidate_prior.clone().unwrap()
        );
        let mut short = back.clone();
        short.candidate_prior_by_kind.as_mut().unwrap().get_mut("entrance").unwrap().prior.pop();
        let e = BundleManifest::from_json(&short.to_json()).unwrap_err().to_string();
        assert!(e.contains("kind `entrance`"), "{e}");
        // A threshold round-trips; one outside 0..1 is refused.
        with.suggest_threshold = Some(0.2);
        assert_eq!(BundleManifest::from_json(&with.to_json()).unwrap(), with);
        with.suggest_threshold = Some(1.5);
        let e = BundleManifest::from_json(&with.to_json()).unwrap_err().to_string();
        assert!(e.contains("suggest_threshold"), "{e}");
        // A region's own rule round-trips; one for a region the scaler does not record, or
        // with a threshold outside 0..1, is refused, naming the region and the field.
        with.suggest_threshold = Some(0.2);
        with.scaler =
            Scaler::fit_regions(&[("andorra", [42.5, 1.5]), ("andorra", [42.75, 1.75])]).unwrap();
        let rule =
            AreaRule { candidate_prior: back.candidate_prior().unwrap(), suggest_threshold: 0.4 };
        with.area_rules = BTreeMap::from([("andorra".to_string(), rule.clone())]);
        assert_eq!(BundleManifest::from_json(&with.to_json()).unwrap(), with);
        let mut elsewhere = with.clone();
        elsewhere.area_rules = BTreeMap::from([("monaco".to_string(), rule.clone())]);
        let e = BundleManifest::from_json(&elsewhere.to_json()).unwrap_err().to_string();
        assert!(e.contains("`monaco` is not a region"), "{e}");
        with.area_rules.get_mut("andorra").unwrap().suggest_threshold = 2.0;
        let e = BundleManifest::from_json(&with.to_json()).unwrap_err().to_string();
        assert!(e.contains("area_rules.andorra.suggest_threshold"), "{e}");
        let mut orphan = back.clone();
        orphan.candidate_prior = None;
        assert!(BundleManifest::from_json(&orphan.to_json()).is_err());
        let mut unlearned = m.clone();
        unlearned.class_weights[3] = 0.0;
        assert_eq!(unlearned.unlearned_types(), ["tactile_path"]);
        assert!(m.unlearned_types().is_empty());
        let mut bad = m.clone();
        bad.class_weights.pop();
        assert!(BundleManifest::from_json(&bad.to_json()).is_err());
        assert_eq!(m.tile_source.zoom(), 19);
    }
}
