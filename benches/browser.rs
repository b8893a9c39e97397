//! Browser benchmark (run by `cargo xtask bench`; not a test): the built app in headless
//! Chromium on the CPU backend. Page load to model-ready (first load in a fresh profile, then
//! reloads with a warm HTTP cache) and prediction latency p50/p95 (request to answer on the
//! page, worker messaging included; and the model's own forward pass).
//!
//! With `--ort DIR` (a directory `cargo xtask bench` prepares: `bench/ort-web/index.html`,
//! onnxruntime-web's files from npm and the ONNX export of the same bundle) the reference runs
//! in the same Chromium session, alternating page loads with the app: ONNX Runtime Web (wasm,
//! SIMD, one thread) on the same model; and the download sizes of both sides are compared.
//!
//! With `--tfjs DIR` (`bench/tfjs-head/index.html` and TensorFlow.js from npm), TF.js trains the
//! same fine-tuning head on same-shaped features in the same session, the reference for the
//! in-page fine-tuning step.
//!
//! With `--slow`, the page loads again on an emulated phone over a slow connection (a proxy
//! that slows every download, the model worker's included), and so does the reference.
//!
//! `--loads N --predictions M [--ort DIR] [--tfjs DIR] [--slow]` (defaults 3 and 30). Prints
//! one JSON line per side.

mod util;
use util::{arg, percentile};

#[path = "../tests/common/mod.rs"]
mod common;

use common::browser::*;
use common::gzip_dir;
use fantoccini::Locator;
use serde_json::json;

/// Loads the ORT page (`runs` timed predictions) and returns its result object.
async fn ort_page(c: &fantoccini::Client, base: &str, runs: usize) -> serde_json::Value {
    ort_page_with(c, base, runs, "model.onnx").await
}

/// [`ort_page`] on another model file of the reference's directory.
async fn ort_page_with(
    c: &fantoccini::Client,
    base: &str,
    runs: usize,
    model: &str,
) -> serde_json::Value {
    c.goto(&format!("{base}?runs={runs}&model={model}")).await.unwrap();
    let v =
        wait_js(c, "window.__ortResult && JSON.stringify(window.__ortResult)", "ORT", 300).await;
    let r: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
    assert!(r.get("error").is_none(), "ONNX Runtime Web failed: {r}");
    r
}

/// The `data-*` attributes (and `text`, its inner text) of the element `css` finds, once
/// `ready` (a JavaScript expression over it, `e`) holds.
async fn dataset(
    c: &fantoccini::Client,
    css: &str,
    ready: &str,
    what: &str,
    secs: u64,
) -> serde_json::Value {
    let v = wait_js(
        c,
        &format!(
            "(e => e && ({ready}) && JSON.stringify({{...e.dataset, text: e.innerText}}))(document.querySelector('{css}'))"
        ),
        what,
        secs,
    )
    .await;
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

/// A `data-*` attribute read by [`dataset`] as a number (NaN when it is not one).
fn number(d: &serde_json::Value, key: &str) -> f64 {
    d[key].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN)
}

/// Fine-tuning 50 tags (three types on distinct map tiles) for 5 epochs in the page: the time
/// to compute the encoder features (once per tag and view) and per epoch and step of the head.
async fn fine_tune(c: &fantoccini::Client, url: &str) -> serde_json::Value {
    c.goto(url).await.unwrap();
    ready_ms(c).await;
    wait_js(c, "document.querySelector('#sidebar').dataset.ready === 'true'", "stored tags", 30)
        .await;
    let mut csv = String::from("id,lat,lon,type,source\n");
    for i in 0..50 {
        let label = ["ramp", "entrance", "obstacle"][i % 3];
        let (lat, lon) = (60.1660 + 0.0004 * (i / 7) as f64, 24.9330 + 0.0007 * (i % 7) as f64);
        csv.push_str(&format!("b{i},{lat:.6},{lon:.6},{label},user\n"));
    }
    import_tags(c, "bench-finetune.csv", &csv, 50).await;
    set_input(c, "#ft-epochs", "5", "change").await;
    c.find(Locator::Css("[data-testid=finetune-start]")).await.unwrap().click().await.unwrap();
    let d = dataset(c, "[data-testid=finetune-result]", "true", "the fine-tune", 900).await;
    let num = |k: &str| number(&d, k);
    json!({
        "bench": "browser_finetune",
        "tags": 50,
        "train_tags": num("trainTags"),
        "epochs": num("epochs"),
        "features_s": num("featuresS"),
        "epoch_ms": num("trainS") * 1e3 / num("epochs"),
        "step_ms": num("trainS") * 1e3 / num("steps"),
    })
}

/// The views a scan row is measured on, each of the size of the bench's window at zoom 17
/// (about 530 m x 420 m) and each on tiles neither the browser nor the server has drawn yet
/// (the rows and columns of central Helsinki's extract, 60.1642-60.1791 N and 24.9352-24.9534
/// E: two columns that overlap by some 50 m, three rows apart): one run of a scan varies by
/// about 15 % with what else the two cores do, so each row is the median of three.
const SCAN_VIEWS: [[&str; 3]; 2] = [
    ["17/60.16610/24.94000", "17/60.16990/24.94860", "17/60.17370/24.94000"],
    ["17/60.16610/24.94860", "17/60.16990/24.94000", "17/60.17370/24.94860"],
];

/// "Scan this view", clicked the moment the model is ready (a `browser_scan` row) or, with
/// `helper_ready`, once the scan helper holds the model too (a `browser_scan_ready` row), on
/// each of its three views ([`SCAN_VIEWS`]): the run whose first 48 took the median time, with
/// every run's time and view beside it.
async fn scans(c: &fantoccini::Client, url: &str, helper_ready: bool) -> serde_json::Value {
    let mut runs = Vec::new();
    for view in SCAN_VIEWS[usize::from(helper_ready)] {
        runs.push(scan(c, url, helper_ready, view).await);
    }
    let first = |r: &serde_json::Value| r["first_ms"].as_f64().unwrap_or(f64::NAN);
    let all: Vec<f64> = runs.iter().map(first).collect();
    let views: Vec<&str> = SCAN_VIEWS[usize::from(helper_ready)].to_vec();
    runs.sort_by(|a, b| first(a).total_cmp(&first(b)));
    let mut row = runs.swap_remove(runs.len() / 2);
    row["first_ms_runs"] = json!(all);
    row["views"] = json!(views);
    row
}

/// "Scan this view" on `view` (one of [`SCAN_VIEWS`]): the page asks the server for the
/// view's candidates and scores them in its workers; the page's own timing, click to the 48th
/// result and to done (candidates, tiles, model, messaging), and what the points cost their
/// workers. Clicked the moment the model is ready, or with `helper_ready` once the scan
/// helper holds the model (the backend badge's `data-scan-workers` is 2), as a mapper who
/// looks at the map a few seconds first would.
async fn scan(
    c: &fantoccini::Client,
    url: &str,
    helper_ready: bool,
    view: &str,
) -> serde_json::Value {
    let bench = if helper_ready { "browser_scan_ready" } else { "browser_scan" };
    load_fresh(c, &format!("{url}#map={view}")).await;
    ready_ms(c).await;
    // How long after the model worker the helper held the model too (polled, so to about
    // 20 ms plus a WebDriver round trip).
    let model_ready = std::time::Instant::now();
    let mut helper_after_model_ms = None;
    if helper_ready {
        wait_js(
            c,
            "document.querySelector('[data-testid=backend-badge]').dataset.scanWorkers === '2'",
            "the scan helper",
            120,
        )
        .await;
        helper_after_model_ms = Some(model_ready.elapsed().as_secs_f64() * 1e3);
    }
    set_input(c, "[data-testid=scan-threshold]", "50", "input").await;
    c.find(Locator::Css("[data-testid=scan-view]")).await.unwrap().click().await.unwrap();
    let d = dataset(c, "[data-testid=scan-status]", "e.dataset.ms", "the scan", 600).await;
    let num = |k: &str| number(&d, k);
    let b: Vec<f64> =
        d["bbox"].as_str().unwrap_or("").split(',').filter_map(|x| x.parse().ok()).collect();
    let (w, h) = (
        (b[2] - b[0]) * 111_320.0 * ((b[1] + b[3]) / 2.0).to_radians().cos(),
        (b[3] - b[1]) * 110_574.0,
    );
    let suggestions = c
        .execute("return document.querySelectorAll('[data-testid=suggestion-item]').length", vec![])
        .await
        .unwrap();
    assert!(d["text"].as_str().unwrap_or("").contains("candidates from the map"), "{d}");
    json!({
        "bench": bench,
        // Scored, not offered: past the first 48 the scan stops when its time is up.
        "points": num("scanned"),
        // Click to the points sent to the workers (the server's candidates and mapped features).
        "sent_ms": num("sentMs"),
        // Per scored point, in its worker: waiting for and decoding tiles; the model.
        "tiles_ms_per_point": num("tilesMs") / num("results"),
        "model_ms_per_point": num("modelMs") / num("results"),
        "offered": num("total"),
        "ms": num("ms"),
        "first_ms": num("firstMs"),
        "workers": num("workers"),
        "points_per_s": num("scanned") / num("ms") * 1e3,
        "suggestions": suggestions,
        "width_m": w,
        "height_m": h,
        "helper_after_model_ms": helper_after_model_ms,
        "view": view,
    })
}

/// "Learn this area" on the scan's view of the bundled data (the view's mapped features and
/// background places, the default epochs, CPU backend): the page's fine-tune from the click to
/// its before/after result, and what it learned from. Not kept.
async fn learn_area(c: &fantoccini::Client, url: &str) -> serde_json::Value {
    load_fresh(c, &format!("{url}#map=17/60.16900/24.94200")).await;
    ready_ms(c).await;
    wait_js(c, "document.querySelector('#sidebar').dataset.ready === 'true'", "stored tags", 30)
        .await;
    let started = std::time::Instant::now();
    c.find(Locator::Css("[data-testid=learn-area]")).await.unwrap().click().await.unwrap();
    let d = dataset(c, "[data-testid=finetune-result]", "true", "the learned area", 900).await;
    let seconds = started.elapsed().as_secs_f64();
    let area = c
        .execute("return document.querySelector('[data-testid=finetune-area]').innerText", vec![])
        .await
        .unwrap();
    let num = |k: &str| number(&d, k);
    json!({
        "bench": "browser_learn_area",
        "seconds": seconds,
        "features_s": num("featuresS"),
        "train_s": num("trainS"),
        "epochs": num("epochs"),
        "train_places": num("trainTags"),
        "before": num("before"),
        "after": num("after"),
        "area": area,
    })
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

/// The app's own profile of its forward pass (`?profile=N`: N passes timed by kind of
/// operation in the worker), as a `browser_profile` row.
async fn profile(c: &fantoccini::Client, url: &str, runs: usize) -> serde_json::Value {
    c.goto(&format!("{url}&profile={runs}")).await.unwrap();
    let v = wait_js(c, "document.body.dataset.profile", "the profile", 300).await;
    let mut r: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
    r["bench"] = json!("browser_profile");
    r
}

/// The page on a phone over a slow connection ([`common::slow_link::SLOW_4G`], through a proxy
/// that slows the model worker's downloads too), each page cold (a fresh profile for the app;
/// a proxy of its own, so URLs of their own, for each reference load): navigation to the model
/// ready after its first prediction, and the worker's wasm memory then. A `browser_slow` row.
async fn slow(ort_dir: Option<&std::path::Path>) -> serde_json::Value {
    use common::slow_link::{SLOW_4G, start};
    let session = Session::start_phone_slow("bench-slow", SLOW_4G).await;
    let c = &session.client;
    c.goto(&session.url("cpu")).await.unwrap();
    let ready = ready_ms(c).await;
    let memory = c
        .execute(
            "return document.querySelector('[data-testid=backend-badge]').dataset.workerMemory",
            vec![],
        )
        .await
        .unwrap();
    let mut row = json!({
        "bench": "browser_slow",
        "link": SLOW_4G.words(),
        "cold_ready_ms": ready,
        "worker_memory_bytes": memory.as_str().and_then(|m| m.parse::<f64>().ok()),
        "memory_budget_mb": PHONE_MEMORY_BUDGET_MB,
    });
    if let Some(dir) = ort_dir {
        let upstream = start_app(dir);
        for (key, model) in
            [("ort_cold_ready_ms", "model.onnx"), ("ort_int8_cold_ready_ms", "model.int8.onnx")]
        {
            if dir.join(model).is_file() {
                let base = format!("{}/", start(&upstream, SLOW_4G));
                row[key] = ort_page_with(c, &base, 1, model).await["ready_ms"].clone();
            }
        }
    }
    session.client.close().await.unwrap();
    row
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let loads = arg("--loads", 3).max(1);
    let predictions = arg("--predictions", 30).max(1);
    let ort_dir =
        std::env::args().skip_while(|a| a != "--ort").nth(1).map(std::path::PathBuf::from);
    let session = Session::start("bench", false).await;
    let c = &session.client;
    let url = session.url("cpu");
    let ort_base = ort_dir.as_deref().map(start_app);
    let tfjs_dir =
        std::env::args().skip_while(|a| a != "--tfjs").nth(1).map(std::path::PathBuf::from);

    // Page loads, alternating with the reference's: the first of each is cold (empty cache).
    let mut ready = Vec::new();
    let mut ort_ready = Vec::new();
    for _ in 0..loads {
        c.goto(&url).await.unwrap();
        ready.push(ready_ms(c).await);
        if let Some(b) = &ort_base {
            ort_ready.push(ort_page(c, b, 1).await["ready_ms"].as_f64().unwrap());
        }
    }
    if ort_base.is_some() {
        // Back to the app for its predictions.
        c.goto(&url).await.unwrap();
        ready_ms(c).await;
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
    let scan_ready = scans(c, &url, true).await;
    let scan = scans(c, &url, false).await;
    let profile = profile(c, &url, predictions).await;
    // The reference's predictions, on its page (same session, after ours).
    let ort = match &ort_base {
        Some(b) => {
            let r = ort_page(c, b, predictions).await;
            let times: Vec<f64> =
                r["times"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
            let dir = ort_dir.as_deref().unwrap();
            // The int8 copy (onnxruntime's quantize_dynamic), when the directory has one.
            let int8: Vec<f64> = if dir.join("model.int8.onnx").is_file() {
                let r = ort_page_with(c, b, predictions, "model.int8.onnx").await;
                r["times"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect()
            } else {
                Vec::new()
            };
            let dist = dist_dir();
            let model = common::model::page_model();
            Some(json!({
                "bench": "browser_ort",
                "version": r["version"],
                "cold_ready_ms": ort_ready[0],
                "warm_ready_ms": if ort_ready.len() > 1 { percentile(ort_ready[1..].to_vec(), 0.5) } else { ort_ready[0] },
                "model_p50_ms": percentile(times.clone(), 0.5),
                "model_p95_ms": percentile(times, 0.95),
                "gzip_runtime_bytes": gzip_dir(dir, |n| n.ends_with(".js") || n.ends_with(".mjs") || n.ends_with(".wasm")),
                "gzip_model_bytes": gzip_dir(dir, |n| n == "model.onnx"),
                "gzip_int8_model_bytes": gzip_dir(dir, |n| n == "model.int8.onnx"),
                "int8_model_p50_ms": if int8.is_empty() { f64::NAN } else { percentile(int8.clone(), 0.5) },
                "int8_model_p95_ms": if int8.is_empty() { f64::NAN } else { percentile(int8, 0.95) },
                "ours_gzip_runtime_bytes": gzip_dir(&dist, |n| n.starts_with("worker")),
                "ours_gzip_app_bytes": gzip_dir(&dist, |_| true),
                "ours_gzip_model_bytes": gzip_dir(&model, |_| true),
            }))
        }
        None => None,
    };
    // Before the fine-tune, whose imported tags would join the view's examples.
    let learned = learn_area(c, &url).await;
    let finetune = fine_tune(c, &url).await;
    // The reference for in-browser training: TF.js training the same head on same-shaped
    // features (wasm backend, one thread).
    let tfjs = match tfjs_dir.as_deref() {
        Some(dir) => {
            let base = start_app(dir);
            c.goto(&format!("{base}?steps=50")).await.unwrap();
            let v = wait_js(
                c,
                "window.__tfjsResult && JSON.stringify(window.__tfjsResult)",
                "TF.js",
                300,
            )
            .await;
            let r: serde_json::Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
            assert!(r.get("error").is_none(), "TF.js failed: {r}");
            let times: Vec<f64> =
                r["times"].as_array().unwrap().iter().filter_map(|v| v.as_f64()).collect();
            Some(json!({
                "bench": "browser_tfjs_head",
                "version": r["version"],
                "backend": r["backend"],
                "step_p50_ms": percentile(times, 0.5),
            }))
        }
        None => None,
    };
    session.client.close().await.unwrap();
    if std::env::args().any(|a| a == "--slow") {
        println!("{}", slow(ort_dir.as_deref()).await);
    }
    if let Some(t) = tfjs {
        println!("{t}");
    }
    if let Some(o) = ort {
        println!("{o}");
    }
    println!("{finetune}");
    println!("{learned}");
    println!("{profile}");
    println!("{scan}");
    println!("{scan_ready}");
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
