//! Every crate in `Cargo.lock` in cargo's cache before an offline build.
//!
//! `trunk` (configured `offline = true`) passes `--offline` to cargo. A native build downloads
//! only the crates the native target and its features need, so on a machine that has never
//! built the project the worker's `webgpu` dependencies (e.g. `cubek-fft`) are missing and the
//! offline wasm build fails. So every task that ends in an offline build first runs
//! `cargo fetch --locked` (no `--target`: every target's crates), then checks the guard below.
//!
//! The guard: `cargo metadata --offline --locked --all-features` resolves the whole workspace
//! (every member, target and feature, the wasm worker's `webgpu` included) from the cache
//! alone, so it fails, naming a crate, whenever one the offline builds could need is missing.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::{cargo, run};

/// Whether this process has already fetched into the default `CARGO_HOME` (a task that ends
/// in several offline builds fetches once).
static FETCHED: AtomicBool = AtomicBool::new(false);

/// `cargo fetch --locked`, then the offline guard; `cargo_home` overrides `CARGO_HOME` (tests).
pub fn ensure_crates(root: &Path, cargo_home: Option<&Path>) -> Result<()> {
    if cargo_home.is_none() && FETCHED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut fetch = cargo();
    fetch.current_dir(root).args(["fetch", "--locked"]);
    if let Some(home) = cargo_home {
        fetch.env("CARGO_HOME", home);
    }
    run(&mut fetch)?;
    offline_ready(root, cargo_home)?;
    if cargo_home.is_none() {
        FETCHED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// The guard: the whole workspace resolves offline. The error names what is missing.
pub fn offline_ready(root: &Path, cargo_home: Option<&Path>) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["metadata", "--offline", "--locked", "--all-features", "--format-version", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(home) = cargo_home {
        cmd.env("CARGO_HOME", home);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "a crate that the offline builds need is not in cargo's cache (run `cargo fetch \
             --locked`):\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The cargo home this process uses (`CARGO_HOME`, else `~/.cargo`).
#[cfg(test)]
fn cargo_home() -> std::path::PathBuf {
    std::env::var_os("CARGO_HOME").map(Into::into).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo")
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// The crate the first fresh-machine failure named: a `webgpu`-only dependency of the worker.
    const WORKER_ONLY: &str = "cubek-fft";

    fn is_worker_only(name: &std::ffi::OsStr) -> bool {
        name.to_string_lossy().starts_with(&format!("{WORKER_ONLY}-"))
    }

    /// A new cargo home holding this machine's registry cache except `cubek-fft`: the state a
    /// native-only build leaves. The index is copied; crates and their sources are symlinked.
    fn home_without_worker_crate(dir: &Path) -> PathBuf {
        let real = cargo_home().join("registry");
        let home = dir.join("cargo-home");
        for sub in ["cache", "src"] {
            for reg in std::fs::read_dir(real.join(sub)).unwrap() {
                let reg = reg.unwrap().path();
                let to = home.join("registry").join(sub).join(reg.file_name().unwrap());
                std::fs::create_dir_all(&to).unwrap();
                for entry in std::fs::read_dir(&reg).unwrap() {
                    let entry = entry.unwrap();
                    if !is_worker_only(&entry.file_name()) {
                        std::os::unix::fs::symlink(entry.path(), to.join(entry.file_name()))
                            .unwrap();
                    }
                }
            }
        }
        copy_dir(&real.join("index"), &home.join("registry/index"));
        home
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// The fresh-machine fault of issue #15: a cache that a native build filled lacks the
    /// worker's crates. The guard catches it (naming the crate) and the fetch step repairs it.
    #[test]
    fn fetch_step_fills_what_a_native_build_left_out_and_the_guard_sees_it() {
        let root = crate::project_root();
        // This machine's cache must hold every crate first (as `cargo xtask test` makes sure).
        ensure_crates(&root, None).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let home = home_without_worker_crate(tmp.path());

        let err = offline_ready(&root, Some(&home)).expect_err("the guard sees a missing crate");
        assert!(err.to_string().contains(WORKER_ONLY), "the error names the crate: {err:#}");

        ensure_crates(&root, Some(&home)).unwrap();
        offline_ready(&root, Some(&home)).unwrap();
        let fetched = std::fs::read_dir(home.join("registry/cache"))
            .unwrap()
            .flat_map(|reg| std::fs::read_dir(reg.unwrap().path()).unwrap())
            .any(|e| is_worker_only(&e.unwrap().file_name()));
        assert!(fetched, "the fetch step downloaded {WORKER_ONLY}");
    }
}
