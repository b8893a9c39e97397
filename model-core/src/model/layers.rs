//! Small building blocks shared by the encoders.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

/// A bias-free convolution (every encoder here follows its conv with a batch norm).
pub fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    padding: PaddingConfig2d,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(padding)
        .with_bias(false)
        .init(device)
}

/// Symmetric padding `k / 2`, as torchvision uses.
pub fn pad_half(kernel: usize) -> PaddingConfig2d {
    let p = kernel / 2;
    PaddingConfig2d::Explicit(p, p, p, p)
}

/// Batch norm with PyTorch's conventions: `momentum` is the weight of the new batch.
pub fn bn(channels: usize, epsilon: f64, momentum: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).with_epsilon(epsilon).with_momentum(momentum).init(device)
}

pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// Global average pooling `[B, C, H, W] -> [B, C]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    x.flatten::<3>(2, 3).mean_dim(2).squeeze_dim::<2>(2)
}
