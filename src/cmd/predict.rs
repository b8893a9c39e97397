//! `accessatlas predict`: one prediction (type, confidence, every class's probability) for an
//! image and its metadata, from a training run or an exported bundle.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::tensor::Device;
use clap::Args;
use model_core::Prediction;
use model_core::data::preprocess::decode_rgb;
use model_core::infer::Predictor;

use crate::run::load_predictor;

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A training run directory or an exported bundle.
    #[arg(long)]
    pub model: PathBuf,
    /// The map tile around the location (PNG or JPEG; resized to the model's input).
    #[arg(long)]
    pub image: PathBuf,
    /// Latitude of the location, in degrees (WGS 84).
    #[arg(long, allow_hyphen_values = true)]
    pub lat: f64,
    /// Longitude of the location, in degrees (WGS 84).
    #[arg(long, allow_hyphen_values = true)]
    pub lon: f64,
    /// Who recorded the location (one of the model's sources; others use `unknown`).
    #[arg(long, default_value = "user")]
    pub source: String,
    /// Print `{type, confidence, probabilities}` as JSON.
    #[arg(long)]
    pub json: bool,
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
    let loaded = load_predictor(&args.model, &device)?;
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
    if p.outside_trained_area {
        let area = loaded.scaler.describe_areas();
        tracing::warn!(
            "{},{} lies outside the area the model was trained on ({area}): the model read its \
             position as that area's centre, and this prediction is a guess until the model is \
             adapted to the area (train --init)",
            args.lat,
            args.lon
        );
    }
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
