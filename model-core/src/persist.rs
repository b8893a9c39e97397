//! The model's persistence format: weights as Burn's burnpack bytes, config as JSON.
//! Bytes in, bytes out; the CLI writes files (atomically), the browser keeps them in IndexedDB.

use burn::module::Module;
use burn::store::{
    BurnToPyTorchAdapter, ModuleRecord, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::{Bytes, Device};

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
    let model = config.init(device)?;
    model.try_load_record(record).map_err(|e| CoreError::ConfigMismatch(e.to_string()))
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
