//! `cargo xtask first-run [--test] [--port 8099] [--limit-min 150]`: the README's set-up
//! commands as a new user meets them, measured. A clean clone of the committed `HEAD`, an
//! empty cargo home (the toolchain itself stays: rustup is not part of the project's set-up),
//! an empty tool cache and new target dirs; `cargo xtask serve` runs there until the server
//! answers `/api/health`, then stops. The time to that answer and the time of each step (the
//! serve's own step summary) go to BENCHMARKS.md's "First run" section. With `--test`, the
//! same for `cargo xtask test`, run to its end (section "Tests from nothing").
//!
//! What stays from this machine: the Rust toolchain and its wasm32 target, and what Debian
//! packages are installed (Node.js and npm, which a fresh Debian would first install).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::{merge_into_benchmarks, run_record};
use crate::{output, run, steps};

pub fn first_run(root: &Path, args: &[String]) -> Result<()> {
    let value = |flag: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == flag) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("{flag} needs a whole number")),
            None => Ok(default),
        }
    };
    let port = value("--port", 8099)? as u16;
    let limit = Duration::from_secs(value("--limit-min", 150)? * 60);
    let tests = args.iter().any(|a| a == "--test");
    let task = if tests { "test" } else { "serve" };

    let dir = std::env::temp_dir().join("accessatlas-first-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cargo-home"))?;
    let clone = dir.join("clone");
    run(Command::new("git").args(["clone", "-q"]).arg(root).arg(&clone))?;

    // The toolchain's own binaries (not rustup's proxies in the old cargo home) and rustup.
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let toolchain_bin = Path::new(sysroot.trim()).join("bin");
    let rustup_bin = dir.join("rustup-bin");
    std::fs::create_dir_all(&rustup_bin)?;
    let rustup = output(Command::new("sh").args(["-c", "command -v rustup"]))?;
    std::os::unix::fs::symlink(rustup.trim(), rustup_bin.join("rustup"))?;
    let path = format!(
        "{}:{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        toolchain_bin.display(),
        rustup_bin.display()
    );

    let log = dir.join(format!("{task}.log"));
    let mut cmd = Command::new(toolchain_bin.join("cargo"));
    cmd.current_dir(&clone).args(["xtask", task]);
    if !tests {
        cmd.args(["--port", &port.to_string()]);
    }
    cmd.env("PATH", path)
        .env("CARGO_HOME", dir.join("cargo-home"))
        .env("ACCESSATLAS_CACHE", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::OpenOptions::new().append(true).open(&log)?)
        .process_group(0);
    // Nothing of this cargo's environment (its target dir, its own path) leaks in.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CARGO") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("CARGO_HOME", dir.join("cargo-home"));
    eprintln!(
        "xtask first-run: cargo xtask {task} in {} (log: {})",
        clone.display(),
        log.display()
    );
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting cargo xtask {task}"))?;
    let pgid = child.id() as i32;
    let stop = || unsafe {
        libc::kill(-pgid, libc::SIGTERM);
    };
    let done = loop {
        if let Some(status) = child.try_wait()? {
            if tests && status.success() {
                break started.elapsed();
            }
            bail!("cargo xtask {task} ended ({status}); see {}", log.display());
        }
        if !tests && healthy(port) {
            break started.elapsed();
        }
        if started.elapsed() > limit {
            stop();
            bail!("not done after {}; see {}", steps::words(limit), log.display());
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    stop();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log)?;
    let steps =
        step_times(&text).with_context(|| format!("no step summary in {}", log.display()))?;
    // The record of what was measured: the clone (always clean), not this working tree.
    // What a first run leaves on the disk: the clone with its target dirs, the cargo home and
    // the tool cache.
    let disk = dir_bytes(&dir);
    eprintln!("xtask first-run: {:.1} GB on disk", disk as f64 / 1e9);
    let section = if tests { tests_section(done, &steps, disk) } else { section(done, &steps) };
    let title = section.lines().next().unwrap_or_default().trim_start_matches("## ").to_string();
    merge_into_benchmarks(root, crate::bench::stamp(&section, &run_record(&clone)))?;
    eprintln!("BENCHMARKS.md written ({title}): {} from nothing", steps::words(done));
    Ok(())
}

/// Whether `GET /api/health` on 127.0.0.1:`port` answers 200.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /api/health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    s.read(&mut head).is_ok_and(|n| String::from_utf8_lossy(&head[..n]).contains(" 200"))
}

/// The lines of the serve's "time by step" summary: `(time, step)`, the total last.
fn step_times(log: &str) -> Option<Vec<(String, String)>> {
    let start = log.rfind("xtask: time by step")?;
    let rows = log[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| {
            let l = l.trim();
            // `12 min 05 s  name` or `12.3 s  name`: the time ends at the first "s  ".
            let cut = l.find(" s  ")?;
            Some((l[..cut + 2].to_string(), l[cut + 4..].trim().to_string()))
        })
        .collect::<Vec<_>>();
    (!rows.is_empty()).then_some(rows)
}

fn section(serving: Duration, steps: &[(String, String)]) -> String {
    let out = format!(
        "## First run\n\n\
`cargo xtask first-run`: the README's `cargo xtask serve` on a clean clone of the commit named\n\
above, with an empty cargo home (every crate downloaded from crates.io), an empty tool cache\n\
(trunk and wasm-bindgen-cli built from source, npm's binaryen installed) and new target dirs,\n\
until the server answers `/api/health`. Kept from the machine: the Rust toolchain with its\n\
wasm32 target, the Debian packages (Node.js and npm among them) and npm's cache. Steps\n\
marked \"beside\" ran at the same time as the ones after them, so the steps add up to more\n\
than the whole.\n\n\
**Serving after {}.**\n\n\
| step | time |\n|---|---|\n",
        steps::words(serving)
    );
    out + &step_rows(steps)
}

/// The step table's rows, one a step.
fn step_rows(steps: &[(String, String)]) -> String {
    steps.iter().map(|(time, name)| format!("| {name} | {time} |\n")).collect()
}

/// The bytes of the files under `dir` (links not followed).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn tests_section(done: Duration, steps: &[(String, String)], disk: u64) -> String {
    let out = format!(
        "## Tests from nothing\n\n\
`cargo xtask first-run --test`: the README's `cargo xtask test` (everything CI runs) on a clean\n\
clone of the commit named above, with an empty cargo home, an empty tool cache (trunk,\n\
wasm-bindgen-cli, wasm-opt, the pretrained weights and the test venvs fetched again) and new\n\
target dirs, to its end. Kept from the machine: the Rust toolchain with its wasm32 target, the\n\
Debian packages (Chromium, JOSM, osmium-tool, Node.js and npm among them) and npm's and pip's\n\
caches.\n\n\
**All green after {}**, with {:.1} GB on the disk at the end (the clone with its target\n\
dirs, the cargo home and the tool cache).\n\n\
| step | time |\n|---|---|\n",
        steps::words(done),
        disk as f64 / 1e9
    );
    out + &step_rows(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_summary_is_read_back() {
        let log = "noise\nxtask: time by step\n     1 min 05 s  installing trunk\n        12.3 s  \
                   wasm-opt (npm binaryen)\n    20 min 00 s  in all (wall clock; some steps ran \
                   side by side)\n$ cargo run\n";
        let rows = step_times(log).unwrap();
        assert_eq!(rows[0], ("1 min 05 s".to_string(), "installing trunk".to_string()));
        assert_eq!(rows[1], ("12.3 s".to_string(), "wasm-opt (npm binaryen)".to_string()));
        assert_eq!(rows.len(), 3);
        assert!(step_times("no summary here").is_none());
        let s = section(Duration::from_secs(1500), &rows);
        assert!(s.starts_with("## First run\n") && s.contains("**Serving after 25 min 00 s.**"));
        assert!(s.contains("| installing trunk | 1 min 05 s |"), "{s}");
        let t = tests_section(Duration::from_secs(3600), &rows, 12_340_000_000);
        assert!(t.starts_with("## Tests from nothing\n") && t.contains("**All green after 60 min"));
        assert!(t.contains("with 12.3 GB on the disk"), "{t}");
    }
}
