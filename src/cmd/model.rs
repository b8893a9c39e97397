//! `accessatlas model ...`

use anyhow::Result;
use burn::tensor::Device;
use clap::Subcommand;
use model_core::model::{ImageEncoder, count_parameters};
use model_core::{EncoderKind, ModelConfig};
use serde::Serialize;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Parameter counts of the encoder, metadata encoder, fusion and head.
    Summary {
        /// The image encoder to count.
        #[arg(long, default_value = "efficientnet_lite0", value_parser = super::encoder_parser())]
        encoder: EncoderKind,
        /// Count the encoder with the 1000-class ImageNet classifier of its reference.
        #[arg(long)]
        imagenet_head: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Summary {
    encoder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    imagenet_encoder: Option<usize>,
    parts: model_core::model::ParamSummary,
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    let ModelCommand::Summary { encoder, imagenet_head, json } = cmd;
    let device = Device::flex();
    let parts = ModelConfig::new(encoder).init(&device)?.summary();
    let imagenet_encoder =
        imagenet_head.then(|| count_parameters(&ImageEncoder::new(encoder, Some(1000), &device)));
    let s = Summary { encoder: encoder.to_string(), imagenet_encoder, parts };
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    println!("model with encoder {}", s.encoder);
    let rows = [
        ("image encoder", parts.encoder),
        ("metadata encoder", parts.metadata),
        ("fusion", parts.fusion),
        ("head", parts.head),
        ("total", parts.total),
    ];
    for (name, n) in rows {
        println!("  {name:<18} {n:>12}");
    }
    if let Some(n) = imagenet_encoder {
        println!("  {:<18} {n:>12}  (encoder with 1000-class ImageNet classifier)", "reference");
    }
    Ok(())
}
