//! A small CNN for quick experiments (about 0.5M parameters): four 3x3 conv + batch norm +
//! ReLU + 2x2 max-pool stages (32, 64, 128, 256 channels), a 1x1 conv to 512, global pooling.

use std::ops::Range;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::{bn, conv, fold, global_avg_pool, norm, pad_half};

const CHANNELS: [usize; 4] = [32, 64, 128, 256];
/// Width of the pooled features.
pub const FEATURES: usize = 512;

#[derive(Module, Debug)]
pub struct CnnStage {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct CustomCnn {
    pub stages: Vec<CnnStage>,
    pub pool: MaxPool2d,
    pub proj: Conv2d,
    pub proj_bn: BatchNorm,
    pub fc: Option<Linear>,
}

impl CustomCnn {
    pub fn new(classes: Option<usize>, d: &Device) -> Self {
        let mut cin = 3;
        let stages = CHANNELS
            .iter()
            .map(|&c| {
                let s = CnnStage {
                    conv: conv([cin, c], 3, 1, 1, pad_half(3), d),
                    bn: bn(c, 1e-5, 0.1, d),
                };
                cin = c;
                s
            })
            .collect();
        Self {
            stages,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            proj: conv([cin, FEATURES], 1, 1, 1, PaddingConfig2d::Valid, d),
            proj_bn: bn(FEATURES, 1e-5, 0.1, d),
            fc: classes.map(|c| LinearConfig::new(FEATURES, c).init(d)),
        }
    }

    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(self.stages(x, 0..Self::NUM_STAGES))
    }

    /// Runs the stages `range` of [`Self::freeze_stages`]'s numbering on `x` (stages past the
    /// last are ignored).
    pub fn stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        for s in range.start..range.end.min(Self::NUM_STAGES) {
            x = match self.stages.get(s) {
                Some(st) => self.pool.forward(relu(norm(&st.bn, st.conv.forward(x)))),
                None => relu(norm(&self.proj_bn, self.proj.forward(x))),
            };
        }
        x
    }

    /// The inference form: every batch norm folded into its convolution ([`fold`]).
    pub fn fold_batch_norms(mut self) -> Self {
        self.stages = std::mem::take(&mut self.stages)
            .into_iter()
            .map(|s| {
                let (conv, bn) = fold(s.conv, s.bn);
                CnnStage { conv, bn }
            })
            .collect();
        (self.proj, self.proj_bn) = fold(self.proj, self.proj_bn);
        self
    }

    pub fn forward_classifier(&self, x: Tensor<4>) -> Tensor<2> {
        let fc = self.fc.as_ref().expect("CustomCnn built without a classifier");
        fc.forward(self.features(x))
    }

    /// Stages for freezing: 0..=3 the conv stages, 4 the projection.
    pub const NUM_STAGES: usize = 5;

    pub fn freeze_stages(mut self, k: usize) -> Self {
        self.stages = std::mem::take(&mut self.stages)
            .into_iter()
            .enumerate()
            .map(|(i, s)| if i < k { s.freeze() } else { s })
            .collect();
        if k >= Self::NUM_STAGES {
            self.proj = self.proj.freeze();
            self.proj_bn = self.proj_bn.freeze();
        }
        self
    }
}
