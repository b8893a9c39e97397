//! Small building blocks shared by the encoders.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::tensor::activation::relu;
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

/// When set, the layers below use formulations made only of the operations ONNX exporters
/// lower (burn-onnx 0.22 has no `Clamp` and no `MeanDim`). The values are the same up to
/// float rounding, so the flag is harmless to any forward pass running meanwhile.
static PORTABLE_OPS: AtomicBool = AtomicBool::new(false);

/// Runs `f` (an export's traced forward pass) with the portable formulations.
pub fn with_portable_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PORTABLE_OPS.store(false, Ordering::SeqCst);
        }
    }
    PORTABLE_OPS.store(true, Ordering::SeqCst);
    let _reset = Reset;
    f()
}

fn portable() -> bool {
    PORTABLE_OPS.load(Ordering::Relaxed)
}

/// `min(max(x, 0), 6)`.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if portable() {
        // relu(x) - relu(x - 6): 0 below 0, x in [0, 6], 6 above.
        relu(x.clone()) - relu(x - 6.0)
    } else {
        x.clamp(0.0, 6.0)
    }
}

/// Global average pooling `[B, C, H, W] -> [B, C]`.
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let x = x.flatten::<3>(2, 3);
    if portable() {
        let n = x.dims()[2] as f64;
        (x.sum_dim(2) / n).squeeze_dim::<2>(2)
    } else {
        x.mean_dim(2).squeeze_dim::<2>(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_formulations_give_the_same_values() {
        let d = Device::flex();
        let x = Tensor::<4>::from_floats([[[[-3.0f32, 0.0, 2.5], [6.0, 7.5, 100.0]]]], &d);
        let a = (relu6(x.clone()), global_avg_pool(x.clone()));
        let b = with_portable_ops(|| (relu6(x.clone()), global_avg_pool(x.clone())));
        assert!(!portable(), "the flag is reset afterwards");
        a.0.into_data()
            .assert_approx_eq::<f32>(&b.0.into_data(), burn::tensor::Tolerance::default());
        a.1.into_data()
            .assert_approx_eq::<f32>(&b.1.into_data(), burn::tensor::Tolerance::default());
    }
}
