//! Browser benchmark (run by `cargo xtask bench`; not a test): the built app in headless
//! Chromium on the CPU backend. Page load to model-ready (first load in a fresh profile, then
//! reloads with a warm HTTP cache) and prediction latency p50/p95 (request to answer on the
//! page, worker messaging included; and the model's own forward pass).
//!
//! `--loads N --predictions M` (defaults 3 and 30). Prints one JSON line.

#[path = "../tests/common/mod.rs"]
mod common;

use common::browser::*;
use fantoccini::Locator;
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

async fn ready_ms(c: &fantoccini::Client) -> f64 {
    let v = wait_js(
        c,
        "(b => b && b.dataset.readyMs)(document.querySelector('[data-testid=backend-badge]'))",
        "the model",
        300,
    )
    .await;
    v.as_str().and_then(|s| s.parse().ok()).expect("a number")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let loads = arg("--loads", 3).max(1);
    let predictions = arg("--predictions", 30).max(1);
    let session = Session::start("bench", false).await;
    let c = &session.client;
    let url = session.url("cpu");

    let mut ready = Vec::new();
    for _ in 0..loads {
        c.goto(&url).await.unwrap();
        ready.push(ready_ms(c).await);
    }
    let cold = ready[0];
    let warm = if ready.len() > 1 { percentile(ready[1..].to_vec(), 0.5) } else { cold };

    let map = c.find(Locator::Css(".leaflet-container")).await.unwrap();
    let (mut latency, mut model) = (Vec::new(), Vec::new());
    for i in 0..predictions + 1 {
        c.execute(
            "document.querySelector('[data-testid=prediction]').dataset.state = 'idle'",
            vec![],
        )
        .await
        .unwrap();
        map.click().await.unwrap();
        let t = wait_js(
            c,
            "(p => p.dataset.state === 'done' && p.dataset.timing)(document.querySelector('[data-testid=prediction]'))",
            "a prediction",
            120,
        )
        .await;
        let parts: Vec<f64> =
            t.as_str().unwrap().split(' ').filter_map(|x| x.parse().ok()).collect();
        if i > 0 {
            // The first click also warms the browser's tile cache; not counted.
            latency.push(parts[0]);
            model.push(parts[1]);
        }
    }
    session.client.close().await.unwrap();
    let version = std::process::Command::new(
        std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    )
    .arg("--version")
    .output()
    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    .unwrap_or_default();
    println!(
        "{}",
        json!({
            "bench": "browser_cpu",
            "browser": version,
            "loads": loads,
            "predictions": predictions,
            "cold_ready_ms": cold,
            "warm_ready_ms": warm,
            "latency_p50_ms": percentile(latency.clone(), 0.5),
            "latency_p95_ms": percentile(latency, 0.95),
            "model_p50_ms": percentile(model.clone(), 0.5),
            "model_p95_ms": percentile(model, 0.95),
        })
    );
}
