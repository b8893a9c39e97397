//! The train step, shared by native training and in-browser fine-tuning (burn-train does not
//! build for wasm, so both drive this same step from their own loop).

pub mod area;
pub mod driver;
pub mod finetune;
pub mod metrics;
pub mod precision;
pub mod recipe;
pub mod resample;
pub mod schedule;
pub mod suggestion_metrics;
pub mod trunk_cache;

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::preprocess::ModelInput;
use crate::{AccessModel, CoreError, ModelConfig};
use precision::{LossScaler, Precision};

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The images, or (with [`StepConfig::start_stage`] `k > 0`) the maps of the encoder's
    /// first `k` stages.
    pub images: Tensor<4>,
    pub coords: Tensor<2>,
    pub sources: Tensor<2>,
    pub targets: Tensor<1, Int>,
}

impl Batch {
    /// Stacks examples (all `[3, size, size]` images and equally long source one-hots) and
    /// their class ids.
    pub fn from_inputs(
        inputs: &[ModelInput],
        targets: &[usize],
        size: usize,
        device: &Device,
    ) -> Result<Self, CoreError> {
        let b = inputs.len();
        if b == 0 || targets.len() != b {
            return Err(CoreError::BadBatch(format!("{b} inputs, {} targets", targets.len())));
        }
        let s = inputs[0].source.len();
        let mut images = Vec::with_capacity(b * 3 * size * size);
        let mut coords = Vec::with_capacity(b * 2);
        let mut sources = Vec::with_capacity(b * s);
        for (i, x) in inputs.iter().enumerate() {
            if x.image.len() != 3 * size * size || x.source.len() != s {
                return Err(CoreError::BadBatch(format!("example {i} has the wrong shape")));
            }
            images.extend_from_slice(&x.image);
            coords.extend_from_slice(&x.coords);
            sources.extend_from_slice(&x.source);
        }
        let t: Vec<i64> = targets.iter().map(|&t| t as i64).collect();
        Ok(Self {
            images: Tensor::from_data(TensorData::new(images, [b, 3, size, size]), device),
            coords: Tensor::from_data(TensorData::new(coords, [b, 2]), device),
            sources: Tensor::from_data(TensorData::new(sources, [b, s]), device),
            targets: Tensor::from_data(TensorData::new(t, [b]), device),
        })
    }

    /// A deterministic batch of `b` random examples of `cfg`'s shape (pixels and coordinates
    /// uniform in [-1, 1], sources and classes in turn), the same for a seed on every platform:
    /// for tests and benchmarks of the step.
    pub fn synthetic(cfg: &ModelConfig, b: usize, size: usize, seed: u64, device: &Device) -> Self {
        const A: u64 = 6364136223846793005;
        const C: u64 = 1442695040888963407;
        let mut state = seed.wrapping_mul(A).wrapping_add(C);
        let mut next = move || {
            state = state.wrapping_mul(A).wrapping_add(C);
            ((state >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
        };
        let inputs: Vec<ModelInput> = (0..b)
            .map(|i| {
                let mut source = vec![0.0; cfg.sources.one_hot_len()];
                let n = source.len();
                source[i % n] = 1.0;
                ModelInput {
                    image: (0..3 * size * size).map(|_| next()).collect(),
                    coords: [next(), next()],
                    source,
                    outside_trained_area: false,
                }
            })
            .collect();
        let targets: Vec<usize> = (0..b).map(|i| i % cfg.num_classes()).collect();
        Self::from_inputs(&inputs, &targets, size, device).expect("consistent shapes")
    }

    pub fn len(&self) -> usize {
        self.targets.dims()[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Optimiser settings of the step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    pub learning_rate: f64,
    pub weight_decay: f32,
    /// Clip the gradient norm to this value.
    pub clip_norm: Option<f32>,
    /// Class weights of the cross-entropy (None: unweighted).
    pub class_weights: Option<Vec<f32>>,
    /// Apply the optimiser every `accumulate` batches, on the mean of their gradients.
    pub accumulate: usize,
    /// Compute dtype of the forward and backward passes (see [`crate::train::precision`]).
    pub precision: Precision,
    /// Batches hold the maps of the encoder's first `start_stage` stages, not images: those
    /// stages are frozen and run beforehand in inference mode ([`crate::train::trunk_cache`]).
    pub start_stage: usize,
}

impl Default for StepConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            clip_norm: Some(1.0),
            class_weights: None,
            accumulate: 1,
            precision: Precision::F32,
            start_stage: 0,
        }
    }
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutput {
    pub loss: f32,
    pub correct: usize,
    pub count: usize,
    /// Mixed precision only: the gradients overflowed, so the optimiser skipped this batch.
    pub skipped: bool,
}

/// AdamW with decoupled weight decay and, if asked, gradient clipping by norm: the optimizer
/// of every training in the project (the full step and the fine-tune head step).
pub fn optimizer(weight_decay: f32, clip_norm: Option<f32>) -> ModuleOptimizer {
    let adam = AdamWConfig::new()
        .with_weight_decay(weight_decay)
        .with_grad_clipping(clip_norm.map(GradientClippingConfig::Norm));
    adam.init()
}

/// Class-weighted cross-entropy. A class absent from the training data has weight 0 in the
/// metadata; it never occurs as a target, and Burn requires positive weights, so it gets 1.
pub fn weighted_loss(class_weights: Option<&[f32]>, device: &Device) -> CrossEntropyLoss {
    let weights = class_weights.map(|w| {
        w.iter().map(|&x| if x.is_finite() && x > 0.0 { x } else { 1.0 }).collect::<Vec<f32>>()
    });
    CrossEntropyLossConfig::new().with_weights(weights).init(device)
}

/// A model on an autodiff device, its AdamW state and its loss.
pub struct Trainer {
    pub model: AccessModel,
    optim: ModuleOptimizer,
    loss: CrossEntropyLoss,
    pub config: StepConfig,
    accumulator: GradientsAccumulator<AccessModel>,
    pending: usize,
    /// Mixed precision only.
    pub scaler: Option<LossScaler>,
}

impl Trainer {
    /// `model` must live on an autodiff device (`Device::flex().autodiff()`). With a mixed
    /// `config.precision` the device must support its dtype
    /// ([`Precision::supported_on`]); the model itself stays f32.
    pub fn new(model: AccessModel, config: StepConfig, device: &Device) -> Self {
        Self {
            model,
            optim: optimizer(config.weight_decay, config.clip_norm),
            loss: weighted_loss(config.class_weights.as_deref(), device),
            accumulator: GradientsAccumulator::new(),
            pending: 0,
            scaler: (config.precision != Precision::F32)
                .then(|| LossScaler::for_precision(config.precision)),
            config,
        }
    }

    /// Logits of `model` on `batch` (images, or maps from [`StepConfig::start_stage`]).
    fn logits(&self, model: &AccessModel, batch: &Batch) -> Tensor<2> {
        let (coords, sources) = (batch.coords.clone(), batch.sources.clone());
        model.forward_from(batch.images.clone(), self.config.start_stage, coords, sources)
    }

    /// Weighted cross-entropy and logits of `model` on `batch`.
    pub fn loss_and_logits(&self, model: &AccessModel, batch: &Batch) -> (Tensor<1>, Tensor<2>) {
        let logits = self.logits(model, batch);
        (self.loss.forward(logits.clone(), batch.targets.clone()), logits)
    }

    /// One training step: forward, loss, backward; every `accumulate` steps the AdamW update
    /// (with gradient clipping) on the mean gradient of those steps.
    pub fn step(&mut self, batch: &Batch) -> StepOutput {
        if let Some(dtype) = self.config.precision.compute_dtype() {
            return self.mixed_step(batch, dtype);
        }
        let (loss, logits) = self.loss_and_logits(&self.model, batch);
        let correct = count_correct(logits, batch.targets.clone());
        let n = self.config.accumulate.max(1);
        let scaled = if n > 1 { loss.clone().div_scalar(n as f32) } else { loss.clone() };
        let grads = GradientsParams::from_grads(scaled.backward(), &self.model);
        let loss = loss.into_scalar::<f32>();
        self.apply(grads);
        StepOutput { loss, correct, count: batch.len(), skipped: false }
    }

    /// The mixed-precision step: forward and backward on a half copy of the model (inputs
    /// cast, logits cast back so the loss is f32), the loss scaled, the gradients unscaled
    /// into f32 for the master weights; an overflowed step is skipped (and the scale lowered).
    fn mixed_step(&mut self, batch: &Batch, dtype: burn::tensor::FloatDType) -> StepOutput {
        let mut scaler =
            self.scaler.unwrap_or_else(|| LossScaler::for_precision(self.config.precision));
        let scale = scaler.scale;
        let half = precision::half_copy(&self.model, dtype);
        let logits = half
            .forward_from(
                batch.images.clone().cast(dtype),
                self.config.start_stage,
                batch.coords.clone().cast(dtype),
                batch.sources.clone().cast(dtype),
            )
            .cast(burn::tensor::FloatDType::F32);
        let loss = self.loss.forward(logits.clone(), batch.targets.clone());
        let correct = count_correct(logits, batch.targets.clone());
        let n = self.config.accumulate.max(1);
        let scaled = loss.clone().mul_scalar(scale / n as f32);
        let half_grads = GradientsParams::from_grads(scaled.backward(), &half);
        let loss = loss.into_scalar::<f32>();
        let (grads, grads_finite) = precision::unscale_gradients(half_grads, &self.model, scale);
        let (model, stats_finite) = precision::copy_running_stats(&half, self.model.clone());
        self.model = model;
        let finite = grads_finite && stats_finite && loss.is_finite();
        let ok = scaler.update(finite);
        self.scaler = Some(scaler);
        if ok {
            self.apply(grads);
        }
        StepOutput { loss, correct, count: batch.len(), skipped: !ok }
    }

    /// Applies `grads` now, or adds them to the accumulation and applies the mean every
    /// `accumulate` batches.
    fn apply(&mut self, grads: GradientsParams) {
        let n = self.config.accumulate.max(1);
        if n == 1 {
            self.model = self.optim.step(self.config.learning_rate, self.model.clone(), grads);
        } else {
            self.accumulator.accumulate(&self.model, grads);
            self.pending += 1;
            if self.pending == n {
                self.flush();
            }
        }
    }

    /// Applies gradients accumulated so far (end of an epoch with a partial accumulation).
    pub fn flush(&mut self) {
        if self.pending > 0 {
            let grads = self.accumulator.grads();
            self.model = self.optim.step(self.config.learning_rate, self.model.clone(), grads);
            self.pending = 0;
        }
    }

    /// The optimiser state (AdamW moments), for checkpoints.
    pub fn optimizer_bytes(&self) -> Result<Vec<u8>, CoreError> {
        Ok(self.optim.into_bytes().map_err(|e| CoreError::CorruptModel(e.to_string()))?.to_vec())
    }

    /// Restores the optimiser state written by [`Self::optimizer_bytes`].
    pub fn load_optimizer_bytes(&mut self, bytes: &[u8]) -> Result<(), CoreError> {
        let optim = std::mem::replace(&mut self.optim, AdamWConfig::new().init());
        self.optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| CoreError::CorruptModel(e.to_string()))?;
        Ok(())
    }

    /// Predicted class per example and the mean loss, in inference mode.
    pub fn predict(&self, batch: &Batch) -> (f32, Vec<usize>) {
        let logits = self.logits(&self.model.valid(), batch);
        let loss = self.loss.forward(logits.clone(), batch.targets.clone()).into_scalar::<f32>();
        let pred = logits.argmax(1).squeeze_dim::<1>(1).into_data();
        let pred = pred.iter::<i64>().map(|v| v as usize).collect();
        (loss, pred)
    }

    /// Loss and accuracy without updating anything (inference mode: running BN statistics,
    /// no dropout).
    pub fn evaluate(&self, batch: &Batch) -> StepOutput {
        let logits = self.logits(&self.model.valid(), batch);
        let loss = self.loss.forward(logits.clone(), batch.targets.clone()).into_scalar::<f32>();
        StepOutput {
            loss,
            correct: count_correct(logits, batch.targets.clone()),
            count: batch.len(),
            skipped: false,
        }
    }
}

fn count_correct(logits: Tensor<2>, targets: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).squeeze_dim::<1>(1);
    pred.equal(targets).int().sum().into_scalar::<i64>() as usize
}
