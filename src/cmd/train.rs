//! `accessatlas train`: the seed's training pipeline on the preprocessed splits.
//!
//! Per epoch: train (augmented, class-weighted cross-entropy, AdamW, gradient clipping and
//! accumulation), validate (loss, accuracy, macro-F1), keep the best model by validation
//! macro-F1, checkpoint (atomically), log, step the LR schedule, check early stopping.
//! Randomness is derived from `(seed, epoch)`, so `--resume` continues exactly.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use clap::Args;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use model_core::augment::{AugmentConfig, augment};
use model_core::dataset::PreprocessingMetadata;
use model_core::metadata::Scaler;
use model_core::metrics::Metrics;
use model_core::model::ImageEncoder;
use model_core::persist::{config_from_json, config_to_json, model_from_bytes, weights_to_bytes};
use model_core::precision::{LossScaler, Precision};
use model_core::preprocess::{ModelInput, decode_rgb, normalize_chw, resize_square};
use model_core::rng::Rng;
use model_core::schedule::{Schedule, Scheduler};
use model_core::tags::{Tag, parse_tags_csv};
use model_core::train::{Batch, StepConfig, Trainer};
use model_core::{EncoderKind, LabelVocab, ModelConfig, SourceVocab};
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    Cosine,
    Step,
    Plateau,
    Constant,
}

/// Everything a run was trained with; saved as `train_config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub encoder: EncoderKind,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f32,
    pub scheduler: SchedulerKind,
    pub step_size: usize,
    pub gamma: f64,
    pub clip_norm: Option<f32>,
    pub accumulate: usize,
    pub patience: usize,
    /// Stages of the image encoder to freeze (default: 6 of EfficientNet-Lite0's 9 when
    /// pretrained, i.e. stem and the first five MBConv stages; 0 otherwise).
    pub freeze_stages: Option<usize>,
    pub pretrained: bool,
    pub image_size: u32,
    pub dropout: f64,
    pub seed: u64,
    pub augment: bool,
    /// Compute dtype of the training passes: f32, or mixed f16 / bf16 (f32 master weights).
    pub precision: Precision,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderKind::EfficientNetLite0,
            epochs: 8,
            batch_size: 16,
            lr: 1e-3,
            weight_decay: 1e-4,
            scheduler: SchedulerKind::Cosine,
            step_size: 5,
            gamma: 0.1,
            clip_norm: Some(1.0),
            accumulate: 1,
            patience: 4,
            freeze_stages: None,
            pretrained: true,
            image_size: 224,
            dropout: 0.3,
            seed: 42,
            augment: true,
            precision: Precision::F32,
        }
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Run directory (checkpoints/, logs/, configs).
    #[arg(long, default_value = "models/baseline")]
    pub out: PathBuf,
    /// TOML file with any `TrainConfig` fields; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub encoder: Option<EncoderKind>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// Freeze the first K stages of the image encoder.
    #[arg(long)]
    pub freeze_stages: Option<usize>,
    /// Apply the optimiser every N batches (gradient accumulation).
    #[arg(long)]
    pub accumulate: Option<usize>,
    /// Early-stopping patience in epochs.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Side of the square model input (224 for real runs; smaller only for quick experiments).
    #[arg(long)]
    pub image_size: Option<u32>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Start from random weights instead of the ImageNet-pretrained EfficientNet-Lite0.
    #[arg(long)]
    pub no_pretrained: bool,
    /// The pretrained .pth (default: the cached one, fetched if missing).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Mixed precision: `f16` (dynamic loss scaling) or `bf16` compute with f32 master weights;
    /// `f32` (default) for none. Refused where the device cannot compute in it.
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Backend: `cpu` (default), `wgpu` or `cuda` (the GPU ones need a build with that feature).
    #[arg(long, value_enum, default_value_t = crate::device::DeviceArg::Cpu)]
    pub device: crate::device::DeviceArg,
}

impl TrainArgs {
    fn resolve(&self) -> Result<TrainConfig> {
        let mut c = match &self.config {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&t).with_context(|| format!("parsing {}", p.display()))?
            }
            None => TrainConfig::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        over!(
            encoder, epochs, batch_size, lr, scheduler, accumulate, patience, image_size, seed,
            precision
        );
        if self.no_pretrained {
            c.pretrained = false;
        }
        if c.encoder != EncoderKind::EfficientNetLite0 {
            c.pretrained = false;
        }
        ensure!(
            c.epochs > 0 && c.batch_size > 0 && c.accumulate > 0,
            "epochs, batch size and accumulate must be > 0"
        );
        ensure!(c.lr > 0.0 && c.lr.is_finite(), "learning rate must be positive");
        if let Some(k) = self.freeze_stages {
            c.freeze_stages = Some(k);
        }
        let k = c.freeze_stages.unwrap_or(if c.pretrained { 6 } else { 0 });
        ensure!(
            k <= c.encoder.num_stages(),
            "{} has {} stages; cannot freeze {k}",
            c.encoder,
            c.encoder.num_stages()
        );
        c.freeze_stages = Some(k);
        Ok(c)
    }
}

/// One line of `training_history.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
    pub lr: f64,
    pub seconds: f64,
    /// Mixed precision: the loss scale at the end of the epoch (None in f32).
    #[serde(default)]
    pub loss_scale: Option<f64>,
    /// Mixed precision: batches the optimiser skipped this epoch (overflowed gradients).
    #[serde(default)]
    pub skipped_steps: u64,
}

/// Everything needed to resume; written last, after the checkpoint files it refers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    epochs_done: usize,
    best_macro_f1: f64,
    epochs_without_improvement: usize,
    scheduler: Scheduler,
    history: Vec<EpochLog>,
    /// Mixed precision: the loss scaler, so a resumed run continues at the same scale.
    #[serde(default)]
    loss_scaler: Option<LossScaler>,
}

/// Decoded examples of one split.
struct Split {
    images: Vec<RgbImage>,
    coords: Vec<[f32; 2]>,
    sources: Vec<Vec<f32>>,
    labels: Vec<usize>,
}

fn load_split(
    data: &Path,
    name: &str,
    labels: &LabelVocab,
    sources: &SourceVocab,
    scaler: &Scaler,
    size: u32,
) -> Result<Split> {
    let path = data.join(format!("tags_{name}.csv"));
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `accessatlas preprocess`)", path.display()))?;
    let report = parse_tags_csv(&bytes, labels).with_context(|| path.display().to_string())?;
    if let Some(r) = report.rejected.first() {
        bail!("{}: {r} (the split files are written by preprocess; run it again)", path.display());
    }
    let mut s =
        Split { images: Vec::new(), coords: Vec::new(), sources: Vec::new(), labels: Vec::new() };
    for t in report.table.tags {
        let Tag { image, lat, lon, source, label, id, .. } = t;
        let rel = image.with_context(|| format!("{}: {id} has no image", path.display()))?;
        let p = data.join(&rel);
        let bytes = std::fs::read(&p)
            .with_context(|| format!("{}: image {}", path.display(), p.display()))?;
        let img = decode_rgb(&bytes)
            .with_context(|| format!("{}: image {}", path.display(), p.display()))?;
        s.images.push(resize_square(img, size));
        s.coords.push(scaler.transform(lat, lon));
        let mut hot = vec![0.0; sources.one_hot_len()];
        sources.one_hot_into(&source, &mut hot);
        s.sources.push(hot);
        s.labels.push(labels.index(&label)?);
    }
    Ok(s)
}

fn batch_of(
    split: &Split,
    idx: &[usize],
    aug: Option<(&AugmentConfig, &mut Rng)>,
    size: usize,
    device: &Device,
) -> Result<Batch> {
    let mut aug = aug;
    let inputs: Vec<ModelInput> = idx
        .iter()
        .map(|&i| {
            let img = match aug.as_mut() {
                Some((cfg, rng)) => augment(&split.images[i], cfg, rng),
                None => split.images[i].clone(),
            };
            ModelInput {
                image: normalize_chw(&img),
                coords: split.coords[i],
                source: split.sources[i].clone(),
            }
        })
        .collect();
    let targets: Vec<usize> = idx.iter().map(|&i| split.labels[i]).collect();
    Ok(Batch::from_inputs(&inputs, &targets, size, device)?)
}

pub fn run(args: TrainArgs) -> Result<()> {
    let history = train(&args)?;
    if let Some(best) = history.iter().max_by(|a, b| a.val_macro_f1.total_cmp(&b.val_macro_f1)) {
        println!(
            "best epoch {}: val macro-F1 {:.3}, val accuracy {:.3}",
            best.epoch, best.val_macro_f1, best.val_accuracy
        );
    }
    println!("run written to {}", args.out.display());
    Ok(())
}

pub fn train(args: &TrainArgs) -> Result<Vec<EpochLog>> {
    // The backend first: a build without it fails before anything is read or written.
    let device = crate::device::device(args.device)?.autodiff();
    let out = &args.out;
    let ckpt = out.join("checkpoints");
    let logs = out.join("logs");
    let state_path = ckpt.join("state.json");
    let meta_path = args.data.join("preprocessing_metadata.json");
    let meta =
        PreprocessingMetadata::from_json(&std::fs::read_to_string(&meta_path).with_context(
            || format!("reading {} (run `accessatlas preprocess`)", meta_path.display()),
        )?)
        .with_context(|| meta_path.display().to_string())?;

    let (cfg, resume_state) = if args.resume {
        let saved = out.join("train_config.json");
        let cfg: TrainConfig = serde_json::from_str(
            &std::fs::read_to_string(&saved)
                .with_context(|| format!("--resume: reading {}", saved.display()))?,
        )
        .with_context(|| format!("--resume: {} does not parse", saved.display()))?;
        let asked = args.resolve()?;
        if args.encoder.is_some() && asked.encoder != cfg.encoder {
            bail!(
                "--resume: the run in {} was trained with {}, not {}",
                out.display(),
                cfg.encoder,
                asked.encoder
            );
        }
        if args.precision.is_some_and(|p| p != cfg.precision) {
            bail!(
                "--resume: the run in {} trains in {} (its saved config); resume it without \
                 --precision or start a new run",
                out.display(),
                cfg.precision
            );
        }
        let mut cfg = cfg;
        if let Some(e) = args.epochs {
            cfg.epochs = e;
        }
        if state_path.exists() {
            let st: RunState = serde_json::from_str(
                &std::fs::read_to_string(&state_path)
                    .with_context(|| format!("--resume: reading {}", state_path.display()))?,
            )
            .with_context(|| {
                format!("--resume: {} is truncated or corrupt", state_path.display())
            })?;
            (cfg, Some(st))
        } else {
            // Killed before its first epoch was committed: nothing to continue, start over.
            tracing::warn!(
                "--resume: no finished epoch in {}; starting from epoch 1",
                out.display()
            );
            (cfg, None)
        }
    } else {
        if state_path.exists() {
            bail!(
                "{} already holds a run; pass --resume to continue it or choose another --out",
                out.display()
            );
        }
        (args.resolve()?, None)
    };

    // A precision the device cannot compute in fails here, before the data is read.
    let precision_note = crate::device::check_precision(args.device, &device, cfg.precision)?;
    let labels = meta.label_vocab()?;
    let sources = meta.source_vocab()?;
    let mut model_cfg = ModelConfig::new(cfg.encoder);
    model_cfg.labels = labels.clone();
    model_cfg.sources = sources.clone();
    model_cfg.image_size = cfg.image_size;
    model_cfg.dropout = cfg.dropout;
    model_cfg.validate()?;

    let size = cfg.image_size as usize;
    let train_set =
        load_split(&args.data, "train", &labels, &sources, &meta.scaler, cfg.image_size)?;
    let val_set = load_split(&args.data, "val", &labels, &sources, &meta.scaler, cfg.image_size)?;
    ensure!(!train_set.labels.is_empty(), "the training split is empty");
    ensure!(
        !val_set.labels.is_empty(),
        "the validation split is empty: collect more data or change the split"
    );
    for (c, name) in labels.names().iter().enumerate() {
        let in_train = train_set.labels.contains(&c);
        if !in_train && val_set.labels.contains(&c) {
            bail!("class `{name}` is in the validation split but absent from the training split");
        }
    }
    tracing::info!(
        "{} train / {} val examples, encoder {}, {}x{} input",
        train_set.labels.len(),
        val_set.labels.len(),
        cfg.encoder,
        size,
        size
    );
    tracing::info!("{precision_note}");

    let mut model = match &resume_state {
        Some(_) => {
            let bytes = std::fs::read(ckpt.join("last.bpk")).with_context(|| {
                format!("--resume: reading {}", ckpt.join("last.bpk").display())
            })?;
            let saved_cfg = config_from_json(&std::fs::read_to_string(out.join("model.json"))?)?;
            ensure!(
                saved_cfg == model_cfg,
                "--resume: the data's vocabularies or the config differ from the checkpoint's model.json"
            );
            model_from_bytes(&model_cfg, &bytes, &device)
                .with_context(|| format!("--resume: {}", ckpt.join("last.bpk").display()))?
        }
        None if cfg.pretrained => {
            let w = match &args.weights {
                Some(w) => w.clone(),
                None => super::pretrained::fetch(&crate::paths::cache_dir().join("pretrained"))?,
            };
            let net = super::pretrained::load_lite0(&w, false, &device)?;
            model_cfg.assemble(ImageEncoder::EfficientNetLite0(net), &device)
        }
        None => model_cfg.init(&device)?,
    };
    let k = cfg.freeze_stages.unwrap_or(0);
    if k > 0 {
        model = model.freeze_encoder_stages(k);
    }
    let step_cfg = StepConfig {
        learning_rate: cfg.lr,
        weight_decay: cfg.weight_decay,
        clip_norm: cfg.clip_norm,
        class_weights: Some(meta.weights_in_order()),
        accumulate: cfg.accumulate,
        precision: cfg.precision,
    };
    let mut trainer = Trainer::new(model, step_cfg, &device);
    let mut state = match resume_state {
        Some(st) => {
            let b = std::fs::read(ckpt.join("last_optimizer.bpk"))
                .context("--resume: reading the optimizer state")?;
            trainer.load_optimizer_bytes(&b)?;
            if st.loss_scaler.is_some() {
                trainer.scaler = st.loss_scaler;
            }
            tracing::info!("resuming after epoch {}", st.epochs_done);
            st
        }
        None => {
            let schedule = match cfg.scheduler {
                SchedulerKind::Cosine => {
                    Schedule::Cosine { epochs: cfg.epochs, min_lr: cfg.lr * 0.01 }
                }
                SchedulerKind::Step => {
                    Schedule::Step { step_size: cfg.step_size, gamma: cfg.gamma }
                }
                SchedulerKind::Plateau => {
                    Schedule::ReduceOnPlateau { factor: 0.5, patience: 1, min_lr: cfg.lr * 0.01 }
                }
                SchedulerKind::Constant => Schedule::Constant,
            };
            std::fs::create_dir_all(&ckpt)?;
            std::fs::create_dir_all(&logs)?;
            write_atomic(
                &out.join("train_config.json"),
                serde_json::to_string_pretty(&cfg)?.as_bytes(),
            )?;
            write_atomic(&out.join("model.json"), config_to_json(&model_cfg).as_bytes())?;
            // The run keeps the preprocessing it was trained with (scaler, vocabularies,
            // weights), so predict and export need only the run directory.
            write_atomic(
                &out.join("preprocessing_metadata.json"),
                serde_json::to_string_pretty(&meta)?.as_bytes(),
            )?;
            RunState {
                epochs_done: 0,
                best_macro_f1: f64::NEG_INFINITY,
                epochs_without_improvement: 0,
                scheduler: Scheduler::new(schedule, cfg.lr),
                history: Vec::new(),
                loss_scaler: None,
            }
        }
    };

    let aug_cfg = AugmentConfig::default();
    for epoch in state.epochs_done + 1..=cfg.epochs {
        if state.epochs_without_improvement > cfg.patience {
            tracing::info!("early stopping: no improvement in {} epochs", cfg.patience);
            break;
        }
        let t0 = Instant::now();
        trainer.config.learning_rate = state.scheduler.lr;
        let mut rng = Rng::new(cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9));
        let mut order: Vec<usize> = (0..train_set.labels.len()).collect();
        rng.shuffle(&mut order);
        let chunks: Vec<Vec<usize>> = order.chunks(cfg.batch_size).map(<[usize]>::to_vec).collect();
        let bar = ProgressBar::new(chunks.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "epoch {epoch}/{} {{bar:30}} {{pos}}/{{len}} {{msg}}",
                cfg.epochs
            ))
            .expect("valid template"),
        );
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut skipped = 0u64;
        // Decode-free (images are in memory), augment + normalise on a worker thread so the
        // model never waits; the channel holds a few batches ahead.
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = sync_channel::<Vec<ModelInput>>(3);
            let train_ref = &train_set;
            let chunks_ref = &chunks;
            let aug_ref = &aug_cfg;
            let do_aug = cfg.augment;
            s.spawn(move || {
                let mut rng = rng;
                for idx in chunks_ref {
                    let inputs = idx
                        .iter()
                        .map(|&i| {
                            let img = if do_aug {
                                augment(&train_ref.images[i], aug_ref, &mut rng)
                            } else {
                                train_ref.images[i].clone()
                            };
                            ModelInput {
                                image: normalize_chw(&img),
                                coords: train_ref.coords[i],
                                source: train_ref.sources[i].clone(),
                            }
                        })
                        .collect();
                    if tx.send(inputs).is_err() {
                        break;
                    }
                }
            });
            for idx in &chunks {
                let inputs = rx.recv().context("data loader stopped")?;
                let targets: Vec<usize> = idx.iter().map(|&i| train_set.labels[i]).collect();
                let batch = Batch::from_inputs(&inputs, &targets, size, &device)?;
                let out = trainer.step(&batch);
                skipped += u64::from(out.skipped);
                loss_sum += f64::from(out.loss) * out.count as f64;
                correct += out.correct;
                seen += out.count;
                let secs = t0.elapsed().as_secs_f64();
                bar.set_message(format!(
                    "loss {:.4} {:.1} img/s",
                    loss_sum / seen as f64,
                    seen as f64 / secs
                ));
                bar.inc(1);
            }
            Ok(())
        })?;
        trainer.flush();
        bar.finish_and_clear();

        // Validation.
        let (mut vloss, mut preds) = (0.0f64, Vec::new());
        let vidx: Vec<usize> = (0..val_set.labels.len()).collect();
        for idx in vidx.chunks(cfg.batch_size) {
            let b = batch_of(&val_set, idx, None, size, &device)?;
            let (l, p) = trainer.predict(&b);
            vloss += f64::from(l) * idx.len() as f64;
            preds.extend(p);
        }
        let m = Metrics::compute(&val_set.labels, &preds, labels.names());
        let log = EpochLog {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_accuracy: correct as f64 / seen as f64,
            val_loss: vloss / val_set.labels.len() as f64,
            val_accuracy: m.accuracy,
            val_macro_f1: m.macro_avg.f1,
            lr: state.scheduler.lr,
            seconds: t0.elapsed().as_secs_f64(),
            loss_scale: trainer.scaler.map(|s| f64::from(s.scale)),
            skipped_steps: skipped,
        };
        if let (true, Some(scale)) = (skipped > 0, log.loss_scale) {
            tracing::warn!(
                "epoch {epoch}: {skipped} batches skipped (gradients overflowed in {}); loss scale now {scale}",
                cfg.precision,
            );
        }
        println!(
            "epoch {epoch:>3}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} macro-F1 {:.3} | lr {:.2e} | {:.1}s",
            log.train_loss,
            log.train_accuracy,
            log.val_loss,
            log.val_accuracy,
            log.val_macro_f1,
            log.lr,
            log.seconds
        );
        let weights = weights_to_bytes(&trainer.model)?;
        if log.val_macro_f1 > state.best_macro_f1 {
            state.best_macro_f1 = log.val_macro_f1;
            state.epochs_without_improvement = 0;
            write_atomic(&ckpt.join("best_model.bpk"), &weights)?;
        } else {
            state.epochs_without_improvement += 1;
        }
        state.scheduler.step(log.val_macro_f1);
        state.history.push(log);
        state.epochs_done = epoch;
        state.loss_scaler = trainer.scaler;
        write_atomic(&ckpt.join("last.bpk"), &weights)?;
        write_atomic(&ckpt.join("last_optimizer.bpk"), &trainer.optimizer_bytes()?)?;
        // state.json is the commit point of the epoch; history and curves are views of it.
        write_atomic(&state_path, serde_json::to_string_pretty(&state)?.as_bytes())?;
        write_atomic(
            &logs.join("training_history.json"),
            serde_json::to_string_pretty(&state.history)?.as_bytes(),
        )?;
        write_atomic(&logs.join("training_history.csv"), &history_csv(&state.history)?)?;
        crate::plot::training_curves(&state.history, &logs.join("curves.png"))?;
    }
    Ok(state.history)
}

/// The history as CSV (one row per epoch, the JSON's fields as columns): the local
/// experiment log a spreadsheet or `pandas.read_csv` opens directly.
pub fn history_csv(history: &[EpochLog]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for e in history {
        w.serialize(e)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}
