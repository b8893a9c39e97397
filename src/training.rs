//! Native training around model-core's step ([`Trainer`]) and epoch driver: the splits as
//! model-core `TrainingExample`s, one epoch fed by a loader thread with a progress bar, and
//! validation. `accessatlas train` decides what to run and where files go; this does the work.

use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use model_core::data::augment::AugmentConfig;
use model_core::data::dataset::PreprocessingMetadata;
use model_core::data::preprocess::{ModelInput, TrainingExample, decode_rgb};
use model_core::data::tags::{Tag, parse_tags_csv};
use model_core::rng::Rng;
use model_core::train::driver::EpochLog;
use model_core::train::metrics::Metrics;
use model_core::train::precision::Precision;
use model_core::train::{Batch, Trainer};
use model_core::{LabelVocab, ModelConfig};

use crate::run::DataDir;

/// The examples of one split, assembled once.
pub struct Split {
    pub examples: Vec<TrainingExample>,
    pub labels: Vec<usize>,
    /// The model's input side and class names.
    size: usize,
    names: Vec<String>,
}

impl Split {
    /// `tags_{name}.csv` of `data` with its images, for `model`. Errors name file and line.
    pub fn load(
        data: &DataDir,
        name: &str,
        model: &ModelConfig,
        meta: &PreprocessingMetadata,
    ) -> Result<Self> {
        let path = data.split(name);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("reading {} (run `accessatlas preprocess`)", path.display())
        })?;
        let report =
            parse_tags_csv(&bytes, &model.labels).with_context(|| path.display().to_string())?;
        if let Some(r) = report.rejected.first() {
            bail!(
                "{}: {r} (the split files are written by preprocess; run it again)",
                path.display()
            );
        }
        let names = model.labels.names().to_vec();
        let size = model.image_size as usize;
        let mut s = Split { examples: Vec::new(), labels: Vec::new(), size, names };
        for (row, t) in report.table.tags.into_iter().enumerate() {
            let Tag { image, lat, lon, source, label, id, .. } = t;
            let at = || format!("{} line {} ({id})", path.display(), row + 2);
            let rel = image.with_context(|| format!("{}: no image", at()))?;
            let p = data.resolve(&rel);
            let bytes =
                std::fs::read(&p).with_context(|| format!("{}: image {}", at(), p.display()))?;
            let img =
                decode_rgb(&bytes).with_context(|| format!("{}: image {}", at(), p.display()))?;
            let (size, scaler) = (model.image_size, &meta.scaler);
            let example =
                TrainingExample::new(img, size, lat, lon, &source, scaler, &model.sources)
                    .with_context(at)?;
            s.examples.push(example);
            s.labels.push(model.labels.index(&label)?);
        }
        Ok(s)
    }

    /// The inputs of `idx`, augmented when `aug` is given.
    fn inputs(
        &self,
        idx: &[usize],
        mut aug: Option<(&AugmentConfig, &mut Rng)>,
    ) -> Vec<ModelInput> {
        idx.iter()
            .map(|&i| self.examples[i].view(aug.as_mut().map(|(c, r)| (*c, &mut **r))))
            .collect()
    }

    fn batch(&self, idx: &[usize], inputs: &[ModelInput], device: &Device) -> Result<Batch> {
        let targets: Vec<usize> = idx.iter().map(|&i| self.labels[i]).collect();
        Ok(Batch::from_inputs(inputs, &targets, self.size, device)?)
    }
}

/// Checks that the splits can train: both non-empty, no class only in validation.
pub fn check_splits(train: &Split, val: &Split, labels: &LabelVocab) -> Result<()> {
    if train.labels.is_empty() {
        bail!("the training split is empty");
    }
    if val.labels.is_empty() {
        bail!("the validation split is empty: collect more data or change the split");
    }
    for (c, name) in labels.names().iter().enumerate() {
        if !train.labels.contains(&c) && val.labels.contains(&c) {
            bail!("class `{name}` is in the validation split but absent from the training split");
        }
    }
    Ok(())
}

/// What one epoch of training measured.
pub struct EpochFigures {
    pub loss: f64,
    pub accuracy: f64,
    pub skipped_steps: u64,
}

/// One epoch over `split` in batches of `batch_size`, in the order and with the augmentation
/// `rng` draws. Augmentation and normalisation run on a loader thread a few batches ahead, so
/// the model never waits; a progress bar shows loss and speed.
pub fn train_epoch(
    trainer: &mut Trainer,
    split: &Split,
    batch_size: usize,
    augmentation: Option<&AugmentConfig>,
    mut rng: Rng,
    device: &Device,
    label: &str,
) -> Result<EpochFigures> {
    let t0 = Instant::now();
    let mut order: Vec<usize> = (0..split.labels.len()).collect();
    rng.shuffle(&mut order);
    let chunks: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    let bar = ProgressBar::new(chunks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{label} {{bar:30}} {{pos}}/{{len}} {{msg}}"))
            .expect("valid template"),
    );
    let (mut loss_sum, mut correct, mut seen, mut skipped) = (0.0f64, 0usize, 0usize, 0u64);
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = sync_channel::<Vec<ModelInput>>(3);
        let chunks_ref = &chunks;
        s.spawn(move || {
            for idx in chunks_ref {
                let aug = augmentation.map(|a| (a, &mut rng));
                if tx.send(split.inputs(idx, aug)).is_err() {
                    break;
                }
            }
        });
        for idx in &chunks {
            let inputs = rx.recv().context("data loader stopped")?;
            let out = trainer.step(&split.batch(idx, &inputs, device)?);
            skipped += u64::from(out.skipped);
            loss_sum += f64::from(out.loss) * out.count as f64;
            correct += out.correct;
            seen += out.count;
            let speed = seen as f64 / t0.elapsed().as_secs_f64();
            bar.set_message(format!("loss {:.4} {speed:.1} img/s", loss_sum / seen as f64));
            bar.inc(1);
        }
        Ok(())
    })?;
    trainer.flush();
    bar.finish_and_clear();
    let n = seen.max(1) as f64;
    Ok(EpochFigures { loss: loss_sum / n, accuracy: correct as f64 / n, skipped_steps: skipped })
}

/// Loss and metrics of the current model on `split` (no augmentation, inference mode).
pub fn validate(
    trainer: &Trainer,
    split: &Split,
    batch_size: usize,
    device: &Device,
) -> Result<(f64, Metrics)> {
    let (mut loss, mut preds) = (0.0f64, Vec::new());
    let all: Vec<usize> = (0..split.labels.len()).collect();
    for idx in all.chunks(batch_size.max(1)) {
        let (l, p) = trainer.predict(&split.batch(idx, &split.inputs(idx, None), device)?);
        loss += f64::from(l) * idx.len() as f64;
        preds.extend(p);
    }
    let m = Metrics::compute(&split.labels, &preds, &split.names);
    Ok((loss / split.labels.len().max(1) as f64, m))
}

/// Prints an epoch's line (and warns about batches skipped for overflowed gradients).
pub fn report(log: &EpochLog, precision: Precision) {
    if let (true, Some(scale)) = (log.skipped_steps > 0, log.loss_scale) {
        tracing::warn!(
            "epoch {}: {} batches skipped (gradients overflowed in {precision}); loss scale now {scale}",
            log.epoch,
            log.skipped_steps,
        );
    }
    println!(
        "epoch {:>3}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} macro-F1 {:.3} | lr {:.2e} | {:.1}s",
        log.epoch,
        log.train_loss,
        log.train_accuracy,
        log.val_loss,
        log.val_accuracy,
        log.val_macro_f1,
        log.lr,
        log.seconds
    );
}
