//! ResNet-18/34/50 with torchvision's layout (v1.5: the stride of a bottleneck sits on its 3x3
//! convolution), so parameter counts equal torchvision's exactly.

use std::ops::Range;

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use super::layers::{bn, conv, fold, global_avg_pool, norm as fold_aware_norm, pad_half};

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    R18,
    R34,
    R50,
}

impl Depth {
    fn layers(self) -> [usize; 4] {
        match self {
            Depth::R18 => [2, 2, 2, 2],
            Depth::R34 | Depth::R50 => [3, 4, 6, 3],
        }
    }
    fn expansion(self) -> usize {
        if self == Depth::R50 { 4 } else { 1 }
    }
    /// Width of the pooled features.
    pub fn features(self) -> usize {
        512 * self.expansion()
    }
}

/// 1x1 strided projection of the shortcut.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub downsample: Option<Downsample>,
}

#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Conv2d,
    pub bn3: BatchNorm,
    pub downsample: Option<Downsample>,
}

// Blocks live in a Vec built once; the size difference between variants is irrelevant.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResBlock {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

fn norm(c: usize, d: &Device) -> BatchNorm {
    bn(c, BN_EPS, BN_MOMENTUM, d)
}

impl ResBlock {
    fn new(depth: Depth, inplanes: usize, planes: usize, stride: usize, d: &Device) -> Self {
        let out = planes * depth.expansion();
        let downsample = (stride != 1 || inplanes != out).then(|| Downsample {
            conv: conv([inplanes, out], 1, stride, 1, PaddingConfig2d::Valid, d),
            bn: norm(out, d),
        });
        match depth {
            Depth::R18 | Depth::R34 => ResBlock::Basic(BasicBlock {
                conv1: conv([inplanes, planes], 3, stride, 1, pad_half(3), d),
                bn1: norm(planes, d),
                conv2: conv([planes, planes], 3, 1, 1, pad_half(3), d),
                bn2: norm(planes, d),
                downsample,
            }),
            Depth::R50 => ResBlock::Bottleneck(Bottleneck {
                conv1: conv([inplanes, planes], 1, 1, 1, PaddingConfig2d::Valid, d),
                bn1: norm(planes, d),
                conv2: conv([planes, planes], 3, stride, 1, pad_half(3), d),
                bn2: norm(planes, d),
                conv3: conv([planes, out], 1, 1, 1, PaddingConfig2d::Valid, d),
                bn3: norm(out, d),
                downsample,
            }),
        }
    }

    /// The inference form ([`fold`]).
    fn fold_batch_norms(self) -> Self {
        let ds = |d: Option<Downsample>| {
            d.map(|d| {
                let (conv, bn) = fold(d.conv, d.bn);
                Downsample { conv, bn }
            })
        };
        match self {
            ResBlock::Basic(mut b) => {
                (b.conv1, b.bn1) = fold(b.conv1, b.bn1);
                (b.conv2, b.bn2) = fold(b.conv2, b.bn2);
                b.downsample = ds(b.downsample);
                ResBlock::Basic(b)
            }
            ResBlock::Bottleneck(mut b) => {
                (b.conv1, b.bn1) = fold(b.conv1, b.bn1);
                (b.conv2, b.bn2) = fold(b.conv2, b.bn2);
                (b.conv3, b.bn3) = fold(b.conv3, b.bn3);
                b.downsample = ds(b.downsample);
                ResBlock::Bottleneck(b)
            }
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let (y, ds) = match self {
            ResBlock::Basic(b) => {
                let y = relu(fold_aware_norm(&b.bn1, b.conv1.forward(x.clone())));
                (fold_aware_norm(&b.bn2, b.conv2.forward(y)), &b.downsample)
            }
            ResBlock::Bottleneck(b) => {
                let y = relu(fold_aware_norm(&b.bn1, b.conv1.forward(x.clone())));
                let y = relu(fold_aware_norm(&b.bn2, b.conv2.forward(y)));
                (fold_aware_norm(&b.bn3, b.conv3.forward(y)), &b.downsample)
            }
        };
        let shortcut = match ds {
            Some(ds) => fold_aware_norm(&ds.bn, ds.conv.forward(x)),
            None => x,
        };
        relu(y + shortcut)
    }
}

#[derive(Module, Debug)]
pub struct ResLayer {
    pub blocks: Vec<ResBlock>,
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: MaxPool2d,
    pub layers: Vec<ResLayer>,
    pub fc: Option<Linear>,
}

impl ResNet {
    pub fn new(depth: Depth, classes: Option<usize>, device: &Device) -> Self {
        let mut inplanes = 64;
        let mut layers = Vec::new();
        for (i, &n) in depth.layers().iter().enumerate() {
            let planes = 64 << i;
            let stride = if i == 0 { 1 } else { 2 };
            let mut blocks = vec![ResBlock::new(depth, inplanes, planes, stride, device)];
            inplanes = planes * depth.expansion();
            for _ in 1..n {
                blocks.push(ResBlock::new(depth, inplanes, planes, 1, device));
            }
            layers.push(ResLayer { blocks });
        }
        Self {
            conv1: conv([3, 64], 7, 2, 1, pad_half(7), device),
            bn1: norm(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layers,
            fc: classes.map(|c| LinearConfig::new(depth.features(), c).init(device)),
        }
    }

    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        global_avg_pool(self.stages(x, 0..Self::NUM_STAGES))
    }

    /// Runs the stages `range` of [`Self::freeze_stages`]'s numbering on `x` (stages past the
    /// last are ignored).
    pub fn stages(&self, mut x: Tensor<4>, range: Range<usize>) -> Tensor<4> {
        for s in range.start..range.end.min(Self::NUM_STAGES) {
            x = match s {
                0 => self.maxpool.forward(relu(fold_aware_norm(&self.bn1, self.conv1.forward(x)))),
                s => self.layers[s - 1].blocks.iter().fold(x, |x, b| b.forward(x)),
            };
        }
        x
    }

    /// The inference form: every batch norm folded into its convolution ([`fold`]).
    pub fn fold_batch_norms(mut self) -> Self {
        (self.conv1, self.bn1) = fold(self.conv1, self.bn1);
        for layer in &mut self.layers {
            layer.blocks = std::mem::take(&mut layer.blocks)
                .into_iter()
                .map(ResBlock::fold_batch_norms)
                .collect();
        }
        self
    }

    pub fn forward_classifier(&self, x: Tensor<4>) -> Tensor<2> {
        let fc = self.fc.as_ref().expect("ResNet built without a classifier");
        fc.forward(self.features(x))
    }

    /// Stages for freezing: 0 = stem, 1..=4 = layer1..layer4.
    pub const NUM_STAGES: usize = 5;

    pub fn freeze_stages(mut self, k: usize) -> Self {
        if k >= 1 {
            self.conv1 = self.conv1.freeze();
            self.bn1 = self.bn1.freeze();
        }
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .enumerate()
            .map(|(i, l)| if i + 1 < k { l.freeze() } else { l })
            .collect();
        self
    }
}
