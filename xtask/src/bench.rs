//! `cargo xtask bench [--quick] [SECTION...]`: every benchmark, AccessAtlas and its reference
//! alternating in one run, written to `BENCHMARKS.md` as one section each.
//!
//! Sections: `data` (PBF read vs pyosmium, tile rendering, collect), `train` (Burn vs PyTorch
//! training throughput), `browser` (the app in headless Chromium), `wasm-opt` (the model
//! worker's wasm at each wasm-opt level, `wasm_opt.rs`), `api` (the prediction API
//! under load), `suggest` (the suggestion pipeline), `scale` (`--sizes 1,10,100`: collect and
//! serve on N-copy extracts, `scale.rs`). Naming sections re-runs only those and replaces them in `BENCHMARKS.md`,
//! keeping the others. `--quick` runs the AccessAtlas side once on tiny sizes and writes
//! nothing (the CI smoke test).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{accessatlas_exe, cache_dir, cargo, output, run, venv, web};

/// Sections that other tasks write, which a full `cargo xtask bench` keeps as they are.
const OWN_TASK_SECTIONS: [&str; 3] = ["Soak", "First run", "Tests from nothing"];

pub const SECTIONS: [&str; 8] =
    ["data", "train", "inference", "browser", "wasm-opt", "api", "suggest", "scale"];

/// JSON lines of a benchmark's stdout.
fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}

/// The rows a benchmark printed with `"bench": name`.
fn named<'a>(rows: &'a [serde_json::Value], name: &str) -> Vec<&'a serde_json::Value> {
    rows.iter().filter(|r| r["bench"] == name).collect()
}

fn find<'a>(all: &'a [serde_json::Value], name: &str) -> Result<&'a serde_json::Value> {
    named(all, name).into_iter().next().with_context(|| format!("benchmark `{name}` missing"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn cargo_bench(name: &str, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    Ok(json_lines(&output(cargo().args(["bench", "--quiet", "--bench", name, "--"]).args(args))?))
}

/// The browser benchmark, on a build of the code it names (built again when stale).
fn browser_bench(root: &Path, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    web::current_app(root)?;
    web::ensure_chromium()?;
    cargo_bench("browser", args)
}

fn data_once(repeat: &str) -> Result<Vec<serde_json::Value>> {
    cargo_bench("data_stage", &["--repeat", repeat])
}

fn train_once(args: &[&str]) -> Result<Vec<serde_json::Value>> {
    cargo_bench("train_step", args)
}

/// A Python venv under the cache with `requirements` installed (pinned there).
pub fn bench(root: &Path, args: &[String]) -> Result<()> {
    let quick = args.iter().any(|a| a == "--quick");
    let only: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--sizes"))
        .map(|(_, a)| a.as_str())
        .collect();
    if let Some(bad) = only.iter().find(|s| !SECTIONS.contains(s)) {
        bail!("unknown benchmark section `{bad}` (expected some of: {})", SECTIONS.join(", "));
    }
    if quick {
        return smoke(root);
    }
    let wanted = |s: &str| only.is_empty() || only.contains(&s);
    let mut sections = Vec::new();
    if wanted("data") {
        sections.push(data_section(root)?);
    }
    if wanted("train") {
        sections.push(train_section(root)?);
    }
    if wanted("inference") {
        sections.push(inference_section(root)?);
    }
    if wanted("browser") {
        sections.push(browser_section(root)?);
    }
    if wanted("wasm-opt") {
        sections.push(crate::wasm_opt::section(root)?);
    }
    if wanted("api") {
        sections.push(api_section()?);
    }
    if wanted("suggest") {
        sections.push(suggest_section()?);
    }
    if wanted("scale") {
        sections.push(crate::scale::scale_section(root, &scale_sizes(args)?)?);
    }
    // Each section records the run that wrote it: sections re-run alone come from other
    // commits, days and machines than the rest.
    let record = run_record(root);
    let mut sections: Vec<String> = sections.iter().map(|s| stamp(s, &record)).collect();
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    // Sections of their own tasks (`cargo xtask soak`, `cargo xtask first-run`): a full run
    // keeps them.
    if only.is_empty() {
        for own in OWN_TASK_SECTIONS {
            if let Some(s) = old.split("\n## ").find(|s| s.starts_with(&format!("{own}\n"))) {
                sections.push(format!("## {}", s.trim_end()));
            }
        }
    }
    std::fs::write(&path, merge(&header(), &old, &sections, only.is_empty()))?;
    eprintln!("BENCHMARKS.md written");
    Ok(())
}

/// `--sizes 1,10,100` (the default) for the scale section.
fn scale_sizes(args: &[String]) -> Result<Vec<usize>> {
    let Some(i) = args.iter().position(|a| a == "--sizes") else {
        return Ok(vec![1, 10, 100]);
    };
    let list = args.get(i + 1).context("--sizes needs a list such as 1,10,100")?;
    let sizes: Vec<usize> = list
        .split(',')
        .map(|s| s.parse().with_context(|| format!("--sizes: `{s}` is not a number")))
        .collect::<Result<_>>()?;
    anyhow::ensure!(!sizes.is_empty() && sizes.iter().all(|&s| s >= 1), "--sizes: counts >= 1");
    Ok(sizes)
}

/// The AccessAtlas side of every benchmark, once, on tiny sizes.
fn smoke(root: &Path) -> Result<()> {
    let rows = data_once("1")?;
    find(&rows, "pbf_read")?;
    find(&rows, "render_tiles")?;
    let rows =
        train_once(&["--steps", "1", "--size", "64", "--batch", "2", "--encoders", "custom_cnn"])?;
    find(&rows, "train_step")?;
    let rows = train_once(&[
        "--steps",
        "1",
        "--size",
        "32",
        "--batch",
        "2",
        "--encoders",
        "custom_cnn",
        "--precision",
        "f16",
    ])?;
    find(&rows, "train_step")?;
    let rows = cargo_bench("infer", &["--batches", "1", "--repeat", "1"])?;
    find(&rows, "infer_kernels")?;
    find(&rows, "infer_burn")?;
    let rows = browser_bench(root, &["--loads", "1", "--predictions", "2"])?;
    find(&rows, "browser_cpu")?;
    find(&rows, "browser_scan")?;
    find(&rows, "browser_scan_ready")?;
    find(&rows, "browser_profile")?;
    let rows = cargo_bench("api_load", &["--requests", "4", "--concurrency", "2"])?;
    let api = named(&rows, "api_load");
    if api.len() != 2 || api.iter().any(|r| r["errors"] != 0) {
        bail!("api_load: expected two error-free runs, got {api:?}");
    }
    let rows = cargo_bench("suggest", &["--side-m", "60"])?;
    find(&rows, "suggest_cli")?;
    let rows = cargo_bench(
        "soak",
        &["--seconds", "6", "--interval", "3", "--clients", "2", "--flood-seconds", "3"],
    )?;
    let soak = soak_verdict(&rows)?;
    if soak.failed.iter().any(|f| f.contains("error")) {
        bail!("soak: {}", soak.failed.join("; "));
    }
    crate::scale::scale_section(root, &[1, 2])?;
    eprintln!(
        "bench --quick: data_stage, train_step, infer, browser, api_load, suggest, soak and \
         scale ok"
    );
    Ok(())
}

/// `cargo xtask soak [--minutes N]`: the soak (`benches/soak.rs`) for N minutes (default 10),
/// one row a minute; writes the "Soak" section of `BENCHMARKS.md` and fails when a criterion
/// fails.
pub fn soak(root: &Path, args: &[String]) -> Result<()> {
    let minutes: u64 = match args.iter().position(|a| a == "--minutes") {
        Some(i) => args
            .get(i + 1)
            .and_then(|m| m.parse().ok())
            .filter(|&m| m >= 2)
            .context("--minutes needs a whole number of minutes, at least 2")?,
        None => 10,
    };
    let seconds = (minutes * 60).to_string();
    let rows = cargo_bench("soak", &["--seconds", &seconds, "--interval", "60"])?;
    let verdict = soak_verdict(&rows)?;
    let section = stamp(&soak_section(minutes, &rows, &verdict), &run_record(root));
    merge_into_benchmarks(root, section)?;
    eprintln!("BENCHMARKS.md written (Soak)");
    if !verdict.failed.is_empty() {
        bail!("soak: {}", verdict.failed.join("; "));
    }
    Ok(())
}

/// The soak's criteria, each as a sentence, and the ones that failed.
struct SoakVerdict {
    checks: Vec<String>,
    failed: Vec<String>,
}

fn soak_verdict(rows: &[serde_json::Value]) -> Result<SoakVerdict> {
    let soak = named(rows, "soak");
    let flood = find(rows, "tile_flood")?;
    anyhow::ensure!(!soak.is_empty(), "benchmark `soak` printed no interval");
    let n = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let mut checks = Vec::new();
    let mut failed = Vec::new();
    let mut check = |ok: bool, text: String| {
        if !ok {
            failed.push(text.clone());
        }
        checks.push(format!("{} {text}", if ok { "met:" } else { "**missed:**" }));
    };
    let errors: f64 = soak.iter().map(|r| n(r, "errors")).sum();
    check(errors == 0.0, format!("{errors:.0} errors that were not the client's fault"));
    // Flat memory: over the last half, RSS stays within 10 % of where it was at its start.
    let half = &soak[soak.len() / 2..];
    let (first, top) =
        (n(half[0], "rss_mb"), half.iter().map(|r| n(r, "rss_mb")).fold(f64::MIN, f64::max));
    let growth = (top - first) / first;
    check(
        growth <= 0.10,
        format!(
            "RSS over the last half: {first:.0} MB at its start, {top:.0} MB at most \
             ({:+.1} %; at most +10 %)",
            growth * 100.0
        ),
    );
    // Bounded latency: the last half's worst p99 within twice the first half's.
    let p99 = |rs: &[&serde_json::Value]| rs.iter().map(|r| n(r, "p99_ms")).fold(0.0, f64::max);
    let (early, late) = (p99(&soak[..soak.len().div_ceil(2)]), p99(half));
    check(
        late <= 2.0 * early,
        format!(
            "p99 latency: at most {early:.0} ms in the first half, {late:.0} ms in the last \
             (bounded: at most twice)"
        ),
    );
    check(
        n(flood, "other") == 0.0 && n(flood, "health_after") == 200.0,
        format!(
            "tile flood: every request got a tile or 503 ({:.0} other answers), and \
             `/api/health` answered {:.0} in {:.0} ms after it",
            n(flood, "other"),
            n(flood, "health_after"),
            n(flood, "health_after_ms")
        ),
    );
    Ok(SoakVerdict { checks, failed })
}

fn soak_section(minutes: u64, rows: &[serde_json::Value], v: &SoakVerdict) -> String {
    let n = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let table: Vec<String> = named(rows, "soak")
        .iter()
        .map(|r| {
            format!(
                "| {} | {:.0} | {:.1} | {:.0} / {:.0} ms | {:.0} | {:.0} | {:.0} MB |",
                r["interval"],
                n(r, "requests"),
                n(r, "requests_per_s"),
                n(r, "p50_ms"),
                n(r, "p99_ms"),
                n(r, "errors"),
                n(r, "busy_503"),
                n(r, "rss_mb"),
            )
        })
        .collect();
    let f = named(rows, "tile_flood")[0];
    format!(
        "## Soak\n\n\
`cargo xtask soak --minutes {minutes}`. `accessatlas serve` (release build, CPU, the shipped\n\
bundle, the bundled extract) on 127.0.0.1, driven by 4 client threads (`benches/soak.rs`)\n\
with a mix: 3 in 10 `POST /api/predict` (multipart, rendered tiles), 1 `/api/features`, 1\n\
`/api/candidates`, 1 `/api/suggest` (about 55 m square), 2 map tiles at zooms 17-19, 2 bad\n\
requests (a malformed bbox, truncated JSON: each must get its 400). An error is any other\n\
answer, or none: a good request must get 2xx (or 503 with `Retry-After`, the documented\n\
answer to overload; candidates and suggestions also 422 for an area with nothing mapped).\n\
RSS is the server's resident set at the end of each minute. No reference: no other server\n\
serves this model.\n\n\
| minute | requests | requests/s | latency p50 / p99 | errors | 503 (overload) | server RSS |\n\
|---|---|---|---|---|---|---|\n\
{}\n\n\
Then a flood of new map tiles: {:.0} client threads ask for the {:.0} distinct zoom-19 tiles of\n\
the area for {:.0} s: {:.0} requests ({:.1}/s), {:.0} tiles drawn, {:.0} answered 503 with\n\
`Retry-After` (the server draws one tile per core at once and answers 503 after 2 s of\n\
waiting), {:.0} other answers; the slowest took {:.0} ms; server peak RSS {:.0} MB.\n\n\
{}\n",
        table.join("\n"),
        n(f, "clients"),
        n(f, "tiles_in_area"),
        n(f, "seconds"),
        n(f, "requests"),
        n(f, "requests_per_s"),
        n(f, "ok_200"),
        n(f, "busy_503"),
        n(f, "other"),
        n(f, "slowest_ms"),
        n(f, "peak_rss_mb"),
        v.checks.iter().map(|c| format!("- {c}")).collect::<Vec<_>>().join("\n"),
    )
}

/// The section with its run record as the line after its title.
/// Puts `section` into BENCHMARKS.md in place of the one of its title (or at the end).
pub(crate) fn merge_into_benchmarks(root: &Path, section: String) -> Result<()> {
    let path = root.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, merge(&header(), &old, &[section], false))?;
    Ok(())
}

pub(crate) fn stamp(section: &str, record: &str) -> String {
    match section.split_once('\n') {
        Some((title, rest)) => format!("{title}\n\n{record}\n{rest}"),
        None => format!("{section}\n\n{record}\n"),
    }
}

/// `_Run: commit abc1234, 2026-11-29, <CPU>, 2 cores, rustc ..._`: what produced a section.
pub(crate) fn run_record(root: &Path) -> String {
    let git = |args: &[&str]| {
        output(Command::new("git").current_dir(root).args(args))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let commit = git(&["rev-parse", "--short=9", "HEAD"]);
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let date = output(Command::new("date").args(["-u", "+%Y-%m-%d"])).unwrap_or_default();
    let (cpu, cores) = machine();
    let rustc = output(Command::new("rustc").arg("--version")).unwrap_or_default();
    format!(
        "_Run: commit `{commit}`{}, {}, {cpu}, {cores} cores, {}._",
        if dirty { " with uncommitted changes" } else { "" },
        date.trim(),
        rustc.trim()
    )
}

/// The CPU (its model name, and its family, model and widest vector instructions, which the
/// name alone does not tell apart: "AMD EPYC" has been machines with and without AVX-512, and
/// the GEMM kernels round differently on each) and the number of cores.
fn machine() -> (String, usize) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| cpu_of(&c))
        .unwrap_or_else(|_| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    (cpu, cores)
}

/// `AMD EPYC (family 26, model 2, AVX-512)` from the text of `/proc/cpuinfo`.
fn cpu_of(cpuinfo: &str) -> String {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name").unwrap_or_else(|| "unknown".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let simd = if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2"
    } else {
        "no AVX2"
    };
    match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model}, {simd})"),
        _ => format!("{name} ({simd})"),
    }
}

fn header() -> String {
    format!(
        "# Benchmarks\n\n\
Written by `cargo xtask bench` (do not edit by hand; `cargo xtask bench SECTION` re-runs one\n\
section: {sections}). Each comparison runs both sides in the same run, alternating, on the same\n\
input; figures are medians. Each section names the commit, date, CPU and tool versions of the\n\
run that wrote it: only figures of one section compare.\n",
        sections = SECTIONS.join(", "),
    )
}

/// The new file: the header, then each old section replaced by its new version (by its `## `
/// title), new sections appended. `full` drops old sections that were not re-run.
fn merge(header: &str, old: &str, new: &[String], full: bool) -> String {
    let title = |s: &str| s.lines().next().unwrap_or("").trim().to_string();
    let old_sections: Vec<String> =
        old.split("\n## ").skip(1).map(|s| format!("## {}", s.trim_end())).collect();
    let mut out = vec![header.trim_end().to_string()];
    let mut used = vec![false; new.len()];
    if !full {
        for o in &old_sections {
            match new.iter().position(|n| title(n) == title(o)) {
                Some(i) => {
                    out.push(new[i].trim_end().to_string());
                    used[i] = true;
                }
                None => out.push(o.clone()),
            }
        }
    }
    for (n, u) in new.iter().zip(used) {
        if !u {
            out.push(n.trim_end().to_string());
        }
    }
    out.join("\n\n") + "\n"
}

fn data_section(root: &Path) -> Result<String> {
    let python = venv("venv-bench", &["osmium==4.3.2"])?;
    let pbf = root.join("assets/osm/helsinki.osm.pbf");
    let repeat = "7";
    let py_once = || -> Result<serde_json::Value> {
        let out = output(
            Command::new(&python)
                .arg(root.join("benches/reference/pbf_read_pyosmium.py"))
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
        let rows = data_once(repeat)?;
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
    let exe = accessatlas_exe(root)?;
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
    Ok(format!(
        "## Data stage\n\n\
`cargo xtask bench data`. pyosmium {osmium_version}.\n\n\
| benchmark | AccessAtlas | reference | ratio (reference time / ours) |\n\
|---|---|---|---|\n\
| read `assets/osm/helsinki.osm.pbf` ({kb} KB; nodes, ways, multipolygons and every tag kept in memory) | {ours_ms:.1} ms ({e0} elements) | pyosmium {theirs_ms:.1} ms ({e1} elements) | {ratio:.2}x |\n\
| render 64 map tiles (256x256, zoom 19, offline renderer) | {render:.0} tiles/s | (no reference: our own renderer) | |\n\
| `accessatlas collect` end to end on the bundled extract (release build) | {collect_s:.1} s | | |\n\n\
A ratio above 1 means AccessAtlas is faster. Both sides keep the same: every node's position,\n\
every tag of every way and tagged node, each way's nodes, the multipolygons (the product itself\n\
keeps only the tags its rules and renderer read); pyosmium builds Python dicts and lists, which\n\
is part of the reference cost.\n",
        kb = std::fs::metadata(&pbf).map(|m| m.len() / 1024).unwrap_or(0),
        ours_ms = ours * 1e3,
        theirs_ms = theirs * 1e3,
        e0 = elements.0,
        e1 = elements.1,
        ratio = theirs / ours,
    ))
}

/// Training throughput: Burn (flex) vs PyTorch (CPU), same model, batch 16, 224x224, same
/// thread count; each encoder alternates Burn, PyTorch, Burn, PyTorch.
fn train_section(root: &Path) -> Result<String> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let requirements = root.join("tests/reference/requirements.txt");
    let torch_python = venv("venv-reference", &["-r", &requirements.to_string_lossy()])?;
    let mut torch_version = String::new();
    // Median of two alternating runs of each side: (ours, PyTorch) images per second.
    let mut side_by_side = |enc: &str, precision: &str| -> Result<(f64, f64)> {
        let (mut b, mut t) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            let r = train_once(&["--steps", "3", "--encoders", enc, "--precision", precision])?;
            b.push(find(&r, "train_step")?["images_per_s"].as_f64().unwrap_or(f64::NAN));
            let out = output(
                Command::new(&torch_python)
                    .arg(root.join("benches/reference/train_step_torch.py"))
                    .args(["3", "224", "16", &threads, enc, precision]),
            )?;
            let p = json_lines(&out).into_iter().next().context("torch printed nothing")?;
            torch_version = p["torch"].as_str().unwrap_or("?").to_string();
            t.push(p["images_per_s"].as_f64().unwrap_or(f64::NAN));
        }
        Ok((median(b), median(t)))
    };
    let mut train_rows = Vec::new();
    for enc in ["custom_cnn", "efficientnet_lite0", "resnet18"] {
        let (b, t) = side_by_side(enc, "f32")?;
        train_rows.push(format!("| {enc} | {b:.2} img/s | {t:.2} img/s | {:.2}x |", b / t));
    }
    // Mixed precision on the CPU: ours (`--precision`) vs PyTorch's CPU autocast.
    let mut mixed_rows = Vec::new();
    for enc in ["custom_cnn", "efficientnet_lite0"] {
        for precision in ["f32", "bf16", "f16"] {
            let (b, t) = side_by_side(enc, precision)?;
            mixed_rows.push(format!(
                "| {enc} | {precision} | {b:.2} img/s | {t:.2} img/s | {:.2}x |",
                b / t
            ));
        }
    }
    Ok(format!(
        "## Native training throughput\n\n\
`cargo xtask bench train`. Full train step of the whole two-branch model (forward, backward,\n\
gradient clipping, AdamW), batch 16, 224x224, {threads} threads, CPU. Burn 0.22.1 `flex` vs\n\
PyTorch {torch_version}.\n\n\
| encoder | AccessAtlas (Burn flex) | PyTorch | ratio (ours / PyTorch) |\n\
|---|---|---|---|\n\
{}\n\n\
A ratio below 1 means AccessAtlas trains slower than PyTorch on this machine.\n\n\
### Mixed precision on the CPU\n\n\
Same step, `--precision bf16|f16` (half-precision copy of the model, f32 master weights; f16\n\
with loss scaling) against PyTorch's CPU autocast in the same dtype (f16 with a `GradScaler`).\n\
Neither CPU here has native half-precision arithmetic, so this measures software cost, not\n\
the GPU speed-up mixed precision is for (`cargo xtask gpu` checks its correctness on wgpu).\n\n\
| encoder | precision | AccessAtlas (Burn flex) | PyTorch | ratio (ours / PyTorch) |\n\
|---|---|---|---|---|\n\
{}\n",
        train_rows.join("\n"),
        mixed_rows.join("\n"),
    ))
}

/// The shipped bundle exported by the release binary (`--format F`, extra arguments), into a
/// fresh directory under the system temp dir.
fn export_bundle(root: &Path, name: &str, args: &[&str]) -> Result<PathBuf> {
    let out = std::env::temp_dir().join(format!("accessatlas-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    run(Command::new(accessatlas_exe(root)?)
        .args(["export", "--model"])
        .arg(root.join("assets/model"))
        .arg("--out")
        .arg(&out)
        .args(args))?;
    Ok(out)
}

/// Native inference of the shipped model, batch 1 and 16: our kernels and Burn (flex) vs
/// onnxruntime (our ONNX export) vs PyTorch (the architecture mirror with the same weights),
/// alternating.
fn inference_section(root: &Path) -> Result<String> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
    let requirements = root.join("tests/reference/requirements.txt");
    let onnx_requirements = root.join("tests/reference/onnx_requirements.txt");
    let python = venv(
        "venv-reference",
        &["-r", &requirements.to_string_lossy(), "-r", &onnx_requirements.to_string_lossy()],
    )?;
    let st = export_bundle(root, "safetensors", &["--format", "safetensors"])?;
    let b1 = export_bundle(root, "onnx-b1", &["--format", "onnx"])?;
    let b16 = export_bundle(root, "onnx-b16", &["--format", "onnx", "--onnx-batch", "16"])?;
    let mut ours: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    let mut burn: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    let mut ort: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    let mut torch: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
    let (mut ort_version, mut torch_version, mut isa) =
        (String::new(), String::new(), String::new());
    // 30 passes a side and batch: this machine's speed comes and goes in phases of a few
    // passes (seen: ten passes at 9 ms, ten at 11 ms, then 9 ms again), which ten can catch.
    const PASSES: &str = "30";
    for _ in 0..2 {
        let rows = cargo_bench("infer", &["--batches", "1,16", "--repeat", PASSES])?;
        for (name, to) in [("infer_kernels", &mut ours), ("infer_burn", &mut burn)] {
            for r in named(&rows, name) {
                isa = r["isa"].as_str().unwrap_or("?").to_string();
                to.entry(r["batch"].as_u64().unwrap_or(0))
                    .or_default()
                    .push(r["p50_ms"].as_f64().unwrap_or(f64::NAN));
            }
        }
        let out = output(
            Command::new(&python)
                .arg(root.join("benches/reference/infer_reference.py"))
                .arg(st.join("model.safetensors"))
                .args([threads.as_str(), PASSES])
                .arg(b1.join("model.onnx"))
                .arg(b16.join("model.onnx")),
        )?;
        let rows = json_lines(&out);
        for r in named(&rows, "infer_onnxruntime") {
            ort_version = r["onnxruntime"].as_str().unwrap_or("?").to_string();
            ort.entry(r["batch"].as_u64().unwrap_or(0))
                .or_default()
                .push(r["p50_ms"].as_f64().unwrap_or(f64::NAN));
        }
        for r in named(&rows, "infer_torch") {
            torch_version = r["torch"].as_str().unwrap_or("?").to_string();
            torch
                .entry(r["batch"].as_u64().unwrap_or(0))
                .or_default()
                .push(r["p50_ms"].as_f64().unwrap_or(f64::NAN));
        }
    }
    for d in [st, b1, b16] {
        let _ = std::fs::remove_dir_all(d);
    }
    let mut table = Vec::new();
    for (batch, v) in ours {
        let k = median(v);
        let b = burn.remove(&batch).map_or(f64::NAN, median);
        let o = ort.remove(&batch).map_or(f64::NAN, median);
        let t = torch.remove(&batch).map_or(f64::NAN, median);
        table.push(format!(
            "| {batch} | {k:.1} ms | {b:.1} ms | {o:.1} ms | {t:.1} ms | {:.2}x | {:.2}x | {:.2}x |",
            o / k,
            t / k,
            b / k,
        ));
    }
    Ok(format!(
        "## Native inference\n\n\
`cargo xtask bench inference`. The shipped model (EfficientNet-Lite0 + metadata, 224x224) on\n\
the CPU, {threads} threads, median time of one forward pass through `Predictor::predict_batch`:\n\
AccessAtlas's own kernels (`model_core::kernels`, what every CPU predictor runs; inner loops\n\
on {isa}) and Burn 0.22.1 `flex` (the reference the kernels are tested against), vs\n\
onnxruntime {ort_version} running our own ONNX export of the same bundle vs PyTorch\n\
{torch_version} running the architecture mirror (`benches/reference/train_step_torch.py`) with\n\
the bundle's weights (from its safetensors export).\n\n\
| batch | AccessAtlas kernels | Burn `flex` | onnxruntime | PyTorch | ratio onnxruntime / ours | ratio PyTorch / ours | ratio Burn / ours |\n\
|---|---|---|---|---|---|---|---|\n\
{}\n\n\
A ratio below 1 means the reference is faster.\n\n\
The kernels run the folded model channels last: pointwise and other dense convolutions as\n\
GEMMs over blocks of output pixels (our own on x86-64 with AVX2 and in wasm, its weights\n\
packed once and bias, residual and activation applied in registers; on the portable path\n\
the `gemm` crate's, with them applied to each block in cache), depthwise convolutions as direct loops over contiguous\n\
channels (with AVX2 in intrinsics, a block of channels across a row of pixels), buffers\n\
reused between layers; both cores share one image's layers at batch 1 and\n\
the images at batch 16. Before them, the profile of Burn's forward (`perf record -g`,\n\
2026-11-29) had about 27 % in its depthwise convolution (not a GEMM), 21 % in GEMM kernels,\n\
14 % in separate activation passes and about 10 % in page faults and copies of intermediate\n\
tensors.\n",
        table.join("\n"),
    ))
}

/// The browser references, pinned, from npm: onnxruntime-web, TensorFlow.js and its wasm
/// backend.
const ORT_WEB: &str = "onnxruntime-web@1.30.0";
const NPM_REFERENCES: [&str; 3] =
    [ORT_WEB, "@tensorflow/tfjs@4.22.0", "@tensorflow/tfjs-backend-wasm@4.22.0"];

/// The paths (under the npm cache's `node_modules`) of `files`, installing the pinned
/// references first if any is missing.
fn npm_files(files: &[&str]) -> Result<Vec<PathBuf>> {
    let npm_dir = cache_dir().join("npm-bench");
    let paths: Vec<PathBuf> = files.iter().map(|f| npm_dir.join("node_modules").join(f)).collect();
    if !paths.iter().all(|p| p.is_file()) {
        std::fs::create_dir_all(&npm_dir)?;
        run(Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&npm_dir)
            .args(NPM_REFERENCES))?;
    }
    Ok(paths)
}

/// Copies `files` and the page `benches/reference/{page}/index.html` into `dir`.
fn assemble_page(root: &Path, dir: &Path, page: &str, files: &[PathBuf]) -> Result<()> {
    for f in files {
        let name = f.file_name().context("a file name")?;
        std::fs::copy(f, dir.join(name)).with_context(|| format!("copying {}", f.display()))?;
    }
    std::fs::copy(
        root.join(format!("benches/reference/{page}/index.html")),
        dir.join("index.html"),
    )?;
    Ok(())
}

/// A directory with the ONNX Runtime Web page, its wasm build, the ONNX export of the
/// shipped bundle (batch 1) and its int8 copy (onnxruntime's `quantize_dynamic`,
/// `benches/reference/quantize_onnx.py`), for the browser benchmark's `--ort`.
fn ort_web_dir(root: &Path) -> Result<PathBuf> {
    let files = npm_files(&[
        "onnxruntime-web/dist/ort.wasm.min.js",
        "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
        "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
    ])?;
    let dir = export_bundle(root, "ort-web", &["--format", "onnx"])?;
    std::fs::remove_file(dir.join("model.json"))?;
    let onnx_requirements = root.join("tests/reference/onnx_requirements.txt");
    let python =
        venv("venv-onnx-quantize", &["-r", &onnx_requirements.to_string_lossy(), "onnx==1.23.2"])?;
    run(Command::new(python)
        .arg(root.join("benches/reference/quantize_onnx.py"))
        .arg(dir.join("model.onnx"))
        .arg(dir.join("model.int8.onnx")))?;
    assemble_page(root, &dir, "ort-web", &files)?;
    Ok(dir)
}

/// A directory with the TF.js head-training page and TF.js's files, for `--tfjs`.
fn tfjs_dir(root: &Path) -> Result<PathBuf> {
    let files = npm_files(&[
        "@tensorflow/tfjs/dist/tf.min.js",
        "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
        "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm",
        "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm",
        "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm",
    ])?;
    let dir = std::env::temp_dir().join(format!("accessatlas-bench-tfjs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    assemble_page(root, &dir, "tfjs-head", &files)?;
    Ok(dir)
}

/// The app in headless Chromium (CPU backend) beside ONNX Runtime Web on the same model: load
/// to model-ready, prediction latency, download sizes.
fn browser_section(root: &Path) -> Result<String> {
    let ort_dir = ort_web_dir(root)?;
    let tfjs = tfjs_dir(root)?;
    let rows = browser_bench(
        root,
        &[
            "--loads",
            "4",
            "--predictions",
            "40",
            "--ort",
            &ort_dir.to_string_lossy(),
            "--tfjs",
            &tfjs.to_string_lossy(),
            "--slow",
        ],
    )?;
    let _ = std::fs::remove_dir_all(&ort_dir);
    let _ = std::fs::remove_dir_all(&tfjs);
    let t = find(&rows, "browser_tfjs_head")?.clone();
    let tfjs_step = t["step_p50_ms"].as_f64().unwrap_or(f64::NAN);
    let tfjs_version = t["version"].as_str().unwrap_or("?").to_string();
    let b = find(&rows, "browser_cpu")?.clone();
    let o = find(&rows, "browser_ort")?.clone();
    let f = find(&rows, "browser_finetune")?.clone();
    let scan_section =
        scan_section(find(&rows, "browser_scan")?, find(&rows, "browser_scan_ready")?);
    let profile = profile_table(find(&rows, "browser_profile")?)?;
    let ft = |k: &str| f[k].as_f64().unwrap_or(f64::NAN);
    let num = |k: &str| b[k].as_f64().unwrap_or(f64::NAN);
    let ort = |k: &str| o[k].as_f64().unwrap_or(f64::NAN);
    let mb = |v: f64| v / 1e6;
    let browser_version = b["browser"].as_str().unwrap_or("?").to_string();
    let ort_version = o["version"].as_str().unwrap_or("?").to_string();
    Ok(format!(
        "## In the browser\n\n\
`cargo xtask bench browser`. Headless {browser_version}, one session. AccessAtlas: the built app\n\
(`trunk build --release`), CPU backend (model-core's kernels, wasm SIMD128, one thread, in a Web\n\
Worker),\n\
the shipped EfficientNet-Lite0 bundle, map tiles from a local server. Reference: ONNX Runtime\n\
Web {ort_version} (npm `{ORT_WEB}`, wasm backend, SIMD, one thread: the page is not\n\
cross-origin isolated, as the app is not), on the ONNX export of the same bundle (batch 1),\n\
page `benches/reference/ort-web/index.html`. Page loads alternate between the two; the first of each is\n\
cold (empty cache). WebGPU is not measured: this machine has no GPU (SwiftShader only).\n\n\
| measure | AccessAtlas | ONNX Runtime Web | ratio (ORT / ours) |\n\
|---|---|---|---|\n\
| page load to first prediction done, cold (the app: model-ready after its warm-up prediction) | {:.0} ms | {:.0} ms | {:.2}x |\n\
| the same, warm HTTP cache | {:.0} ms | {:.0} ms | {:.2}x |\n\
| model forward pass p50 | {:.0} ms | {:.0} ms | {:.2}x |\n\
| model forward pass p95 | {:.0} ms | {:.0} ms | {:.2}x |\n\
| runtime download, gzip (ours: the model worker's wasm + JS; ORT: its wasm + JS) | {:.2} MB | {:.2} MB | {:.2}x |\n\
| model download, gzip (ours: the bundle the page loads, `assets/model/compact/` when within its accuracy budget, else f32; ORT: `model.onnx` f32) | {:.2} MB | {:.2} MB | {:.2}x |\n\
| model download, gzip, int8 on both sides (ours: `assets/model/compact/`; ORT: `model.int8.onnx`, onnxruntime's `quantize_dynamic`) | {:.2} MB | {:.2} MB | {:.2}x |\n\
| model forward pass p50, ORT on its int8 copy (ours: the model the page loads) | {:.0} ms | {:.0} ms | {:.2}x |\n\
| page download, runtime + model, gzip (goal: ours at most half of ORT's, a ratio of 2 or more) | {:.2} MB | {:.2} MB | {:.2}x |\n\n\
A ratio below 1 means ONNX Runtime Web is faster or smaller. The whole app (page, worker, map\n\
library, styles) is {:.2} MB gzip. In the app, a click to an answer on the page (tiles, model,\n\
worker messaging) takes {:.0} ms p50 / {:.0} ms p95.\n\n\
### Where the page's forward pass goes\n\n\
{profile}\n\
{scan_section}\
### Fine-tuning in the page\n\n\
50 tags (three types), 5 epochs, CPU backend, in the model worker: the image encoder runs once\n\
per tag and view ({:.0} training tags x 3 views + the validation tags), then each epoch trains\n\
the head on the cached features (batch 16).\n\n\
| measure | AccessAtlas | TensorFlow.js {tfjs_version} (wasm, SIMD, one thread) | ratio (TF.js / ours) |\n\
|---|---|---|---|\n\
| encoder features, once per fine-tune | {:.1} s | | |\n\
| one epoch of the head | {:.1} ms | | |\n\
| one head step (batch 16; ours: AdamW with clipping, TF.js: Adam) | {:.2} ms | {tfjs_step:.2} ms | {:.2}x |\n\n\
TF.js trains the same head (`benches/reference/tfjs-head/index.html`: Linear(2, 64) + batch norm + ReLU,\n\
concatenated with 1280 features and the source one-hot, Linear(1348, 256) + ReLU + dropout,\n\
Linear(256, 5), softmax cross-entropy, batch 16) on features of the same shape (values do not\n\
change its speed). A ratio above 1 means AccessAtlas is faster.\n",
        num("cold_ready_ms"),
        ort("cold_ready_ms"),
        ort("cold_ready_ms") / num("cold_ready_ms"),
        num("warm_ready_ms"),
        ort("warm_ready_ms"),
        ort("warm_ready_ms") / num("warm_ready_ms"),
        num("model_p50_ms"),
        ort("model_p50_ms"),
        ort("model_p50_ms") / num("model_p50_ms"),
        num("model_p95_ms"),
        ort("model_p95_ms"),
        ort("model_p95_ms") / num("model_p95_ms"),
        mb(ort("ours_gzip_runtime_bytes")),
        mb(ort("gzip_runtime_bytes")),
        ort("gzip_runtime_bytes") / ort("ours_gzip_runtime_bytes"),
        mb(ort("ours_gzip_model_bytes")),
        mb(ort("gzip_model_bytes")),
        ort("gzip_model_bytes") / ort("ours_gzip_model_bytes"),
        mb(ort("ours_gzip_model_bytes")),
        mb(ort("gzip_int8_model_bytes")),
        ort("gzip_int8_model_bytes") / ort("ours_gzip_model_bytes"),
        num("model_p50_ms"),
        ort("int8_model_p50_ms"),
        ort("int8_model_p50_ms") / num("model_p50_ms"),
        mb(ort("ours_gzip_runtime_bytes") + ort("ours_gzip_model_bytes")),
        mb(ort("gzip_runtime_bytes") + ort("gzip_model_bytes")),
        (ort("gzip_runtime_bytes") + ort("gzip_model_bytes"))
            / (ort("ours_gzip_runtime_bytes") + ort("ours_gzip_model_bytes")),
        mb(ort("ours_gzip_app_bytes")),
        num("latency_p50_ms"),
        num("latency_p95_ms"),
        ft("train_tags"),
        ft("features_s"),
        ft("epoch_ms"),
        ft("step_ms"),
        tfjs_step / ft("step_ms"),
    ) + &learn_area_section(find(&rows, "browser_learn_area")?)
        + &slow_section(find(&rows, "browser_slow")?))
}

/// "Scan this view" in the page: the scan clicked the moment the model is ready
/// (`browser_scan`) and the one clicked once the scan helper is ready too
/// (`browser_scan_ready`), with what the points cost their workers.
fn scan_section(now: &serde_json::Value, ready: &serde_json::Value) -> String {
    let n = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    let runs = |r: &serde_json::Value| {
        let v: Vec<String> = r["first_ms_runs"]
            .as_array()
            .map(|a| {
                a.iter().map(|x| format!("{:.2}", x.as_f64().unwrap_or(f64::NAN) / 1e3)).collect()
            })
            .unwrap_or_default();
        v.join(", ")
    };
    let row = |r: &serde_json::Value, when: &str| {
        format!(
            "| {when} | {:.0} | {:.0} | {} | {:.2} s | {:.0} ms | {:.0} ms | **{:.2} s** ({} s) | {:.2} s | {:.1} |\n",
            n(r, "workers"),
            n(r, "points"),
            r["suggestions"],
            n(r, "sent_ms") / 1e3,
            n(r, "tiles_ms_per_point"),
            n(r, "model_ms_per_point"),
            n(r, "first_ms") / 1e3,
            runs(r),
            n(r, "ms") / 1e3,
            n(r, "points_per_s"),
        )
    };
    let views = |r: &serde_json::Value| {
        let v: Vec<String> = r["views"]
            .as_array()
            .map(|a| a.iter().map(|x| format!("`#map={}`", x.as_str().unwrap_or("?"))).collect())
            .unwrap_or_default();
        v.join(", ")
    };
    format!(
        "### Suggestions in the page\n\n\
\"Scan this view\" over views of central Helsinki's extract (at zoom 17 each is {:.0} m x {:.0} m):\n\
the page asks the server for the view's candidates and scores them in its workers at threshold\n\
0.5 (on the CPU backend the model worker and its scan helper, one core each), the 48 most\n\
promising always, then more while the scan has taken under 3 s (up to 480); timed by the page\n\
from the click to the 48th result and to done (candidates, tiles, model, messaging). Clicked the\n\
moment the model is ready, when the scan helper (which loads beside the model worker, from the\n\
wasm module the model worker compiled) may not be yet, on {}; and once the helper holds the\n\
model too, as for a mapper who looks at the map a few seconds before scanning, on {} (on the\n\
median run's page load the helper held it {:.0} ms after the model worker, polled to about 20\n\
ms). Each view is a fresh page load on tiles neither the browser nor the tile server has drawn\n\
yet; one scan varies by about 15 % with what else the two cores do, so each row is the run\n\
whose first 48 took the median time of the three, every run's time in brackets. Per point:\n\
what it cost its worker, waiting for and decoding its map tiles, and the model (preprocessing\n\
and forward pass); the two workers share the machine's 2 cores with the page, the browser and\n\
the tile server. This project's goal: the first 48 in at most 1.5 s.\n\n\
| clicked | workers | candidates scored | suggestions | candidates in | tiles per point | model per point | first 48 in: median (each run) | seconds | candidates/s |\n\
|---|---|---|---|---|---|---|---|---|---|\n\
{}{}\n",
        n(now, "width_m"),
        n(now, "height_m"),
        views(now),
        views(ready),
        n(ready, "helper_after_model_ms"),
        row(now, "the moment the model is ready"),
        row(ready, "once the scan helper is ready"),
    )
}

/// The page on a phone over a slow connection (`browser_slow`), beside ONNX Runtime Web's
/// page over the same link.
fn slow_section(s: &serde_json::Value) -> String {
    let n = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    let secs = |k: &str| n(k) / 1e3;
    format!(
        "\n### On a phone over a slow connection\n\n\
Each page loaded cold on an emulated phone (390x844, touch) over Lighthouse's \"slow 4G\" link\n\
({}): a proxy in front of each server, on 127.0.0.1, delays every request and shares that\n\
rate among all downloads, the model worker's included (Chromium's own network emulation slows\n\
only the page's). From navigation to the model ready after its first prediction; ours loads\n\
the model the page loads (the row above).\n\n\
| measure | AccessAtlas | ONNX Runtime Web, f32 model | ratio | ONNX Runtime Web, int8 model | ratio |\n\
|---|---|---|---|---|---|\n\
| page load to the model ready, cold, slow link | {:.1} s | {:.1} s | {:.2}x | {:.1} s | {:.2}x |\n\n\
A ratio above 1 means AccessAtlas is ready sooner. The model worker's wasm memory once the\n\
model is ready (the page's `data-worker-memory`): {:.0} MB, against a phone budget of {:.0} MB\n\
(`PHONE_MEMORY_BUDGET_MB`, which the slow-connection e2e holds).\n",
        s["link"].as_str().unwrap_or("?"),
        secs("cold_ready_ms"),
        secs("ort_cold_ready_ms"),
        n("ort_cold_ready_ms") / n("cold_ready_ms"),
        secs("ort_int8_cold_ready_ms"),
        n("ort_int8_cold_ready_ms") / n("cold_ready_ms"),
        n("worker_memory_bytes") / 1e6,
        n("memory_budget_mb"),
    )
}

/// "Learn this area" in the page (`browser_learn_area`), a table of its own: no other tool
/// does it, so there is no reference column.
fn learn_area_section(l: &serde_json::Value) -> String {
    let n = |k: &str| l[k].as_f64().unwrap_or(f64::NAN);
    format!(
        "\n### Learning this area in the page\n\n\
\"Learn this area\" on the view at 60.1690, 24.9420 (zoom 17), CPU backend, in the model worker: the view's\n\
mapped features (`/api/features`, lines included) and background places from its candidates\n\
become examples, split by map cell; encoder features once, then the head for the default\n\
epochs; timed from the click to the before/after result on the held-out cells (features, tiles,\n\
model, messaging). No reference: no other tool fine-tunes on a map view in the browser.\n\n\
| click to result | encoder features | head training | epochs | training places | held-out accuracy before -> after |\n\
|---|---|---|---|---|---|\n\
| {:.1} s | {:.1} s | {:.2} s | {:.0} | {:.0} | {:.2} -> {:.2} |\n\n\
What it learned from: {}\n",
        n("seconds"),
        n("features_s"),
        n("train_s"),
        n("epochs"),
        n("train_places"),
        n("before"),
        n("after"),
        l["area"].as_str().unwrap_or("?"),
    )
}

/// The page's profile of its forward pass (`browser_profile`: the median milliseconds of each
/// kind of operation over N passes, timed in the worker) as a table and what it says.
fn profile_table(p: &serde_json::Value) -> Result<String> {
    let total = p["total_ms"].as_f64().context("profile without total_ms")?;
    let runs = p["runs"].as_u64().unwrap_or(0);
    let mut ops: Vec<(String, f64)> = p["ops"]
        .as_array()
        .context("profile without ops")?
        .iter()
        .filter_map(|o| Some((o[0].as_str()?.replace('_', " "), o[1].as_f64()?)))
        .collect();
    ops.sort_by(|a, b| b.1.total_cmp(&a.1));
    let rows: Vec<String> = ops
        .iter()
        .map(|(op, ms)| format!("| {op} | {ms:.1} ms | {:.0} % |", 100.0 * ms / total))
        .collect();
    let (top, top_ms) = ops.first().cloned().context("an empty profile")?;
    Ok(format!(
        "The app times its own forward pass by kind of operation (`?profile=N` in the address: \
the worker runs N passes of the shipped model on a blank tile through `Predictor::profile`, \
which on the CPU runs model-core's kernels, the path the page's predictions take, and marks \
the time after each operation). Median of {runs} passes, CPU backend:\n\n\
| operation | time | share of the pass ({total:.1} ms) |\n|---|---|---|\n{}\n\n\
A convolution's bias, activation and residual add run in its epilogue, so they count as the \
convolution's. The largest is {top}, {:.0} % of the pass: that is where the page's forward \
pass would gain most.\n",
        rows.join("\n"),
        100.0 * top_ms / total,
    ))
}

/// The prediction API under a bounded load on 127.0.0.1: sequential, then concurrent one by one
/// and with batches of up to 16 (the default).
fn api_section() -> Result<String> {
    let (requests, concurrency) = ("300", "8");
    let run = |batch: &str| -> Result<Vec<serde_json::Value>> {
        let rows = cargo_bench(
            "api_load",
            &["--requests", requests, "--concurrency", concurrency, "--max-batch", batch],
        )?;
        let api: Vec<serde_json::Value> = named(&rows, "api_load").into_iter().cloned().collect();
        if api.is_empty() {
            bail!("benchmark `api_load` missing");
        }
        Ok(api)
    };
    let mut api = run("1")?;
    api.extend(run("16")?.into_iter().filter(|r| r["concurrency"] != 1));
    let table: Vec<String> = api
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            format!(
                "| {} | {} | {} | {:.1} | {:.0} / {:.0} ms | {} | {:.0} MB |",
                r["concurrency"],
                r["max_batch"],
                r["requests"],
                n("requests_per_s"),
                n("p50_ms"),
                n("p99_ms"),
                r["errors"],
                n("peak_rss_mb"),
            )
        })
        .collect();
    // What batching did with 8 clients, from the two rows that differ in it alone.
    let rps = |batch: u64| {
        api.iter()
            .find(|r| r["concurrency"] != 1 && r["max_batch"].as_u64() == Some(batch))
            .and_then(|r| r["requests_per_s"].as_f64())
    };
    let batching = match (rps(1), rps(16)) {
        (Some(one), Some(b)) => format!(
            "With {concurrency} clients, batches of up to 16 served {:.2}x the requests of one by \
             one (here a batched forward pass costs {} per image); `serve`'s default is \
             `--max-batch 16`. One client is never batched: nothing queues behind it.",
            b / one,
            if b > one { "less" } else { "more" },
        ),
        _ => "The batched rows are missing.".to_string(),
    };
    Ok(format!(
        "## Prediction API under load\n\n\
`cargo xtask bench api`. `accessatlas serve` (release build, CPU, the shipped\n\
EfficientNet-Lite0 bundle) on 127.0.0.1; a Rust client (`benches/api_load.rs`) sends\n\
{requests} `POST /api/predict` requests (multipart, 256x256 rendered map tiles) from 1 and then\n\
{concurrency} client threads. `--max-batch` is how many queued requests the server runs as one\n\
batch. Peak RSS is the server's (`VmHWM`) over its whole run. No reference: no other tool serves\n\
this model.\n\n\
| client threads | max batch | requests | requests/s | latency p50 / p99 | errors | server peak RSS |\n\
|---|---|---|---|---|---|---|\n\
{}\n\n\
{batching}\n",
        table.join("\n"),
    ))
}

fn suggest_section() -> Result<String> {
    let side = "500";
    let rows = cargo_bench("suggest", &["--side-m", side])?;
    let r = find(&rows, "suggest_cli")?;
    let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    Ok(format!(
        "## Suggestions\n\n\
`cargo xtask bench suggest`. The suggestion pipeline of `accessatlas suggest` and\n\
`GET /api/suggest` (`benches/suggest.rs`: candidates from the bundled extract's geometry, tiles\n\
rendered, the shipped bundle on the CPU in batches of 16, at the model's default threshold\n\
({:.2}), nothing already mapped) over a {side} m x {side} m square of central Helsinki. No\n\
reference: no other tool suggests these features. The page scores 48 to 480 candidates per\n\
scan in its worker (as many as fit in 3 s): see\n\
\"In the browser\", \"Suggestions in the page\", for its rate on views of central Helsinki.\n\n\
| area | candidates | suggestions | seconds | candidates/s | suggestions/s |\n\
|---|---|---|---|---|---|\n\
| {:.2} km² | {} | {} | {:.1} | {:.1} | {:.2} |\n",
        n("threshold"),
        n("area_km2"),
        r["candidates"],
        r["suggestions"],
        n("seconds"),
        n("candidates_per_s"),
        n("suggestions_per_s"),
    ))
}

#[cfg(test)]
mod tests {
    /// The run record tells apart machines that share a model name.
    #[test]
    fn the_cpu_names_its_family_model_and_vector_width() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\n";
        assert_eq!(super::cpu_of(info), "AMD EPYC (family 26, model 2, AVX-512)");
        let older = info.replace(" avx512f", "").replace(": 26", ": 25");
        assert_eq!(super::cpu_of(&older), "AMD EPYC (family 25, model 2, AVX2)");
    }

    use super::merge;

    #[test]
    fn merging_replaces_sections_by_title_and_keeps_the_rest() {
        let old = "# B\n\nold header\n\n## A\n\na1\n\n## B\n\nb1\n";
        let new = vec!["## B\n\nb2\n".to_string(), "## C\n\nc2\n".to_string()];
        assert_eq!(
            merge("# B\n\nnew", old, &new, false),
            "# B\n\nnew\n\n## A\n\na1\n\n## B\n\nb2\n\n## C\n\nc2\n"
        );
        assert_eq!(merge("# B", old, &new, true), "# B\n\n## B\n\nb2\n\n## C\n\nc2\n");
    }
}
