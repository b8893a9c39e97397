//! Small building blocks shared by the encoders.

use burn::module::Param;
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

/// The `epsilon` of a batch norm folded into the convolution before it (a real one is always
/// positive): [`norm`] then passes its input through.
const FOLDED: f64 = 0.0;

/// The inference form of `bn(conv(x))`: one convolution whose weights and bias carry the
/// norm's scale and shift (`w * g / sqrt(var + eps)`, `(b - mean) * g / sqrt(var + eps) +
/// beta`), and the norm marked folded so [`norm`] skips it. Only for prediction: a folded
/// model is never trained or saved (its marker is not part of the record).
pub fn fold(mut conv: Conv2d, mut bn: BatchNorm) -> (Conv2d, BatchNorm) {
    if bn.epsilon == FOLDED {
        return (conv, bn);
    }
    let [c] = bn.gamma.shape().dims();
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let weight = conv.weight.val() * scale.clone().reshape([c, 1, 1, 1]);
    let bias = match &conv.bias {
        Some(b) => b.val() * scale + shift,
        None => shift,
    };
    conv.weight = Param::from_tensor(weight);
    conv.bias = Some(Param::from_tensor(bias));
    bn.epsilon = FOLDED;
    (conv, bn)
}

/// `bn(x)`, or `x` when the norm was folded into the convolution before it ([`fold`]).
pub fn norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    if bn.epsilon == FOLDED { x } else { bn.forward(x) }
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
