//! Load check of the prediction API (run by `cargo xtask bench`; not a test): starts the real
//! `accessatlas serve` binary on 127.0.0.1 with the shipped bundle, sends a bounded number of
//! `POST /api/predict` requests (multipart, a rendered map tile) from C client threads, and
//! reports requests/second, latency p50/p99, errors and the server's peak RSS.
//!
//! `--requests N --concurrency C --max-batch B` (defaults 200, 8 and 16; also run at concurrency 1 to show what
//! batching gives). Prints one JSON line per concurrency.

mod util;
use util::{Server, arg, percentile, predict_bodies, proc_mb};

use std::time::Instant;

use serde_json::json;

fn main() {
    let requests = arg("--requests", 200).max(1);
    let concurrency = arg("--concurrency", 8).max(1);
    let max_batch = arg("--max-batch", 16).max(1);
    let server = Server::start(&["--max-batch", &max_batch.to_string()]);
    let (pid, url) = (server.pid(), format!("{}/api/predict", server.base));
    let bodies = predict_bodies();
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    // Warm-up: the first requests allocate the model's buffers.
    for (ct, body) in bodies.iter().take(2) {
        agent.post(&url).header("Content-Type", ct).send(&body[..]).unwrap();
    }

    let mut levels = vec![1, concurrency];
    levels.dedup();
    for c in levels {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let start = Instant::now();
        let results: Vec<(f64, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..c)
                .map(|_| {
                    let (agent, url, bodies, next) = (&agent, &url, &bodies, &next);
                    s.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if i >= requests {
                                break;
                            }
                            let (ct, body) = &bodies[i % bodies.len()];
                            let t = Instant::now();
                            let ok = agent
                                .post(url)
                                .header("Content-Type", ct)
                                .send(&body[..])
                                .is_ok_and(|r| r.status() == 200);
                            out.push((t.elapsed().as_secs_f64() * 1e3, ok));
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let secs = start.elapsed().as_secs_f64();
        let lat: Vec<f64> = results.iter().map(|r| r.0).collect();
        println!(
            "{}",
            json!({
                "bench": "api_load",
                "concurrency": c,
                "max_batch": max_batch,
                "requests": results.len(),
                "errors": results.iter().filter(|r| !r.1).count(),
                "requests_per_s": results.len() as f64 / secs,
                "p50_ms": percentile(lat.clone(), 0.5),
                "p99_ms": percentile(lat, 0.99),
                "peak_rss_mb": proc_mb(pid, "VmHWM:"),
            })
        );
    }
    drop(server);
}
