//! Each step of a long task timed (`cargo xtask serve`, `cargo xtask test`): the step's time
//! as it ends, and all of them at the end, so a first run on a new machine says where its
//! minutes went.

use std::sync::Mutex;
use std::time::{Duration, Instant};

static DONE: Mutex<Vec<(String, Duration)>> = Mutex::new(Vec::new());

/// Runs `f` as the step `name`, says how long it took, and keeps the time for [`summary`].
pub fn time<T>(name: &str, f: impl FnOnce() -> T) -> T {
    eprintln!("xtask: {name} ...");
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    eprintln!("xtask: {name}: {}", words(took));
    DONE.lock().unwrap_or_else(|e| e.into_inner()).push((name.to_string(), took));
    out
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
    let total: Duration = done.iter().map(|(_, d)| *d).sum();
    out += &format!("  {:>12}  in all\n", words(total));
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
        assert!(s.lines().last().unwrap().ends_with("in all"), "{s}");
    }
}
