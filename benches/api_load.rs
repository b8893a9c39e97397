//! Load check of the prediction API (run by `cargo xtask bench`; not a test): starts the real
//! `accessatlas serve` binary on 127.0.0.1 with the shipped bundle, sends a bounded number of
//! `POST /api/predict` requests (multipart, a rendered map tile) from C client threads, and
//! reports requests/second, latency p50/p99, errors and the server's peak RSS.
//!
//! `--requests N --concurrency C --max-batch B` (defaults 200, 8 and 16; also run at concurrency 1 to show what
//! batching gives). Prints one JSON line per concurrency.

mod util;
use util::{arg, percentile};

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use accessatlas::osm::OsmMap;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use accessatlas::render::Renderer;
use model_core::data::tile::lat_lon_to_tile;
use serde_json::json;

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Peak resident set size of a process, MB (Linux `VmHWM`).
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn multipart(png: &[u8], lat: f64, lon: f64) -> (String, Vec<u8>) {
    let b = "accessatlas-bench-boundary";
    let mut body = Vec::new();
    write!(body, "--{b}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"t.png\"\r\nContent-Type: image/png\r\n\r\n").unwrap();
    body.extend_from_slice(png);
    for (k, v) in [("lat", lat.to_string()), ("lon", lon.to_string()), ("source", "osm".into())] {
        write!(body, "\r\n--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}")
            .unwrap();
    }
    write!(body, "\r\n--{b}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={b}"), body)
}

fn main() {
    let requests = arg("--requests", 200).max(1);
    let concurrency = arg("--concurrency", 8).max(1);
    let max_batch = arg("--max-batch", 16).max(1);
    let root = env!("CARGO_MANIFEST_DIR");
    let mut child = Command::new(env!("CARGO_BIN_EXE_accessatlas"))
        .args(["serve", "--addr", "127.0.0.1:0", "--dist", "/nonexistent", "--model"])
        .arg(format!("{root}/assets/model"))
        .args(["--max-batch", &max_batch.to_string()])
        .env("ACCESSATLAS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting accessatlas serve");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let server = Server(child);
    let first = lines.next().expect("serve printed nothing").unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an address")
        .trim_end_matches('/')
        .to_string();
    let url = format!("{base}/api/predict");
    std::thread::spawn(move || lines.for_each(drop));

    // Distinct real tiles, cycled.
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let r = Renderer::new(&map, 19).unwrap();
    let bodies: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| {
            let (lat, lon) = (60.1680 + 0.0003 * f64::from(i), 24.9360 + 0.0004 * f64::from(i));
            let img = image::DynamicImage::ImageRgba8(
                r.render_tile(lat_lon_to_tile(lat, lon, 19).unwrap()),
            )
            .to_rgb8();
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
            multipart(&png, lat, lon)
        })
        .collect();
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
                "peak_rss_mb": peak_rss_mb(pid),
            })
        );
    }
    drop(server);
}
