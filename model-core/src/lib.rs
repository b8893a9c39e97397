//! # model-core
//!
//! The one AccessAtlas model and everything the native CLI and the browser app share, by
//! layer: `data` (feature types, vocabularies, the tags schema, the split, tile math, the
//! scaler, preprocessing and augmentation, OSM edit files), `model` (the network, its weights'
//! format and the pretrained import), `train` (the step, mixed precision, schedules, the epoch
//! driver, the recipe, metrics, fine-tuning) and `infer` (the predictor, bundles, calibration,
//! the prediction type).
//!
//! **Invariant:** no file, network, thread, clock or environment access. Every function takes
//! bytes or values and returns bytes or values, so the crate builds for
//! `wasm32-unknown-unknown` and behaves the same there as natively. Callers (the CLI, the app)
//! do the I/O.

pub mod data;
pub mod error;
pub mod infer;
pub mod kernels;
pub mod model;
pub mod rng;
pub mod train;
pub mod wire;

pub use data::vocab::{LabelVocab, SourceVocab};
pub use error::CoreError;
pub use infer::prediction::Prediction;
pub use model::{AccessModel, EncoderKind, ModelConfig};

/// Re-export of the Burn version this crate is built against, so callers use the same types.
pub use burn;
