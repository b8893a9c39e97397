//! ONNX export of the whole two-branch model with burn-onnx's forward-capture exporter
//! (experimental in 0.22): the forward pass runs once on a capture device, the recorded
//! operations are lowered to ONNX (opset 18) with the weights embedded.
//!
//! Graph: inputs `image` `[batch, 3, S, S]` (ImageNet-normalised), `coords` `[batch, 2]`
//! (standardised lat/lon), `source` `[batch, K]` (one-hot), in that order; one output, the
//! logits `[batch, classes]`. Softmax with the bundle's temperature is applied by the caller,
//! as in every other consumer.
//!
//! The batch size is fixed at export (`--onnx-batch`, default 1): burn-onnx 0.22 marks an axis
//! dynamic by comparing two traces, and refuses a batch axis shared by three inputs as
//! ambiguous. Two formulations the exporter cannot lower (`Clamp` in ReLU6, `MeanDim` in the
//! pooling) are traced in an equivalent form ([`with_portable_ops`]).

use anyhow::{Context, Result};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::OnnxExporter;
use model_core::model::layers::with_portable_ops;
use model_core::{AccessModel, ModelConfig};

type Inputs = (Tensor<4>, Tensor<2>, Tensor<2>);

fn inputs(config: &ModelConfig, batch: usize, device: &Device) -> Inputs {
    let s = config.image_size as usize;
    let k = config.sources.one_hot_len();
    (
        Tensor::<4>::zeros([batch, 3, s, s], device),
        Tensor::<2>::zeros([batch, 2], device),
        Tensor::<2>::zeros([batch, k], device),
    )
}

/// Exports `model` (inference mode) as ONNX bytes for a fixed batch size.
pub fn to_onnx(model: &AccessModel, config: &ModelConfig, batch: usize) -> Result<Vec<u8>> {
    anyhow::ensure!(batch >= 1, "the ONNX batch size must be at least 1");
    let device = Device::flex();
    let onnx = with_portable_ops(|| {
        OnnxExporter::new()
            .export(model, inputs(config, batch, &device), |m, (i, c, s)| m.forward(i, c, s))
    })
    .context("exporting ONNX (burn-onnx)")?;
    Ok(onnx.into_bytes())
}
