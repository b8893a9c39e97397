//! Project automation (`cargo xtask <task>`), in the style of rust-analyzer's xtask: plain
//! Rust, no shell scripts, each task installs what it needs from nothing (an empty cargo
//! home, an empty cache): every task that ends in an offline build fetches the whole lockfile
//! first (`crates.rs`).
//!
//! - `serve`: installs the pinned web tools if missing, builds the app with trunk (release) and
//!   runs `accessatlas serve` on http://127.0.0.1:8080 (extra arguments go to `serve`).
//! - `test`: everything CI runs: installs the wasm32 target, the web tools, Chromium, JOSM and
//!   osmium-tool, fetches the pretrained weights, then fmt check, clippy -D warnings, all tests, the app's
//!   wasm-bindgen tests in headless Chromium, the app end to end in headless Chromium.
//! - `bench [--quick] [SECTION...]`: every benchmark, AccessAtlas and the reference alternating
//!   in one run; rewrites `BENCHMARKS.md` (only the named sections, if any). `--quick` runs the
//!   AccessAtlas side once (CI smoke test). See `bench.rs`.
//! - `soak [--minutes N]`: `accessatlas serve` under a mix of requests from several clients for
//!   N minutes (default 10), then a flood of new tiles; writes `BENCHMARKS.md`'s "Soak"
//!   section and fails when a criterion fails (`bench.rs`, `soak_section`).
//! - `first-run [--test] [--port P] [--limit-min M]`: `serve` as a new user meets it (a clean
//!   clone, an empty cargo home and tool cache, new target dirs), timed to the server's first
//!   answer; writes `BENCHMARKS.md`'s "First run" section with each step's time
//!   (`first_run.rs`). With `--test`: `test` the same way, to its end ("Tests from nothing").
//! - `synth --copies N --out FILE.osm.pbf`: the bundled extract copied N times side by side
//!   with fresh ids (the scale benchmark's input; `scale.rs`).
//! - `gpu`: the wgpu backend against the CPU (`tests/gpu.rs`, release build with
//!   `--features wgpu`) on the machine's GPU, or on Mesa's lavapipe (software Vulkan, installed
//!   from Debian if no Vulkan driver is present). Not part of `test`: see `gpu.rs`.
//! - `reference [parity]`: (by hand) builds a Python venv with PyTorch and the reference
//!   EfficientNet-Lite0, and rewrites the parity fixtures in `tests/fixtures/pretrained/`.
//! - `reference encoders [ENCODER...]`: (by hand) each encoder trained with the pipeline's
//!   recipe on the bundled data: parameters, training images/s, inference ms, test accuracy
//!   and macro-F1, into `tests/fixtures/reference/encoders.json` (`docs/training.md`'s table).
//! - `reference train`: (by hand) the PyTorch mirror trained with the same recipe on the same
//!   split as `cargo run --release`, into `tests/fixtures/reference/train_torch.json`.
//! - `reference regions`: (by hand) the recipe trained on all bundled regions and with each
//!   left out, measured on each region (`regions.rs`), into
//!   `tests/fixtures/reference/regions.json` (with the suggestions' lift); then, as
//!   `reference adapt` does alone on the runs it left, each model trained without a region
//!   adapted to it with at most 200 of its rows. `--reuse-runs` measures the runs it left
//!   again without training. A call stopped part way goes on where it stopped (its data and
//!   finished runs kept, a run stopped mid-training resumed) while the extracts are the same;
//!   the work folder is `$TMPDIR/accessatlas-reference-regions`.
//! - `reference page-adapt`: (by hand) the page's "learn this area" on its bundled view in
//!   headless Chromium, started from the model trained without that view's region (trained if
//!   `reference regions` left none), from the shipped model and from a model trained on every
//!   region but the measured views' places (the in-region figure on places it never saw);
//!   into the same fixture. `--epochs 5,10,20` also learns it with each of those epoch counts
//!   (`page_adapted.sweep`); `--keep-left-out` keeps the fixture's left-out figures;
//!   `--trial NAME --last-stage` learns with the encoder's last stage too (`page_trials`).
//! - `reference buffered [--buffer-m 100]`: (by hand) the in-region recipe trained on nothing
//!   within 100 m of a test place, beside the left-out models on the same test cells.
//! - `reference folds [K…] [--adapt R [--trial NAME --sample per-type]]`: (by hand) the
//!   in-region recipe trained 5 times, each fold of every region's map cells its test split
//!   once, the folds' predictions pooled: the in-region figure on every row, not on one test
//!   split; `--adapt R` adapts R's left-out model to each fold instead, the change and the gap
//!   paired over all of R's cells; a trial draws its rows by another rule (`--sample per-type`:
//!   the page's caps) and is kept apart (`folds.adapt_trials`).
//! - `reference page-views [--again]`: (by hand) the same on up to two further views of each region,
//!   chosen where its features are densest (`page_views`): the page's figure over many views.
//! - `reference seeds R… [--seeds 1,2]`: (by hand) the recipe trained without each region `R`
//!   with other seeds, each measured on all of `R`: the spread of one left-out figure.
//! - `reference left-out [R…]`: (by hand) each region left out again (trained unless the work
//!   folder holds the run), its suggestions with the other regions' candidate prior and
//!   threshold, as `reference regions` now measures them (`left_out_pooled`);
//!   `--trial NAME [--in-region] [R…] -- ARGS` trains the recipe with `train ARGS` instead
//!   (`left_out_trials`; `--in-region`: on every region too, each measured on its test cells).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod architecture;
mod bench;
mod crates;
mod cycles;
mod docs;
mod encoders;
mod first_run;
mod gpu;
mod regions;
mod scale;
mod steps;
mod wasm_opt;
mod web;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match task {
        "test" => test(&root),
        "serve" => web::serve(&root, &args[1..]),
        "reference" => match args.get(1).map(String::as_str) {
            None | Some("parity") => reference(&root),
            Some("train") => reference_train(&root),
            Some("encoders") => encoders::run(&root, &args[2..]),
            Some("regions") => regions::run(&root, args.iter().any(|a| a == "--reuse-runs")),
            Some("adapt") => regions::adapt(&root, &regions::AdaptTrial::parse(&args[2..])?),
            Some("page-adapt") => regions::page_adapt(&root, &args[2..]),
            Some("page-views") => regions::page_views::run(&root, &args[2..]),
            Some("buffered") => regions::buffered::run(&root, &args[2..]),
            Some("folds") => regions::folds::run(&root, &args[2..]),
            Some("seeds") => regions::seeds(&root, &args[2..]),
            Some("left-out") => regions::left_out_pooled(&root, &args[2..]),
            Some(other) => {
                anyhow::bail!(
                    "unknown reference task `{other}` (parity, train, encoders, regions, adapt, page-adapt, page-views, buffered, folds, seeds or left-out)"
                )
            }
        },
        "bench" => bench::bench(&root, &args[1..]),
        "soak" => bench::soak(&root, &args[1..]),
        "first-run" => first_run::first_run(&root, &args[1..]),
        "gpu" => gpu::gpu(&root),
        "synth" => scale::synth_task(&root, &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <serve|test|gpu|bench [--quick] [SECTION...]|reference [parity|train|encoders|regions|adapt]>"
            );
            eprintln!(
                "  serve      build the web app (trunk, release) and serve it on http://127.0.0.1:8080"
            );
            eprintln!(
                "  bench      benchmarks side by side with the references; rewrites BENCHMARKS.md"
            );
            eprintln!(
                "             (SECTION: some of {}; --quick: AccessAtlas side only, tiny sizes, writes nothing)",
                bench::SECTIONS.join(", ")
            );
            eprintln!("  test       fmt, clippy, all tests, wasm32 build (what CI runs)");
            eprintln!(
                "  first-run  `serve` from nothing (clean clone, empty cargo home and tool cache), timed"
            );
            eprintln!("  soak       [--minutes N]: serve under a mix of clients, RSS and latency");
            eprintln!(
                "  synth      --copies N --out FILE.osm.pbf: the bundled extract copied N times (scale bench)"
            );
            eprintln!(
                "  gpu        the wgpu backend against the CPU (a GPU, else Mesa's software Vulkan)"
            );
            eprintln!(
                "  reference  regenerate the PyTorch parity fixtures (needs ~3 GB for torch);"
            );
            eprintln!(
                "             `reference train`: PyTorch trained with our recipe on our split"
            );
            eprintln!(
                "             `reference regions`: trained on all regions and with each left out"
            );
            eprintln!(
                "             `reference adapt [--trial NAME [--region R] [--rehearse N] [--rows N] [--sample per-type] [-- TRAIN ARGS]]`: each left-out model adapted with 200 of its region's rows (a trial: another recipe, kept apart)"
            );
            eprintln!(
                "             `reference page-adapt [--epochs 5,10] [--region R] [--keep-left-out] [--trial NAME --last-stage]`: the page's \"learn this area\" with a model that never saw the view's region, against one that saw the region but not the view (R: a view of another bundled region)"
            );
            eprintln!(
                "             `reference buffered [--buffer-m 100]`: in-region with nothing near the test places, beside left out"
            );
            eprintln!(
                "             `reference folds [K...] [--adapt R [--trial NAME --sample per-type]]`: in-region on every row, five folds of the map cells each tested once (R's left-out model adapted to each fold; a trial's rows drawn by the page's caps)"
            );
            eprintln!(
                "             `reference page-views [--again]`: the same on each region's further views, against a model that never saw them"
            );
            eprintln!(
                "             `reference seeds R... [--seeds 1,2]`: the recipe trained without R with other seeds"
            );
            eprintln!(
                "             `reference left-out [--trial NAME [--in-region]] [R...] [-- ARGS]`: each region left out again, its suggestions by the other regions' rule (a trial: the recipe trained with `train ARGS`, and with every region)"
            );
            if task == "help" { Ok(()) } else { bail!("unknown task `{task}`") }
        }
    }
}

/// The checkout this xtask runs for: `cargo run` names the manifest at run time; the path
/// baked in at build time is only the fallback (a target folder shared by two checkouts may
/// hold a binary built in the other one).
fn project_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    dir.parent().expect("xtask sits in the root").to_path_buf()
}

/// The shared cache for downloads and venvs (outside the clone, reused by CI).
fn cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("ACCESSATLAS_CACHE") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("accessatlas")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup").args(["target", "list", "--installed"]).output();
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown") => Ok(()),
        _ => run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"])),
    }
}

fn test(_root: &Path) -> Result<()> {
    steps::time("the wasm32 target", ensure_wasm_target)?;
    // Every crate of every target first: the trunk builds below run offline.
    steps::time("every crate of Cargo.lock", || crates::ensure_crates(_root, None))?;
    // The web tools (trunk, wasm-bindgen-cli: minutes of building on a first run) install
    // beside the native steps, which leave a core idle at times (links, single crates); the
    // browser tests wait for them.
    let tools = std::thread::spawn(web::ensure_tools);
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    steps::time("clippy, native", || {
        run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
    })?;
    // The app's browser-only modules exist on wasm32 only: lint them there too.
    steps::time("clippy, wasm32", || {
        run(web::wasm_cargo().args([
            "clippy",
            "-p",
            "app",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            web::WASM_PROFILE,
            "--all-targets",
            "--features",
            "webgpu",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    // `tests/osm_export.rs` reads the exports back with real OSM clients from Debian.
    steps::time("OSM clients from Debian", ensure_osm_clients)?;
    // The parity test reads the real pretrained checkpoint: fetch it (cached, SHA-256 pinned).
    let weights_dir = cache_dir().join("pretrained");
    steps::time("pretrained weights", || {
        run(cargo()
            .args(["run", "--quiet", "--", "pretrained", "fetch", "--cache-dir"])
            .arg(&weights_dir))
    })?;
    steps::time("native tests", || {
        run(cargo()
            .args(["test", "--workspace"])
            .env("ACCESSATLAS_PRETRAINED", weights_dir.join("efficientnet-lite0-57934424.pth")))
    })?;
    tools.join().map_err(|_| anyhow::anyhow!("installing the web tools panicked"))??;
    // The browser: the app's wasm-bindgen tests, then the built app end to end in Chromium.
    web::browser_tests(_root)?;
    // Keep the benchmarks working (their AccessAtlas side, once, on tiny sizes).
    steps::time("benchmarks, quick", || bench::bench(_root, &["--quick".to_string()]))?;
    eprint!("{}", steps::summary());
    eprintln!("xtask test: all green");
    Ok(())
}

/// JOSM (its headless validator) and osmium-tool, installed from Debian when missing.
fn ensure_osm_clients() -> Result<()> {
    if Path::new("/usr/bin/josm").exists() && Path::new("/usr/bin/osmium").exists() {
        return Ok(());
    }
    apt_install(&["josm", "osmium-tool"])
}

fn reference(root: &Path) -> Result<()> {
    let requirements = root.join("tests/reference/requirements.txt");
    let python = venv("venv-reference", &["-r", &requirements.to_string_lossy()])?;
    run(Command::new(&python)
        .arg(root.join("tests/reference/efficientnet_lite0.py"))
        .arg(root.join("tests/fixtures/pretrained")))?;
    eprintln!("fixtures written to tests/fixtures/pretrained/; commit them");
    Ok(())
}

/// `reference train`: the PyTorch mirror trained with the same recipe on the same preprocessed
/// split as `cargo run --release` (collect + preprocess on the bundled extracts, same seeds),
/// written to `tests/fixtures/reference/train_torch.json` for `docs/training.md` and BENCHMARKS.md.
fn reference_train(root: &Path) -> Result<()> {
    let requirements = root.join("tests/reference/requirements.txt");
    let python = venv("venv-reference", &["-r", &requirements.to_string_lossy()])?;
    let exe = accessatlas_exe(root)?;
    let data = std::env::temp_dir().join("accessatlas-reference-train").join("data");
    let _ = std::fs::remove_dir_all(&data);
    // The pipeline's data: every bundled extract (`accessatlas::osm::BUNDLED_EXTRACTS`).
    regions::collect_all(root, &exe, &data)?;
    run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
    let out = root.join("tests/fixtures/reference/train_torch.json");
    std::fs::create_dir_all(out.parent().expect("a folder"))?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    run(Command::new(&python)
        .arg(root.join("benches/reference/train_reference_torch.py"))
        .arg(&data)
        .arg(&out)
        .arg(threads.to_string()))?;
    eprintln!("{} written; commit it", out.display());
    Ok(())
}

/// `apt-get install` of Debian packages (an `apt-get update` first if the lists are stale).
fn apt_install(packages: &[&str]) -> Result<()> {
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).args(packages).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["install", "-y", "-q"])
        .or_else(|_| {
            run(Command::new("apt-get").args(["update", "-q"]))
                .and_then(|()| apt(&["install", "-y", "-q"]))
        })
        .with_context(|| {
            format!("installing Debian's {} (needs root and apt)", packages.join(", "))
        })
}

fn output(cmd: &mut Command) -> Result<String> {
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A Python venv in the cache with `requirements` installed; its `python`.
pub fn venv(name: &str, requirements: &[&str]) -> Result<PathBuf> {
    let venv = cache_dir().join(name);
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q"]).args(requirements))?;
    Ok(python)
}

/// The release `accessatlas` binary (built if needed).
pub fn accessatlas_exe(root: &Path) -> Result<PathBuf> {
    run(cargo().args(["build", "--release", "--quiet", "--bin", "accessatlas"]))?;
    Ok(target_dir(root).join("release").join("accessatlas"))
}

/// Cargo's target dir: `CARGO_TARGET_DIR`, else `target/` in the repository.
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}
