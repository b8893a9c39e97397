//! MobileNetV3-Small with torchvision's layout (inverted residuals, squeeze-excite with a
//! hard sigmoid, hard swish), so the parameter count equals torchvision's exactly.

use std::ops::Range;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{hard_sigmoid, hard_swish, relu};
use burn::tensor::{Device, Tensor};

use super::layers::{bn, conv, fold, global_avg_pool, norm, pad_half};

const BN_EPS: f64 = 1e-3;
const BN_MOMENTUM: f64 = 0.01;
/// Width of the last convolution, the pooled feature width.
pub const FEATURES: usize = 576;
const HIDDEN: usize = 1024;

/// `(in, kernel, expanded, out, squeeze-excite, hard swish, stride)`, torchvision's table.
const BNECK: [(usize, usize, usize, usize, bool, bool, usize); 11] = [
    (16, 3, 16, 16, true, false, 2),
    (16, 3, 72, 24, false, false, 2),
    (24, 3, 88, 24, false, false, 1),
    (24, 5, 96, 40, true, true, 2),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 240, 40, true, true, 1),
    (40, 5, 120, 48, true, true, 1),
    (48, 5, 144, 48, true, true, 1),
    (48, 5, 288, 96, true, true, 2),
    (96, 5, 576, 96, true, true, 1),
    (96, 5, 576, 96, true, true, 1),
];

/// torchvision's `_make_divisible(v, 8)`.
fn make_divisible(v: usize) -> usize {
    let d = 8;
    let mut n = ((v + d / 2) / d * d).max(d);
    if (n as f64) < 0.9 * v as f64 {
        n += d;
    }
    n
}

/// Convolution, batch norm, optional activation.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    fn new(cin: usize, cout: usize, k: usize, stride: usize, groups: usize, d: &Device) -> Self {
        Self {
            conv: conv([cin, cout], k, stride, groups, pad_half(k), d),
            bn: bn(cout, BN_EPS, BN_MOMENTUM, d),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        norm(&self.bn, self.conv.forward(x))
    }
    /// The inference form ([`fold`]).
    fn fold_batch_norms(self) -> Self {
        let (conv, bn) = fold(self.conv, self.bn);
        Self { conv, bn }
    }
}

#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl SqueezeExcite {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, _, _] = x.dims();
        let s = relu(self.fc1.forward(global_avg_pool(x.clone())));
        let s = hard_sigmoid(self.fc2.forward(s), 1.0 / 6.0, 0.5);
        x * s.reshape([b, c, 1, 1])
    }
}

#[derive(Module, Debug)]
pub struct InvertedResidual {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub se: Option<SqueezeExcite>,
    pub project: ConvBn,
    pub hard_swish: bool,
    pub residual: bool,
}

impl InvertedResidual {
    fn fold_batch_norms(mut self) -> Self {
        self.expand = self.expand.map(ConvBn::fold_batch_norms);
        self.depthwise = self.depthwise.fold_batch_norms();
        self.project = self.project.fold_batch_norms();
        self
    }
    fn act(&self, x: Tensor<4>) -> Tensor<4> {
        if self.hard_swish { hard_swish(x) } else { relu(x) }
    }
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(e) = &self.expand {
            x = self.act(e.forward(x));
        }
        x = self.act(self.depthwise.forward(x));
        if let Some(se) = &self.se {
            x = se.forward(x);
        }
        x = self.project.forward(x);
        if self.residual { x + input } else { x }
    }
}

#[derive(Module, Debug)]
pub struct MobileNetV3Small {
    pub stem: ConvBn,
    pub blocks: Vec<InvertedResidual>,
    pub last: ConvBn,
    /// ImageNet classifier (Linear 576->1024, hard swish, dropout, Linear 1024->classes).
    pub classifier: Option<Classifier>,
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub fc1: Linear,
    pub dropout: Dropout,
    pub fc2: Linear,
}

impl MobileNetV3Small {
    pub fn new(classes: Option<usize>, d: &Device) -> Self {
        let blocks = BNECK
            .iter()
            .map(|&(cin, k, exp, cout, se, hs, s)| InvertedResidual {
                expand: (exp != cin).then(|| ConvBn::new(cin, exp, 1, 1, 1, d)),
                depthwise: ConvBn::new(exp, exp, k, s, exp, d),
                se: se.then(|| {
                    let sq = make_divisible(exp / 4);
                    SqueezeExcite {
                        fc1: LinearConfig::new(exp, sq).init(d),
                        fc2: LinearConfig::new(sq, exp).init(d),
                    }
                }),
                project: ConvBn::new(exp, cout, 1, 1, 1, d),
                hard_swish: hs,
                residual: s == 1 && cin == cout,
            })
            .collect();
        Self {
            stem: ConvBn::new(3, 16, 3, 2, 1, d),
            blocks,
            last: ConvBn::new(96, FEATURES, 1, 1, 1, d),
            classifier: classes.map(|c| Classifier {
                fc1: LinearConfig::new(FEATURES, HIDDEN).init(d),
                dropout: DropoutConfig::new(0.2).init(),
                fc2: LinearConfig::new(HIDDEN, c).init(d),
            }),
        }
    }

    /// The inference form: every batch norm folded into its convolution ([`fold`]).
    pub fn fold_batch_norms(mut self) -> Self {
        self.stem = self.stem.fold_batch_norms();
        self.blocks = std::mem::take(&mut self.blocks)
            .into_iter()
            .map(InvertedResidual::fold_batch_norms)
            .collect();
        self.last = self.last.fold_batch_norms();
        self
    }

    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(self.stages(x, 0..Self::NUM_STAGES))
    }

    /// Runs the stages `range` of [`Self::freeze_stages`]'s numbering on `x` (stages past the
    /// last are ignored).
    pub fn stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        for s in range.start..range.end.min(Self::NUM_STAGES) {
            x = match s {
                0 => hard_swish(self.stem.forward(x)),
                s if s == Self::NUM_STAGES - 1 => hard_swish(self.last.forward(x)),
                s => self.blocks[s - 1].forward(x),
            };
        }
        x
    }

    pub fn forward_classifier(&self, x: Tensor<4>) -> Tensor<2> {
        let c = self.classifier.as_ref().expect("built without a classifier");
        c.fc2.forward(c.dropout.forward(hard_swish(c.fc1.forward(self.features(x)))))
    }

    /// Stages for freezing: 0 = stem, 1..=11 = the inverted residual blocks, 12 = last conv.
    pub const NUM_STAGES: usize = 13;

    pub fn freeze_stages(mut self, k: usize) -> Self {
        if k >= 1 {
            self.stem = self.stem.freeze();
        }
        self.blocks = std::mem::take(&mut self.blocks)
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i + 1 < k { b.freeze() } else { b })
            .collect();
        if k >= Self::NUM_STAGES {
            self.last = self.last.freeze();
        }
        self
    }
}
