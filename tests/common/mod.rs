//! Helpers shared by the integration tests. Each test file is its own crate and uses only some
//! of them, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod browser;
pub mod model;
pub mod osm_clients;
pub mod selectors;
pub mod slow_link;
pub mod tile_server;

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

/// The size of `path` compressed with gzip at its best level.
pub fn gzip_size(path: &std::path::Path) -> u64 {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&std::fs::read(path).unwrap()).unwrap();
    e.finish().unwrap().len() as u64
}

/// Gzip bytes of the files directly in `dir` whose names pass `keep`.
pub fn gzip_dir(dir: &std::path::Path, keep: impl Fn(&str) -> bool) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file() && keep(&e.file_name().to_string_lossy()))
        .map(|e| gzip_size(&e.path()))
        .sum()
}

/// Copies the folder `from` (files and folders in it, recursively) to `to`, which is
/// replaced.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The shared cache for downloads and venvs, outside the clone (`ACCESSATLAS_CACHE`, else
/// `~/.cache/accessatlas`), as `cargo xtask` uses it.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ACCESSATLAS_CACHE") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(|| ".".into());
    home.join(".cache").join("accessatlas")
}

/// A tool from PyPI (`requirement`, pinned: `name==version`) in a venv of its own under the
/// cache, installed on first use: the path of its executable `exe`. Tests only: never on the
/// product's path.
pub fn pypi_tool(requirement: &str, exe: &str) -> std::path::PathBuf {
    let name = requirement.split("==").next().unwrap();
    let venv = cache_dir().join(format!("venv-{name}"));
    let stamp = venv.join("accessatlas-requirement");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(requirement) {
        let ok = |c: &mut Command| {
            let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert!(o.status.success(), "{c:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        ok(Command::new(venv.join("bin/python")).args(["-m", "pip", "install", "-q", requirement]));
        std::fs::write(&stamp, requirement).unwrap();
    }
    venv.join("bin").join(exe)
}
