//! The browser side: installs the pinned web tools into the shared cache (never downloaded by
//! trunk itself), builds the app with trunk, runs the browser tests.
//!
//! Pinned: `wasm-bindgen-cli` = the `wasm-bindgen` in Cargo.lock, `trunk` 0.21.14 (0.22 needs
//! a newer rustc), `wasm-opt` from npm `binaryen` 132.0.0 (Debian's 108 breaks these
//! modules). Chromium and chromedriver come from Debian (`apt-get`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

use crate::{cache_dir, cargo, ensure_wasm_target, run};

pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
pub const TRUNK_VERSION: &str = "0.21.14";
/// npm `binaryen`, whose `wasm-opt` trunk runs on the built modules (`Trunk.toml` names the
/// same version). Debian's binaryen 108 writes modules that fail to load: never that one.
pub const BINARYEN_VERSION: &str = "132.0.0";
/// The cargo profile of every wasm build (see the workspace Cargo.toml).
pub const WASM_PROFILE: &str = "wasm-release";

/// Where the web tools are installed (`cargo install --root`).
pub fn tools_root() -> PathBuf {
    cache_dir().join("tools")
}

/// `PATH` with the web tools first.
pub fn tools_path() -> OsString {
    let mut paths = vec![tools_root().join("bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).expect("PATH entries are valid")
}

fn installed_version(bin: &str) -> Option<String> {
    let out = Command::new(tools_root().join("bin").join(bin)).arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cargo_install(krate: &str, version: &str, locked: bool) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["install", krate, "--version", version, "--root"])
        .arg(tools_root())
        .arg("--target-dir")
        .arg(cache_dir().join("install-target"))
        .env_remove("CARGO_TARGET_DIR")
        // A build tool needs no fat LTO on one codegen unit (trunk's own release profile):
        // on 2 cores that alone kept one rustc busy for 8+ minutes while the other core idled.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16");
    if locked {
        cmd.arg("--locked");
    }
    run(&mut cmd)
}

/// Installs the wasm32 target, wasm-bindgen-cli and trunk at their pinned versions (once; they
/// are cached outside the clone).
pub fn ensure_tools() -> Result<()> {
    // Once per process: `cargo xtask test` needs them for the wasm tests and the app's build.
    static READY: AtomicBool = AtomicBool::new(false);
    if READY.load(Ordering::Relaxed) {
        return Ok(());
    }
    ensure_wasm_target()?;
    if !installed_version("wasm-bindgen").is_some_and(|v| v.ends_with(WASM_BINDGEN_VERSION)) {
        // Not --locked: its lock pins a crate version the registry mirror lacks.
        crate::steps::time("installing wasm-bindgen-cli", || {
            cargo_install("wasm-bindgen-cli", WASM_BINDGEN_VERSION, false)
        })?;
    }
    if !installed_version("trunk").is_some_and(|v| v.ends_with(TRUNK_VERSION)) {
        crate::steps::time("installing trunk", || cargo_install("trunk", TRUNK_VERSION, true))?;
    }
    // The installs' build folder (1.3 GB) is of no use once the binaries are in place.
    let _ = std::fs::remove_dir_all(cache_dir().join("install-target"));
    crate::steps::time("wasm-opt (npm binaryen)", ensure_wasm_opt)?;
    READY.store(true, Ordering::Relaxed);
    Ok(())
}

/// `wasm-opt` from npm `binaryen` (a Node script around binaryen built to wasm), linked into
/// the tools' `bin/` where trunk finds it. Node and npm come from Debian when missing.
fn ensure_wasm_opt() -> Result<()> {
    let want = format!("version_{}", BINARYEN_VERSION.split('.').next().unwrap_or_default());
    if installed_version("wasm-opt").is_some_and(|v| v.contains(&want)) {
        return Ok(());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        crate::apt_install(&["nodejs", "npm"])?;
    }
    let npm_dir = tools_root().join("npm");
    std::fs::create_dir_all(&npm_dir)?;
    run(Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&npm_dir)
        .arg(format!("binaryen@{BINARYEN_VERSION}")))?;
    let bin = tools_root().join("bin");
    std::fs::create_dir_all(&bin)?;
    let link = bin.join("wasm-opt");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(npm_dir.join("node_modules/binaryen/bin/wasm-opt"), &link)?;
    match installed_version("wasm-opt") {
        Some(v) if v.contains(&want) => Ok(()),
        other => bail!("wasm-opt from npm binaryen@{BINARYEN_VERSION} reports {other:?}"),
    }
}

/// Chromium and chromedriver from Debian, installed when missing.
pub fn ensure_chromium() -> Result<()> {
    if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() {
        return Ok(());
    }
    crate::apt_install(&["chromium", "chromium-driver"])
}

/// `trunk build --release` into `dist/` (the app and its model worker).
pub fn build_app(root: &Path) -> Result<PathBuf> {
    ensure_tools()?;
    // Trunk.toml sets `offline = true`, so cargo runs `--offline` under trunk: every crate of
    // the lockfile (the worker's wasm-only `webgpu` ones too) must be in the cache first.
    crate::steps::time("every crate of Cargo.lock", || crate::crates::ensure_crates(root, None))?;
    // Trunk uses the tools on PATH and downloads nothing.
    crate::steps::time("the app (trunk build --release: wasm and wasm-opt)", || {
        run(Command::new(tools_root().join("bin").join("trunk"))
            .current_dir(root)
            .env("PATH", tools_path())
            .args(["build", "--release"]))
    })?;
    let dist = root.join("dist");
    if !dist.join("index.html").is_file() {
        bail!("trunk produced no {}", dist.join("index.html").display());
    }
    Ok(dist)
}

/// `cargo xtask serve`: builds the app in release and serves it with `accessatlas serve`.
pub fn serve(root: &Path, extra: &[String]) -> Result<()> {
    build_app(root)?;
    crate::steps::time("the server (cargo build --release)", || {
        run(cargo().current_dir(root).args(["build", "--release", "--bin", "accessatlas"]))
    })?;
    eprint!("{}", crate::steps::summary());
    run(cargo().current_dir(root).args(["run", "--release", "--quiet", "--", "serve"]).args(extra))
}

/// The app's wasm-bindgen tests in headless Chromium, then the end-to-end tests.
pub fn browser_tests(root: &Path) -> Result<()> {
    ensure_chromium()?;
    ensure_tools()?;
    crate::steps::time("the app's wasm tests in Chromium", || {
        run(cargo()
            .current_dir(root)
            .env("PATH", tools_path())
            .env(
                "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
                tools_root().join("bin/wasm-bindgen-test-runner"),
            )
            .env("CHROMEDRIVER", "/usr/bin/chromedriver")
            .env("WASM_BINDGEN_TEST_TIMEOUT", "300")
            .args([
                "test",
                "-p",
                "app",
                "--target",
                "wasm32-unknown-unknown",
                "--profile",
                WASM_PROFILE,
                "--test",
                "web",
            ]))
    })?;
    let dist = build_app(root)?;
    crate::steps::time("browser end to end", || {
        run(cargo().current_dir(root).env("ACCESSATLAS_DIST", &dist).args([
            "test",
            "--test",
            "e2e",
            "--",
            "--ignored",
            "--test-threads=1",
            // By hand only (`cargo xtask reference page-adapt`): they need a model trained for them.
            "--skip",
            "reference_",
        ]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both wasm modules go through wasm-opt, the one `Trunk.toml` pins and xtask installs.
    #[test]
    fn the_trunk_build_optimizes_both_modules_with_the_pinned_wasm_opt() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let trunk = std::fs::read_to_string(root.join("Trunk.toml")).unwrap();
        let major = BINARYEN_VERSION.split('.').next().unwrap();
        assert!(trunk.contains(&format!("wasm_opt = \"version_{major}\"")), "{trunk}");
        let html = std::fs::read_to_string(root.join("index.html")).unwrap();
        let rust_links: Vec<&str> = html.lines().filter(|l| l.contains("rel=\"rust\"")).collect();
        assert_eq!(rust_links.len(), 2, "the app and the model worker");
        for l in rust_links {
            assert!(l.contains("data-wasm-opt=") && !l.contains("data-wasm-opt=\"0\""), "{l}");
            assert!(l.contains("--enable-simd"), "the modules use SIMD128: {l}");
        }
    }
}
