//! Native training around model-core's step ([`Trainer`]) and epoch driver: the splits as
//! model-core `TrainingExample`s, one epoch fed by a loader thread with a progress bar, and
//! validation. `accessatlas train` decides what to run and where files go; this does the work.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use model_core::data::augment::AugmentConfig;
use model_core::data::dataset::PreprocessingMetadata;
use model_core::data::preprocess::{ModelInput, TrainingExample, decode_rgb};
use model_core::data::split::stratified_sample;
use model_core::data::tags::{Tag, TagTable, parse_tags_csv};
use model_core::rng::Rng;
use model_core::train::driver::EpochLog;
use model_core::train::metrics::Metrics;
use model_core::train::precision::Precision;
use model_core::train::recipe::TrainConfig;
use model_core::train::trunk_cache::{TrunkCache, frozen_maps};
use model_core::train::{Batch, Trainer};
use model_core::{AccessModel, LabelVocab, ModelConfig};

use crate::run::DataDir;

/// The rows of `tags_{name}.csv` in `data` and the file's path; a row the file cannot hold
/// (the split files are `preprocess`'s) is an error naming file and line.
fn split_rows(data: &DataDir, name: &str, model: &ModelConfig) -> Result<(PathBuf, TagTable)> {
    let path = data.split(name);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `accessatlas preprocess`)", path.display()))?;
    let report =
        parse_tags_csv(&bytes, &model.labels).with_context(|| path.display().to_string())?;
    if let Some(r) = report.rejected.first() {
        bail!("{}: {r} (the split files are written by preprocess; run it again)", path.display());
    }
    Ok((path, report.table))
}

/// The examples of one split, assembled once.
pub struct Split {
    pub examples: Vec<TrainingExample>,
    pub labels: Vec<usize>,
    /// Each example's region (`""` where its file has no region column).
    pub regions: Vec<String>,
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
        let mut s = Split::empty(model);
        let (path, table) = split_rows(data, name, model)?;
        let regions = table.regions().into_iter().map(str::to_string).collect::<Vec<_>>();
        for (row, (t, region)) in table.tags.into_iter().zip(regions).enumerate() {
            s.push(data, &path, row, t, region, model, meta)?;
        }
        Ok(s)
    }

    /// Rehearsal: at most `rows` examples of the training and validation splits of `data` (a
    /// `preprocess`ed folder of the regions a bundle was trained on), none of the regions in
    /// `skip` (the run's own data speaks for those), drawn so that each class keeps its share
    /// ([`stratified_sample`]: the same rows for every run on the same data).
    pub fn rehearsal(
        data: &DataDir,
        skip: &BTreeSet<String>,
        rows: usize,
        model: &ModelConfig,
        meta: &PreprocessingMetadata,
    ) -> Result<Self> {
        let mut pool = Vec::new();
        for name in ["train", "val"] {
            let (path, table) = split_rows(data, name, model)?;
            let regions = table.regions().into_iter().map(str::to_string).collect::<Vec<_>>();
            for (row, (t, region)) in table.tags.into_iter().zip(regions).enumerate() {
                if !skip.contains(&region) {
                    pool.push((path.clone(), row, t, region));
                }
            }
        }
        let items: Vec<(&str, &str)> =
            pool.iter().map(|(_, _, t, _)| (t.id.as_str(), t.label.as_str())).collect();
        let picked = stratified_sample(&items, rows);
        let mut pool: Vec<Option<_>> = pool.into_iter().map(Some).collect();
        let mut s = Split::empty(model);
        for i in picked {
            let (path, row, t, region) = pool[i].take().expect("drawn once");
            s.push(data, &path, row, t, region, model, meta)?;
        }
        Ok(s)
    }

    /// Adds `other`'s examples after this split's.
    pub fn extend(&mut self, other: Split) {
        self.examples.extend(other.examples);
        self.labels.extend(other.labels);
        self.regions.extend(other.regions);
    }

    fn empty(model: &ModelConfig) -> Self {
        let names = model.labels.names().to_vec();
        let (examples, labels, regions) = (Vec::new(), Vec::new(), Vec::new());
        Split { examples, labels, regions, size: model.image_size as usize, names }
    }

    /// Row `row` (0-based, after the header) of the split file `path` in `data`, with its image.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        data: &DataDir,
        path: &Path,
        row: usize,
        t: Tag,
        region: String,
        model: &ModelConfig,
        meta: &PreprocessingMetadata,
    ) -> Result<()> {
        let Tag { image, lat, lon, source, label, id, .. } = t;
        let at = || format!("{} line {} ({id})", path.display(), row + 2);
        let rel = image.with_context(|| format!("{}: no image", at()))?;
        let p = data.resolve(&rel);
        let bytes =
            std::fs::read(&p).with_context(|| format!("{}: image {}", at(), p.display()))?;
        let img = decode_rgb(&bytes).with_context(|| format!("{}: image {}", at(), p.display()))?;
        let (size, scaler) = (model.image_size, &meta.scaler);
        let example = TrainingExample::new(img, size, lat, lon, &source, scaler, &model.sources)
            .with_context(at)?;
        self.examples.push(example);
        self.labels.push(model.labels.index(&label)?);
        self.regions.push(region);
        Ok(())
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

    /// `batch` (of `idx`) with its positions as the recipe's position dropout reads them
    /// ([`TrainConfig::positions_read`]); unchanged when the recipe hides none.
    fn hide_positions(
        &self,
        mut batch: Batch,
        idx: &[usize],
        cfg: &TrainConfig,
        rng: &mut Rng,
        device: &Device,
    ) -> Batch {
        if cfg.position_dropout > 0.0 {
            let coords = cfg.positions_read(idx.iter().map(|&i| self.examples[i].coords), rng);
            batch.coords = Tensor::from_data(TensorData::new(coords, [idx.len(), 2]), device);
        }
        batch
    }

    /// The batch of `idx` with `images` in place of their images (frozen-stage maps).
    fn batch_with(&self, idx: &[usize], images: Tensor<4>, device: &Device) -> Batch {
        let b = idx.len();
        let s = self.examples.first().map_or(0, |e| e.source.len());
        let coords: Vec<f32> = idx.iter().flat_map(|&i| self.examples[i].coords).collect();
        let sources: Vec<f32> =
            idx.iter().flat_map(|&i| self.examples[i].source.iter().copied()).collect();
        let targets: Vec<i64> = idx.iter().map(|&i| self.labels[i] as i64).collect();
        Batch {
            images,
            coords: Tensor::from_data(TensorData::new(coords, [b, 2]), device),
            sources: Tensor::from_data(TensorData::new(sources, [b, s]), device),
            targets: Tensor::from_data(TensorData::new(targets, [b]), device),
        }
    }
}

/// Bytes of frozen-stage maps a run keeps in memory (the bundled data's two views of 968 maps
/// of 112x14x14 take 170 MB); views past it are recomputed each epoch that needs them.
pub const TRUNK_CACHE_BYTES: usize = 4 << 30;

/// The encoder's frozen stages, in inference form: they never change during a run, so one
/// copy (batch norms on their running statistics, folded into the convolutions as the
/// predictor folds them) computes every map. Shared with the loader thread.
struct FrozenModel {
    stages: usize,
    model: AccessModel,
    inference: Device,
}

impl FrozenModel {
    /// The maps `[n, c, h, w]` of `inputs`, read back.
    fn maps(&self, inputs: &[ModelInput], size: usize) -> Result<(Vec<f32>, [usize; 4])> {
        let maps = frozen_maps(&self.model, self.stages, inputs, size, &self.inference)?;
        let shape = maps.dims();
        let data = maps.into_data().try_into_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok((data, shape))
    }
}

/// The encoder's frozen stages of a run and the maps they gave for the training views and
/// the validation images ([`model_core::train::trunk_cache`]).
pub struct FrozenStages {
    model: FrozenModel,
    train: TrunkCache,
    val: TrunkCache,
}

impl FrozenStages {
    /// For a recipe that freezes stages (`None` otherwise). `model` is the model about to train.
    pub fn new(
        cfg: &TrainConfig,
        model: &AccessModel,
        train: &Split,
        val: &Split,
        device: &Device,
    ) -> Option<Self> {
        let stages = cfg.freeze_stages.filter(|&k| k > 0)?;
        let mut frozen = model.valid();
        frozen.encoder = frozen.encoder.fold_batch_norms();
        let val_budget = TRUNK_CACHE_BYTES / 8;
        Some(Self {
            model: FrozenModel {
                stages,
                model: frozen,
                inference: device.clone().without_autodiff(),
            },
            train: TrunkCache::new(train.labels.len(), cfg.views, TRUNK_CACHE_BYTES - val_budget),
            val: TrunkCache::new(val.labels.len(), 1, val_budget),
        })
    }
}

/// A batch's model input as the loader hands it over: images, or frozen-stage maps.
enum Loaded {
    Images(Vec<ModelInput>),
    Maps(Vec<f32>, [usize; 4]),
}

/// The batch of `idx` from frozen-stage `maps` (kept in `cache` under `view` when the budget
/// allows).
fn batch_from_maps(
    split: &Split,
    cache: &mut TrunkCache,
    idx: &[usize],
    view: usize,
    (maps, shape): (Vec<f32>, [usize; 4]),
    device: &Device,
) -> Batch {
    let images = Tensor::from_data(TensorData::new(maps.clone(), shape), device);
    cache.store(idx, view, maps, shape);
    split.batch_with(idx, images, device)
}

/// The batch of `idx` from maps `cache` holds for `view`.
fn held_batch(
    split: &Split,
    cache: &TrunkCache,
    idx: &[usize],
    view: usize,
    device: &Device,
) -> Option<Batch> {
    let images = cache.batch(&cache.get(idx, view)?, device)?;
    Some(split.batch_with(idx, images, device))
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

/// Epoch `epoch` of the recipe over `split`, in batches, in the order the epoch's seed draws.
/// Without frozen stages every epoch augments afresh; with them it trains on the epoch's view
/// ([`TrainConfig::epoch_view`]) from the maps `frozen` holds, or computes them. Augmentation,
/// normalisation and the frozen stages run on a loader thread a few batches ahead; a progress
/// bar shows loss and speed.
pub fn train_epoch(
    trainer: &mut Trainer,
    split: &Split,
    cfg: &TrainConfig,
    epoch: usize,
    frozen: Option<&mut FrozenStages>,
    device: &Device,
    label: &str,
) -> Result<EpochFigures> {
    let t0 = Instant::now();
    let mut rng = Rng::new(cfg.epoch_seed(epoch));
    let mut order: Vec<usize> = (0..split.labels.len()).collect();
    rng.shuffle(&mut order);
    let chunks: Vec<&[usize]> = order.chunks(cfg.batch_size.max(1)).collect();
    let augmentation = cfg.augment.then(AugmentConfig::default);
    // With frozen stages: the epoch's view, and whether its maps must be computed (on the
    // loader thread, beside the training step: much of a step runs on one core).
    let view = cfg.epoch_view(epoch);
    let (frozen_model, mut cache) = match frozen {
        Some(f) => (Some(&f.model), Some(&mut f.train)),
        None => (None, None),
    };
    let all: Vec<usize> = (0..split.labels.len()).collect();
    let held = cache.as_ref().is_some_and(|c| c.get(&all, view).is_some());
    let bar = ProgressBar::new(chunks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{label} {{bar:30}} {{pos}}/{{len}} {{msg}}"))
            .expect("valid template"),
    );
    let (mut loss_sum, mut correct, mut seen, mut skipped) = (0.0f64, 0usize, 0usize, 0u64);
    let mut hide = cfg.position_rng(epoch);
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = sync_channel::<Result<Loaded>>(3);
        let chunks_ref = &chunks;
        let augmentation = augmentation.as_ref();
        if !held {
            s.spawn(move || {
                for idx in chunks_ref {
                    let loaded = match frozen_model {
                        Some(m) => {
                            let inputs: Vec<ModelInput> = idx
                                .iter()
                                .map(|&i| cfg.training_view(&split.examples[i], i, view))
                                .collect();
                            m.maps(&inputs, split.size).map(|(d, s)| Loaded::Maps(d, s))
                        }
                        None => Ok(Loaded::Images(
                            split.inputs(idx, augmentation.map(|a| (a, &mut rng))),
                        )),
                    };
                    if tx.send(loaded).is_err() {
                        break;
                    }
                }
            });
        }
        for idx in &chunks {
            let batch = match (held, cache.as_deref_mut()) {
                (true, Some(c)) => {
                    held_batch(split, c, idx, view, device).context("held maps went missing")?
                }
                (_, cache) => match (rx.recv().context("data loader stopped")??, cache) {
                    (Loaded::Images(inputs), _) => split.batch(idx, &inputs, device)?,
                    (Loaded::Maps(m, s), Some(c)) => {
                        batch_from_maps(split, c, idx, view, (m, s), device)
                    }
                    (Loaded::Maps(..), None) => unreachable!("maps come only with frozen stages"),
                },
            };
            let batch = split.hide_positions(batch, idx, cfg, &mut hide, device);
            let out = trainer.step(&batch);
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
    mut frozen: Option<&mut FrozenStages>,
    device: &Device,
) -> Result<(f64, Metrics)> {
    let (mut loss, mut preds) = (0.0f64, Vec::new());
    let all: Vec<usize> = (0..split.labels.len()).collect();
    for idx in all.chunks(batch_size.max(1)) {
        let batch = match frozen.as_deref_mut() {
            Some(f) => match held_batch(split, &f.val, idx, 0, device) {
                Some(b) => b,
                None => {
                    let maps = f.model.maps(&split.inputs(idx, None), split.size)?;
                    batch_from_maps(split, &mut f.val, idx, 0, maps, device)
                }
            },
            None => split.batch(idx, &split.inputs(idx, None), device)?,
        };
        let (l, p) = trainer.predict(&batch);
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
