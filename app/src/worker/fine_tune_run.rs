//! The worker's fine-tuning run over model-core's [`model_core::train::finetune`]: cut each example's
//! input from the model's tile source (as predictions do; tiles that fail are skipped and
//! listed), split and weigh with model-core, encode each view once on the worker's backend
//! (pooled features; or the trunk's feature maps when the encoder's last stage trains too),
//! then train the head on the CPU (`flex`: a few thousand parameters, milliseconds a step) and
//! measure validation accuracy before and after. Yields to the event loop between batches and
//! epochs so a cancel arrives; a cancelled run leaves the loaded model untouched.

use model_core::burn::tensor::Device;
use model_core::data::augment::AugmentConfig;
use model_core::data::preprocess::{ModelInput, TrainingExample};
use model_core::data::split::group_of;
use model_core::infer::bundle::BundleManifest;
use model_core::model::persist::{model_from_bytes, weights_to_bytes};
use model_core::rng::Rng;
use model_core::train::driver::{EpochDriver, EpochLog, Keep};
use model_core::train::finetune::{
    FeatureExample, FineTuneConfig, HeadTrainer, Target, accuracy, encode_features, encode_trunk,
    feature_type_change, feature_type_metrics, plan, split_rows,
};
use model_core::train::schedule::{Schedule, Scheduler};

use super::tiles::Tiles;
use super::{Loaded, cancelled, post, yield_now};
use crate::net::now_ms;
use crate::protocol::{FineTuneExample, FineTuneSummary, FromWorker, LearnedArea};

/// Images encoded per batch.
const ENCODE_BATCH: usize = 8;
/// How many places ahead of the one being cut the tiles are requested.
const TILES_AHEAD: usize = 8;

fn progress(
    phase: &str,
    percent: f64,
    epoch: usize,
    epochs: usize,
    loss: Option<f32>,
    acc: Option<f32>,
) {
    post(&FromWorker::FineTuneProgress {
        phase: phase.into(),
        percent: percent.clamp(0.0, 100.0),
        epoch,
        epochs,
        loss,
        val_accuracy: acc,
    });
}

struct Job {
    example: usize,
    input: ModelInput,
}

/// Fine-tunes `m`; `Ok(None)` when cancelled.
pub(crate) async fn run(
    m: &Loaded,
    examples: Vec<FineTuneExample>,
    epochs: usize,
    seed: u64,
    last_stage: bool,
    area: Option<LearnedArea>,
) -> Result<Option<(BundleManifest, Vec<u8>, FineTuneSummary)>, String> {
    let t0 = now_ms();
    let epochs = epochs.clamp(1, 50);
    let cfg = FineTuneConfig { epochs, seed, ..FineTuneConfig::default() };
    let config = &m.manifest.config;
    let labels = config.labels.names().to_vec();

    // Places outside the model's trained areas get an area of their own: the fine-tuned model
    // reads their positions by it (and stops calling them outside).
    let points: Vec<[f64; 2]> = examples.iter().map(|e| [e.lat, e.lon]).collect();
    let scaler = m.predictor.scaler.adapted_to("fine-tune", &points);

    // 1. Inputs, from the model's own tiles. A tile that fails skips its example.
    let mut skipped = Vec::new();
    let mut images = Vec::new();
    let mut tiles = Tiles::new();
    for (i, e) in examples.iter().enumerate() {
        // The next places' tiles load while this one is cut.
        for q in examples.iter().skip(i + 1).take(TILES_AHEAD) {
            let _ = tiles.want(m, q.lat, q.lon);
        }
        progress("tiles", 25.0 * i as f64 / examples.len().max(1) as f64, 0, epochs, None, None);
        if cancelled() {
            return Ok(None);
        }
        let Some(class) = labels.iter().position(|l| *l == e.label) else {
            skipped.push(format!("{}: unknown type `{}`", e.id, e.label));
            continue;
        };
        // The same example assembly as native training (model-core's `TrainingExample`).
        let example = tiles.crop(m, e.lat, e.lon).await.and_then(|img| {
            TrainingExample::new(
                img,
                config.image_size,
                e.lat,
                e.lon,
                &e.source,
                &scaler,
                &config.sources,
            )
            .map_err(|e| e.to_string())
        });
        match example {
            Ok(x) => images.push((i, class, x)),
            Err(err) => skipped.push(format!("{} at {:.5}, {:.5}: {err}", e.id, e.lat, e.lon)),
        }
    }

    // 2. The split and class weights, on the tags (rejected suggestions always train).
    let positives: Vec<usize> =
        (0..images.len()).filter(|&k| !examples[images[k].0].negative).collect();
    let tags: Vec<(usize, f64, f64)> = positives
        .iter()
        .map(|&k| (images[k].1, examples[images[k].0].lat, examples[images[k].0].lon))
        .collect();
    let mut p = plan(&tags, &labels, &cfg).map_err(|e| e.to_string())?;
    let train: Vec<usize> = p.train.iter().map(|&i| positives[i]).collect();
    let val: Vec<usize> = p.val.iter().map(|&i| positives[i]).collect();
    let negatives: Vec<usize> =
        (0..images.len()).filter(|&k| examples[images[k].0].negative).collect();
    p.weigh_rejections(&config.labels, negatives.len());

    // 3. Features: every view of training examples, view 0 of validation ones.
    let t_features = now_ms();
    let mut rng = Rng::new(seed);
    let aug = AugmentConfig::default();
    let mut jobs: Vec<(usize, usize, Job)> = Vec::new(); // (image index, view, job)
    for &k in train.iter().chain(&negatives) {
        for v in 0..cfg.views.max(1) {
            let input = images[k].2.view((v > 0).then_some((&aug, &mut rng)));
            jobs.push((k, v, Job { example: images[k].0, input }));
        }
    }
    for &k in &val {
        jobs.push((k, 0, Job { example: images[k].0, input: images[k].2.view(None) }));
    }
    let size = config.image_size as usize;
    let mut features: Vec<(usize, usize, FeatureExample)> = Vec::with_capacity(jobs.len());
    let total = jobs.len();
    let mut done = 0;
    for chunk in jobs.chunks(ENCODE_BATCH) {
        if cancelled() {
            return Ok(None);
        }
        let inputs: Vec<ModelInput> = chunk.iter().map(|(_, _, j)| j.input.clone()).collect();
        // The pooled features (on the CPU from the predictor's kernels, as its predictions),
        // or (training the last stage too) the trunk's feature maps.
        let pooled = match last_stage {
            true => None,
            false => m.predictor.kernel_features(&inputs).map_err(|e| e.to_string())?,
        };
        let (data, map) = match pooled {
            Some(data) => (data, None),
            None => {
                let (encoded, map) = if last_stage {
                    let t = encode_trunk(&m.predictor.model, &inputs, size, m.predictor.device())
                        .map_err(|e| e.to_string())?;
                    let [_, c, h, w] = t.dims();
                    (t.flatten::<2>(1, 3), Some([c, h, w]))
                } else {
                    let t =
                        encode_features(&m.predictor.model, &inputs, size, m.predictor.device())
                            .map_err(|e| e.to_string())?;
                    (t, None)
                };
                let data = encoded
                    .into_data_async()
                    .await
                    .map_err(|e| format!("{e:?}"))?
                    .try_to_vec::<f32>()
                    .map_err(|e| format!("{e:?}"))?;
                (data, map)
            }
        };
        for ((k, v, j), f) in chunk.iter().zip(split_rows(data, inputs.len())) {
            let e = &examples[j.example];
            let class = images[*k].1;
            let target = if e.negative {
                Target::rejected(&config.labels, class)
            } else {
                Target::Is(class)
            };
            features.push((
                *k,
                *v,
                FeatureExample {
                    features: f,
                    map,
                    coords: j.input.coords,
                    source: j.input.source.clone(),
                    target,
                },
            ));
        }
        done += chunk.len();
        progress(
            "features",
            25.0 + 60.0 * done as f64 / total.max(1) as f64,
            0,
            epochs,
            None,
            None,
        );
        yield_now().await;
    }
    let pick = |ks: &[usize], view: usize| -> Vec<FeatureExample> {
        ks.iter()
            .filter_map(|k| features.iter().find(|(kk, vv, _)| kk == k && *vv == view))
            .map(|(_, _, f)| f.clone())
            .collect()
    };
    let val_set = pick(&val, 0);
    // Each held-out example's map cell (as `pick` keeps them), for the change's resamples.
    let val_cells: Vec<(u32, u32)> = val
        .iter()
        .filter(|&&k| features.iter().any(|(kk, vv, _)| *kk == k && *vv == 0))
        .map(|&k| {
            let e = &examples[images[k].0];
            group_of(e.lat, e.lon, cfg.group_zoom).unwrap_or_default()
        })
        .collect();

    let features_seconds = (now_ms() - t_features) / 1e3;

    // 4. The head, on the CPU.
    let t_train = now_ms();
    let cpu = Device::flex();
    let model = model_from_bytes(config, &m.weights, &cpu).map_err(|e| e.to_string())?;
    let before = accuracy(&model, &val_set, &cpu).unwrap_or(0.0);
    let types = |model: &_| feature_type_metrics(model, &val_set, &config.labels, &cpu);
    let before_types = types(&model);
    let before_types_f1 = before_types.as_ref().map(|m| m.macro_avg.f1 as f32);
    // The held-out places the feature types' figure counts: its classes' support.
    let val_features = before_types.map_or(0, |m| m.per_class.values().map(|c| c.support).sum());
    let start = model.clone();
    let mut trainer = HeadTrainer::new(model, &p.class_weights, cfg.clone(), &cpu);
    let mut losses = Vec::with_capacity(epochs);
    let mut steps = 0;
    let mut train_ks = train.clone();
    train_ks.extend(&negatives);
    // Model-core's epoch driver decides which epoch runs next, as for native training; the
    // page trains every epoch and keeps the last (`train --keep last`): its held-out cells are
    // the before/after figures, not a choice of epoch.
    let scheduler = Scheduler::new(Schedule::Constant, cfg.learning_rate);
    let mut driver = EpochDriver::new(epochs, epochs, scheduler).keeping(Keep::Last);
    while let Some(epoch) = driver.next_epoch() {
        if cancelled() {
            return Ok(None);
        }
        let t_epoch = now_ms();
        let set = pick(&train_ks, (epoch - 1) % cfg.views.max(1));
        steps += set.len().div_ceil(cfg.batch_size.max(1));
        let loss = trainer.epoch(&set, epoch - 1).unwrap_or(f32::NAN);
        let (acc, f1) = trainer.validate(&val_set).unwrap_or((f64::NAN, f64::NAN));
        losses.push(loss);
        driver.finish_epoch(EpochLog {
            epoch,
            train_loss: f64::from(loss),
            train_accuracy: f64::NAN,
            val_loss: f64::NAN,
            val_accuracy: acc,
            val_macro_f1: f1,
            lr: driver.lr(),
            seconds: (now_ms() - t_epoch) / 1e3,
            loss_scale: None,
            skipped_steps: 0,
        });
        let pct = 85.0 + 15.0 * epoch as f64 / epochs as f64;
        let acc = acc.is_finite().then_some(acc as f32);
        progress("training", pct, epoch, epochs, Some(loss), acc);
        yield_now().await;
    }
    if cancelled() {
        return Ok(None);
    }
    let train_seconds = (now_ms() - t_train) / 1e3;
    let tuned = trainer.into_model();
    let after = accuracy(&tuned, &val_set, &cpu).unwrap_or(0.0);
    let after_types_f1 = types(&tuned).map(|m| m.macro_avg.f1 as f32);
    let types_change =
        feature_type_change(&start, &tuned, &val_set, &val_cells, &config.labels, &cpu);
    let weights = weights_to_bytes(&tuned).map_err(|e| e.to_string())?;
    let mut manifest = m.manifest.clone();
    manifest.scaler = scaler;
    manifest.provenance.created_by = format!(
        "AccessAtlas app fine-tune of {} ({} {})",
        m.manifest.provenance.created_by,
        train.len() + val.len(),
        match &area {
            Some(a) => format!("places of the view {}", a.bbox),
            None => "tags".into(),
        }
    );
    manifest.provenance.test_accuracy = None;
    manifest.provenance.test_macro_f1 = None;
    let summary = FineTuneSummary {
        before_accuracy: before,
        after_accuracy: after,
        before_types_f1,
        after_types_f1,
        types_change,
        train_tags: train.len(),
        val_tags: val.len(),
        val_features,
        negatives: negatives.len(),
        epochs,
        losses,
        skipped,
        seconds: (now_ms() - t0) / 1e3,
        features_seconds,
        train_seconds,
        steps,
        area,
        last_stage,
    };
    Ok(Some((manifest, weights, summary)))
}
