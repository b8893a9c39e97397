//! Project automation (`cargo xtask <task>`), in the style of rust-analyzer's xtask: plain
//! Rust, no shell scripts, each task installs what it needs.
//!
//! - `serve`: installs the pinned web tools if missing, builds the app with trunk (release) and
//!   runs `accessatlas serve` on http://127.0.0.1:8080 (extra arguments go to `serve`).
//! - `test`: everything CI runs: installs the wasm32 target, the web tools and Chromium,
//!   fetches the pretrained weights, then fmt check, clippy -D warnings, all tests, the app's
//!   wasm-bindgen tests in headless Chromium, the app end to end in headless Chromium.
//! - `bench [--quick]`: every benchmark, AccessAtlas and the reference alternating in one run;
//!   rewrites `BENCHMARKS.md`. `--quick` runs the AccessAtlas side once (CI smoke test).
//! - `reference`: (by hand) builds a Python venv with PyTorch and the reference
//!   EfficientNet-Lite0, and rewrites the parity fixtures in `tests/fixtures/pretrained/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod web;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match task {
        "test" => test(&root),
        "serve" => web::serve(&root, &args[1..]),
        "reference" => reference(&root),
        "bench" => bench(&root, args.iter().any(|a| a == "--quick")),
        _ => {
            eprintln!("usage: cargo xtask <serve|test|bench [--quick]|reference>");
            eprintln!(
                "  serve      build the web app (trunk, release) and serve it on http://127.0.0.1:8080"
            );
            eprintln!(
                "  bench      benchmarks side by side with the references; rewrites BENCHMARKS.md"
            );
            eprintln!("             (--quick: AccessAtlas side only, tiny sizes, writes nothing)");
            eprintln!("  test       fmt, clippy, all tests, wasm32 build (what CI runs)");
            eprintln!(
                "  reference  regenerate the PyTorch parity fixtures (needs ~3 GB for torch)"
            );
            if task == "help" { Ok(()) } else { bail!("unknown task `{task}`") }
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits in the root").to_path_buf()
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

fn cargo() -> Command {
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
    ensure_wasm_target()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // The app's browser-only modules exist on wasm32 only: lint them there too.
    run(cargo().args([
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
    ]))?;
    // The parity test reads the real pretrained checkpoint: fetch it (cached, SHA-256 pinned).
    let weights_dir = cache_dir().join("pretrained");
    run(cargo()
        .args(["run", "--quiet", "--", "pretrained", "fetch", "--cache-dir"])
        .arg(&weights_dir))?;
    run(cargo()
        .args(["test", "--workspace"])
        .env("ACCESSATLAS_PRETRAINED", weights_dir.join("efficientnet-lite0-57934424.pth")))?;
    // The browser: the app's wasm-bindgen tests, then the built app end to end in Chromium.
    web::browser_tests(_root)?;
    // Keep the benchmarks working (their AccessAtlas side, once, on tiny sizes).
    bench(_root, true)?;
    eprintln!("xtask test: all green");
    Ok(())
}

fn reference(root: &Path) -> Result<()> {
    let venv = cache_dir().join("venv-reference");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(root.join("tests/reference/requirements.txt")))?;
    run(Command::new(&python)
        .arg(root.join("tests/reference/efficientnet_lite0.py"))
        .arg(root.join("tests/fixtures/pretrained")))?;
    eprintln!("fixtures written to tests/fixtures/pretrained/; commit them");
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    eprintln!("$ {}", format!("{cmd:?}").replace('"', ""));
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// JSON lines of a benchmark's stdout, by their `bench` field.
fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}

fn find<'a>(rows: &'a [serde_json::Value], name: &str) -> Result<&'a serde_json::Value> {
    rows.iter().find(|r| r["bench"] == name).with_context(|| format!("benchmark `{name}` missing"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The browser benchmark; builds the app first if `dist/` is missing.
fn browser_bench(root: &Path, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    if !root.join("dist/index.html").is_file() {
        web::build_app(root)?;
    }
    web::ensure_chromium()?;
    Ok(json_lines(&output(
        cargo().args(["bench", "--quiet", "--bench", "browser", "--"]).args(args),
    )?))
}

fn bench(root: &Path, quick: bool) -> Result<()> {
    let repeat = if quick { "1" } else { "7" };
    let rust_once = || -> Result<Vec<serde_json::Value>> {
        Ok(json_lines(&output(cargo().args([
            "bench",
            "--quiet",
            "--bench",
            "data_stage",
            "--",
            "--repeat",
            repeat,
        ]))?))
    };
    let train_rust = |args: &[&str]| -> Result<Vec<serde_json::Value>> {
        Ok(json_lines(&output(
            cargo().args(["bench", "--quiet", "--bench", "train_step", "--"]).args(args),
        )?))
    };
    if quick {
        let rows = rust_once()?;
        find(&rows, "pbf_read")?;
        find(&rows, "render_tiles")?;
        let rows = train_rust(&[
            "--steps",
            "1",
            "--size",
            "64",
            "--batch",
            "2",
            "--encoders",
            "custom_cnn",
        ])?;
        find(&rows, "train_step")?;
        let rows = browser_bench(root, &["--loads", "1", "--predictions", "2"])?;
        find(&rows, "browser_cpu")?;
        eprintln!("bench --quick: data_stage, train_step and browser ok");
        return Ok(());
    }
    // Reference side: pyosmium in a cached venv, pinned.
    let venv = cache_dir().join("venv-bench");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", "osmium==4.3.2"]))?;
    let pbf = root.join("assets/osm/helsinki.osm.pbf");
    let py_once = || -> Result<serde_json::Value> {
        let out = output(
            Command::new(&python)
                .arg(root.join("bench/pbf_read_pyosmium.py"))
                .arg(&pbf)
                .arg(repeat),
        )?;
        json_lines(&out).into_iter().next().context("pyosmium printed nothing")
    };
    // Alternate the two sides, three rounds, and keep each side's median.
    let (mut ours, mut theirs, mut render) = (Vec::new(), Vec::new(), Vec::new());
    let mut osmium_version = String::new();
    let mut elements = (0, 0);
    for _ in 0..3 {
        let rows = rust_once()?;
        let r = find(&rows, "pbf_read")?;
        ours.push(r["seconds"].as_f64().unwrap_or(f64::NAN));
        elements.0 = r["elements"].as_u64().unwrap_or(0);
        render.push(find(&rows, "render_tiles")?["tiles_per_s"].as_f64().unwrap_or(f64::NAN));
        let p = py_once()?;
        theirs.push(p["seconds"].as_f64().unwrap_or(f64::NAN));
        elements.1 = p["elements"].as_u64().unwrap_or(0);
        osmium_version = p["osmium"].as_str().unwrap_or("?").to_string();
    }
    let (ours, theirs, render) = (median(ours), median(theirs), median(render));

    // End to end: `accessatlas collect` on the bundled extract, release build.
    run(cargo().args(["build", "--release", "--quiet", "--bin", "accessatlas"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let exe = target.join("release").join("accessatlas");
    let data = std::env::temp_dir().join(format!("accessatlas-bench-{}", std::process::id()));
    let mut collect_times = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&data);
        let t = std::time::Instant::now();
        output(Command::new(&exe).arg("collect").arg("--data").arg(&data))?;
        collect_times.push(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&data);
    let collect_s = median(collect_times);

    // Training throughput: Burn (flex) vs PyTorch (CPU), same model, batch 16, 224x224,
    // same thread count; each encoder alternates Burn, PyTorch, Burn, PyTorch.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let torch_python = cache_dir().join("venv-reference").join("bin").join("python");
    if !torch_python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(cache_dir().join("venv-reference")))?;
    }
    run(Command::new(&torch_python)
        .args(["-m", "pip", "install", "-q", "-r"])
        .arg(root.join("tests/reference/requirements.txt")))?;
    let mut train_rows = Vec::new();
    let mut torch_version = String::new();
    for enc in ["custom_cnn", "efficientnet_lite0", "resnet18"] {
        let (mut b, mut t) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let r = train_rust(&["--steps", "3", "--encoders", enc])?;
            b.push(find(&r, "train_step")?["images_per_s"].as_f64().unwrap_or(f64::NAN));
            let out = output(
                Command::new(&torch_python)
                    .arg(root.join("bench/train_step_torch.py"))
                    .args(["3", "224", "16", &threads, enc]),
            )?;
            let p = json_lines(&out).into_iter().next().context("torch printed nothing")?;
            torch_version = p["torch"].as_str().unwrap_or("?").to_string();
            t.push(p["images_per_s"].as_f64().unwrap_or(f64::NAN));
        }
        let (b, t) = (median(b), median(t));
        train_rows.push(format!("| {enc} | {b:.2} img/s | {t:.2} img/s | {:.2}x |", b / t));
    }

    // The app in headless Chromium (CPU backend): load to model-ready, prediction latency.
    let rows = browser_bench(root, &["--loads", "4", "--predictions", "40"])?;
    let b = find(&rows, "browser_cpu")?.clone();
    let num = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    let browser_table = format!(
        "| page load to model-ready, first load (fresh profile) | {:.0} ms |\n\
| page load to model-ready, reload (warm HTTP cache) | {:.0} ms |\n\
| prediction latency p50 / p95 (click to answer, tiles + model + messaging) | {:.0} / {:.0} ms |\n\
| model forward pass p50 / p95 (in the worker) | {:.0} / {:.0} ms |",
        num("cold_ready_ms"),
        num("warm_ready_ms"),
        num("latency_p50_ms"),
        num("latency_p95_ms"),
        num("model_p50_ms"),
        num("model_p95_ms"),
    );
    let browser_version = b["browser"].as_str().unwrap_or("?").to_string();

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let rustc = output(Command::new("rustc").arg("--version")).unwrap_or_default();
    let md = format!(
        "# Benchmarks\n\n\
Written by `cargo xtask bench` (do not edit by hand). Each comparison runs both sides in the same\n\
run, alternating, on the same input; figures are medians. Machine: {cpu}, {cores} cores.\n\
{rustc_line}; pyosmium {osmium_version}.\n\n\
## Data stage\n\n\
| benchmark | AccessAtlas | reference | ratio (reference time / ours) |\n\
|---|---|---|---|\n\
| read `assets/osm/helsinki.osm.pbf` ({kb} KB; nodes, ways, multipolygons kept in memory) | {ours_ms:.1} ms ({e0} elements) | pyosmium {theirs_ms:.1} ms ({e1} elements) | {ratio:.2}x |\n\
| render 64 map tiles (256x256, zoom 19, offline renderer) | {render:.0} tiles/s | (no reference: our own renderer) | |\n\
| `accessatlas collect` end to end on the bundled extract (release build) | {collect_s:.1} s | | |\n\n\
A ratio above 1 means AccessAtlas is faster. Reading keeps what the renderer needs on both\n\
sides; pyosmium builds Python dicts and lists, which is part of the reference cost.\n\n\
## Native training throughput\n\n\
Full train step of the whole two-branch model (forward, backward, gradient clipping, AdamW),\n\
batch 16, 224x224, {threads} threads, CPU. Burn 0.22.1 `flex` vs PyTorch {torch_version}.\n\n\
| encoder | AccessAtlas (Burn flex) | PyTorch | ratio (ours / PyTorch) |\n\
|---|---|---|---|\n\
{train_table}\n\n\
A ratio below 1 means AccessAtlas trains slower than PyTorch on this machine.\n\n\
## In the browser\n\n\
The built app (`trunk build --release`) in headless {browser_version}, CPU backend (Burn `flex`,\n\
wasm SIMD128, one thread, in a Web Worker), the shipped EfficientNet-Lite0 bundle, map tiles from\n\
a local server. The reference (ONNX Runtime Web on the same model) needs the ONNX export, which\n\
does not exist yet: this section has no ratio until it does.\n\n\
| measure | AccessAtlas |\n\
|---|---|\n\
{browser_table}\n",
        train_table = train_rows.join("\n"),
        rustc_line = rustc.trim(),
        kb = std::fs::metadata(&pbf).map(|m| m.len() / 1024).unwrap_or(0),
        ours_ms = ours * 1e3,
        theirs_ms = theirs * 1e3,
        e0 = elements.0,
        e1 = elements.1,
        ratio = theirs / ours,
    );
    std::fs::write(root.join("BENCHMARKS.md"), md)?;
    eprintln!("BENCHMARKS.md written");
    Ok(())
}
