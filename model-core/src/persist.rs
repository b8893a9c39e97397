//! The model's persistence format: weights as Burn's burnpack bytes, config as JSON.
//! Bytes in, bytes out; the CLI writes files (atomically), the browser keeps them in IndexedDB.

use burn::module::Module;
use burn::store::ModuleRecord;
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
