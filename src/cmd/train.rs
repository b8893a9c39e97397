//! `accessatlas train`: the seed's training pipeline on the preprocessed splits.
//!
//! Per epoch: train (augmented, class-weighted cross-entropy, AdamW, gradient clipping and
//! accumulation), validate (loss, accuracy, macro-F1), keep the best model by validation
//! macro-F1, checkpoint (atomically), log, step the LR schedule, check early stopping.
//! Every random draw (initialisation, order, augmentation, dropout) follows from `--seed`, the
//! epoch's from `(seed, epoch)`: the same seed gives the same run on the same machine, and a
//! run resumed after epoch k ends as the uninterrupted one (both tested).

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::tensor::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use model_core::augment::AugmentConfig;
use model_core::driver::{DriverState, EpochDriver, EpochLog};
use model_core::metadata::Scaler;
use model_core::metrics::Metrics;
use model_core::model::ImageEncoder;
use model_core::persist::{config_to_json, model_from_bytes, weights_to_bytes};
use model_core::precision::{LossScaler, Precision};
use model_core::preprocess::{ModelInput, TrainingExample, decode_rgb};
use model_core::rng::Rng;
use model_core::schedule::{Schedule, Scheduler};
use model_core::tags::{Tag, parse_tags_csv};
use model_core::train::{Batch, StepConfig, Trainer};
use model_core::{EncoderKind, LabelVocab, ModelConfig, SourceVocab};
use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;
use crate::run::{DataDir, RunDir};

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
    /// Data folder with the splits `preprocess` wrote.
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Run directory (checkpoints/, logs/, configs).
    #[arg(long, default_value = "models/baseline")]
    pub out: PathBuf,
    /// TOML file with any `TrainConfig` fields; flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Image encoder [default: efficientnet_lite0, ImageNet-pretrained].
    #[arg(long, value_parser = super::encoder_parser())]
    pub encoder: Option<EncoderKind>,
    /// Epochs at most (early stopping may end sooner) [default: 8].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Examples per batch [default: 16].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate of AdamW [default: 1e-3].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning-rate schedule, stepped once per epoch [default: cosine].
    #[arg(long, value_enum)]
    pub scheduler: Option<SchedulerKind>,
    /// Freeze the first K stages of the image encoder.
    #[arg(long)]
    pub freeze_stages: Option<usize>,
    /// Apply the optimiser every N batches (gradient accumulation).
    #[arg(long)]
    pub accumulate: Option<usize>,
    /// Stop after this many epochs in a row without a better validation macro-F1 [default: 4].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Side of the square model input (224 for real runs; smaller only for quick experiments).
    #[arg(long)]
    pub image_size: Option<u32>,
    /// Seed of every random draw (initialisation, order, augmentation, dropout) [default: 42].
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
    #[arg(long, value_parser = super::precision_parser())]
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

/// Everything needed to resume; written last, after the checkpoint files it refers to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RunState {
    #[serde(flatten)]
    driver: DriverState,
    /// Mixed precision: the loss scaler, so a resumed run continues at the same scale.
    #[serde(default)]
    loss_scaler: Option<LossScaler>,
}

/// The examples of one split, assembled once (model-core's `TrainingExample`).
struct Split {
    examples: Vec<TrainingExample>,
    labels: Vec<usize>,
}

fn load_split(
    data: &DataDir,
    name: &str,
    labels: &LabelVocab,
    sources: &SourceVocab,
    scaler: &Scaler,
    size: u32,
) -> Result<Split> {
    let path = data.split(name);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run `accessatlas preprocess`)", path.display()))?;
    let report = parse_tags_csv(&bytes, labels).with_context(|| path.display().to_string())?;
    if let Some(r) = report.rejected.first() {
        bail!("{}: {r} (the split files are written by preprocess; run it again)", path.display());
    }
    let mut s = Split { examples: Vec::new(), labels: Vec::new() };
    for (row, t) in report.table.tags.into_iter().enumerate() {
        let Tag { image, lat, lon, source, label, id, .. } = t;
        let at = || format!("{} line {} ({id})", path.display(), row + 2);
        let rel = image.with_context(|| format!("{}: no image", at()))?;
        let p = data.resolve(&rel);
        let bytes =
            std::fs::read(&p).with_context(|| format!("{}: image {}", at(), p.display()))?;
        let img = decode_rgb(&bytes).with_context(|| format!("{}: image {}", at(), p.display()))?;
        let example =
            TrainingExample::new(img, size, lat, lon, &source, scaler, sources).with_context(at)?;
        s.examples.push(example);
        s.labels.push(labels.index(&label)?);
    }
    Ok(s)
}

/// The inputs of `idx`, augmented when `aug` is given.
fn inputs_of(
    split: &Split,
    idx: &[usize],
    mut aug: Option<(&AugmentConfig, &mut Rng)>,
) -> Vec<ModelInput> {
    idx.iter().map(|&i| split.examples[i].view(aug.as_mut().map(|(c, r)| (*c, &mut **r)))).collect()
}

fn batch_of(split: &Split, idx: &[usize], size: usize, device: &Device) -> Result<Batch> {
    let targets: Vec<usize> = idx.iter().map(|&i| split.labels[i]).collect();
    Ok(Batch::from_inputs(&inputs_of(split, idx, None), &targets, size, device)?)
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
    let (run, data) = (RunDir::new(out), DataDir::new(&args.data));
    let state_path = run.state();
    let meta = data.read_metadata()?;

    let (cfg, resume_state) = if args.resume {
        let saved = run.train_config();
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
    let train_set = load_split(&data, "train", &labels, &sources, &meta.scaler, cfg.image_size)?;
    let val_set = load_split(&data, "val", &labels, &sources, &meta.scaler, cfg.image_size)?;
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

    // The backend's generator (weight initialisation, dropout) is seeded too: the same seed and
    // data give the same run on the same machine.
    device.seed(cfg.seed);
    let mut model = match &resume_state {
        Some(_) => {
            let last = run.last_weights();
            let bytes = std::fs::read(&last)
                .with_context(|| format!("--resume: reading {}", last.display()))?;
            let saved_cfg = run.read_config()?;
            ensure!(
                saved_cfg == model_cfg,
                "--resume: the data's vocabularies or the config differ from the checkpoint's model.json"
            );
            model_from_bytes(&model_cfg, &bytes, &device)
                .with_context(|| format!("--resume: {}", last.display()))?
        }
        None if cfg.pretrained => {
            let w = match &args.weights {
                Some(w) => w.clone(),
                None => crate::pretrained::fetch(&crate::pretrained::default_dir())?,
            };
            let net = crate::pretrained::load_lite0(&w, false, &device)?;
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
            let b = std::fs::read(run.last_optimizer())
                .context("--resume: reading the optimizer state")?;
            trainer.load_optimizer_bytes(&b)?;
            if st.loss_scaler.is_some() {
                trainer.scaler = st.loss_scaler;
            }
            tracing::info!("resuming after epoch {}", st.driver.epochs_done);
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
            std::fs::create_dir_all(run.checkpoints())?;
            std::fs::create_dir_all(run.logs())?;
            write_atomic(&run.train_config(), serde_json::to_string_pretty(&cfg)?.as_bytes())?;
            write_atomic(&run.model_config(), config_to_json(&model_cfg).as_bytes())?;
            // The run keeps the preprocessing it was trained with (scaler, vocabularies,
            // weights), so predict and export need only the run directory.
            write_atomic(
                &run.preprocessing_metadata(),
                serde_json::to_string_pretty(&meta)?.as_bytes(),
            )?;
            RunState {
                driver: EpochDriver::new(
                    cfg.epochs,
                    cfg.patience,
                    Scheduler::new(schedule, cfg.lr),
                )
                .state,
                loss_scaler: None,
            }
        }
    };
    let mut driver = EpochDriver::resume(cfg.epochs, cfg.patience, state.driver.clone());

    let aug_cfg = AugmentConfig::default();
    if driver.stopped_early() {
        tracing::info!("the run had stopped early: no epoch to add");
    }
    while let Some(epoch) = driver.next_epoch() {
        let t0 = Instant::now();
        trainer.config.learning_rate = driver.lr();
        // Every random draw of an epoch (order, augmentation, dropout) follows from (seed,
        // epoch), so a resumed run draws what the uninterrupted one would have.
        let epoch_seed = cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9);
        device.seed(epoch_seed.rotate_left(17));
        let mut rng = Rng::new(epoch_seed);
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
                    let aug = do_aug.then_some((aug_ref, &mut rng));
                    if tx.send(inputs_of(train_ref, idx, aug)).is_err() {
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
            let b = batch_of(&val_set, idx, size, &device)?;
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
            lr: driver.lr(),
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
        let verdict = driver.finish_epoch(log);
        if verdict.best {
            write_atomic(&run.best_weights(), &weights)?;
        }
        state.driver = driver.state.clone();
        state.loss_scaler = trainer.scaler;
        write_atomic(&run.last_weights(), &weights)?;
        write_atomic(&run.last_optimizer(), &trainer.optimizer_bytes()?)?;
        // state.json is the commit point of the epoch; history and curves are views of it.
        write_atomic(&state_path, serde_json::to_string_pretty(&state)?.as_bytes())?;
        let history = &state.driver.history;
        write_atomic(&run.history_json(), serde_json::to_string_pretty(history)?.as_bytes())?;
        write_atomic(&run.history_csv(), &history_csv(history)?)?;
        crate::plot::training_curves(history, &run.curves())?;
        if verdict.early_stop {
            tracing::info!(
                "early stopping after epoch {epoch}: no better validation macro-F1 in the last {} epochs",
                cfg.patience
            );
        }
    }
    Ok(state.driver.history)
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        args: TrainArgs,
    }

    /// The defaults `--help` states are `TrainConfig::default()`'s (flags are optional so a
    /// `--config` file can set them, so clap cannot show them by itself).
    #[test]
    fn help_states_the_config_defaults() {
        let help = Wrap::command().render_long_help().to_string();
        let d = TrainConfig::default();
        for (flag, value) in [
            ("--encoder", d.encoder.to_string()),
            ("--epochs", d.epochs.to_string()),
            ("--batch-size", d.batch_size.to_string()),
            ("--lr", format!("{:e}", d.lr)),
            ("--scheduler", format!("{:?}", d.scheduler).to_lowercase()),
            ("--patience", d.patience.to_string()),
            ("--seed", d.seed.to_string()),
        ] {
            let at = help.find(&format!("{flag} <")).unwrap_or_else(|| panic!("{flag}: {help}"));
            let next = help[at + 2..].find("\n  -").map_or(help.len(), |n| at + 2 + n);
            let text = &help[at..next];
            assert!(text.contains(&format!("[default: {value}")), "{flag}: {text}");
        }
        for values in ["custom_cnn", "efficientnet_lite0", "resnet50", "f16", "bf16", "plateau"] {
            assert!(help.contains(values), "{values} is not listed: {help}");
        }
    }
}
