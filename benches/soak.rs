//! Soak of `accessatlas serve` (run by `cargo xtask soak`; never a test): the release binary on
//! 127.0.0.1 with the shipped bundle and the bundled extract, driven for a bounded time by
//! several client threads with a mix of what the page and API clients send: predictions,
//! features, candidates, small suggestion areas, map tiles, and bad requests. Every answer is
//! checked: a good request must get 2xx (or 503 with `Retry-After`, the documented overload
//! answer), a bad one its 4xx; anything else, or no answer, counts as an error. Each interval
//! prints one JSON row (requests/s, p50/p99, errors, 503s, the server's RSS); then a flood of
//! distinct zoom-19 tiles over the extract from many clients (answers by status, the slowest,
//! peak RSS), and whether the server answers `/api/health` after it.
//!
//! `--seconds S` (default 600) `--interval I` (default 60) `--clients C` (default 4)
//! `--flood-seconds F` (default 30) `--flood-clients K` (default 32).

mod util;
use util::{Server, arg, percentile, predict_bodies, proc_mb};

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use model_core::data::tile::lat_lon_to_tile;
use serde_json::json;

/// What a request was and what it must get.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// 2xx, or 503 with `Retry-After`.
    Ok,
    /// As `Ok`, or this 4xx (an area with nothing mapped in it).
    OkOr(u16),
    /// This 4xx.
    Refused(u16),
}

/// One answered (or failed) request.
struct Sample {
    ms: f64,
    error: bool,
    busy: bool,
}

/// The central Helsinki area the clients ask about (inside the bundled extract).
const LAT: (f64, f64) = (60.1640, 60.1760);
const LON: (f64, f64) = (24.9280, 24.9560);

fn main() {
    let seconds = arg("--seconds", 600u64).max(1);
    let interval = arg("--interval", 60u64).clamp(1, seconds);
    let clients = arg("--clients", 4usize).max(1);
    let flood_seconds = arg("--flood-seconds", 30u64);
    let flood_clients = arg("--flood-clients", 32usize).max(1);
    let server = Server::start(&[]);
    let (pid, base) = (server.pid(), server.base.clone());
    let bodies = predict_bodies();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into();

    let samples = Mutex::new(Vec::<Sample>::new());
    let stop = AtomicBool::new(false);
    let counter = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let (agent, base, bodies, samples, stop, counter) =
                (&agent, &base, &bodies, &samples, &stop, &counter);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = counter.fetch_add(1, Ordering::Relaxed);
                    let sample = one_request(agent, base, bodies, i, c);
                    samples.lock().unwrap().push(sample);
                }
            });
        }
        // The reporter: one row per interval, then stop the clients.
        let mut minute = 0;
        while start.elapsed().as_secs() < seconds {
            std::thread::sleep(Duration::from_secs(interval));
            minute += 1;
            let taken: Vec<Sample> = std::mem::take(&mut *samples.lock().unwrap());
            let lat: Vec<f64> = taken.iter().map(|x| x.ms).collect();
            println!(
                "{}",
                json!({
                    "bench": "soak",
                    "interval": minute,
                    "at_s": start.elapsed().as_secs_f64(),
                    "requests": taken.len(),
                    "requests_per_s": taken.len() as f64 / interval as f64,
                    "p50_ms": if lat.is_empty() { f64::NAN } else { percentile(lat.clone(), 0.5) },
                    "p99_ms": if lat.is_empty() { f64::NAN } else { percentile(lat, 0.99) },
                    "errors": taken.iter().filter(|x| x.error).count(),
                    "busy_503": taken.iter().filter(|x| x.busy).count(),
                    "rss_mb": proc_mb(pid, "VmRSS:"),
                })
            );
        }
        stop.store(true, Ordering::Relaxed);
    });

    // The tile flood: distinct zoom-19 tiles over the whole area, each once, many clients.
    let (a, b) =
        (lat_lon_to_tile(LAT.1, LON.0, 19).unwrap(), lat_lon_to_tile(LAT.0, LON.1, 19).unwrap());
    let tiles: Vec<(u32, u32)> =
        (a.y..=b.y).flat_map(|y| (a.x..=b.x).map(move |x| (x, y))).collect();
    let next = AtomicU64::new(0);
    let flood_start = Instant::now();
    let answers: Vec<(u16, f64)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..flood_clients)
            .map(|_| {
                let (agent, base, tiles, next) = (&agent, &base, &tiles, &next);
                s.spawn(move || {
                    let mut out = Vec::new();
                    while flood_start.elapsed().as_secs() < flood_seconds {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(&(x, y)) = tiles.get(i) else { break };
                        let t = Instant::now();
                        let status = agent
                            .get(&format!("{base}/tiles/19/{x}/{y}.png"))
                            .call()
                            .map_or(0, |r| r.status().as_u16());
                        out.push((status, t.elapsed().as_secs_f64() * 1e3));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let flood_secs = flood_start.elapsed().as_secs_f64();
    let count = |code: u16| answers.iter().filter(|a| a.0 == code).count();
    let t = Instant::now();
    let health = agent.get(&format!("{base}/api/health")).call().map_or(0, |r| r.status().as_u16());
    println!(
        "{}",
        json!({
            "bench": "tile_flood",
            "clients": flood_clients,
            "seconds": flood_secs,
            "tiles_in_area": tiles.len(),
            "requests": answers.len(),
            "ok_200": count(200),
            "busy_503": count(503),
            "other": answers.len() - count(200) - count(503),
            "requests_per_s": answers.len() as f64 / flood_secs,
            "slowest_ms": answers.iter().map(|a| a.1).fold(0.0, f64::max),
            "peak_rss_mb": proc_mb(pid, "VmHWM:"),
            "health_after": health,
            "health_after_ms": t.elapsed().as_secs_f64() * 1e3,
        })
    );
    drop(server);
}

/// Request number `i` of client `c`: the mix cycles through what clients send.
fn one_request(
    agent: &ureq::Agent,
    base: &str,
    bodies: &[(String, Vec<u8>)],
    i: u64,
    c: usize,
) -> Sample {
    // A place in the area that moves with i (a golden-ratio walk, so places rarely repeat).
    let f = |k: f64| ((i as f64 + c as f64 * 0.37) * k).fract();
    let (lat, lon) =
        (LAT.0 + (LAT.1 - LAT.0) * f(0.618_034), LON.0 + (LON.1 - LON.0) * f(0.414_214));
    let bbox = |side_deg: f64| {
        format!("{:.6},{:.6},{:.6},{:.6}", lon, lat, lon + side_deg * 2.0, lat + side_deg)
    };
    let t = Instant::now();
    let (result, expect) = match i % 10 {
        0..=2 => {
            let (ct, body) = &bodies[i as usize % bodies.len()];
            (
                agent
                    .post(&format!("{base}/api/predict"))
                    .header("Content-Type", ct)
                    .send(&body[..]),
                Expect::Ok,
            )
        }
        3 => (agent.get(&format!("{base}/api/features?bbox={}", bbox(0.004))).call(), Expect::Ok),
        4 => (
            agent.get(&format!("{base}/api/candidates?bbox={}", bbox(0.002))).call(),
            Expect::OkOr(422),
        ),
        // About 55 m x 55 m: a few dozen candidates through the model.
        5 => (
            agent.get(&format!("{base}/api/suggest?bbox={}", bbox(0.0005))).call(),
            Expect::OkOr(422),
        ),
        6 | 7 => {
            let z = 17 + (i % 3) as u8;
            let t = lat_lon_to_tile(lat, lon, z).unwrap();
            (agent.get(&format!("{base}/tiles/{z}/{}/{}.png", t.x, t.y)).call(), Expect::Ok)
        }
        8 => (
            agent.get(&format!("{base}/api/features?bbox={},{}", lat, lon)).call(),
            Expect::Refused(400),
        ),
        _ => (
            agent
                .post(&format!("{base}/api/predict"))
                .header("Content-Type", "application/json")
                .send(&b"{\"lat\": 60.17, \"lon\": "[..]),
            Expect::Refused(400),
        ),
    };
    let ms = t.elapsed().as_secs_f64() * 1e3;
    match result {
        Err(_) => Sample { ms, error: true, busy: false },
        Ok(r) => {
            let status = r.status().as_u16();
            let busy = status == 503 && r.headers().contains_key("retry-after");
            let error = match expect {
                Expect::Ok => !(200..300).contains(&status) && !busy,
                Expect::OkOr(code) => !(200..300).contains(&status) && !busy && status != code,
                Expect::Refused(code) => status != code,
            };
            Sample { ms, error, busy }
        }
    }
}
