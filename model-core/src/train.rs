//! The train step, shared by native training and in-browser fine-tuning (burn-train does not
//! build for wasm, so both drive this same step from their own loop).

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::preprocess::ModelInput;
use crate::{AccessModel, CoreError};

/// A batch on a device.
#[derive(Debug, Clone)]
pub struct Batch {
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
}

impl Default for StepConfig {
    fn default() -> Self {
        Self { learning_rate: 1e-3, weight_decay: 1e-4, clip_norm: Some(1.0), class_weights: None }
    }
}

/// What one step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutput {
    pub loss: f32,
    pub correct: usize,
    pub count: usize,
}

/// A model on an autodiff device, its AdamW state and its loss.
pub struct Trainer {
    pub model: AccessModel,
    optim: ModuleOptimizer,
    loss: CrossEntropyLoss,
    pub config: StepConfig,
}

impl Trainer {
    /// `model` must live on an autodiff device (`Device::flex().autodiff()`).
    pub fn new(model: AccessModel, config: StepConfig, device: &Device) -> Self {
        let mut adam = AdamWConfig::new().with_weight_decay(config.weight_decay);
        if let Some(n) = config.clip_norm {
            adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(n)));
        }
        let loss =
            CrossEntropyLossConfig::new().with_weights(config.class_weights.clone()).init(device);
        Self { model, optim: adam.init(), loss, config }
    }

    /// Weighted cross-entropy and logits of `model` on `batch`.
    pub fn loss_and_logits(&self, model: &AccessModel, batch: &Batch) -> (Tensor<1>, Tensor<2>) {
        let logits =
            model.forward(batch.images.clone(), batch.coords.clone(), batch.sources.clone());
        (self.loss.forward(logits.clone(), batch.targets.clone()), logits)
    }

    /// One optimisation step: forward, loss, backward, (clip), AdamW update.
    pub fn step(&mut self, batch: &Batch) -> StepOutput {
        let (loss, logits) = self.loss_and_logits(&self.model, batch);
        let correct = count_correct(logits, batch.targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let loss = loss.into_scalar::<f32>();
        self.model = self.optim.step(self.config.learning_rate, self.model.clone(), grads);
        StepOutput { loss, correct, count: batch.len() }
    }

    /// Loss and accuracy without updating anything (inference mode: running BN statistics,
    /// no dropout).
    pub fn evaluate(&self, batch: &Batch) -> StepOutput {
        let model = self.model.valid();
        let logits =
            model.forward(batch.images.clone(), batch.coords.clone(), batch.sources.clone());
        let loss = self.loss.forward(logits.clone(), batch.targets.clone()).into_scalar::<f32>();
        StepOutput {
            loss,
            correct: count_correct(logits, batch.targets.clone()),
            count: batch.len(),
        }
    }
}

fn count_correct(logits: Tensor<2>, targets: Tensor<1, Int>) -> usize {
    let pred = logits.argmax(1).squeeze_dim::<1>(1);
    pred.equal(targets).int().sum().into_scalar::<i64>() as usize
}
