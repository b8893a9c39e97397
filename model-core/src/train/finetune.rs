//! Fine-tuning on a mapper's own tags, the same code in the browser's worker and natively:
//!
//! 1. [`plan`]: a seeded stratified train/validation split of the tags (the preprocessing's
//!    grouped split, by map tile), class weights from the training part, and a clear error for
//!    a class with too few tags;
//! 2. [`encode_features`]: the frozen image encoder runs once per tag and view (view 0 as is,
//!    the others through the training augmentation), and the features are cached;
//! 3. [`HeadTrainer`]: epochs over the cached features train the metadata branch, fusion and
//!    head with the train step's maths (class-weighted cross-entropy, AdamW, gradient
//!    clipping); a rejected suggestion is a `none` example when the model has that class, and
//!    otherwise a negative example with loss `-ln(1 - p(class))` ([`Target::rejected`]).
//!
//! A head step on cached features costs milliseconds where a full 224x224 step costs seconds on
//! the wasm CPU backend.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::data::preprocess::ModelInput;
use crate::data::split::{Split, SplitConfig, class_weights, group_of, stratified_group_split};
use crate::train::{optimizer, weighted_loss};
use crate::{AccessModel, CoreError};

/// Fewest tags a class needs to take part (some for training, at least one to validate).
pub const MIN_TAGS_PER_CLASS: usize = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f32,
    pub clip_norm: f32,
    /// Views per tag: the tile as is, plus `views - 1` augmented copies.
    pub views: usize,
    pub val_fraction: f64,
    pub seed: u64,
    /// Zoom of the cells that keep neighbouring tags in one split (19: one map tile).
    pub group_zoom: u8,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            // 10: the page's adaptation figure (`cargo xtask reference page-adapt --epochs`)
            // climbs from 5 epochs to a plateau at 10-50 on a region the model never saw,
            // and the model trained with the region loses nothing at 10 (docs/regions.md).
            epochs: 10,
            batch_size: 16,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            clip_norm: 1.0,
            views: 3,
            val_fraction: 0.25,
            seed: 42,
            group_zoom: 19,
        }
    }
}

/// What an example teaches: its type, or (a rejected suggestion) a type it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Is(usize),
    IsNot(usize),
}

impl Target {
    /// What a rejected suggestion of `class` teaches: with a `none` class, "no feature here"
    /// (a `none` example, like the background points the model was trained on); without one,
    /// "not this type" (`-ln(1 - p(class))`).
    pub fn rejected(labels: &crate::LabelVocab, class: usize) -> Self {
        match labels.none_index() {
            Some(none) => Target::Is(none),
            None => Target::IsNot(class),
        }
    }

    /// The class it names (is, or is not).
    pub fn class(self) -> usize {
        match self {
            Target::Is(c) | Target::IsNot(c) => c,
        }
    }
}

/// One cached example: the encoder's output for one view, and the rest of the model input.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureExample {
    /// Pooled features `[F]`, or with `map` the trunk's feature map `[c, h, w]` (the encoder's
    /// last stage then trains too).
    pub features: Vec<f32>,
    pub map: Option<[usize; 3]>,
    pub coords: [f32; 2],
    pub source: Vec<f32>,
    pub target: Target,
}

/// Which tags train and which validate, and the class weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub class_weights: Vec<f32>,
}

impl Plan {
    /// Gives `none` a weight when `rejected` suggestions train it ([`Target::rejected`]): the
    /// tags never hold `none`, so its weight from them is 0 and the rejections would teach
    /// nothing. 1.0: a rejection counts as much as an average tag.
    pub fn weigh_rejections(&mut self, labels: &crate::LabelVocab, rejected: usize) {
        if let Some(w) = labels.none_index().and_then(|n| self.class_weights.get_mut(n))
            && rejected > 0
            && *w == 0.0
        {
            *w = 1.0;
        }
    }
}

/// Splits tags (`(class, lat, lon)`) for fine-tuning. At least two classes need
/// [`MIN_TAGS_PER_CLASS`] tags each; a class with fewer (but some) is named in the error.
pub fn plan(
    tags: &[(usize, f64, f64)],
    labels: &[String],
    cfg: &FineTuneConfig,
) -> Result<Plan, CoreError> {
    let n = labels.len();
    let mut counts = vec![0usize; n];
    for &(c, _, _) in tags {
        if c >= n {
            return Err(CoreError::BadBatch(format!("class index {c} >= {n}")));
        }
        counts[c] += 1;
    }
    let short: Vec<String> = (0..n)
        .filter(|&c| counts[c] > 0 && counts[c] < MIN_TAGS_PER_CLASS)
        .map(|c| {
            format!(
                "`{}` has {} tag(s), needs at least {MIN_TAGS_PER_CLASS} ({} more)",
                labels[c],
                counts[c],
                MIN_TAGS_PER_CLASS - counts[c]
            )
        })
        .collect();
    if !short.is_empty() {
        return Err(CoreError::NotEnoughTags(short.join("; ")));
    }
    if counts.iter().filter(|&&k| k > 0).count() < 2 {
        return Err(CoreError::NotEnoughTags(format!(
            "fine-tuning needs tags of at least two types, {MIN_TAGS_PER_CLASS} or more each"
        )));
    }
    let items: Vec<(usize, (u32, u32))> = tags
        .iter()
        .map(|&(c, lat, lon)| Ok((c, group_of(lat, lon, cfg.group_zoom)?)))
        .collect::<Result<_, CoreError>>()?;
    let v = cfg.val_fraction.clamp(0.05, 0.5);
    let split = stratified_group_split(
        &items,
        n,
        &SplitConfig { fractions: [1.0 - v, v, 0.0], seed: cfg.seed, group_zoom: cfg.group_zoom },
    )?;
    let mut train: Vec<usize> = (0..tags.len()).filter(|&i| split[i] == Split::Train).collect();
    let mut val: Vec<usize> = (0..tags.len()).filter(|&i| split[i] != Split::Train).collect();
    // Fix-ups move whole map cells, never single tags: a cell on both sides would let the
    // validation see the training tags' surroundings.
    let cell = |i: usize| items[i].1;
    let move_cell = |from: &mut Vec<usize>, to: &mut Vec<usize>, g: (u32, u32)| {
        to.extend(from.iter().copied().filter(|&i| cell(i) == g));
        from.retain(|&i| cell(i) != g);
    };
    // Every class present keeps at least one training tag.
    for (c, &count) in counts.iter().enumerate() {
        if count > 0
            && !train.iter().any(|&i| tags[i].0 == c)
            && let Some(&i) = val.iter().find(|&&i| tags[i].0 == c)
        {
            move_cell(&mut val, &mut train, cell(i));
        }
    }
    if val.is_empty() {
        // Tiny sets: validate on one whole cell whose loss leaves every class a training tag
        // (the smallest such cell, so training keeps the most).
        let mut cells: Vec<(u32, u32)> = train.iter().map(|&i| cell(i)).collect();
        cells.sort_unstable();
        cells.dedup();
        let spare = |g: (u32, u32)| {
            (0..n)
                .filter(|&c| counts[c] > 0)
                .all(|c| train.iter().any(|&i| tags[i].0 == c && cell(i) != g))
        };
        let size = |g: (u32, u32)| train.iter().filter(|&&i| cell(i) == g).count();
        match cells.into_iter().filter(|&g| spare(g)).min_by_key(|&g| (size(g), g)) {
            Some(g) => move_cell(&mut train, &mut val, g),
            None => {
                return Err(CoreError::NotEnoughTags(format!(
                    "validation needs a map cell (zoom {}) of its own, and these tags leave none \
                     once every type keeps a training tag; add tags in another block",
                    cfg.group_zoom
                )));
            }
        }
    }
    train.sort_unstable();
    val.sort_unstable();
    let train_labels: Vec<usize> = train.iter().map(|&i| tags[i].0).collect();
    Ok(Plan { class_weights: class_weights(&train_labels, n), train, val })
}

/// Stacks model inputs into the encoder's image batch (checked: non-empty, each `[3, size,
/// size]`).
pub(crate) fn image_batch(
    inputs: &[ModelInput],
    size: usize,
    device: &Device,
) -> Result<Tensor<4>, CoreError> {
    if inputs.is_empty() || inputs.iter().any(|x| x.image.len() != 3 * size * size) {
        return Err(CoreError::BadBatch("inputs do not fit the model".into()));
    }
    let images: Vec<f32> = inputs.iter().flat_map(|x| x.image.iter().copied()).collect();
    Ok(Tensor::from_data(TensorData::new(images, [inputs.len(), 3, size, size]), device))
}

/// The frozen encoder's features `[n, F]` for `inputs` (one batch), still on the device: read
/// back with `into_data` (CPU) or `into_data_async` (WebGPU).
pub fn encode_features(
    model: &AccessModel,
    inputs: &[ModelInput],
    size: usize,
    device: &Device,
) -> Result<Tensor<2>, CoreError> {
    Ok(model.encoder.features(image_batch(inputs, size, device)?))
}

/// The encoder's trunk (everything before its last stage) for `inputs`: `[n, c, h, w]` maps to
/// cache when the last stage trains too.
pub fn encode_trunk(
    model: &AccessModel,
    inputs: &[ModelInput],
    size: usize,
    device: &Device,
) -> Result<Tensor<4>, CoreError> {
    Ok(model.encoder.trunk(image_batch(inputs, size, device)?))
}

/// Splits a read-back `[n, F]` buffer into one feature vector per example.
pub fn split_rows(data: Vec<f32>, n: usize) -> Vec<Vec<f32>> {
    let f = data.len() / n.max(1);
    data.chunks(f.max(1)).map(<[f32]>::to_vec).collect()
}

/// Cached encoder outputs: pooled features, or trunk maps for the last stage to run on.
enum Encoded {
    Pooled(Tensor<2>),
    Map(Tensor<4>),
}

/// A batch of cached examples on a device.
struct FeatureBatch {
    features: Encoded,
    coords: Tensor<2>,
    sources: Tensor<2>,
    /// Class per example (its type, or the type it is not).
    classes: Tensor<1, Int>,
}

fn feature_batch(examples: &[&FeatureExample], device: &Device) -> Option<FeatureBatch> {
    let first = examples.first()?;
    let (b, f, s) = (examples.len(), first.features.len(), first.source.len());
    if examples.iter().any(|e| e.features.len() != f || e.map != first.map) {
        return None;
    }
    let mut features = Vec::with_capacity(b * f);
    let mut coords = Vec::with_capacity(b * 2);
    let mut sources = Vec::with_capacity(b * s);
    let mut classes = Vec::with_capacity(b);
    for e in examples {
        features.extend_from_slice(&e.features);
        coords.extend_from_slice(&e.coords);
        sources.extend_from_slice(&e.source);
        classes.push(e.target.class() as i64);
    }
    let features = match first.map {
        Some([c, h, w]) => {
            Encoded::Map(Tensor::from_data(TensorData::new(features, [b, c, h, w]), device))
        }
        None => Encoded::Pooled(Tensor::from_data(TensorData::new(features, [b, f]), device)),
    };
    Some(FeatureBatch {
        features,
        coords: Tensor::from_data(TensorData::new(coords, [b, 2]), device),
        sources: Tensor::from_data(TensorData::new(sources, [b, s]), device),
        classes: Tensor::from_data(TensorData::new(classes, [b]), device),
    })
}

/// Logits from cached encoder outputs (running the encoder's last stage on trunk maps).
fn head_logits(model: &AccessModel, b: &FeatureBatch) -> Tensor<2> {
    let features = match &b.features {
        Encoded::Pooled(f) => f.clone(),
        Encoded::Map(m) => model.encoder.last_stage(m.clone()),
    };
    model.forward_features(features, b.coords.clone(), b.sources.clone())
}

/// Trains the part of the model after the image encoder on cached features (and, with trunk
/// maps, the encoder's last stage).
pub struct HeadTrainer {
    model: AccessModel,
    optim: ModuleOptimizer,
    loss: CrossEntropyLoss,
    cfg: FineTuneConfig,
    /// The autodiff device batches are built on.
    device: Device,
    /// The same device without autodiff, for evaluation.
    inference: Device,
    classes: usize,
}

impl HeadTrainer {
    /// `model` is an inference model on `device` (e.g. a loaded bundle on `Device::flex()`); it
    /// is switched to training on the same device with autodiff. `class_weights` as from
    /// [`plan`] (0 for absent classes, which is made 1: never a target).
    pub fn new(
        model: AccessModel,
        class_weights: &[f32],
        cfg: FineTuneConfig,
        device: &Device,
    ) -> Self {
        let inference = device.clone().without_autodiff();
        let device = inference.clone().autodiff();
        let classes = class_weights.len();
        Self {
            model: model.train(),
            optim: optimizer(cfg.weight_decay, Some(cfg.clip_norm)),
            loss: weighted_loss(Some(class_weights), &device),
            cfg,
            device,
            inference,
            classes,
        }
    }

    /// The loss of `examples` under the current weights, in training mode (dropout active),
    /// as a graph to differentiate.
    fn loss(&self, examples: &[&FeatureExample]) -> Option<Tensor<1>> {
        let pos: Vec<&FeatureExample> =
            examples.iter().copied().filter(|e| matches!(e.target, Target::Is(_))).collect();
        let neg: Vec<&FeatureExample> =
            examples.iter().copied().filter(|e| matches!(e.target, Target::IsNot(_))).collect();
        let logits = |b: &FeatureBatch| head_logits(&self.model, b);
        let mut total: Option<Tensor<1>> = None;
        if let Some(b) = feature_batch(&pos, &self.device) {
            total = Some(self.loss.forward(logits(&b), b.classes));
        }
        if let Some(b) = feature_batch(&neg, &self.device) {
            let n = neg.len();
            let probs = softmax(logits(&b), 1);
            let onehot = b.classes.one_hot::<2>(self.classes).float();
            let p = (probs * onehot).sum_dim(1).reshape([n]);
            let l = (p.neg() + 1.0 + 1e-6).log().neg().mean();
            total = Some(match total {
                Some(t) => t + l,
                None => l,
            });
        }
        total
    }

    /// One AdamW step on `examples`; returns its loss (before the update).
    pub fn step(&mut self, examples: &[&FeatureExample]) -> Option<f32> {
        let loss = self.loss(examples)?;
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let value = loss.into_scalar::<f32>();
        self.model = self.optim.step(self.cfg.learning_rate, self.model.clone(), grads);
        Some(value)
    }

    /// One epoch over `examples` in a seeded order, in batches, its dropout seeded too (the
    /// backend's generator, as native training seeds it): the same run gives the same model.
    /// The mean loss.
    pub fn epoch(&mut self, examples: &[FeatureExample], epoch: usize) -> Option<f32> {
        let seed = self.cfg.seed ^ ((epoch as u64 + 1) * 0x9e37_79b9);
        self.device.seed(seed.rotate_left(17));
        let mut order: Vec<usize> = (0..examples.len()).collect();
        crate::rng::Rng::new(seed).shuffle(&mut order);
        let (mut sum, mut n) = (0.0f32, 0usize);
        for chunk in order.chunks(self.cfg.batch_size.max(1)) {
            let batch: Vec<&FeatureExample> = chunk.iter().map(|&i| &examples[i]).collect();
            if let Some(l) = self.step(&batch) {
                sum += l * batch.len() as f32;
                n += batch.len();
            }
        }
        (n > 0).then(|| sum / n as f32)
    }

    /// Accuracy on the positive examples, in inference mode.
    pub fn accuracy(&self, examples: &[FeatureExample]) -> Option<f32> {
        accuracy(&self.model.valid(), examples, &self.inference)
    }

    /// Accuracy and macro-F1 on the positive examples, in inference mode: what the epoch
    /// driver judges an epoch by.
    pub fn validate(&self, examples: &[FeatureExample]) -> Option<(f64, f64)> {
        let (truth, pred) = predictions(&self.model.valid(), examples, &self.inference)?;
        let names: Vec<String> = (0..self.classes).map(|c| c.to_string()).collect();
        let m = crate::train::metrics::Metrics::compute(&truth, &pred, &names);
        Some((m.accuracy, m.macro_avg.f1))
    }

    /// The trained model, in inference mode.
    pub fn into_model(self) -> AccessModel {
        self.model.valid()
    }
}

/// The fixed scenario that proves the browser and the native build train alike: `steps` head
/// steps of `model` (dropout off, so nothing is random) on four synthetic tiles with known
/// classes, one of them a rejected suggestion; returns the loss of each step. A test runs it
/// natively and in headless Chromium against one committed fixture.
pub fn reference_steps(
    mut model: AccessModel,
    size: u32,
    steps: usize,
    device: &Device,
) -> Result<Vec<f32>, CoreError> {
    model.fusion_dropout.prob = 0.0;
    model.head_dropout.prob = 0.0;
    let scaler = crate::data::metadata::Scaler {
        mean: [60.17, 24.94],
        std: [0.01, 0.02],
        areas: Vec::new(),
    };
    let sources = crate::SourceVocab::default();
    let inputs: Vec<ModelInput> = (0..4u32)
        .map(|k| {
            let img = image::RgbImage::from_fn(size, size, |x, y| {
                image::Rgb([
                    ((x * (k + 3) + y * 7) % 256) as u8,
                    ((y * (k + 5) + x * 3) % 256) as u8,
                    ((x ^ y) * (k + 1) % 256) as u8,
                ])
            });
            let (lat, lon) = (60.165 + 0.003 * f64::from(k), 24.935 + 0.004 * f64::from(k));
            ModelInput::from_rgb_sized(
                &img,
                size,
                lat,
                lon,
                ["osm", "user"][k as usize % 2],
                &scaler,
                &sources,
            )
        })
        .collect::<Result<_, _>>()?;
    let features = encode_features(&model, &inputs, size as usize, device)?
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| CoreError::Backend(format!("{e:?}")))?;
    let targets = [Target::Is(0), Target::Is(2), Target::Is(2), Target::IsNot(1)];
    let examples: Vec<FeatureExample> = split_rows(features, inputs.len())
        .into_iter()
        .zip(inputs)
        .zip(targets)
        .map(|((features, x), target)| FeatureExample {
            features,
            map: None,
            coords: x.coords,
            source: x.source,
            target,
        })
        .collect();
    let refs: Vec<&FeatureExample> = examples.iter().collect();
    // One weight per output (five types, and `none` when the model has it).
    let classes = model.head.weight.val().dims()[1];
    let weights: Vec<f32> =
        [1.0, 0.5, 1.5, 1.0, 2.0, 0.8].into_iter().cycle().take(classes).collect();
    let mut t = HeadTrainer::new(model, &weights, FineTuneConfig::default(), device);
    (0..steps).map(|_| t.step(&refs).ok_or_else(|| CoreError::BadBatch("empty".into()))).collect()
}

/// Accuracy of `model` (inference mode) on the positive examples; `None` if there are none.
pub fn accuracy(model: &AccessModel, examples: &[FeatureExample], device: &Device) -> Option<f32> {
    let (truth, pred) = predictions(model, examples, device)?;
    let correct = truth.iter().zip(&pred).filter(|(t, p)| t == p).count();
    Some(correct as f32 / truth.len() as f32)
}

/// The feature types alone on the positive examples ([`Metrics::feature_types`]: what
/// `evaluate` reports as macro-F1 over feature types); `None` without a positive example.
///
/// [`Metrics::feature_types`]: crate::train::metrics::Metrics::feature_types
pub fn feature_type_metrics(
    model: &AccessModel,
    examples: &[FeatureExample],
    labels: &crate::LabelVocab,
    device: &Device,
) -> Option<crate::train::metrics::Metrics> {
    let (truth, scores) = positive_scores(model, examples, device)?;
    Some(crate::train::metrics::Metrics::feature_types(&truth, &scores, labels))
}

/// How the feature types' macro-F1 on the held-out `examples` changed from `before` to `after`
/// ([`feature_f1_change`]: a paired bootstrap over their map cells, `cells[i]` being example
/// `i`'s), so a page can say whether a fine-tune's change is more than its few held-out places
/// could show by chance; `None` without a positive example.
///
/// [`feature_f1_change`]: crate::train::resample::feature_f1_change
pub fn feature_type_change(
    before: &AccessModel,
    after: &AccessModel,
    examples: &[FeatureExample],
    cells: &[(u32, u32)],
    labels: &crate::LabelVocab,
    device: &Device,
) -> Option<crate::train::resample::Change> {
    let ((truth, b), (_, a)) =
        (positive_scores(before, examples, device)?, positive_scores(after, examples, device)?);
    let cells: Vec<(u32, u32)> = examples
        .iter()
        .zip(cells)
        .filter(|(e, _)| matches!(e.target, Target::Is(_)))
        .map(|(_, &c)| c)
        .collect();
    crate::train::resample::feature_f1_change(&truth, &b, &a, labels, &cells, CHANGE_SEED)
}

/// The seed of [`feature_type_change`]'s cell resamples.
const CHANGE_SEED: u64 = 29;

/// The classes of the positive examples and the head's logits for each (`None` without a
/// positive example).
fn positive_scores(
    model: &AccessModel,
    examples: &[FeatureExample],
    device: &Device,
) -> Option<(Vec<usize>, Vec<Vec<f32>>)> {
    let (truth, logits) = positive_logits(model, examples, device)?;
    let logits: Vec<f32> = logits.into_data().iter::<f32>().collect();
    let per = logits.len() / truth.len();
    Some((truth, logits.chunks(per).map(<[f32]>::to_vec).collect()))
}

/// The classes of the positive examples and the head's logits for them, `[n, classes]`
/// (`None` without a positive example).
fn positive_logits(
    model: &AccessModel,
    examples: &[FeatureExample],
    device: &Device,
) -> Option<(Vec<usize>, Tensor<2>)> {
    let pos: Vec<&FeatureExample> =
        examples.iter().filter(|e| matches!(e.target, Target::Is(_))).collect();
    let b = feature_batch(&pos, device)?;
    Some((pos.iter().map(|e| e.target.class()).collect(), head_logits(model, &b)))
}

/// True and predicted classes of the positive examples (`None` without any).
fn predictions(
    model: &AccessModel,
    examples: &[FeatureExample],
    device: &Device,
) -> Option<(Vec<usize>, Vec<usize>)> {
    let (truth, logits) = positive_logits(model, examples, device)?;
    let pred = logits.argmax(1).reshape([truth.len()]);
    let pred: Vec<usize> = pred.into_data().iter::<i64>().map(|p| p as usize).collect();
    Some((truth, pred))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::{EncoderKind, ModelConfig};

    fn labels() -> Vec<String> {
        ["ramp", "elevator", "entrance", "tactile_path", "obstacle"].map(String::from).to_vec()
    }

    #[test]
    fn too_few_tags_name_the_class_and_the_count() {
        let mut tags = vec![(0, 60.17, 24.94), (0, 60.171, 24.941), (0, 60.172, 24.942)];
        tags.push((2, 60.18, 24.95));
        let e = plan(&tags, &labels(), &FineTuneConfig::default()).unwrap_err().to_string();
        assert!(e.contains("`entrance` has 1 tag(s), needs at least 3 (2 more)"), "{e}");
        let one_class = &tags[..3];
        let e = plan(one_class, &labels(), &FineTuneConfig::default()).unwrap_err().to_string();
        assert!(e.contains("at least two types"), "{e}");
    }

    #[test]
    fn the_plan_splits_every_class_and_is_seeded() {
        let tags: Vec<(usize, f64, f64)> = (0..24)
            .map(|i| (i % 3, 60.16 + 0.001 * i as f64, 24.93 + 0.0013 * (i % 7) as f64))
            .collect();
        let p = plan(&tags, &labels(), &FineTuneConfig::default()).unwrap();
        assert_eq!(p.train.len() + p.val.len(), 24);
        assert!(!p.val.is_empty());
        for c in 0..3 {
            assert!(p.train.iter().any(|&i| tags[i].0 == c), "class {c} trains");
        }
        assert_eq!(p.class_weights[3], 0.0);
        assert_eq!(plan(&tags, &labels(), &FineTuneConfig::default()).unwrap(), p);
    }

    /// However the tags fall, no map cell is on both sides of the split.
    #[test]
    fn the_plan_keeps_every_map_cell_on_one_side() {
        let cfg = FineTuneConfig::default();
        let cell = |t: &(usize, f64, f64)| group_of(t.1, t.2, cfg.group_zoom).unwrap();
        let mut planned = 0;
        for seed in 0..200u64 {
            let mut rng = Rng::new(seed);
            let n = 6 + rng.below(20);
            // Few cells, classes mixed within them: the fix-ups have work to do.
            let tags: Vec<(usize, f64, f64)> = (0..n)
                .map(|i| {
                    let c = if i < 6 { i % 2 } else { rng.below(3) };
                    (c, 60.16 + 0.003 * rng.below(3) as f64, 24.93 + 0.005 * rng.below(2) as f64)
                })
                .collect();
            let Ok(p) = plan(&tags, &labels(), &FineTuneConfig { seed, ..cfg.clone() }) else {
                continue;
            };
            planned += 1;
            assert!(!p.val.is_empty() && p.train.len() + p.val.len() == n);
            for &v in &p.val {
                assert!(
                    p.train.iter().all(|&t| cell(&tags[t]) != cell(&tags[v])),
                    "seed {seed}: tag {v}'s cell is on both sides"
                );
            }
            for c in 0..3 {
                if tags.iter().any(|t| t.0 == c) {
                    assert!(p.train.iter().any(|&i| tags[i].0 == c), "seed {seed}: class {c}");
                }
            }
        }
        assert!(planned > 100, "only {planned} of 200 sets could be planned");
        // All tags in one cell: no leak-free validation, said so.
        let one: Vec<_> = (0..9).map(|i| (i % 3, 60.1701 + 1e-5 * i as f64, 24.9401)).collect();
        let e = plan(&one, &labels(), &cfg).unwrap_err().to_string();
        assert!(e.contains("map cell"), "{e}");
    }

    /// Features where class `c` lifts feature block `c`, with noise.
    fn examples(model_features: usize, n: usize, seed: u64) -> Vec<FeatureExample> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| {
                let c = i % 3;
                let features = (0..model_features)
                    .map(|j| {
                        let signal = if j / 16 == c { 2.0 } else { 0.0 };
                        signal + rng.uniform(-0.5, 0.5) as f32
                    })
                    .collect();
                let mut source = vec![0.0; 4];
                source[i % 4] = 1.0;
                FeatureExample {
                    features,
                    map: None,
                    coords: [rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32],
                    source,
                    target: Target::Is(c),
                }
            })
            .collect()
    }

    #[test]
    fn head_training_learns_cached_features_and_negatives_push_down() {
        let device = Device::flex();
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.image_size = 32;
        let model = config.init(&device).unwrap().valid();
        let start = model.clone();
        let f = EncoderKind::CustomCnn.features();
        let train = examples(f, 48, 1);
        let val = examples(f, 24, 2);
        let before = accuracy(&model, &val, &device).unwrap();
        let cfg = FineTuneConfig { epochs: 8, ..FineTuneConfig::default() };
        let mut t = HeadTrainer::new(model, &[1.0, 1.0, 1.0, 0.0, 0.0], cfg, &device);
        let first = t.epoch(&train, 0).unwrap();
        let mut last = first;
        for e in 1..8 {
            last = t.epoch(&train, e).unwrap();
        }
        assert!(last < first * 0.5, "loss {first} -> {last}");
        let after = t.accuracy(&val).unwrap();
        assert!(after > 0.9 && after >= before, "accuracy {before} -> {after}");

        let model = t.into_model();
        // The change in the feature types' macro-F1 on the held-out examples (two to a cell),
        // with how sure it is: learnt from nothing, higher in (nearly) every cell resample.
        let labels = crate::LabelVocab::default();
        let cells: Vec<(u32, u32)> = (0..val.len() as u32).map(|i| (i / 2, 0)).collect();
        let c = feature_type_change(&start, &model, &val, &cells, &labels, &device).unwrap();
        let f1 = |m: &AccessModel| feature_type_metrics(m, &val, &labels, &device).unwrap();
        assert!((c.before - f1(&start).macro_avg.f1).abs() < 1e-9, "{c:?}");
        assert!((c.after - f1(&model).macro_avg.f1).abs() < 1e-9, "{c:?}");
        assert_eq!(c.change.cells, 12);
        assert!(c.change.low > 0.0 && c.higher > 0.95, "{c:?}");

        // A rejected suggestion: "example 0 is not its class" lowers that class's probability.
        let prob = |m: &AccessModel, e: &FeatureExample, c: usize| {
            let b = feature_batch(&[e], &device).unwrap();
            let p = softmax(head_logits(m, &b), 1);
            p.into_data().try_to_vec::<f32>().unwrap()[c]
        };
        let mut neg = val[0].clone();
        let Target::Is(c) = neg.target else { unreachable!() };
        neg.target = Target::IsNot(c);
        let p0 = prob(&model, &neg, c);
        let mut t = HeadTrainer::new(model, &[1.0; 5], FineTuneConfig::default(), &device);
        for _ in 0..5 {
            t.step(&[&neg]).unwrap();
        }
        let p1 = prob(&t.into_model(), &neg, c);
        assert!(p1 < p0, "p(class) {p0} -> {p1}");
    }

    #[test]
    fn a_rejected_suggestion_teaches_none_when_the_model_has_it() {
        use crate::LabelVocab;
        assert_eq!(Target::rejected(&LabelVocab::default(), 2), Target::IsNot(2));
        assert_eq!(Target::rejected(&LabelVocab::with_none(), 2), Target::Is(5));
        let mut p =
            Plan { train: vec![], val: vec![], class_weights: vec![1.2, 0.8, 1.0, 0.0, 1.1, 0.0] };
        p.weigh_rejections(&LabelVocab::with_none(), 0);
        assert_eq!(p.class_weights[5], 0.0, "no rejections: none stays unweighted");
        p.weigh_rejections(&LabelVocab::with_none(), 3);
        assert_eq!((p.class_weights[3], p.class_weights[5]), (0.0, 1.0));

        // A six-output model: the rejected point's p(none) rises, p(its type) falls.
        let device = Device::flex();
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.image_size = 32;
        config.labels = LabelVocab::with_none();
        let model = config.init(&device).unwrap().valid();
        let f = EncoderKind::CustomCnn.features();
        let mut rejected = examples(f, 1, 3).remove(0);
        let Target::Is(c) = rejected.target else { unreachable!() };
        rejected.target = Target::rejected(&config.labels, c);
        let probs = |m: &AccessModel| {
            let b = feature_batch(&[&rejected], &device).unwrap();
            softmax(head_logits(m, &b), 1).into_data().try_to_vec::<f32>().unwrap()
        };
        let p0 = probs(&model);
        let mut t = HeadTrainer::new(model, &[1.0; 6], FineTuneConfig::default(), &device);
        for _ in 0..5 {
            t.step(&[&rejected]).unwrap();
        }
        let p1 = probs(&t.into_model());
        assert!(
            p1[5] > p0[5] && p1[c] < p0[c],
            "none {} -> {}, type {} -> {}",
            p0[5],
            p1[5],
            p0[c],
            p1[c]
        );
    }
}

#[cfg(test)]
mod last_stage_tests {
    use super::*;
    use crate::{EncoderKind, ModelConfig};

    #[test]
    fn training_the_last_stage_on_trunk_maps_changes_only_it() {
        let device = Device::flex();
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.image_size = 32;
        let model = config.init(&device).unwrap().valid();
        let scaler = crate::data::metadata::Scaler::default();
        let inputs: Vec<ModelInput> = (0..6u32)
            .map(|k| {
                let img = image::RgbImage::from_fn(32, 32, |x, y| {
                    image::Rgb([(x * 8 * (k + 1)) as u8, (y * 8) as u8, (k * 40) as u8])
                });
                ModelInput::from_rgb_sized(&img, 32, 60.0, 24.0, "osm", &scaler, &config.sources)
                    .unwrap()
            })
            .collect();
        let maps = encode_trunk(&model, &inputs, 32, &device).unwrap();
        let [n, c, h, w] = maps.dims();
        let pooled = encode_features(&model, &inputs, 32, &device).unwrap();
        // last_stage(trunk(x)) == features(x)
        model
            .encoder
            .last_stage(maps.clone())
            .into_data()
            .assert_approx_eq::<f32>(&pooled.into_data(), burn::tensor::Tolerance::default());
        let rows = split_rows(maps.into_data().try_to_vec::<f32>().unwrap(), n);
        let examples: Vec<FeatureExample> = rows
            .into_iter()
            .zip(&inputs)
            .enumerate()
            .map(|(i, (features, x))| FeatureExample {
                features,
                map: Some([c, h, w]),
                coords: x.coords,
                source: x.source.clone(),
                target: Target::Is(i % 2),
            })
            .collect();
        let before = model.encoder.clone();
        let mut t = HeadTrainer::new(model, &[1.0; 5], FineTuneConfig::default(), &device);
        let first = t.epoch(&examples, 0).unwrap();
        let mut last = first;
        for e in 1..6 {
            last = t.epoch(&examples, e).unwrap();
        }
        assert!(last < first, "loss {first} -> {last}");
        let after = t.into_model().encoder;
        let (crate::model::ImageEncoder::CustomCnn(a), crate::model::ImageEncoder::CustomCnn(b)) =
            (&before, &after)
        else {
            unreachable!()
        };
        let diff = (a.proj.weight.val() - b.proj.weight.val()).abs().max().into_scalar::<f32>();
        assert!(diff > 0.0, "the last stage trained");
        let same = (a.stages[0].conv.weight.val() - b.stages[0].conv.weight.val())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(same, 0.0, "the trunk did not");
    }
}
