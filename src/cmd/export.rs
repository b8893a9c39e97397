//! `accessatlas export`: a trained run as a model bundle (`model.json` + `weights.bpk`), the
//! form the browser app, `predict` and the API load.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use model_core::bundle::{
    BUNDLE_CONFIG_FILE, BUNDLE_FORMAT, BUNDLE_WEIGHTS_FILE, BundleManifest, Provenance,
    TileSourceSpec,
};
use model_core::dataset::PreprocessingMetadata;
use model_core::persist::config_from_json;

use crate::cmd::collect::TILE_SOURCE_FILE;
use crate::cmd::evaluate::Calibration;
use crate::fsutil::write_atomic;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Training run directory.
    #[arg(long, default_value = "models/baseline")]
    pub model: PathBuf,
    /// Data directory the run was trained on (for the tile source it was cut from).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Output directory (default: <model>/bundle, or <model>/export-safetensors).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `bundle`: model.json + weights.bpk (what the app, predict and the API load);
    /// `safetensors`: model.json + model.safetensors with PyTorch-style keys.
    #[arg(long, value_enum, default_value_t = Format::Bundle)]
    pub format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Bundle,
    Safetensors,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The revision this binary was built from (see build.rs).
fn git_revision() -> String {
    env!("ACCESSATLAS_GIT_REV").to_string()
}

pub fn run(args: ExportArgs) -> Result<()> {
    let out = export(&args)?;
    println!("bundle written to {}", out.display());
    Ok(())
}

pub fn export(args: &ExportArgs) -> Result<PathBuf> {
    let run = &args.model;
    let config = config_from_json(&read(&run.join("model.json"))?).with_context(|| {
        format!("{} (is {} a training run?)", run.join("model.json").display(), run.display())
    })?;
    let meta = PreprocessingMetadata::from_json(&read(&run.join("preprocessing_metadata.json"))?)?;
    if meta.labels != config.labels.names() {
        bail!(
            "{}: labels differ from the model's",
            run.join("preprocessing_metadata.json").display()
        );
    }
    let weights_path = run.join("checkpoints/best_model.bpk");
    let weights = std::fs::read(&weights_path)
        .with_context(|| format!("reading {}", weights_path.display()))?;
    // Refuse weights that do not load into the config: a bundle must always work.
    let model =
        model_core::persist::model_from_bytes(&config, &weights, &burn::tensor::Device::flex())
            .with_context(|| weights_path.display().to_string())?;
    let temperature = match std::fs::read_to_string(run.join("calibration.json")) {
        Ok(t) => {
            serde_json::from_str::<Calibration>(&t)
                .with_context(|| run.join("calibration.json").display().to_string())?
                .temperature
        }
        Err(_) => 1.0,
    };
    let tile_source: TileSourceSpec =
        serde_json::from_str(&read(&args.data.join(TILE_SOURCE_FILE))?)
            .with_context(|| args.data.join(TILE_SOURCE_FILE).display().to_string())?;
    let metrics: Option<serde_json::Value> = std::fs::read(run.join("errors/metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT.to_string(),
        class_weights: meta.weights_in_order(),
        scaler: meta.scaler,
        config,
        temperature,
        tile_source,
        provenance: Provenance {
            data_hash: meta.input_hash.clone(),
            git_revision: git_revision(),
            test_accuracy: metrics.as_ref().and_then(|m| m["accuracy"].as_f64()),
            test_macro_f1: metrics.as_ref().and_then(|m| m["macro"]["f1"].as_f64()),
            created_by: concat!("accessatlas ", env!("CARGO_PKG_VERSION")).to_string(),
        },
    };
    // Weights first, manifest last: a bundle with a manifest is complete.
    let out = match args.format {
        Format::Bundle => {
            let out = args.out.clone().unwrap_or_else(|| run.join("bundle"));
            write_atomic(&out.join(BUNDLE_WEIGHTS_FILE), &weights)?;
            out
        }
        Format::Safetensors => {
            let out = args.out.clone().unwrap_or_else(|| run.join("export-safetensors"));
            let bytes = model_core::persist::weights_to_safetensors(&model)?;
            write_atomic(&out.join("model.safetensors"), &bytes)?;
            out
        }
    };
    write_atomic(&out.join(BUNDLE_CONFIG_FILE), manifest.to_json().as_bytes())?;
    Ok(out)
}
