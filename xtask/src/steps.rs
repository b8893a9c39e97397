//! Each step of a long task timed (`cargo xtask serve`, `cargo xtask test`): the step's time
//! as it ends, and all of them at the end, so a first run on a new machine says where its
//! minutes went.

use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

static DONE: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());
/// When the first step began: the summary's wall-clock total (steps may run side by side).
static FIRST: OnceLock<Instant> = OnceLock::new();

fn begin(name: &str) -> Instant {
    eprintln!("xtask: {name} ...");
    let now = Instant::now();
    FIRST.get_or_init(|| now);
    now
}

fn end(name: &str, took: Duration) {
    eprintln!("xtask: {name}: {}", words(took));
    DONE.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_string(), took));
}

/// Runs `f` as the step `name`, says how long it took, and keeps the time for [`summary`].
pub fn time<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let started = begin(name);
    let out = f();
    end(name, started.elapsed());
    out
}

/// A step run as a child process beside the next ones (on 2 cores each leaves a core idle at
/// times: links, LTO, wasm-opt), its output in a log file; [`Beside::wait`] ends it. Dropped
/// unwaited (the steps beside it failed), the child is stopped.
pub struct Beside {
    name: String,
    /// The child's exit and when it came (a thread waits for it, so the step's time is its
    /// own, not the time until [`Beside::wait`] is called).
    done: Receiver<(std::io::Result<ExitStatus>, Instant)>,
    pid: u32,
    waited: bool,
    log: PathBuf,
    started: Instant,
}

impl Beside {
    pub fn start(name: &str, cmd: &mut Command, log: PathBuf) -> Result<Self> {
        let started =
            begin(&format!("{name} (beside the next steps; output in {})", log.display()));
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        let mut child = cmd
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        let pid = child.id();
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait();
            let _ = tx.send((status, Instant::now()));
        });
        let name = format!("{name}, beside the steps after it");
        Ok(Self { name, done, pid, waited: false, log, started })
    }

    /// Waits for the step; its failure carries the end of its output.
    pub fn wait(mut self) -> Result<()> {
        self.waited = true;
        let (status, ended) = self.done.recv().context("the step's waiting thread")?;
        let status = status?;
        end(&self.name, ended - self.started);
        if !status.success() {
            let out = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = out.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "{} failed ({status}); the end of {}:\n{}",
                self.name,
                self.log.display(),
                tail.join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        if !self.waited {
            // SAFETY: a plain signal to the child this step started (its waiting thread
            // still holds it, so the pid is not reused yet).
            unsafe {
                libc::kill(self.pid as i32, libc::SIGKILL);
            }
        }
    }
}

/// `1 min 05 s`, `12.3 s`.
pub fn words(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// The steps timed so far, one line each, and their total.
pub fn summary() -> String {
    let done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::from("xtask: time by step\n");
    for (name, took) in done.iter() {
        out += &format!("  {:>12}  {name}\n", words(*took));
    }
    let total = FIRST.get().map(Instant::elapsed).unwrap_or_default();
    out += &format!("  {:>12}  in all (wall clock; some steps ran side by side)\n", words(total));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_minutes_and_seconds() {
        assert_eq!(words(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(words(Duration::from_secs(65)), "1 min 05 s");
        assert_eq!(words(Duration::from_secs(1800)), "30 min 00 s");
    }

    #[test]
    fn each_step_is_kept_and_summed() {
        let v = time("a step of the test", || 7);
        assert_eq!(v, 7);
        let s = summary();
        assert!(s.contains("a step of the test"), "{s}");
        assert!(s.lines().last().unwrap().contains("in all"), "{s}");
    }
}

#[cfg(test)]
mod beside_tests {
    use super::*;

    #[test]
    fn a_step_beside_others_reports_its_failure_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let ok = Beside::start(
            "a step that works",
            Command::new("sh").args(["-c", "echo fine"]),
            dir.path().join("ok.log"),
        )
        .unwrap();
        ok.wait().unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("ok.log")).unwrap(), "fine\n");
        let bad = Beside::start(
            "a step that fails",
            Command::new("sh").args(["-c", "echo the reason; exit 3"]),
            dir.path().join("bad.log"),
        )
        .unwrap();
        let err = bad.wait().unwrap_err().to_string();
        assert!(err.contains("a step that fails") && err.contains("the reason"), "{err}");
        assert!(summary().contains("a step that works"));
        // Its time is its own, not the time until it was waited for.
        let quick = Beside::start(
            "a quick step",
            Command::new("sh").args(["-c", "true"]),
            dir.path().join("quick.log"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        quick.wait().unwrap();
        let line = summary().lines().find(|l| l.contains("a quick step")).unwrap().to_string();
        let secs: f64 = line.trim().split(' ').next().unwrap().parse().unwrap();
        assert!(secs < 1.0, "{line}");
    }
}
