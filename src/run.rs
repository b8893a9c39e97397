//! The folders the commands hand each other, and loading what they hold.
//!
//! - [`DataDir`]: what `collect` and `preprocess` write and `train`, `evaluate` and `export`
//!   read (`tags.csv`, the split CSVs, `images/`, the preprocessing metadata, the tile source).
//! - [`RunDir`]: what `train` writes and `evaluate`, `export`, `predict` and `serve` read (the
//!   model config, checkpoints, logs, the calibration, `errors/`).
//! - A bundle (what `export` writes, the app and `serve` load) is model-core's
//!   ([`model_core::infer::bundle`]); [`load_predictor`] takes a bundle or a run.
//!
//! Every file name of these layouts is written here once; commands ask for paths and never
//! import each other (the pipeline, which runs them in order, aside).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use model_core::data::dataset::PreprocessingMetadata;
use model_core::infer::Predictor;
use model_core::infer::bundle::{BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE, BundleManifest};
use model_core::infer::prior::{AreaRule, CandidatePrior};
use model_core::model::persist::{config_from_json, config_to_json, model_from_bytes};
use model_core::train::driver::{DriverState, EpochLog};
use model_core::train::precision::LossScaler;
use model_core::train::recipe::TrainConfig;
use model_core::{AccessModel, ModelConfig};
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

/// `export --format safetensors`'s weights file.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// `export --format onnx`'s model file.
pub const ONNX_FILE: &str = "model.onnx";

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// A data folder (`--data`, default `data/`).
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Every labelled location (`collect` writes it, `preprocess` reads it).
    pub fn tags(&self) -> PathBuf {
        self.root.join("tags.csv")
    }
    /// One split of `tags.csv` (`train`, `val`, `test`), written by `preprocess`.
    pub fn split(&self, split: &str) -> PathBuf {
        self.root.join(format!("tags_{split}.csv"))
    }
    /// The tiles `collect` cut, one PNG per tag.
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    /// The `image` column's value for a tile of `images()` (relative to the data folder).
    pub fn image_rel(file_stem: &str) -> String {
        format!("images/{file_stem}.png")
    }
    /// Downloaded XYZ tiles, reused by later runs.
    pub fn tile_cache(&self) -> PathBuf {
        self.root.join("tile_cache")
    }
    /// Rows `collect` could not use, with the reason.
    pub fn rejected_rows(&self) -> PathBuf {
        self.root.join("rejected_rows.csv")
    }
    /// Rows `preprocess` could not use, with the reason.
    pub fn preprocess_rejected_rows(&self) -> PathBuf {
        self.root.join("preprocess_rejected_rows.csv")
    }
    /// Scaler, vocabularies and class weights of the preprocessing.
    pub fn preprocessing_metadata(&self) -> PathBuf {
        self.root.join(PREPROCESSING_METADATA_FILE)
    }
    /// The tile source the images were cut from (`collect` writes it; bundles carry it).
    pub fn tile_source(&self) -> PathBuf {
        self.root.join("tile_source.json")
    }
    /// The tile source `collect` cut the images from.
    pub fn read_tile_source(&self) -> Result<model_core::infer::bundle::TileSourceSpec> {
        let p = self.tile_source();
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("reading {} (run `accessatlas collect`)", p.display()))?;
        serde_json::from_str(&text).with_context(|| p.display().to_string())
    }
    pub fn read_metadata(&self) -> Result<PreprocessingMetadata> {
        read_metadata(&self.preprocessing_metadata(), "run `accessatlas preprocess`")
    }
    /// Checks that a tag's image exists and decodes; `rel` is relative to the data folder
    /// unless absolute. Errors name the file.
    pub fn check_image(&self, rel: &str) -> Result<()> {
        let p = self.resolve(rel);
        let bytes = std::fs::read(&p).with_context(|| format!("image {}", p.display()))?;
        model_core::data::preprocess::decode_rgb(&bytes)
            .with_context(|| format!("image {}", p.display()))?;
        Ok(())
    }
    /// An `image` column's value as a path.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        if Path::new(rel).is_absolute() { PathBuf::from(rel) } else { self.root.join(rel) }
    }
}

const PREPROCESSING_METADATA_FILE: &str = "preprocessing_metadata.json";

/// A tags hash as messages show it: its first 12 hex digits.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn read_metadata(path: &Path, hint: &str) -> Result<PreprocessingMetadata> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {} ({hint})", path.display()))?;
    PreprocessingMetadata::from_json(&text).with_context(|| path.display().to_string())
}

/// Temperature fitted on the validation split by `evaluate`, stored with the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    pub temperature: f32,
    pub val_ece_before: f64,
    pub val_ece_after: f64,
}

/// What `--resume` needs of a run, written last in each epoch (`checkpoints/state.json`, the
/// epoch's commit point, after the checkpoint files it refers to).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    #[serde(flatten)]
    pub driver: DriverState,
    /// Mixed precision: the loss scaler, so a resumed run continues at the same scale.
    #[serde(default)]
    pub loss_scaler: Option<LossScaler>,
}

/// A JSON file's value, `None` when there is no such file; an unreadable or malformed file is
/// an error naming it.
fn read_json_if_present(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not valid JSON", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A training run folder (`--out` of `train`, default `models/baseline/`).
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The model's architecture and vocabularies (same name as a bundle's manifest).
    pub fn model_config(&self) -> PathBuf {
        self.root.join(BUNDLE_CONFIG_FILE)
    }
    /// The run's own copy of the preprocessing it was trained with.
    pub fn preprocessing_metadata(&self) -> PathBuf {
        self.root.join(PREPROCESSING_METADATA_FILE)
    }
    /// The training configuration, checked on `--resume`.
    pub fn train_config(&self) -> PathBuf {
        self.root.join("train_config.json")
    }
    /// `evaluate`'s temperature.
    pub fn calibration(&self) -> PathBuf {
        self.root.join("calibration.json")
    }
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// The commit point of each epoch: history, scheduler, early-stopping counters.
    pub fn state(&self) -> PathBuf {
        self.checkpoints().join("state.json")
    }
    /// Weights of the epoch with the best validation macro-F1.
    pub fn best_weights(&self) -> PathBuf {
        self.checkpoints().join("best_model.bpk")
    }
    /// Weights and optimizer state after the last finished epoch (`--resume` reads them).
    pub fn last_weights(&self) -> PathBuf {
        self.checkpoints().join("last.bpk")
    }
    pub fn last_optimizer(&self) -> PathBuf {
        self.checkpoints().join("last_optimizer.bpk")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn history_json(&self) -> PathBuf {
        self.logs().join("training_history.json")
    }
    pub fn history_csv(&self) -> PathBuf {
        self.logs().join("training_history.csv")
    }
    pub fn curves(&self) -> PathBuf {
        self.logs().join("curves.png")
    }
    /// `evaluate`'s outputs.
    pub fn errors(&self) -> PathBuf {
        self.root.join("errors")
    }
    pub fn metrics(&self) -> PathBuf {
        self.errors().join("metrics.json")
    }
    pub fn predictions(&self) -> PathBuf {
        self.errors().join("predictions.csv")
    }
    pub fn error_analysis(&self) -> PathBuf {
        self.errors().join("error_analysis.json")
    }
    pub fn confusion_matrix(&self) -> PathBuf {
        self.errors().join("confusion_matrix.png")
    }
    pub fn reliability_plot(&self) -> PathBuf {
        self.errors().join("calibration.png")
    }
    /// The suggestion candidates' class prior `evaluate` measures on the training cells.
    pub fn suggestion_prior(&self) -> PathBuf {
        self.root.join("suggestion_prior.json")
    }
    /// The prior, overall and per kind (none per kind in runs measured before kinds), if
    /// `evaluate` has measured it.
    pub fn read_suggestion_prior(&self) -> Result<Option<CandidatePrior>> {
        let p = self.suggestion_prior();
        let Some(v) = read_json_if_present(&p)? else { return Ok(None) };
        let overall: Vec<f32> = serde_json::from_value(v["prior"].clone())
            .with_context(|| format!("{}: `prior`", p.display()))?;
        let by_kind = match v.get("by_kind") {
            Some(k) => serde_json::from_value(k.clone())
                .with_context(|| format!("{}: `by_kind`", p.display()))?,
            None => Default::default(),
        };
        Ok(Some(CandidatePrior { overall, by_kind }))
    }
    /// The suggestions' default threshold `evaluate` chooses on the validation cells.
    pub fn suggestion_threshold(&self) -> PathBuf {
        self.root.join("suggestion_threshold.json")
    }
    /// That threshold, if `evaluate` has chosen one.
    pub fn read_suggest_threshold(&self) -> Result<Option<f32>> {
        let p = self.suggestion_threshold();
        let Some(v) = read_json_if_present(&p)? else { return Ok(None) };
        let t: Option<f32> = serde_json::from_value(v["threshold"].clone())
            .with_context(|| format!("{}: `threshold`", p.display()))?;
        t.map(model_core::infer::suggest::check_threshold)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{}: `threshold` {e}", p.display()))
    }
    /// Each trained region's own prior and threshold, which `evaluate` measures on that
    /// region's cells when it names several trained regions.
    pub fn suggestion_area_rules(&self) -> PathBuf {
        self.root.join("suggestion_area_rules.json")
    }
    /// Those rules by region (none when `evaluate` has measured none).
    pub fn read_area_rules(&self) -> Result<BTreeMap<String, AreaRule>> {
        let p = self.suggestion_area_rules();
        let Some(v) = read_json_if_present(&p)? else { return Ok(BTreeMap::new()) };
        serde_json::from_value(v)
            .with_context(|| format!("{} is not a set of area rules", p.display()))
    }
    /// The suggestion evaluation's suggestions, candidates, figures and plot.
    pub fn suggestions_test(&self) -> PathBuf {
        self.errors().join("suggestions_test.csv")
    }
    pub fn candidates_test(&self) -> PathBuf {
        self.errors().join("candidates_test.csv")
    }
    pub fn suggestions_eval(&self) -> PathBuf {
        self.errors().join("suggestions_eval.json")
    }
    pub fn suggestions_pr(&self) -> PathBuf {
        self.errors().join("suggestions_pr.png")
    }
    /// The misclassified test tiles.
    pub fn images_test(&self) -> PathBuf {
        self.errors().join("images_test")
    }

    pub fn read_config(&self) -> Result<ModelConfig> {
        let path = self.model_config();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (is {} a training run?)", path.display(), self.root.display())
        })?;
        config_from_json(&text).with_context(|| path.display().to_string())
    }
    pub fn read_metadata(&self) -> Result<PreprocessingMetadata> {
        read_metadata(&self.preprocessing_metadata(), "written by `accessatlas train`")
    }
    /// The run's calibration: `None` when `evaluate` has not run; a file that does not parse
    /// is an error naming it (never a silent temperature of 1).
    pub fn read_calibration(&self) -> Result<Option<Calibration>> {
        let path = self.calibration();
        read_json_if_present(&path)?
            .map(serde_json::from_value)
            .transpose()
            .with_context(|| format!("{} is not a valid calibration", path.display()))
    }
    /// The calibrated temperature, 1 when the run has none yet.
    pub fn temperature(&self) -> Result<f32> {
        Ok(self.read_calibration()?.map_or(1.0, |c| c.temperature))
    }
    /// The best checkpoint and its config.
    pub fn load_best(&self, device: &Device) -> Result<(ModelConfig, AccessModel)> {
        let cfg = self.read_config()?;
        let w = self.best_weights();
        let bytes = std::fs::read(&w).with_context(|| format!("reading {}", w.display()))?;
        let model =
            model_from_bytes(&cfg, &bytes, device).with_context(|| w.display().to_string())?;
        Ok((cfg, model))
    }
    /// A new run: its folders, recipe, model config and the preprocessing it trains with (so
    /// predict and export need only the run folder).
    pub fn start(
        &self,
        recipe: &TrainConfig,
        model: &ModelConfig,
        meta: &PreprocessingMetadata,
    ) -> Result<()> {
        std::fs::create_dir_all(self.checkpoints())?;
        std::fs::create_dir_all(self.logs())?;
        write_atomic(&self.train_config(), serde_json::to_string_pretty(recipe)?.as_bytes())?;
        write_atomic(&self.model_config(), config_to_json(model).as_bytes())?;
        write_atomic(&self.preprocessing_metadata(), serde_json::to_string_pretty(meta)?.as_bytes())
    }

    /// Commits a finished epoch: weights (also as the best, if it is), optimizer, then the
    /// state (the commit point), then the history (JSON, CSV) and curves that view it.
    /// The weights a run from a trained model starts with, as its best until an epoch beats
    /// them (nothing else: a run killed before its first epoch starts over).
    pub fn commit_start(&self, weights: &[u8]) -> Result<()> {
        write_atomic(&self.best_weights(), weights)
    }

    pub fn commit_epoch(
        &self,
        state: &RunState,
        weights: &[u8],
        best: bool,
        optimizer: &[u8],
    ) -> Result<()> {
        if best {
            write_atomic(&self.best_weights(), weights)?;
        }
        write_atomic(&self.last_weights(), weights)?;
        write_atomic(&self.last_optimizer(), optimizer)?;
        write_atomic(&self.state(), serde_json::to_string_pretty(state)?.as_bytes())?;
        let history = &state.driver.history;
        write_atomic(&self.history_json(), serde_json::to_string_pretty(history)?.as_bytes())?;
        write_atomic(&self.history_csv(), &history_csv(history)?)?;
        crate::plot::training_curves(history, &self.curves())
    }

    /// The recipe the run was started with.
    pub fn read_recipe(&self) -> Result<TrainConfig> {
        let path = self.train_config();
        serde_json::from_str(&read_text(&path)?)
            .with_context(|| format!("{} does not parse", path.display()))
    }

    /// The state of the last committed epoch.
    pub fn read_state(&self) -> Result<RunState> {
        let path = self.state();
        serde_json::from_str(&read_text(&path)?)
            .with_context(|| format!("{} is truncated or corrupt", path.display()))
    }

    /// The last epoch's weights, for `model` (which must be the run's own config).
    pub fn load_last(&self, model: &ModelConfig, device: &Device) -> Result<AccessModel> {
        if self.read_config()? != *model {
            bail!("the data's vocabularies or the config differ from the checkpoint's model.json");
        }
        let last = self.last_weights();
        let bytes = std::fs::read(&last).with_context(|| format!("reading {}", last.display()))?;
        model_from_bytes(model, &bytes, device).with_context(|| last.display().to_string())
    }

    /// The test metrics `evaluate` wrote, if any.
    pub fn read_metrics(&self) -> Option<serde_json::Value> {
        std::fs::read(self.metrics()).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }
}

/// The history as CSV (one row per epoch, the JSON's fields as columns): the local
/// experiment log a spreadsheet or `pandas.read_csv` opens directly.
fn history_csv(history: &[EpochLog]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for e in history {
        w.serialize(e)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// Whether `dir` holds an exported bundle (its weights beside its manifest) rather than a run.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join(BUNDLE_WEIGHTS_FILE).is_file()
}

/// A bundle's manifest and weights.
pub fn read_bundle(dir: &Path) -> Result<(BundleManifest, Vec<u8>)> {
    let mp = dir.join(BUNDLE_CONFIG_FILE);
    let manifest =
        BundleManifest::from_json(&read_text(&mp)?).with_context(|| mp.display().to_string())?;
    let wp = dir.join(BUNDLE_WEIGHTS_FILE);
    let weights = std::fs::read(&wp).with_context(|| format!("reading {}", wp.display()))?;
    Ok((manifest, weights))
}

/// Loads an exported bundle, or a training run (its best checkpoint), for inference.
pub fn load_predictor(dir: &Path, device: &Device) -> Result<Predictor> {
    if is_bundle(dir) {
        let (m, w) = read_bundle(dir)?;
        return Predictor::from_bundle(&m, &w, device)
            .with_context(|| dir.join(BUNDLE_WEIGHTS_FILE).display().to_string());
    }
    let run = RunDir::new(dir);
    let (config, model) = run.load_best(device)?;
    let meta = run.read_metadata()?;
    if meta.labels != config.labels.names() {
        bail!("{}: labels differ from the model's", run.preprocessing_metadata().display());
    }
    let mut p = Predictor::new(config, model, meta.scaler, run.temperature()?, device);
    p.candidate_prior = run.read_suggestion_prior()?;
    p.suggest_threshold = run.read_suggest_threshold()?;
    p.area_rules = run.read_area_rules()?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suggestion_threshold_is_read_checked_and_absent_when_not_chosen() {
        let dir = std::env::temp_dir().join(format!("aa-run-thr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(&dir);
        assert_eq!(run.read_suggest_threshold().unwrap(), None);
        for (text, want) in [(r#"{"threshold": null}"#, None), (r#"{"threshold": 0.2}"#, Some(0.2))]
        {
            std::fs::write(run.suggestion_threshold(), text).unwrap();
            assert_eq!(run.read_suggest_threshold().unwrap(), want, "{text}");
        }
        for bad in [r#"{"threshold": 1.5}"#, r#"{"threshold": "high"}"#, "{"] {
            std::fs::write(run.suggestion_threshold(), bad).unwrap();
            let err = format!("{:#}", run.read_suggest_threshold().unwrap_err());
            assert!(err.contains("suggestion_threshold.json"), "{bad}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_calibration_is_an_error_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("aa-run-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = RunDir::new(&dir);
        assert!(run.read_calibration().unwrap().is_none());
        assert_eq!(run.temperature().unwrap(), 1.0);
        std::fs::write(run.calibration(), "{\"temperature\": ").unwrap();
        let err = format!("{:#}", run.temperature().unwrap_err());
        assert!(err.contains("calibration.json"), "{err}");
        std::fs::write(
            run.calibration(),
            r#"{"temperature": 1.5, "val_ece_before": 0.1, "val_ece_after": 0.05}"#,
        )
        .unwrap();
        assert_eq!(run.temperature().unwrap(), 1.5);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
