//! The native side of AccessAtlas: everything that does I/O (files, network, threads) around
//! the shared `model-core`. The `accessatlas` binary is a thin clap front over these modules;
//! benchmarks and tests use them directly.

pub mod api;
pub mod cell_log;
pub mod cmd;
pub mod device;
pub mod fsutil;
pub mod memory;
pub mod onnx;
pub mod osm;
pub mod paths;
pub mod plot;
pub mod pretrained;
pub mod render;
pub mod run;
pub mod score;
pub mod serve;
pub mod suggestion_eval;
pub mod suggestions;
pub mod tiles;
pub mod training;
