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

/// Where every wasm32 build goes (the wasm tests, the wasm clippy, trunk's builds): a target
/// directory of its own, beside the native one, so that a native build can run at the same
/// time (cargo locks a whole target directory while it builds). The two share nothing anyway:
/// even their build scripts and proc-macros are built under other profiles.
pub fn wasm_target_dir() -> PathBuf {
    crate::target_dir(&crate::project_root()).join("wasm")
}

/// `cargo` for a wasm32 build, in [`wasm_target_dir`].
pub fn wasm_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("CARGO_TARGET_DIR", wasm_target_dir());
    cmd
}

/// Installs `krate` into a root of its own (two installs run at once; each root's binaries
/// are then linked into the tools' `bin/`).
fn cargo_install(krate: &str, version: &str, locked: bool) -> Result<()> {
    let root = tools_root().join("roots").join(krate);
    let target = cache_dir().join(format!("install-target-{krate}"));
    let mut cmd = cargo();
    cmd.args(["install", krate, "--version", version, "--root"])
        .arg(&root)
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        // A build tool needs no fat LTO on one codegen unit (trunk's own release profile):
        // on 2 cores that alone kept one rustc busy for 8+ minutes while the other core idled.
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16");
    if locked {
        cmd.arg("--locked");
    }
    run(&mut cmd)?;
    // Its build folder (about 0.7 GB) is of no use once the binaries are in place.
    let _ = std::fs::remove_dir_all(&target);
    let bin = tools_root().join("bin");
    std::fs::create_dir_all(&bin)?;
    for e in std::fs::read_dir(root.join("bin"))? {
        let e = e?;
        let link = bin.join(e.file_name());
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(e.path(), &link)?;
    }
    Ok(())
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
    let bindgen =
        !installed_version("wasm-bindgen").is_some_and(|v| v.ends_with(WASM_BINDGEN_VERSION));
    let trunk = !installed_version("trunk").is_some_and(|v| v.ends_with(TRUNK_VERSION));
    // The two installs at once (on 2 cores each leaves a core idle at times), npm beside them.
    std::thread::scope(|s| -> Result<()> {
        let bindgen = bindgen.then(|| {
            s.spawn(|| {
                // Not --locked: its lock pins a crate version the registry mirror lacks.
                crate::steps::time("installing wasm-bindgen-cli", || {
                    cargo_install("wasm-bindgen-cli", WASM_BINDGEN_VERSION, false)
                })
            })
        });
        let trunk = trunk.then(|| {
            s.spawn(|| {
                crate::steps::time("installing trunk", || {
                    cargo_install("trunk", TRUNK_VERSION, true)
                })
            })
        });
        let wasm_opt = crate::steps::time("wasm-opt (npm binaryen)", ensure_wasm_opt);
        for h in [bindgen, trunk].into_iter().flatten() {
            h.join().map_err(|_| anyhow::anyhow!("a web tool's install panicked"))??;
        }
        wasm_opt
    })?;
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
            .env("CARGO_TARGET_DIR", wasm_target_dir())
            .args(["build", "--release"]))
    })?;
    let dist = root.join("dist");
    if !dist.join("index.html").is_file() {
        bail!("trunk produced no {}", dist.join("index.html").display());
    }
    Ok(dist)
}

/// What the built app is made from: its build is stale when any of these is newer.
const APP_SOURCES: [&str; 9] = [
    "app",
    "model-core",
    "index.html",
    "Trunk.toml",
    "Cargo.lock",
    "Cargo.toml",
    "assets/app.css",
    "assets/pwa",
    "assets/vendor",
];

/// `dist/`, built again first when it is missing or older than a source of the app, so a
/// measurement never runs on a build of other code.
pub fn current_app(root: &Path) -> Result<PathBuf> {
    let built = std::fs::metadata(root.join("dist/index.html")).and_then(|m| m.modified()).ok();
    let newest = APP_SOURCES.iter().filter_map(|p| newest_change(&root.join(p))).max();
    match (built, newest) {
        (Some(b), Some(n)) if b >= n => Ok(root.join("dist")),
        _ => build_app(root),
    }
}

/// The latest modification time of `path` or anything under it (`target` folders skipped).
fn newest_change(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let inner = std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter(|e| e.file_name() != "target")
        .filter_map(|e| newest_change(&e.path()))
        .max();
    own.max(inner)
}

/// `cargo xtask serve`: builds the app in release and serves it with `accessatlas serve`.
pub fn serve(root: &Path, extra: &[String]) -> Result<()> {
    // The server's build beside the web tools and the app's (they use other target dirs).
    let server = crate::steps::Beside::start(
        "the server (cargo build --release)",
        cargo().current_dir(root).args(["build", "--release", "--bin", "accessatlas"]),
        cache_dir().join("logs/server-build.log"),
    )?;
    build_app(root)?;
    server.wait()?;
    eprint!("{}", crate::steps::summary());
    run(cargo().current_dir(root).args(["run", "--release", "--quiet", "--", "serve"]).args(extra))
}

/// The app's wasm-bindgen tests in headless Chromium, then the end-to-end tests.
pub fn browser_tests(root: &Path) -> Result<()> {
    ensure_chromium()?;
    ensure_tools()?;
    crate::steps::time("the app's wasm tests in Chromium", || {
        run(wasm_cargo()
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

    /// A build older than any file of the app's sources is stale, however deep the file.
    #[test]
    fn newest_change_sees_a_file_deep_in_a_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let deep = dir.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(dir.join("top.rs"), "").unwrap();
        let before = newest_change(dir).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(deep.join("new.rs"), "").unwrap();
        let after = newest_change(dir).unwrap();
        assert!(after > before, "{after:?} should be after {before:?}");
        assert_eq!(after, std::fs::metadata(deep.join("new.rs")).unwrap().modified().unwrap());
    }

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
