//! Helpers shared by the integration tests. Each test file is its own crate and uses only some
//! of them, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod browser;
pub mod model;
pub mod osm_clients;

use std::process::Command;

use tempfile::TempDir;

/// The `accessatlas` binary under test, with nothing set: the caller adds arguments,
/// environment and working directory.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_accessatlas"))
}

/// A fresh, empty folder `aa-{name}-XXXXXX` under the system's temporary folder, removed when
/// the returned value drops (also when the test panics): keep it bound for as long as the test
/// uses the folder. A test that needs a path that does not exist yet joins a name to it.
pub fn tmp(name: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("aa-{name}-")).tempdir().unwrap()
}
