//! `accessatlas predict`: one prediction (type, confidence, every class's probability) for an
//! image and its metadata, from a training run or an exported bundle.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::Args;
use model_core::Prediction;
use model_core::bundle::{BUNDLE_CONFIG_FILE, BUNDLE_WEIGHTS_FILE, BundleManifest};
use model_core::dataset::PreprocessingMetadata;
use model_core::infer::Predictor;
use model_core::preprocess::decode_rgb;

use crate::cmd::evaluate::{Calibration, load_run};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A training run directory or an exported bundle.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub image: PathBuf,
    #[arg(long, allow_hyphen_values = true)]
    pub lat: f64,
    #[arg(long, allow_hyphen_values = true)]
    pub lon: f64,
    #[arg(long, default_value = "user")]
    pub source: String,
    /// Print `{type, confidence, probabilities}` as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Loads an exported bundle, or a training run (its best checkpoint), for inference.
pub fn load(dir: &Path, device: &Device) -> Result<Predictor> {
    // A bundle holds weights.bpk next to its manifest; a training run holds checkpoints/.
    let wp = dir.join(BUNDLE_WEIGHTS_FILE);
    if wp.is_file() {
        let manifest_path = dir.join(BUNDLE_CONFIG_FILE);
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let m = BundleManifest::from_json(&text)
            .with_context(|| manifest_path.display().to_string())?;
        let w = std::fs::read(&wp).with_context(|| format!("reading {}", wp.display()))?;
        return Predictor::from_bundle(&m, &w, device).with_context(|| wp.display().to_string());
    }
    let (config, model) = load_run(dir, device)?;
    let mp = dir.join("preprocessing_metadata.json");
    let meta = PreprocessingMetadata::from_json(
        &std::fs::read_to_string(&mp).with_context(|| format!("reading {}", mp.display()))?,
    )?;
    let temperature = std::fs::read_to_string(dir.join("calibration.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Calibration>(&t).ok())
        .map_or(1.0, |c| c.temperature);
    Ok(Predictor::new(config, model, meta.scaler, temperature, device))
}

/// One prediction for encoded image bytes and metadata.
pub fn predict_bytes(
    p: &Predictor,
    image: &[u8],
    lat: f64,
    lon: f64,
    source: &str,
) -> Result<Prediction> {
    let input = p.input(&decode_rgb(image)?, lat, lon, source)?;
    Ok(p.predict(&input)?)
}

pub fn run(args: PredictArgs) -> Result<()> {
    let device = Device::flex();
    let loaded = load(&args.model, &device)?;
    if loaded.config.sources.lookup(&args.source).is_none() {
        tracing::warn!(
            "source `{}` is not in the model's vocabulary; using the `unknown` bucket",
            args.source
        );
    }
    let bytes =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    let p = predict_bytes(&loaded, &bytes, args.lat, args.lon, &args.source)
        .with_context(|| args.image.display().to_string())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        println!("{} ({:.1} %)", p.label, p.confidence * 100.0);
        for (l, v) in &p.probabilities.0 {
            println!("  {l:<14} {:>6.2} %", v * 100.0);
        }
    }
    Ok(())
}
