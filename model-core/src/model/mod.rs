//! The AccessAtlas model (seed: "Model architecture"): an image encoder and a metadata encoder,
//! fused, then a classification head.
//!
//! ```text
//! image [B,3,224,224] -> encoder -------------------------------> [B, F]  \
//! lat/lon [B,2] -> Linear -> BatchNorm -> ReLU ------------------> [B, 64]  > concat -> Linear
//! source one-hot [B,S] ------------------------------------------> [B, S]  /  -> ReLU -> Dropout
//!                                                        -> [B,256] -> Dropout -> Linear -> [B,C]
//! ```

pub mod persist;
pub mod pretrained;

pub mod custom_cnn;
pub mod efficientnet;
pub mod layers;
pub mod mobilenet;
pub mod resnet;

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{CoreError, LabelVocab, SourceVocab};
use custom_cnn::CustomCnn;
use efficientnet::EfficientNetLite0;
use mobilenet::MobileNetV3Small;
use resnet::{Depth, ResNet};

/// Which image encoder the model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    CustomCnn,
    #[serde(rename = "mobilenet_v3_small")]
    MobileNetV3Small,
    #[serde(rename = "efficientnet_lite0")]
    EfficientNetLite0,
    #[serde(rename = "resnet18")]
    ResNet18,
    #[serde(rename = "resnet34")]
    ResNet34,
    #[serde(rename = "resnet50")]
    ResNet50,
}

impl EncoderKind {
    pub const ALL: [EncoderKind; 6] = [
        EncoderKind::CustomCnn,
        EncoderKind::MobileNetV3Small,
        EncoderKind::EfficientNetLite0,
        EncoderKind::ResNet18,
        EncoderKind::ResNet34,
        EncoderKind::ResNet50,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::CustomCnn => "custom_cnn",
            EncoderKind::MobileNetV3Small => "mobilenet_v3_small",
            EncoderKind::EfficientNetLite0 => "efficientnet_lite0",
            EncoderKind::ResNet18 => "resnet18",
            EncoderKind::ResNet34 => "resnet34",
            EncoderKind::ResNet50 => "resnet50",
        }
    }

    /// Width of the pooled image features.
    pub fn features(self) -> usize {
        match self {
            EncoderKind::CustomCnn => custom_cnn::FEATURES,
            EncoderKind::MobileNetV3Small => mobilenet::FEATURES,
            EncoderKind::EfficientNetLite0 => efficientnet::FEATURES,
            EncoderKind::ResNet18 => Depth::R18.features(),
            EncoderKind::ResNet34 => Depth::R34.features(),
            EncoderKind::ResNet50 => Depth::R50.features(),
        }
    }

    /// How many stages `freeze_stages` distinguishes for this encoder.
    pub fn num_stages(self) -> usize {
        match self {
            EncoderKind::CustomCnn => CustomCnn::NUM_STAGES,
            EncoderKind::MobileNetV3Small => MobileNetV3Small::NUM_STAGES,
            EncoderKind::EfficientNetLite0 => EfficientNetLite0::NUM_STAGES,
            _ => ResNet::NUM_STAGES,
        }
    }
}

impl fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncoderKind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let all: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
            CoreError::UnknownEncoder(s.to_string(), all.join(", "))
        })
    }
}

/// The kinds of operation a marked forward pass reports ([`ImageEncoder::stages_marked`]):
/// what a profile of the forward pass sums its time by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The stem's 3x3 strided convolution (in the CPU kernels' profile: every dense
    /// convolution wider than 1x1, as custom_cnn's).
    StemConv,
    /// 1x1 convolutions: the MBConv expansions and projections, the head convolution.
    PointwiseConv,
    /// The MBConv blocks' depthwise 3x3 and 5x5 convolutions.
    DepthwiseConv,
    /// ReLU6 (one clamp each).
    Activation,
    /// The MBConv blocks' skip connections.
    Residual,
    /// Global average pooling.
    Pool,
    /// An encoder other than EfficientNet-Lite0, not broken down.
    Encoder,
    /// The metadata branch, the fusion and the head.
    Head,
}

/// A profile's clock readings summed by kind of operation: each [`OpTimes::mark`] gives the
/// time since the last mark to its kind.
pub struct OpTimes<'a> {
    clock: &'a dyn Fn() -> f64,
    start: f64,
    last: f64,
    times: Vec<(Op, f64)>,
}

impl<'a> OpTimes<'a> {
    /// Starts the clock (milliseconds: the worker's `performance.now()`, natively an `Instant`).
    pub fn start(clock: &'a dyn Fn() -> f64) -> Self {
        let start = clock();
        Self { clock, start, last: start, times: Vec::new() }
    }

    /// The time since the last mark, to `op`.
    pub fn mark(&mut self, op: Op) {
        let now = (self.clock)();
        match self.times.iter_mut().find(|(o, _)| *o == op) {
            Some((_, t)) => *t += now - self.last,
            None => self.times.push((op, now - self.last)),
        }
        self.last = now;
    }

    /// Each kind's time, in the order the kinds were first marked, and the whole span.
    pub fn finish(self) -> (Vec<(Op, f64)>, f64) {
        (self.times, self.last - self.start)
    }
}

/// One of the image encoders.
#[derive(Module, Debug)]
pub enum ImageEncoder {
    CustomCnn(CustomCnn),
    MobileNetV3Small(MobileNetV3Small),
    EfficientNetLite0(EfficientNetLite0),
    ResNet(ResNet),
}

impl ImageEncoder {
    /// Builds an encoder; `classes = Some(1000)` adds the ImageNet classifier its reference has.
    pub fn new(kind: EncoderKind, classes: Option<usize>, device: &Device) -> Self {
        match kind {
            EncoderKind::CustomCnn => Self::CustomCnn(CustomCnn::new(classes, device)),
            EncoderKind::MobileNetV3Small => {
                Self::MobileNetV3Small(MobileNetV3Small::new(classes, device))
            }
            EncoderKind::EfficientNetLite0 => {
                Self::EfficientNetLite0(EfficientNetLite0::new(classes, device))
            }
            EncoderKind::ResNet18 => Self::ResNet(ResNet::new(Depth::R18, classes, device)),
            EncoderKind::ResNet34 => Self::ResNet(ResNet::new(Depth::R34, classes, device)),
            EncoderKind::ResNet50 => Self::ResNet(ResNet::new(Depth::R50, classes, device)),
        }
    }

    /// Pooled features `[B, F]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(x, 0)
    }

    /// Everything before the last stage: a feature map `[B, C, h, w]`. Fine-tuning caches it
    /// when it trains the last stage.
    pub fn trunk(&self, x: Tensor<4>) -> Tensor<4> {
        self.stages(x, 0..self.num_stages() - 1)
    }

    /// How many stages `freeze_stages` and [`Self::stages`] count.
    pub fn num_stages(&self) -> usize {
        match self {
            Self::CustomCnn(_) => CustomCnn::NUM_STAGES,
            Self::MobileNetV3Small(_) => MobileNetV3Small::NUM_STAGES,
            Self::EfficientNetLite0(_) => EfficientNetLite0::NUM_STAGES,
            Self::ResNet(_) => ResNet::NUM_STAGES,
        }
    }

    /// Stages `range` of `freeze_stages`'s numbering on `x`: `stages(x, 0..k)` is what `k`
    /// frozen stages compute, the map a training run caches.
    pub fn stages(&self, x: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        match self {
            Self::CustomCnn(m) => m.stages(x, range),
            Self::MobileNetV3Small(m) => m.stages(x, range),
            Self::EfficientNetLite0(m) => m.stages(x, range),
            Self::ResNet(m) => m.stages(x, range),
        }
    }

    /// [`Self::stages`], calling `mark` after each operation with its kind (EfficientNet-Lite0
    /// op by op; other encoders once, as [`Op::Encoder`]). On a backend that computes eagerly
    /// (the CPU's `flex`), the time between marks is that operation's.
    pub fn stages_marked(
        &self,
        x: Tensor<4>,
        range: std::ops::Range<usize>,
        mark: &mut dyn FnMut(Op),
    ) -> Tensor<4> {
        match self {
            Self::EfficientNetLite0(m) => m.stages_marked(x, range, mark),
            other => {
                let x = other.stages(x, range);
                mark(Op::Encoder);
                x
            }
        }
    }

    /// Pooled features from the output of the first `k` stages:
    /// `features(x) == features_from(stages(x, 0..k), k)`.
    pub fn features_from(&self, x: Tensor<4>, k: usize) -> Tensor<2> {
        layers::global_avg_pool(self.stages(x, k..usize::MAX))
    }

    /// The last stage and the pooling: `features(x) == last_stage(trunk(x))`.
    pub fn last_stage(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(x, self.num_stages() - 1)
    }

    /// Logits of the ImageNet classifier (only for encoders built with one).
    pub fn forward_classifier(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Self::CustomCnn(m) => m.forward_classifier(x),
            Self::MobileNetV3Small(m) => m.forward_classifier(x),
            Self::EfficientNetLite0(m) => m.forward_classifier(x),
            Self::ResNet(m) => m.forward_classifier(x),
        }
    }

    /// The inference form: every batch norm folded into the convolution before it
    /// (`layers::fold`); same outputs up to float rounding, fewer passes over each activation.
    /// Only for prediction: a folded encoder is never trained or saved.
    pub fn fold_batch_norms(self) -> Self {
        match self {
            Self::CustomCnn(m) => Self::CustomCnn(m.fold_batch_norms()),
            Self::MobileNetV3Small(m) => Self::MobileNetV3Small(m.fold_batch_norms()),
            Self::EfficientNetLite0(m) => Self::EfficientNetLite0(m.fold_batch_norms()),
            Self::ResNet(m) => Self::ResNet(m.fold_batch_norms()),
        }
    }

    /// Freezes the first `k` stages (see each encoder's `NUM_STAGES`).
    pub fn freeze_stages(self, k: usize) -> Self {
        match self {
            Self::CustomCnn(m) => Self::CustomCnn(m.freeze_stages(k)),
            Self::MobileNetV3Small(m) => Self::MobileNetV3Small(m.freeze_stages(k)),
            Self::EfficientNetLite0(m) => Self::EfficientNetLite0(m.freeze_stages(k)),
            Self::ResNet(m) => Self::ResNet(m.freeze_stages(k)),
        }
    }
}

fn default_metadata_dim() -> usize {
    64
}
fn default_fusion_dim() -> usize {
    256
}
fn default_dropout() -> f64 {
    0.3
}
fn default_image_size() -> u32 {
    crate::data::preprocess::INPUT_SIZE
}

/// The widest metadata or fusion layer a configuration may declare.
pub const MAX_LAYER_WIDTH: usize = 8192;
/// The largest input side a configuration may declare (the seed's is 224).
pub const MAX_IMAGE_SIZE: u32 = 1024;
/// The most labels, or sources, a configuration may declare.
pub const MAX_VOCAB: usize = 256;

/// Everything needed to rebuild the model: a saved model reloads from this alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub encoder: EncoderKind,
    #[serde(default)]
    pub labels: LabelVocab,
    #[serde(default)]
    pub sources: SourceVocab,
    #[serde(default = "default_metadata_dim")]
    pub metadata_dim: usize,
    #[serde(default = "default_fusion_dim")]
    pub fusion_dim: usize,
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    #[serde(default = "default_image_size")]
    pub image_size: u32,
}

impl ModelConfig {
    /// Defaults of the seed: 64-dim metadata, 256-dim fusion, dropout 0.3, 224x224 input.
    pub fn new(encoder: EncoderKind) -> Self {
        Self {
            encoder,
            labels: LabelVocab::default(),
            sources: SourceVocab::default(),
            metadata_dim: default_metadata_dim(),
            fusion_dim: default_fusion_dim(),
            dropout: default_dropout(),
            image_size: default_image_size(),
        }
    }

    pub fn validate(&self) -> Result<(), CoreError> {
        if self.metadata_dim == 0 || self.fusion_dim == 0 {
            return Err(CoreError::InvalidConfig("metadata_dim and fusion_dim must be > 0".into()));
        }
        // Sizes a file declares are bounded before anything is allocated by them: a
        // `model.json` saying `"fusion_dim": 1e9` is refused, not an out-of-memory abort.
        for (name, value, max) in [
            ("metadata_dim", self.metadata_dim, MAX_LAYER_WIDTH),
            ("fusion_dim", self.fusion_dim, MAX_LAYER_WIDTH),
            ("image_size", self.image_size as usize, MAX_IMAGE_SIZE as usize),
            ("labels", self.labels.len(), MAX_VOCAB),
            ("sources", self.sources.names().len(), MAX_VOCAB),
        ] {
            if value > max {
                return Err(CoreError::InvalidConfig(format!(
                    "{name} {value} is over the most this model takes, {max}"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(CoreError::InvalidConfig(format!(
                "dropout {} not in [0, 1)",
                self.dropout
            )));
        }
        if self.image_size < 32 {
            return Err(CoreError::InvalidConfig(format!("image_size {} < 32", self.image_size)));
        }
        LabelVocab::new(self.labels.names().to_vec())?;
        SourceVocab::new(self.sources.names().to_vec())?;
        Ok(())
    }

    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    /// Builds the model with freshly initialised weights.
    pub fn init(&self, device: &Device) -> Result<AccessModel, CoreError> {
        self.validate()?;
        let encoder = ImageEncoder::new(self.encoder, None, device);
        Ok(self.assemble(encoder, device))
    }

    /// Builds the model around an existing (e.g. pretrained) encoder.
    pub fn assemble(&self, encoder: ImageEncoder, device: &Device) -> AccessModel {
        let fused_in = self.encoder.features() + self.metadata_dim + self.sources.one_hot_len();
        AccessModel {
            encoder,
            meta_fc: LinearConfig::new(2, self.metadata_dim).init(device),
            meta_bn: BatchNormConfig::new(self.metadata_dim).init(device),
            fusion: LinearConfig::new(fused_in, self.fusion_dim).init(device),
            fusion_dropout: DropoutConfig::new(self.dropout).init(),
            head_dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.fusion_dim, self.num_classes()).init(device),
        }
    }
}

/// Number of learnable parameters, as PyTorch's `sum(p.numel() for p in m.parameters())`
/// counts them: batch-norm running statistics are buffers, not parameters (Burn's
/// `Module::num_params` counts them too).
pub fn count_parameters<M: Module>(module: &M) -> usize {
    struct Counter {
        path: Vec<String>,
        count: usize,
    }
    impl ModuleVisitor for Counter {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let buffer = matches!(
                self.path.last().map(String::as_str),
                Some("running_mean" | "running_var")
            );
            if !buffer {
                self.count += param.lazy_shape().num_elements();
            }
        }
    }
    let mut c = Counter { path: Vec::new(), count: 0 };
    module.visit(&mut c);
    c.count
}

/// The two-branch model.
#[derive(Module, Debug)]
pub struct AccessModel {
    pub encoder: ImageEncoder,
    pub meta_fc: Linear,
    pub meta_bn: BatchNorm,
    pub fusion: Linear,
    pub fusion_dropout: Dropout,
    pub head_dropout: Dropout,
    pub head: Linear,
}

/// Parameter counts per part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSummary {
    pub encoder: usize,
    pub metadata: usize,
    pub fusion: usize,
    pub head: usize,
    pub total: usize,
}

impl AccessModel {
    /// Logits `[B, classes]` from images `[B,3,H,W]`, standardised lat/lon `[B,2]` and the
    /// one-hot source `[B,S]`.
    pub fn forward(&self, images: Tensor<4>, coords: Tensor<2>, sources: Tensor<2>) -> Tensor<2> {
        let features = self.encoder.features(images);
        self.forward_features(features, coords, sources)
    }

    /// Logits from the output of the encoder's first `k` stages (`k = 0`: from the images):
    /// what training runs when those stages are frozen and their maps cached.
    pub fn forward_from(
        &self,
        x: Tensor<4>,
        k: usize,
        coords: Tensor<2>,
        sources: Tensor<2>,
    ) -> Tensor<2> {
        self.forward_features(self.encoder.features_from(x, k), coords, sources)
    }

    /// The part after the image encoder: lets fine-tuning cache frozen image features.
    pub fn forward_features(
        &self,
        features: Tensor<2>,
        coords: Tensor<2>,
        sources: Tensor<2>,
    ) -> Tensor<2> {
        let meta = relu(self.meta_bn.forward(self.meta_fc.forward(coords)));
        let fused = Tensor::cat(vec![features, meta, sources], 1);
        let fused = self.fusion_dropout.forward(relu(self.fusion.forward(fused)));
        self.head.forward(self.head_dropout.forward(fused))
    }

    pub fn summary(&self) -> ParamSummary {
        let encoder = count_parameters(&self.encoder);
        let metadata = count_parameters(&self.meta_fc) + count_parameters(&self.meta_bn);
        let fusion = count_parameters(&self.fusion);
        let head = count_parameters(&self.head);
        ParamSummary { encoder, metadata, fusion, head, total: count_parameters(self) }
    }

    /// Freezes the first `k` stages of the image encoder.
    pub fn freeze_encoder_stages(mut self, k: usize) -> Self {
        self.encoder = self.encoder.freeze_stages(k);
        self
    }
}
