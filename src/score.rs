//! Scoring a data split with a model: the logits `evaluate` and `export`'s int8 check share.

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use model_core::data::metadata::Scaler;
use model_core::data::preprocess::{ModelInput, decode_rgb};
use model_core::data::tags::{Tag, parse_tags_csv};
use model_core::train::Batch;
use model_core::{AccessModel, ModelConfig};

use crate::run::DataDir;

/// A split's labels and the model's logits for it.
pub struct Scored {
    pub tags: Vec<Tag>,
    /// Each row's region (`""` where the split has no `region` column).
    pub regions: Vec<String>,
    pub truth: Vec<usize>,
    pub logits: Vec<Vec<f32>>,
}

/// Runs `model` over a split of `data` (`tags_{split}.csv`), reading positions with `scaler`:
/// the model's own (the one it was trained with), which is the data's only when the model was
/// trained on that data.
pub fn score(
    data: &DataDir,
    split: &str,
    cfg: &ModelConfig,
    scaler: &Scaler,
    model: &AccessModel,
    device: &Device,
) -> Result<Scored> {
    let path = data.split(split);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `accessatlas preprocess`)", path.display()))?;
    let report = parse_tags_csv(&bytes, &cfg.labels).with_context(|| path.display().to_string())?;
    if let Some(r) = report.rejected.first() {
        bail!("{}: {r}", path.display());
    }
    let regions = report.table.regions().into_iter().map(str::to_string).collect();
    let tags = report.table.tags;
    let size = cfg.image_size as usize;
    let mut logits = Vec::with_capacity(tags.len());
    let mut truth = Vec::with_capacity(tags.len());
    for chunk in tags.chunks(32) {
        let mut inputs = Vec::with_capacity(chunk.len());
        let mut targets = Vec::with_capacity(chunk.len());
        for t in chunk {
            let rel = t
                .image
                .as_deref()
                .with_context(|| format!("{}: {} has no image", path.display(), t.id))?;
            let p = data.resolve(rel);
            let b = std::fs::read(&p).with_context(|| format!("image {}", p.display()))?;
            let rgb = decode_rgb(&b).with_context(|| format!("image {}", p.display()))?;
            inputs.push(ModelInput::from_rgb_sized(
                &rgb,
                cfg.image_size,
                t.lat,
                t.lon,
                &t.source,
                scaler,
                &cfg.sources,
            )?);
            targets.push(cfg.labels.index(&t.label)?);
        }
        let batch = Batch::from_inputs(&inputs, &targets, size, device)?;
        truth.extend(targets);
        let out = model.forward(batch.images, batch.coords, batch.sources);
        let v = out.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        logits.extend(v.chunks(cfg.num_classes()).map(<[f32]>::to_vec));
    }
    Ok(Scored { tags, regions, truth, logits })
}
