//! Messages between the page and the model worker (JSON strings over `postMessage`), and the
//! rules both sides agree on: which backend to use, where the model's tiles come from.

use std::collections::BTreeMap;

use model_core::Prediction;
use model_core::data::metadata::TrainedArea;
use model_core::data::vocab::NONE_LABEL;
use model_core::infer::bundle::TileSourceSpec;
use model_core::infer::prior::CandidatePrior;
use model_core::model::Op;
use serde::{Deserialize, Serialize};

/// Which backend the page asks for (`?backend=webgpu|cpu`; default: WebGPU when an adapter
/// exists, else CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    Auto,
    Webgpu,
    Cpu,
}

impl BackendChoice {
    /// Reads the `backend` query parameter; anything unknown means `Auto`.
    pub fn from_query(value: Option<&str>) -> Self {
        match value.map(str::to_ascii_lowercase).as_deref() {
            Some("webgpu" | "gpu") => Self::Webgpu,
            Some("cpu" | "flex") => Self::Cpu,
            _ => Self::Auto,
        }
    }
}

/// Page -> worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToWorker {
    /// Load the bundle at `{base}model/` and warm the model up.
    Load {
        base: String,
        backend: BackendChoice,
        /// Loaded as the scan's second worker (`worker/scan_helper.rs`): it starts none itself.
        #[serde(default)]
        scan_helper: bool,
    },
    /// Predict the feature type at a point.
    Predict { id: u64, lat: f64, lon: f64, source: String },
    /// Fine-tune the loaded model on these examples (tags and rejected suggestions);
    /// `last_stage` trains the image encoder's last stage too (slower).
    FineTune {
        examples: Vec<FineTuneExample>,
        epochs: usize,
        seed: u64,
        #[serde(default)]
        last_stage: bool,
        /// "Learn this area": the view the examples come from.
        #[serde(default)]
        area: Option<LearnedArea>,
    },
    /// Stop a running fine-tune; the loaded model stays as it is.
    CancelFineTune,
    /// Keep the fine-tuned candidate: store it (IndexedDB) and predict with it.
    KeepModel,
    /// Drop the fine-tuned candidate.
    DiscardModel,
    /// Back to the shipped model (the stored one is deleted).
    RevertModel,
    /// Undo the last kept (or imported) model: back to the one kept before it, or to the
    /// shipped model when there was none.
    UndoModel,
    /// Send the loaded model as a bundle (for download).
    ExportModel,
    /// Use a bundle the user picked (refused if its config differs from the loaded model's).
    /// Its weights travel beside the message as bytes (`transfer`).
    ImportModel { manifest: String },
    /// Predict at each point (the suggestion layer's scan of the visible map), in order: the
    /// first `first` always, the rest while the scan has taken less than `budget_ms`.
    Scan { id: u64, points: Vec<ScanPoint>, source: String, first: usize, budget_ms: f64 },
    /// Time `runs` forward passes by kind of operation (`?profile=N`; the benchmark's).
    Profile { runs: usize },
}

/// A point a scan asks the model about, with the reasons it is a candidate (`+`-joined, as
/// `/api/candidates` names them; empty for a grid point): they pick the candidates' prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanPoint {
    pub lat: f64,
    pub lon: f64,
    pub reasons: String,
}

/// The at most `max` of `points` a scan asks about: with the model's candidates' prior (and
/// its `none` class), the kinds that most often hold a feature first; without one, in order
/// of position. Ties keep the order of position, so the same view scans the same points.
pub fn scan_points(
    mut points: Vec<ScanPoint>,
    prior: Option<(&CandidatePrior, usize)>,
    max: usize,
) -> Vec<ScanPoint> {
    points.sort_by(|a, b| a.lat.total_cmp(&b.lat).then(a.lon.total_cmp(&b.lon)));
    match prior {
        Some((prior, none)) => prior.most_promising(points, |p| &p.reasons, none, max),
        None => points.into_iter().take(max).collect(),
    }
}

/// One fine-tuning example: a tag, or (`negative`) a rejected suggestion: not a `label`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneExample {
    pub id: String,
    pub lat: f64,
    pub lon: f64,
    pub source: String,
    pub label: String,
    #[serde(default)]
    pub negative: bool,
}

/// The view a "learn this area" fine-tune learned: its bbox (`min_lon,min_lat,max_lon,max_lat`)
/// and, for people, what it learned from (model-core's `AreaPlan::describe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedArea {
    pub bbox: String,
    pub described: String,
}

/// What a fine-tune did; stored with a kept model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneSummary {
    /// Validation accuracy of the model before and after (the same held-out tags).
    pub before_accuracy: f32,
    pub after_accuracy: f32,
    /// Macro-F1 over the feature types on the held-out places with a feature, before and
    /// after (as `evaluate` reports a test split); `None` when they hold no feature.
    #[serde(default)]
    pub before_types_f1: Option<f32>,
    #[serde(default)]
    pub after_types_f1: Option<f32>,
    /// The change from before to after in that macro-F1, with where 90 % of its paired
    /// resamples of the held-out map cells lie: whether the held-out places can tell.
    #[serde(default)]
    pub types_change: Option<model_core::train::resample::Change>,
    pub train_tags: usize,
    pub val_tags: usize,
    /// The held-out places with a feature: what the feature types' macro-F1 is measured on.
    #[serde(default)]
    pub val_features: usize,
    pub negatives: usize,
    pub epochs: usize,
    /// Mean training loss per epoch.
    pub losses: Vec<f32>,
    /// Examples left out, with the reason (a tile that failed to load, an unknown type).
    pub skipped: Vec<String>,
    /// Wall time in all, of computing the encoder features, and of the epochs.
    pub seconds: f64,
    #[serde(default)]
    pub features_seconds: f64,
    #[serde(default)]
    pub train_seconds: f64,
    /// Optimiser steps taken over all epochs.
    #[serde(default)]
    pub steps: usize,
    /// A "learn this area" fine-tune: the view.
    #[serde(default)]
    pub area: Option<LearnedArea>,
    /// The image encoder's last stage trained too (the panel's checkbox).
    #[serde(default)]
    pub last_stage: bool,
}

impl FineTuneSummary {
    /// Words for how sure the change in the feature types' macro-F1 is: better or worse when
    /// 90 % of its resamples of the held-out cells lie on one side of no change, else that the
    /// held-out places are too few to tell; `None` when it was not measured.
    pub fn change_words(&self) -> Option<String> {
        let c = self.types_change?;
        let i = c.change;
        let spread = format!(
            "{:.0} % of {} resamples of the {} held-out map cells lie in {:+.2} to {:+.2}",
            i.level * 100.0,
            i.resamples,
            i.cells,
            i.low,
            i.high
        );
        Some(if i.low > 0.0 {
            format!("Better, and not by chance of the held-out places: {spread}.")
        } else if i.high < 0.0 {
            format!("Worse, and not by chance of the held-out places: {spread}.")
        } else {
            format!(
                "Too few held-out places to tell whether it changed ({spread}): use a larger \
                 view, or map more places first."
            )
        })
    }

    /// Words for a fine-tune that did worse on its held-out places than the model it started
    /// from (lower accuracy, or lower macro-F1 over the feature types), so the mapper does not
    /// keep it unwarned; `None` when it did as well or better on both.
    pub fn worse_than_before(&self) -> Option<String> {
        let mut worse = Vec::new();
        if self.after_accuracy < self.before_accuracy {
            worse.push(format!(
                "accuracy {:.0} % -> {:.0} %",
                self.before_accuracy * 100.0,
                self.after_accuracy * 100.0
            ));
        }
        if let (Some(b), Some(a)) = (self.before_types_f1, self.after_types_f1)
            && a < b
        {
            worse.push(format!("feature types' macro-F1 {b:.2} -> {a:.2}"));
        }
        (!worse.is_empty()).then(|| {
            format!(
                "The new model did worse than the one before on the {} held-out places ({}): \
                 discarding it keeps the better one. More examples, or fewer epochs, may help.",
                self.val_tags,
                worse.join(", ")
            )
        })
    }
}

/// Where the loaded model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelOrigin {
    Shipped,
    FineTuned,
    Imported,
}

/// What the page shows about the loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub encoder: String,
    pub labels: Vec<String>,
    pub tile_source: TileSourceSpec,
    pub git_revision: String,
    pub test_macro_f1: Option<f64>,
    pub origin: ModelOrigin,
    /// For a fine-tuned model: what the fine-tune did.
    pub fine_tune: Option<FineTuneSummary>,
    /// When the shipped bundle's compact (f16 or int8) copy is loaded: what export measured
    /// of it.
    #[serde(default)]
    pub weights: Option<String>,
    /// The suggestions' default threshold the bundle carries (chosen by `evaluate` on the
    /// validation cells); `None`: 0.5.
    #[serde(default)]
    pub suggest_threshold: Option<f32>,
    /// Per trained region, its own threshold (the bundle's `area_rules`): inside that
    /// region it replaces `suggest_threshold`.
    #[serde(default)]
    pub area_thresholds: BTreeMap<String, f32>,
    /// The candidates' prior the bundle carries: which kinds of candidate a scan tries first.
    #[serde(default)]
    pub candidate_prior: Option<CandidatePrior>,
    /// The areas the model was trained on: predictions outside them carry
    /// `outside_trained_area`, and the page says so.
    #[serde(default)]
    pub trained_areas: Vec<TrainedArea>,
    /// The types the model never saw an example of: the page says they cannot be predicted
    /// yet instead of showing a probability.
    #[serde(default)]
    pub unlearned: Vec<String>,
}

impl ModelInfo {
    /// The threshold the model's own rule asks of a suggestion at `lat`/`lon`: the region's
    /// own there, else `suggest_threshold`, else 0.5 (model-core's `threshold_at_place`, as
    /// [`model_core::infer::Predictor::threshold_at`]).
    pub fn threshold_at(&self, lat: f64, lon: f64) -> f32 {
        let own = model_core::data::metadata::area_of(&self.trained_areas, lat, lon)
            .and_then(|a| self.area_thresholds.get(&a.region).copied());
        model_core::infer::suggest::threshold_at_place(None, own, self.suggest_threshold)
    }

    /// The candidates' prior and the index of `none`, when the model has both.
    pub fn scan_prior(&self) -> Option<(&CandidatePrior, usize)> {
        let none = self.labels.iter().position(|l| l == NONE_LABEL)?;
        Some((self.candidate_prior.as_ref()?, none))
    }
}

/// Why the worker runs on another backend than the one asked for: a sentence for people, and
/// the technical reason behind a disclosure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendNote {
    pub message: String,
    pub detail: Option<String>,
}

impl BackendNote {
    /// WebGPU was wanted but cannot run here.
    pub fn no_webgpu(detail: Option<String>) -> Self {
        Self {
            message: "WebGPU is not available in this browser; running on the CPU".into(),
            detail,
        }
    }
}

/// Worker -> page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's wasm is running and listening (messages sent earlier would be lost, so the
    /// page sends `Load` only after this).
    Started,
    /// The model is loaded and warmed up.
    Ready {
        /// `"webgpu"` or `"cpu"`.
        backend: String,
        /// Why the backend differs from the one asked for, if it does.
        note: Option<BackendNote>,
        load_ms: f64,
        warmup_ms: f64,
        model: ModelInfo,
        /// The worker's wasm memory once the model is loaded and warmed up (linear memory only
        /// grows, so this is its peak so far), in bytes.
        #[serde(default)]
        memory_bytes: f64,
    },
    Prediction {
        id: u64,
        lat: f64,
        lon: f64,
        prediction: Prediction,
        /// Fetching and stitching tiles.
        tiles_ms: f64,
        /// Preprocessing, the forward pass and readback.
        model_ms: f64,
    },
    /// Where a forward pass's time goes: the median milliseconds of each kind of operation
    /// over `runs` passes, and of the whole pass, on `backend`.
    Profile {
        runs: usize,
        backend: String,
        ops: Vec<(Op, f64)>,
        total_ms: f64,
    },
    /// Something failed; `id` names the prediction it belongs to, if any.
    Failed {
        id: Option<u64>,
        message: String,
    },
    /// Fine-tune progress: `percent` 0-100 over the phases (`tiles`, `features`, `training`).
    FineTuneProgress {
        phase: String,
        percent: f64,
        epoch: usize,
        epochs: usize,
        loss: Option<f32>,
        val_accuracy: Option<f32>,
    },
    /// The fine-tune finished; the candidate waits for `KeepModel` or `DiscardModel`.
    FineTuneDone {
        summary: FineTuneSummary,
    },
    FineTuneCancelled,
    FineTuneFailed {
        message: String,
    },
    /// The loaded model changed (kept, imported or reverted).
    ModelChanged {
        model: ModelInfo,
    },
    /// A model operation (keep, import, revert) failed; nothing changed.
    ModelError {
        message: String,
    },
    /// The loaded model as a bundle; its weights travel beside the message as bytes
    /// (`transfer`).
    ModelExport {
        manifest: String,
    },
    /// One scanned point, and what it cost its worker: waiting for its map tiles and
    /// decoding them, and the model (preprocessing and forward pass), in milliseconds.
    ScanResult {
        id: u64,
        lat: f64,
        lon: f64,
        prediction: Prediction,
        #[serde(default)]
        tiles_ms: f64,
        #[serde(default)]
        model_ms: f64,
    },
    /// How many workers a scan started now would run on: 2 once the scan helper holds the
    /// model worker's model, 1 while it loads or where there is none.
    ScanWorkers {
        workers: usize,
    },
    /// The scan finished; `failed` points had no tiles, `unscanned` (the last ones) did not
    /// fit in its time.
    ScanDone {
        id: u64,
        failed: usize,
        unscanned: usize,
        /// How many workers scored it (2: the model worker and its scan helper).
        #[serde(default = "one")]
        workers: usize,
    },
}

fn one() -> usize {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_json() {
        let m = ToWorker::Predict { id: 3, lat: 60.1, lon: 24.9, source: "user".into() };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"kind\":\"predict\""));
        assert_eq!(serde_json::from_str::<ToWorker>(&text).unwrap(), m);
        let f = FromWorker::Failed { id: Some(3), message: "tile 404".into() };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<FromWorker>(&text).unwrap(), f);
    }

    /// A scan asks about the kinds of candidate that most often hold a feature first, by the
    /// shipped model's prior: an OSM-marked entrance on a facade before bare facade points.
    #[test]
    fn scans_try_the_most_promising_candidates_first() {
        let manifest = model_core::infer::bundle::BundleManifest::from_json(include_str!(
            "../../assets/model/model.json"
        ))
        .unwrap();
        let prior = manifest.candidate_prior().expect("the shipped bundle has a prior");
        let none = manifest.config.labels.none_index().unwrap();
        let pt = |lat: f64, reasons: &str| ScanPoint { lat, lon: 24.94, reasons: reasons.into() };
        let points = vec![pt(60.3, "facade"), pt(60.2, "entrance+facade"), pt(60.1, "facade")];
        let lats = |v: Vec<ScanPoint>| v.iter().map(|p| p.lat).collect::<Vec<_>>();
        assert_eq!(lats(scan_points(points.clone(), Some((&prior, none)), 2)), [60.2, 60.1]);
        // Without a prior: in order of position.
        assert_eq!(lats(scan_points(points, None, 2)), [60.1, 60.2]);
    }

    /// A scan's threshold is the region's own inside a region with one, the overall one in
    /// a region without and far from every region, 0.5 for a model without any.
    #[test]
    fn a_scan_takes_the_threshold_of_the_region_in_view() {
        let area = |region: &str, lat: f64, lon: f64| {
            TrainedArea::around(region, &[[lat, lon], [lat + 0.01, lon + 0.01]]).unwrap()
        };
        let mut info = ModelInfo {
            encoder: "efficientnet_lite0".into(),
            labels: vec!["ramp".into(), NONE_LABEL.into()],
            tile_source: TileSourceSpec::Render { style: "s".into(), zoom: 19 },
            git_revision: "r".into(),
            test_macro_f1: None,
            origin: ModelOrigin::Shipped,
            fine_tune: None,
            weights: None,
            suggest_threshold: None,
            area_thresholds: BTreeMap::new(),
            candidate_prior: None,
            trained_areas: vec![area("helsinki", 60.16, 24.93), area("andorra", 42.5, 1.5)],
            unlearned: Vec::new(),
        };
        assert_eq!(info.threshold_at(60.165, 24.935), model_core::infer::DEFAULT_SUGGEST_THRESHOLD);
        info.suggest_threshold = Some(0.05);
        info.area_thresholds.insert("helsinki".into(), 0.3);
        assert_eq!(info.threshold_at(60.165, 24.935), 0.3);
        assert_eq!(info.threshold_at(42.505, 1.505), 0.05);
        assert_eq!(info.threshold_at(-33.9, 18.4), 0.05);
    }

    #[test]
    fn backend_from_query() {
        assert_eq!(BackendChoice::from_query(Some("WebGPU")), BackendChoice::Webgpu);
        assert_eq!(BackendChoice::from_query(Some("cpu")), BackendChoice::Cpu);
        assert_eq!(BackendChoice::from_query(Some("tpu")), BackendChoice::Auto);
        assert_eq!(BackendChoice::from_query(None), BackendChoice::Auto);
    }

    /// A fine-tune's summary: 70 % -> 60 % accuracy, macro-F1 0.36 -> 0.24.
    fn summary() -> FineTuneSummary {
        FineTuneSummary {
            before_accuracy: 0.70,
            after_accuracy: 0.60,
            before_types_f1: Some(0.36),
            after_types_f1: Some(0.24),
            types_change: None,
            train_tags: 60,
            val_tags: 24,
            val_features: 12,
            negatives: 0,
            epochs: 10,
            losses: Vec::new(),
            skipped: Vec::new(),
            seconds: 1.0,
            features_seconds: 0.5,
            train_seconds: 0.5,
            steps: 10,
            area: None,
            last_stage: false,
        }
    }

    /// A fine-tune that did worse on its held-out places says so, naming each figure that
    /// fell; one that did as well or better says nothing.
    #[test]
    fn a_worse_fine_tune_is_named() {
        let s = summary();
        let w = s.worse_than_before().unwrap();
        assert!(w.contains("24 held-out places"), "{w}");
        assert!(w.contains("accuracy 70 % -> 60 %"), "{w}");
        assert!(w.contains("macro-F1 0.36 -> 0.24"), "{w}");
        let better =
            FineTuneSummary { after_accuracy: 0.75, after_types_f1: Some(0.40), ..s.clone() };
        assert_eq!(better.worse_than_before(), None);
        let f1_only = FineTuneSummary { after_accuracy: 0.70, ..s };
        let w = f1_only.worse_than_before().unwrap();
        assert!(!w.contains("accuracy 70") && w.contains("macro-F1"), "{w}");
    }

    /// The change in the feature types' macro-F1 is called better or worse only when its
    /// resamples of the held-out cells lie on one side of no change.
    #[test]
    fn a_change_is_named_only_when_the_held_out_places_can_tell() {
        use model_core::train::resample::{Change, Interval};
        let with = |low: f64, high: f64| {
            let change = Interval { value: 0.1, low, high, level: 0.9, resamples: 2000, cells: 7 };
            let c = Change { before: 0.3, after: 0.4, change, higher: 0.8 };
            FineTuneSummary { types_change: Some(c), ..summary() }.change_words().unwrap()
        };
        let up = with(0.02, 0.3);
        assert!(up.starts_with("Better") && up.contains("the 7 held-out map cells"), "{up}");
        assert!(up.contains("+0.02 to +0.30"), "{up}");
        assert!(with(-0.3, -0.01).starts_with("Worse"));
        assert!(with(-0.05, 0.25).starts_with("Too few held-out places to tell"));
        assert_eq!(summary().change_words(), None);
    }
}
