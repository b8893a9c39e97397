//! The AccessAtlas single-page app: a Leptos (CSR) page for community mappers, and the model
//! worker it talks to.
//!
//! Invariant: this is the only crate that knows the DOM. Everything about the model, tags,
//! tiles and preprocessing comes from `model-core`; the modules here that hold logic
//! ([`store`], [`geojson`], [`protocol`], [`scan`], [`cluster`]) are plain Rust, tested natively and in the browser.
//!
//! What wasm code here may not do: block (CPU inference runs in the worker; everything else is
//! async), spawn threads, touch a filesystem or environment variables.

pub mod address;
pub mod cluster;
pub mod geojson;
pub mod josm;
pub mod protocol;
pub mod scan;
pub mod store;

#[cfg(target_arch = "wasm32")]
pub mod idb;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod net;
#[cfg(target_arch = "wasm32")]
pub mod page;
#[cfg(target_arch = "wasm32")]
pub mod transfer;
#[cfg(target_arch = "wasm32")]
pub mod worker;
