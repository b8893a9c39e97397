//! `accessatlas train`: the flags, the run folder and the device around model-core's recipe
//! (`TrainConfig`) and epoch driver and `crate::training`'s epochs. Every random draw follows
//! from `--seed` (the epoch's from `(seed, epoch)`): the same seed gives the same run on the
//! same machine, and a resumed run ends as the uninterrupted one (both tested).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use model_core::EncoderKind;
use model_core::model::ImageEncoder;
use model_core::model::persist::weights_to_bytes;
use model_core::train::Trainer;
use model_core::train::driver::{DriverState, EpochDriver, EpochLog, Keep};
use model_core::train::precision::Precision;
use model_core::train::recipe::{REHEARSE_ROWS, SchedulerKind, TrainConfig};
use model_core::train::schedule::Scheduler;

use crate::run::{DataDir, RunDir, RunState, short_hash};
use crate::training::{FrozenStages, Split, check_splits, report, train_epoch, validate};
use model_core::data::dataset::PreprocessingMetadata;

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
    #[arg(long, value_parser = super::scheduler_parser())]
    pub scheduler: Option<SchedulerKind>,
    /// Freeze the first K stages of the image encoder [default: 6 when pretrained]. They run
    /// once per image and view, in inference mode, and each epoch trains the rest.
    #[arg(long)]
    pub freeze_stages: Option<usize>,
    /// With frozen stages: augmented views per training image, computed once; epoch E trains
    /// on view (E - 1) mod N [default: 2].
    #[arg(long)]
    pub views: Option<usize>,
    /// Hide the position (lat/lon) of this share of the training examples each epoch, so the
    /// model also learns to answer where it reads no position: outside every trained area
    /// [default: 0].
    #[arg(long)]
    pub position_dropout: Option<f64>,
    /// Apply the optimiser every N batches (gradient accumulation).
    #[arg(long)]
    pub accumulate: Option<usize>,
    /// Stop after this many epochs in a row without a better validation macro-F1 [default: 4].
    #[arg(long)]
    pub patience: Option<usize>,
    /// Which epoch's weights are the run's model: `best`, the best validation macro-F1 (with
    /// early stopping; from --init, the start unless an epoch beats it), or `last`, every epoch
    /// run and the last one kept: for a validation split of a few dozen rows, too small to
    /// choose an epoch on [default: best; with --rehearse, last, unless --config names one].
    #[arg(long, value_parser = super::keep_parser())]
    pub keep: Option<Keep>,
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
    /// Start from a model bundle's weights (`export` writes one; `assets/model` is the shipped
    /// one) instead of ImageNet's: adapting a model to your own area. The data's labels must
    /// be the bundle's; the architecture, input size and sources are the bundle's. Without
    /// --rehearse the run learns at a tenth of the recipe's rate unless --lr is given, and keeps
    /// an epoch only if it beats the bundle on the validation split (else the bundle's weights
    /// are the best).
    #[arg(long, conflicts_with_all = ["no_pretrained", "weights"])]
    pub init: Option<PathBuf>,
    /// With --init: a `preprocess`ed data folder of the regions the bundle was trained on (the
    /// bundled extracts' `collect`), from which --rehearse-rows rows join the training split,
    /// never the validation split; rows of regions your own data holds are left out. The run
    /// then learns at the recipe's full rate: the known places keep the model near what it knew
    /// while your few hundred rows teach it your area. It runs every epoch and keeps the last
    /// (unless --keep best).
    #[arg(long, requires = "init", conflicts_with = "resume")]
    pub rehearse: Option<PathBuf>,
    /// Rows --rehearse adds, drawn so that each type keeps its share (the same rows for every
    /// run on the same data) [default: 600].
    #[arg(long, requires = "rehearse")]
    pub rehearse_rows: Option<usize>,
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
    /// The recipe: `--config` (or the defaults), the flags over it, settled and checked.
    fn resolve(&self) -> Result<TrainConfig> {
        // The recipe, and whether the file names which epoch to keep.
        let (mut c, file_keeps) = match &self.config {
            Some(p) => {
                let t = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let c: TrainConfig =
                    toml::from_str(&t).with_context(|| format!("parsing {}", p.display()))?;
                (c, t.parse::<toml::Table>().is_ok_and(|t| t.contains_key("keep")))
            }
            None => (TrainConfig::default(), false),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        over!(
            encoder,
            epochs,
            batch_size,
            lr,
            scheduler,
            accumulate,
            patience,
            image_size,
            seed,
            precision,
            views,
            position_dropout,
            keep
        );
        if self.init.is_some() && self.rehearse.is_none() && self.lr.is_none() {
            c.lr *= model_core::train::recipe::ADAPT_LR_SHARE;
        }
        // Rehearsing, the run keeps its last epoch unless told otherwise: its few dozen
        // validation rows of the new area choose an epoch by chance (docs/regions.md).
        if self.rehearse.is_some() && self.keep.is_none() && !file_keeps {
            c.keep = Keep::Last;
        }
        c.pretrained &= !self.no_pretrained;
        if self.freeze_stages.is_some() {
            c.freeze_stages = self.freeze_stages;
        }
        Ok(c.settle()?)
    }

    /// The saved recipe of the run in `--out`, with what a resume may change (`--epochs`).
    fn resumed(&self, run: &RunDir) -> Result<TrainConfig> {
        let saved = run.read_recipe().context("--resume")?;
        let cfg = saved.resumed_with(self.encoder, self.precision, self.epochs);
        cfg.with_context(|| format!("--resume: the run in {}", run.root().display()))
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let driver = train(&args)?;
    let history = &driver.history;
    if let Some(start) = driver.start_macro_f1.filter(|_| driver.kept_start()) {
        println!(
            "no epoch beat the starting model's validation macro-F1 {start:.3}: the run's best \
             weights are the ones it started from"
        );
    } else if let (Keep::Last, Some(last)) = (driver.keep, history.last()) {
        println!(
            "kept the last epoch, {}: val macro-F1 {:.3}, val accuracy {:.3}",
            last.epoch, last.val_macro_f1, last.val_accuracy
        );
    } else if let Some(best) =
        history.iter().max_by(|a, b| a.val_macro_f1.total_cmp(&b.val_macro_f1))
    {
        println!(
            "best epoch {}: val macro-F1 {:.3}, val accuracy {:.3}",
            best.epoch, best.val_macro_f1, best.val_accuracy
        );
    }
    println!("run written to {}", args.out.display());
    Ok(())
}

/// `--init DIR`: the bundle's model config, weights and scaler, when the bundle fits the data: the
/// same labels, and the encoder and input size the recipe asks for. The run then uses the
/// bundle's config (its sources: a source of the data it lacks reads as `unknown`).
pub fn init_bundle(
    dir: &std::path::Path,
    wanted: &model_core::ModelConfig,
) -> Result<(model_core::ModelConfig, Vec<u8>, model_core::data::metadata::Scaler)> {
    let (manifest, weights) = crate::run::read_bundle(dir).with_context(|| {
        format!("--init {} (a model bundle, as `export` writes)", dir.display())
    })?;
    let have = &manifest.config;
    let what = format!("--init {}", dir.display());
    if have.labels != wanted.labels {
        bail!(
            "{what}: the bundle predicts {:?} but the data's labels are {:?}: adapt only a model \
             with the same label set",
            have.labels.names(),
            wanted.labels.names()
        );
    }
    if have.encoder != wanted.encoder {
        bail!(
            "{what}: the bundle's encoder is {} but the run asks for {} (leave --encoder out, or \
             name the bundle's)",
            have.encoder,
            wanted.encoder
        );
    }
    if have.image_size != wanted.image_size {
        bail!(
            "{what}: the bundle reads {s}x{s} images but the run asks for {w}x{w}",
            s = have.image_size,
            w = wanted.image_size
        );
    }
    for s in wanted.sources.names() {
        if have.sources.lookup(s).is_none() {
            tracing::warn!(
                "{what}: source `{s}` is not in the bundle's vocabulary: read as `unknown`"
            );
        }
    }
    let mut cfg = have.clone();
    cfg.dropout = wanted.dropout;
    Ok((cfg, weights, manifest.scaler))
}

/// A run continues only on the split it started on: otherwise its epochs so far were learned
/// from other data and the resumed run would be neither the old one nor a new one.
fn check_same_split(run: &RunDir, now: &PreprocessingMetadata) -> Result<()> {
    let then = run.read_metadata().context("--resume")?;
    if !then.same_split(now) {
        bail!(
            "--resume: the run in {} was trained on another split (tags {}, now {}; {} \
             training examples, now {}): train into another --out, or delete the run to start \
             over",
            run.root().display(),
            short_hash(&then.input_hash),
            short_hash(&now.input_hash),
            split_size(&then, "train"),
            split_size(now, "train"),
        );
    }
    Ok(())
}

fn split_size(m: &PreprocessingMetadata, split: &str) -> usize {
    m.counts.get(split).map_or(0, |c| c.values().sum())
}

pub fn train(args: &TrainArgs) -> Result<DriverState> {
    // The backend first: a build without it fails before anything is read or written.
    let device = crate::device::device(args.device)?.autodiff();
    let (run, data) = (RunDir::new(&args.out), DataDir::new(&args.data));
    let mut meta = data.read_metadata()?;
    let saved: Option<RunState> = match (args.resume, run.state().exists()) {
        (false, true) => bail!(
            "{} already holds a run; pass --resume to continue it or choose another --out",
            args.out.display()
        ),
        (true, true) => {
            check_same_split(&run, &meta)?;
            Some(run.read_state().context("--resume")?)
        }
        // Killed before its first epoch was committed: nothing to continue, start over.
        (true, false) => {
            tracing::warn!(
                "--resume: no finished epoch in {}; starting from epoch 1",
                args.out.display()
            );
            None
        }
        (false, false) => None,
    };
    let mut cfg = if args.resume { args.resumed(&run)? } else { args.resolve()? };
    if args.resume && cfg.rehearse_rows > 0 {
        bail!(
            "--resume: the run in {} rehearsed {} rows of other regions, which --resume does not take \
             up again; start it anew",
            args.out.display(),
            cfg.rehearse_rows
        );
    }

    // A precision the device cannot compute in fails here, before the data is read.
    let precision_note = crate::device::check_precision(args.device, &device, cfg.precision)?;
    let mut model_cfg = cfg.model_config(meta.label_vocab()?, meta.source_vocab()?)?;
    let init = match (&args.init, &saved) {
        (Some(dir), None) => {
            let (bundle_cfg, weights, scaler) = init_bundle(dir, &model_cfg)?;
            model_cfg = bundle_cfg;
            // The places the bundle was trained on stay places it reads position in.
            meta.scaler = meta.scaler.keeping(&scaler);
            Some(weights)
        }
        _ => None,
    };
    let mut train_set = Split::load(&data, "train", &model_cfg, &meta)?;
    let val_set = Split::load(&data, "val", &model_cfg, &meta)?;
    check_splits(&train_set, &val_set, &model_cfg.labels)?;
    if let Some(dir) = &args.rehearse {
        let own: BTreeSet<String> =
            train_set.regions.iter().chain(&val_set.regions).cloned().collect();
        let own_names = own.iter().cloned().collect::<Vec<_>>().join(", ");
        let rows = args.rehearse_rows.unwrap_or(REHEARSE_ROWS);
        let known = DataDir::new(dir);
        let r = Split::rehearsal(&known, &own, rows, &model_cfg, &meta)
            .with_context(|| format!("--rehearse {}", dir.display()))?;
        if r.labels.is_empty() {
            bail!(
                "--rehearse {}: no row of a region other than your data's ({}) in its training \
                 and validation splits",
                dir.display(),
                own_names
            );
        }
        tracing::info!(
            "rehearsal: {} rows of {} (regions other than {}) join the training split",
            r.labels.len(),
            dir.display(),
            own_names
        );
        cfg.rehearse_rows = r.labels.len();
        train_set.extend(r);
    }
    tracing::info!(
        "{} train / {} val examples, encoder {}, {s}x{s} input; {precision_note}",
        train_set.labels.len(),
        val_set.labels.len(),
        cfg.encoder,
        s = cfg.image_size,
    );

    // The backend's generator (initialisation, dropout) is seeded too.
    device.seed(cfg.seed);
    let model = match &saved {
        Some(_) => run.load_last(&model_cfg, &device).context("--resume")?,
        None if init.is_some() => {
            let w = init.as_deref().expect("matched");
            model_core::model::persist::model_from_bytes(&model_cfg, w, &device)
                .with_context(|| format!("--init {}", args.init.as_ref().expect("set").display()))?
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
    let model = match cfg.freeze_stages.filter(|&k| k > 0) {
        Some(k) => model.freeze_encoder_stages(k),
        None => model,
    };
    let mut trainer = Trainer::new(model, cfg.step_config(meta.weights_in_order()), &device);
    let mut state = match saved {
        Some(st) => {
            let b = std::fs::read(run.last_optimizer())
                .context("--resume: reading the optimizer state")?;
            trainer.load_optimizer_bytes(&b)?;
            trainer.scaler = st.loss_scaler.or(trainer.scaler);
            tracing::info!("resuming after epoch {}", st.driver.epochs_done);
            st
        }
        None => {
            run.start(&cfg, &model_cfg, &meta)?;
            let scheduler = Scheduler::new(cfg.schedule(), cfg.lr);
            let driver = EpochDriver::new(cfg.epochs, cfg.patience, scheduler).keeping(cfg.keep);
            let driver = driver.state;
            RunState { driver, loss_scaler: None }
        }
    };

    let mut driver = EpochDriver::resume(cfg.epochs, cfg.patience, state.driver.clone());
    let mut frozen = FrozenStages::new(&cfg, &trainer.model, &train_set, &val_set, &device);
    // From a trained model, the start is scored first and is the best so far: its weights are
    // the run's best until an epoch beats them.
    if args.init.is_some() && state.driver.epochs_done == 0 {
        let (_, m) = validate(&trainer, &val_set, cfg.batch_size, frozen.as_mut(), &device)?;
        driver.start_from(m.macro_avg.f1);
        run.commit_start(&weights_to_bytes(&trainer.model)?)?;
        tracing::info!(
            "the starting model: validation macro-F1 {:.3}, accuracy {:.3}; {}",
            m.macro_avg.f1,
            m.accuracy,
            match cfg.keep {
                Keep::Best => "an epoch is kept only if it beats it",
                Keep::Last => "the last epoch is kept (--keep last)",
            }
        );
    }
    while let Some(epoch) = driver.next_epoch() {
        let t0 = Instant::now();
        trainer.config.learning_rate = driver.lr();
        device.seed(cfg.epoch_seed(epoch).rotate_left(17));
        let label = format!("epoch {epoch}/{}", cfg.epochs);
        let t =
            train_epoch(&mut trainer, &train_set, &cfg, epoch, frozen.as_mut(), &device, &label)?;
        let (val_loss, m) = validate(&trainer, &val_set, cfg.batch_size, frozen.as_mut(), &device)?;
        let log = EpochLog {
            epoch,
            train_loss: t.loss,
            train_accuracy: t.accuracy,
            val_loss,
            val_accuracy: m.accuracy,
            val_macro_f1: m.macro_avg.f1,
            lr: driver.lr(),
            seconds: t0.elapsed().as_secs_f64(),
            loss_scale: trainer.scaler.map(|s| f64::from(s.scale)),
            skipped_steps: t.skipped_steps,
        };
        report(&log, cfg.precision);
        let weights = weights_to_bytes(&trainer.model)?;
        let verdict = driver.finish_epoch(log);
        state = RunState { driver: driver.state.clone(), loss_scaler: trainer.scaler };
        run.commit_epoch(&state, &weights, verdict.best, &trainer.optimizer_bytes()?)?;
        if verdict.early_stop {
            tracing::info!(
                "early stopping after epoch {epoch}: no better validation macro-F1 in the last {} epochs",
                cfg.patience
            );
        }
    }
    Ok(state.driver)
}
