//! # model-core
//!
//! The one AccessAtlas model and everything the native CLI and the browser app share:
//! vocabularies, the lat/lon scaler, image preprocessing, tile math, the prediction type,
//! the train step and the model persistence format.
//!
//! **Invariant:** no file, network, thread, clock or environment access. Every function takes
//! bytes or values and returns bytes or values, so the crate builds for
//! `wasm32-unknown-unknown` and behaves the same there as natively. Callers (the CLI, the app)
//! do the I/O.

pub mod augment;
pub mod bundle;
pub mod calibration;
pub mod dataset;
pub mod driver;
pub mod error;
pub mod features;
pub mod finetune;
pub mod infer;
pub mod metadata;
pub mod metrics;
pub mod model;
pub mod osm_edit;
pub mod persist;
pub mod precision;
pub mod prediction;
pub mod preprocess;
pub mod pretrained;
pub mod recipe;
pub mod rng;
pub mod schedule;
pub mod split;
pub mod tags;
pub mod tile;
pub mod train;
pub mod vocab;

pub use error::CoreError;
pub use model::{AccessModel, EncoderKind, ModelConfig};
pub use prediction::Prediction;
pub use vocab::{LabelVocab, SourceVocab};

/// Re-export of the Burn version this crate is built against, so callers use the same types.
pub use burn;
