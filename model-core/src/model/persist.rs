//! The model's persistence format: weights as Burn's burnpack bytes, config as JSON.
//! Bytes in, bytes out; the CLI writes files (atomically), the browser keeps them in IndexedDB.

use burn::module::{Module, ModuleMapper, Param};
use burn::store::{
    BurnToPyTorchAdapter, BurnpackStore, HalfPrecisionAdapter, ModuleRecord, ModuleSnapshot,
    PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{Bytes, Device, Tensor};

use crate::{AccessModel, CoreError, ModelConfig};

/// Serialises the weights (and batch-norm running statistics) of a model.
pub fn weights_to_bytes(model: &AccessModel) -> Result<Vec<u8>, CoreError> {
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// Rebuilds a model from its config and weight bytes. Truncated or corrupt bytes and weights
/// that do not fit the config are errors, never a panic.
pub fn model_from_bytes(
    config: &ModelConfig,
    weights: &[u8],
    device: &Device,
) -> Result<AccessModel, CoreError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
        .map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    // f16 weights (a `burn-f16` bundle) are widened to the model's f32 on load, and so are
    // quantized ones (`burn-int8`): int8 then saves download and disk, and the forward pass
    // runs at f32's speed on the values the backend would dequantize at every pass. A model
    // for inference on a GPU is read and dequantized on the CPU first, then moved: GPU
    // backends do not all take Burn's native int8 store.
    let gpu_inference = !device.is_autodiff() && *device != Device::flex();
    let load_on = if gpu_inference { Device::flex() } else { device.clone() };
    let model = config
        .init(&load_on)?
        .try_load_record(record.cast_to_module_dtype())
        .map_err(|e| CoreError::ConfigMismatch(e.to_string()))?;
    let model = dequantized(model);
    Ok(if gpu_inference { model.to_device(device) } else { model })
}

/// The model with every quantized parameter turned back into floats (others unchanged).
pub fn dequantized(model: AccessModel) -> AccessModel {
    struct Dequantize;
    impl ModuleMapper for Dequantize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if matches!(param.val().dtype(), burn::tensor::DType::QFloat(_)) {
                param.map(Tensor::dequantize)
            } else {
                param
            }
        }
    }
    model.map(&mut Dequantize)
}

/// The weights with convolution and linear weights and biases stored as f16 (half the size);
/// batch-norm parameters and statistics stay f32 (their running variance underflows in f16).
/// [`model_from_bytes`] reads them back into an f32 model.
pub fn weights_to_bytes_f16(model: &AccessModel) -> Result<Vec<u8>, CoreError> {
    let mut store = BurnpackStore::from_bytes(None).with_to_adapter(HalfPrecisionAdapter::new());
    model.save_into(&mut store).map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// The model with its convolution and linear weights quantized to 8-bit integers (symmetric,
/// min-max calibration; Burn's quantization) with one scale per output channel: a block of
/// [`channel_block`] values. Biases and batch norms stay f32. Save it with [`weights_to_bytes`].
///
/// One scale per tensor lost up to 2.8 points of test accuracy on the four-region model: a
/// layer's channels differ in range, and the widest one set every channel's step.
pub fn quantize_int8(model: AccessModel) -> Result<AccessModel, CoreError> {
    struct PerChannel {
        path: Vec<String>,
    }
    impl ModuleMapper for PerChannel {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.path.last().map(String::as_str) != Some("weight") {
                return param;
            }
            param.map(int8_per_channel)
        }
    }
    Ok(model.map(&mut PerChannel { path: Vec::new() }))
}

/// A weight quantized to int8 with one scale per output channel ([`channel_block`]); any other
/// tensor unchanged.
pub fn int8_per_channel<const D: usize>(weight: Tensor<D>) -> Tensor<D> {
    let Some(block) = channel_block(&weight.dims()) else {
        return weight;
    };
    let scheme = QuantScheme::default()
        .with_value(QuantValue::Q8S)
        .with_store(QuantStore::Native)
        .per_block(block, ScaleDtype::F32);
    weight.quantize_dynamic(&scheme)
}

/// The quantization block that gives a weight of this shape one scale per output channel, or
/// `None` for a shape that is not a weight [`quantize_int8`] quantizes. A convolution's
/// `[out, in, kh, kw]` has its output channel first (block `[1, in, kh, kw]`), a linear layer's
/// `[in, out]` last (block `[in, 1]`). A block's side is at most 255 (Burn stores it in a byte)
/// and must divide the tensor, so a longer side is split into the largest divisor that fits:
/// one output channel then has a few scales.
pub fn channel_block(dims: &[usize]) -> Option<Vec<u8>> {
    let fit = |n: usize| (1..=n.min(255)).rev().find(|&d| n.is_multiple_of(d)).unwrap_or(1) as u8;
    match *dims {
        [_, i, kh, kw] => Some(vec![1, fit(i), fit(kh), fit(kw)]),
        [i, _] => Some(vec![fit(i), 1]),
        _ => None,
    }
}

/// `model.json`'s config part, pretty-printed.
pub fn config_to_json(config: &ModelConfig) -> String {
    serde_json::to_string_pretty(config).expect("config serialises")
}

/// Parses and validates a model config.
pub fn config_from_json(json: &str) -> Result<ModelConfig, CoreError> {
    let c: ModelConfig =
        serde_json::from_str(json).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
    c.validate()?;
    Ok(c)
}

/// Parses and validates a model config written as TOML (same fields as the JSON form).
pub fn config_from_toml(text: &str) -> Result<ModelConfig, CoreError> {
    let c: ModelConfig =
        toml::from_str(text).map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
    c.validate()?;
    Ok(c)
}

/// The weights as safetensors with PyTorch conventions: `weight`/`bias` for batch norms,
/// `[out, in]` linear weights, no enum variant names in the keys (e.g. `encoder.conv_stem.weight`,
/// `meta_bn.running_mean`, `head.weight`), so PyTorch code can load them by name.
pub fn weights_to_safetensors(model: &AccessModel) -> Result<Vec<u8>, CoreError> {
    let mut store = SafetensorsStore::from_bytes(None)
        .skip_enum_variants(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("producer", "accessatlas");
    model.save_into(&mut store).map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    store.get_bytes().map_err(|e| CoreError::CorruptModel(e.to_string()))
}

/// Reads weights written by [`weights_to_safetensors`] into a model built from `config`.
pub fn model_from_safetensors(
    config: &ModelConfig,
    bytes: &[u8],
    device: &Device,
) -> Result<AccessModel, CoreError> {
    let mut model = config.init(device)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec()))
        .skip_enum_variants(true)
        .with_from_adapter(PyTorchToBurnAdapter);
    let r = model.load_from(&mut store).map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(CoreError::ConfigMismatch(format!(
            "{} errors, missing: {:?}",
            r.errors.len(),
            r.missing.iter().map(|(p, _)| p).take(5).collect::<Vec<_>>()
        )));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EncoderKind;
    use crate::data::metadata::Scaler;
    use crate::infer::Predictor;

    fn predictor(model: AccessModel, config: &ModelConfig, device: &Device) -> Predictor {
        Predictor::new(config.clone(), model, Scaler::default(), 1.0, device)
    }

    fn max_prob_diff(a: &Predictor, b: &Predictor) -> f32 {
        let mut worst = 0f32;
        for i in 0..4u8 {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([(x * 7 + u32::from(i) * 20) as u8, (y * 5) as u8, 90 + i * 30])
            });
            let input = a.input(&img, 60.0 + f64::from(i), 24.9, "osm").unwrap();
            let (pa, pb) = (a.predict(&input).unwrap(), b.predict(&input).unwrap());
            for ((_, x), (_, y)) in pa.probabilities.0.iter().zip(&pb.probabilities.0) {
                worst = worst.max((x - y).abs());
            }
        }
        worst
    }

    fn small() -> (ModelConfig, AccessModel, Device) {
        let device = Device::flex();
        let mut config = ModelConfig::new(EncoderKind::CustomCnn);
        config.image_size = 32;
        let model = config.init(&device).unwrap();
        (config, model, device)
    }

    #[test]
    fn f16_weights_are_half_the_size_and_load_into_the_f32_model() {
        let (config, model, device) = small();
        let f32_bytes = weights_to_bytes(&model).unwrap();
        let f16_bytes = weights_to_bytes_f16(&model).unwrap();
        assert!(
            (f16_bytes.len() as f64) < 0.6 * f32_bytes.len() as f64,
            "{} vs {}",
            f16_bytes.len(),
            f32_bytes.len()
        );
        let back = model_from_bytes(&config, &f16_bytes, &device).unwrap();
        let d =
            max_prob_diff(&predictor(model, &config, &device), &predictor(back, &config, &device));
        assert!(d < 1e-2, "f16 changed a probability by {d}");
    }

    #[test]
    fn int8_weights_are_a_quarter_of_the_size_and_predict_close() {
        let (config, model, device) = small();
        let f32_bytes = weights_to_bytes(&model).unwrap();
        let q = quantize_int8(model.clone()).unwrap();
        let q_bytes = weights_to_bytes(&q).unwrap();
        assert!(
            (q_bytes.len() as f64) < 0.4 * f32_bytes.len() as f64,
            "{} vs {}",
            q_bytes.len(),
            f32_bytes.len()
        );
        let back = model_from_bytes(&config, &q_bytes, &device).unwrap();
        // Loaded weights are dequantized once: floats only, predicting what the quantized
        // model computes.
        struct Quantized(usize);
        impl burn::module::ModuleVisitor for Quantized {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0 += usize::from(matches!(p.val().dtype(), burn::tensor::DType::QFloat(_)));
            }
        }
        let quantized = |m: &AccessModel| {
            let mut v = Quantized(0);
            m.visit(&mut v);
            v.0
        };
        assert!(quantized(&q) > 0);
        assert_eq!(quantized(&back), 0);
        let same = max_prob_diff(
            &predictor(q, &config, &device),
            &predictor(back.clone(), &config, &device),
        );
        assert!(same < 1e-5, "dequantizing on load changed a probability by {same}");
        let d =
            max_prob_diff(&predictor(model, &config, &device), &predictor(back, &config, &device));
        assert!(d < 5e-2, "int8 changed a probability by {d}");
    }

    #[test]
    fn each_output_channel_gets_its_own_int8_step() {
        let device = Device::flex();
        // A convolution of two output channels a thousand times apart in range, over 3 input
        // channels (the stem's), and a linear layer of 5 inputs (the metadata layer's).
        let narrow: Vec<f32> = (0..27).map(|i| (i as f32 - 13.0) * 1e-3).collect();
        let wide: Vec<f32> = (0..27).map(|i| (i as f32 - 13.0) * 1.0).collect();
        let conv = Tensor::<4>::from_data(
            burn::tensor::TensorData::new([narrow.clone(), wide].concat(), [2, 3, 3, 3]),
            &device,
        );
        let back: Vec<f32> = int8_per_channel(conv).dequantize().into_data().try_to_vec().unwrap();
        let worst = narrow.iter().zip(&back[..27]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        // One scale for the tensor would step by 26/255 and round the narrow channel to zero.
        assert!(worst < 1e-4, "the narrow channel is off by {worst}");
        let linear = Tensor::<2>::from_data(
            burn::tensor::TensorData::new((0..10).map(|i| i as f32).collect::<Vec<_>>(), [5, 2]),
            &device,
        );
        let back: Vec<f32> =
            int8_per_channel(linear).dequantize().into_data().try_to_vec().unwrap();
        assert!(back.iter().enumerate().all(|(i, v)| (v - i as f32).abs() < 0.05), "{back:?}");
    }

    #[test]
    fn channel_blocks_divide_every_shape() {
        assert_eq!(channel_block(&[16, 3, 3, 3]), Some(vec![1, 3, 3, 3]));
        assert_eq!(channel_block(&[960, 1, 5, 5]), Some(vec![1, 1, 5, 5]));
        assert_eq!(channel_block(&[160, 960, 1, 1]), Some(vec![1, 240, 1, 1]));
        assert_eq!(channel_block(&[1280, 6]), Some(vec![160, 1]));
        assert_eq!(channel_block(&[5, 32]), Some(vec![5, 1]));
        assert_eq!(channel_block(&[7]), None);
        for n in 1..2000 {
            let b = channel_block(&[n, 2]).unwrap()[0] as usize;
            assert!(n % b == 0 && b <= 255 && (n <= 255) == (b == n), "{n}: {b}");
        }
    }
}
