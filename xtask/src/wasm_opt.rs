//! `cargo xtask bench wasm-opt`: the model worker's wasm at each wasm-opt level, to choose the
//! one `index.html` names by measurement. One unoptimised trunk build (the worker's
//! `data-wasm-opt` set to 0 in a copy of `index.html`), then per level: `wasm-opt` with the
//! page's own parameters on that wasm (its time), the file's size raw and gzip, and the
//! browser benchmark's forward pass on a copy of the app holding it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, output, run, web};

/// The levels measured (wasm-opt's `-O2` ... `-Oz`).
pub const LEVELS: [&str; 5] = ["2", "3", "4", "s", "z"];

/// The worker's `<link>` in `index.html`, and its `data-wasm-opt` level and parameters.
fn worker_link(index: &str) -> Result<(&str, String, String)> {
    let line = index
        .lines()
        .find(|l| l.contains("data-type=\"worker\""))
        .context("index.html: no worker link (data-type=\"worker\")")?;
    let attr = |name: &str| -> Result<String> {
        let key = format!("{name}=\"");
        let start = line.find(&key).with_context(|| format!("the worker link has no {name}"))?;
        let rest = &line[start + key.len()..];
        Ok(rest[..rest.find('"').context("an unclosed attribute")?].to_string())
    };
    Ok((line, attr("data-wasm-opt")?, attr("data-wasm-opt-params")?))
}

/// `index.html` with the worker's wasm left unoptimised.
fn unoptimised(index: &str) -> Result<String> {
    let (line, level, _) = worker_link(index)?;
    let off = line.replace(&format!("data-wasm-opt=\"{level}\""), "data-wasm-opt=\"0\"");
    if off == line {
        bail!("index.html: the worker's data-wasm-opt could not be set to 0");
    }
    Ok(index.replace(line, &off))
}

/// The "Worker wasm by wasm-opt level" section.
pub fn section(root: &Path) -> Result<String> {
    let index = std::fs::read_to_string(root.join("index.html"))?;
    let (_, current, params) = worker_link(&index)?;
    web::ensure_tools()?;
    web::ensure_chromium()?;
    crate::crates::ensure_crates(root, None)?;
    let work = std::env::temp_dir().join("accessatlas-wasm-opt");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    // Trunk reads the page's assets relative to the HTML file: the copy sits beside it.
    let copy = root.join("index.wasm-opt-0.html");
    std::fs::write(&copy, unoptimised(&index)?)?;
    let plain = work.join("O0");
    let built = run(Command::new(web::tools_root().join("bin").join("trunk"))
        .current_dir(root)
        .env("PATH", web::tools_path())
        .env("CARGO_TARGET_DIR", web::wasm_target_dir())
        // The target first: `--release` takes an optional value and would read it as one.
        .arg("build")
        .arg(&copy)
        .args(["--release", "--dist"])
        .arg(&plain));
    let _ = std::fs::remove_file(&copy);
    built?;
    let wasm = plain.join("worker_bg.wasm");
    let mut rows = Vec::new();
    for level in LEVELS {
        let dist = work.join(format!("O{level}"));
        run(Command::new("cp").arg("-r").arg(&plain).arg(&dist))?;
        let started = Instant::now();
        run(Command::new(web::tools_root().join("bin").join("wasm-opt"))
            .arg(format!("-O{level}"))
            .args(params.split_whitespace())
            .arg(&wasm)
            .arg("-o")
            .arg(dist.join("worker_bg.wasm")))?;
        let opt_s = started.elapsed().as_secs_f64();
        let out = dist.join("worker_bg.wasm");
        let raw = std::fs::metadata(&out)?.len() as f64;
        let gzip: f64 = output(
            Command::new("sh").arg("-c").arg(format!("gzip -9 -c '{}' | wc -c", out.display())),
        )?
        .trim()
        .parse()
        .context("gzip's size")?;
        let bench = output(
            cargo()
                .env("ACCESSATLAS_DIST", &dist)
                .args(["bench", "--quiet", "--bench", "browser", "--"])
                .args(["--loads", "2", "--predictions", "40"]),
        )?;
        let row = bench
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["bench"] == "browser_cpu")
            .context("the browser benchmark gave no browser_cpu row")?;
        let ms = |k: &str| row[k].as_f64().unwrap_or(f64::NAN);
        rows.push((
            level,
            raw,
            gzip,
            opt_s,
            ms("model_p50_ms"),
            ms("model_p95_ms"),
            ms("warm_ready_ms"),
        ));
    }
    let _ = std::fs::remove_dir_all(&work);
    let mut table = String::from(
        "| level | worker wasm | gzip | wasm-opt's time | forward pass p50 / p95 | page load to model ready, warm |\n|---|---|---|---|---|---|\n",
    );
    for (level, raw, gzip, opt_s, p50, p95, warm) in &rows {
        let mark = if *level == current { " (index.html's when measured)" } else { "" };
        table += &format!(
            "| -O{level}{mark} | {:.2} MB | {:.2} MB | {opt_s:.0} s | {p50:.0} / {p95:.0} ms | {warm:.0} ms |\n",
            raw / 1e6,
            gzip / 1e6,
        );
    }
    Ok(format!(
        "## Worker wasm by wasm-opt level\n\n\
`cargo xtask bench wasm-opt`. The model worker's wasm (`trunk build --release` with its \
wasm-opt step off, then `wasm-opt -O<level>` with index.html's parameters on it), each in a \
copy of the built app, through the browser benchmark (headless Chromium, CPU backend, 40 \
predictions, two page loads). The page's own wasm (`-Oz`) is the same in every row.\n\n{table}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worker's level and parameters are read from index.html, and only the worker's
    /// level is turned off in the copy (the page's own wasm keeps its `-Oz`).
    #[test]
    fn the_unoptimised_copy_turns_off_the_worker_s_wasm_opt_only() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let index = std::fs::read_to_string(root.join("index.html")).unwrap();
        let (_, level, params) = worker_link(&index).unwrap();
        assert!(LEVELS.contains(&level.as_str()), "index.html's worker level {level}");
        assert!(params.contains("--enable-simd"), "{params}");
        let copy = unoptimised(&index).unwrap();
        let (_, off, _) = worker_link(&copy).unwrap();
        assert_eq!(off, "0");
        let changed = index.lines().zip(copy.lines()).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 1, "only the worker's line differs");
        assert!(unoptimised("<html></html>").is_err());
    }
}
