//! End to end in a real browser: the built app (`trunk build --release`, `dist/`) served by
//! `accessatlas serve`'s router on 127.0.0.1, map tiles from a test tile server on 127.0.0.1,
//! driven in headless Chromium through chromedriver (Debian `chromium`, `chromium-driver`).
//!
//! Ignored by plain `cargo test` (it needs the built app and a browser); `cargo xtask test`
//! installs both and runs it with `--ignored`. `ACCESSATLAS_DIST` names the built app.
//!
//! Each backend run: page loads -> model ready (badge) -> click the map -> prediction with a
//! probability per type -> save the tag -> reload -> tag still there -> export CSV -> the
//! pipeline's reader parses it and it round-trips -> import a malformed CSV -> valid rows kept,
//! rejects listed -> axe-core finds no serious or critical violation -> screenshot.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accessatlas::cmd::collect::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use accessatlas::osm::OsmMap;
use accessatlas::serve::{ServeConfig, TileRenderer, serve};
use fantoccini::{Client, ClientBuilder, Locator};
use model_core::LabelVocab;
use model_core::tags::parse_tags_csv;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn out_dir() -> PathBuf {
    let d = PathBuf::from(ROOT).join("target/e2e");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A plain XYZ tile server: every `/{z}/{x}/{y}.png` is a light grey PNG; counts requests.
fn start_tile_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let mut png = Vec::new();
    image::RgbImage::from_pixel(256, 256, image::Rgb([225, 228, 232]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let png = png.clone();
            let h = h.clone();
            std::thread::spawn(move || tile_response(stream, &png, &h));
        }
    });
    (format!("http://{addr}/{{z}}/{{x}}/{{y}}.png"), hits)
}

fn tile_response(mut s: TcpStream, png: &[u8], hits: &std::sync::atomic::AtomicUsize) {
    let mut line = String::new();
    let mut r = BufReader::new(s.try_clone().unwrap());
    if r.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).map_or(true, |n| n == 0) || h == "\r\n" {
            break;
        }
    }
    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let _ = write!(
        s,
        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        png.len()
    );
    let _ = s.write_all(png);
}

fn start_app(dist: &Path) -> String {
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let cfg = ServeConfig {
        dist: dist.to_path_buf(),
        model: PathBuf::from(ROOT).join("assets/model"),
        tiles: Arc::new(TileRenderer::new(map)),
    };
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(serve(cfg, "127.0.0.1:0".parse().unwrap(), move |a| tx.send(a).unwrap()))
            .unwrap();
    });
    format!("http://{}/", rx.recv().unwrap())
}

struct Driver(Child);
impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exe = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let child = Command::new(&exe)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {exe}: {e} (cargo xtask test installs it)"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Driver(child), format!("http://127.0.0.1:{port}"))
}

async fn browser(webdriver: &str, webgpu: bool, downloads: &Path, profile: &Path) -> Client {
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--no-first-run".into(),
        "--disable-quic".into(),
        "--window-size=1280,900".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if webgpu {
        args.push("--enable-unsafe-webgpu".into());
    } else {
        args.push("--disable-gpu".into());
    }
    let caps = json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": args,
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        }
    });
    let caps = caps.as_object().unwrap().clone();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a WebDriver session")
}

/// Polls a JS expression until it returns something truthy; returns it.
async fn wait_js(c: &Client, expr: &str, what: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let script = format!("return ({expr});");
    loop {
        if let Ok(v) = c.execute(&script, vec![]).await
            && !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0))
        {
            return v;
        }
        if Instant::now() > deadline {
            let badge = c
                .execute("return document.querySelector('[data-testid=backend-badge]')?.parentElement?.innerText", vec![])
                .await
                .unwrap_or_default();
            let pred = c
                .execute(
                    "return document.querySelector('[data-testid=prediction]')?.innerText",
                    vec![],
                )
                .await
                .unwrap_or_default();
            let status = c
                .execute("return document.querySelector('.status')?.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "timed out waiting for {what} ({expr}); badge: {badge}; prediction: {pred}; status: {status}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_backend(backend: &str, webgpu: bool) {
    let dist =
        PathBuf::from(std::env::var("ACCESSATLAS_DIST").unwrap_or_else(|_| format!("{ROOT}/dist")));
    assert!(
        dist.join("index.html").is_file(),
        "{} has no built app: run `cargo xtask test` (it builds it with trunk)",
        dist.display()
    );
    let out = out_dir();
    let downloads = out.join(format!("downloads-{backend}"));
    let _ = std::fs::remove_dir_all(&downloads);
    std::fs::create_dir_all(&downloads).unwrap();
    let profile = out.join(format!("profile-{backend}"));
    let _ = std::fs::remove_dir_all(&profile);

    let (tiles, tile_hits) = start_tile_server();
    let base = start_app(&dist);
    let (_driver, wd) = start_chromedriver();
    let c = browser(&wd, webgpu, &downloads, &profile).await;

    let enc: String = tiles
        .chars()
        .map(|ch| match ch {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => ch.to_string(),
            _ => format!("%{:02X}", ch as u32),
        })
        .collect();
    let url = format!("{base}?backend={backend}&tiles={enc}");
    c.goto(&url).await.unwrap();

    // The model loads and warms up; the badge names the backend.
    let got = wait_js(
        &c,
        "(b => b && b.dataset.backend !== 'loading' && b.dataset.backend)(document.querySelector('[data-testid=backend-badge]'))",
        "the model",
        300,
    )
    .await;
    assert_eq!(got, json!(backend), "backend badge");
    wait_js(&c, "document.querySelector('#sidebar').dataset.ready === 'true'", "stored tags", 30)
        .await;
    // The map shows the configured layer from the test tile server.
    wait_js(&c, "document.querySelectorAll('.leaflet-tile-loaded').length", "map tiles", 30).await;
    assert!(tile_hits.load(std::sync::atomic::Ordering::SeqCst) > 0);

    // Click the map -> a prediction with one probability per type.
    c.find(Locator::Css("[data-testid=map] .leaflet-container, .leaflet-container"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        &c,
        "document.querySelector('[data-testid=prediction]').dataset.state === 'done' || document.querySelector('[data-testid=prediction]').dataset.state === 'failed'",
        "a prediction",
        240,
    )
    .await;
    let state = c
        .execute("return document.querySelector('[data-testid=prediction]').dataset.state", vec![])
        .await
        .unwrap();
    let summary =
        c.find(Locator::Css("[data-testid=prediction]")).await.unwrap().text().await.unwrap();
    assert_eq!(state, json!("done"), "prediction failed: {summary}");
    let probs = c
        .execute(
            "return [...document.querySelectorAll('[data-testid=prediction] .bar-row')].map(r => [r.dataset.label, parseFloat(r.dataset.probability)])",
            vec![],
        )
        .await
        .unwrap();
    let probs = probs.as_array().unwrap();
    let labels: Vec<&str> = probs.iter().map(|p| p[0].as_str().unwrap()).collect();
    assert_eq!(labels, ["ramp", "elevator", "entrance", "tactile_path", "obstacle"]);
    let sum: f64 = probs.iter().map(|p| p[1].as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
    assert!(summary.contains("confident"), "{summary}");

    // Save the tag as a ramp with a note.
    c.find(Locator::Css("[data-testid=tag-type]"))
        .await
        .unwrap()
        .select_by_value("ramp")
        .await
        .unwrap();
    c.find(Locator::Css("[data-testid=tag-note]"))
        .await
        .unwrap()
        .send_keys("kerb ramp, e2e")
        .await
        .unwrap();
    c.find(Locator::Css("[data-testid=save-tag]")).await.unwrap().click().await.unwrap();
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=tag-list] li').length === 1",
        "the saved tag",
        10,
    )
    .await;
    // Its marker: colour and letter by type, named for screen readers.
    wait_js(
        &c,
        "document.querySelectorAll('.leaflet-marker-icon.tag-marker.tag-ramp').length === 1",
        "the tag's marker",
        10,
    )
    .await;
    // Give IndexedDB a moment to commit, then reload: the tag is still there.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.refresh().await.unwrap();
    wait_js(&c, "document.querySelector('#sidebar') && document.querySelector('#sidebar').dataset.ready === 'true'", "stored tags after reload", 60).await;
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=tag-list] li').length === 1",
        "the tag after reload",
        10,
    )
    .await;
    let row_type = c
        .execute("return document.querySelector('[data-testid=tag-list] li').dataset.type", vec![])
        .await
        .unwrap();
    assert_eq!(row_type, json!("ramp"));

    // Export CSV: the pipeline's reader takes it, and it holds the tag.
    c.find(Locator::Css("[data-testid=export-csv]")).await.unwrap().click().await.unwrap();
    let csv_path = downloads.join("tags.csv");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !csv_path.is_file() {
        assert!(Instant::now() < deadline, "no tags.csv downloaded to {}", downloads.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = std::fs::read(&csv_path).unwrap();
    let parsed = parse_tags_csv(&bytes, &LabelVocab::default()).unwrap();
    assert!(parsed.rejected.is_empty(), "{:?}", parsed.rejected);
    assert_eq!(parsed.table.tags.len(), 1);
    let t = &parsed.table.tags[0];
    assert_eq!((t.label.as_str(), t.source.as_str()), ("ramp", "user"));
    assert!((t.lat - 60.1699).abs() < 0.01 && (t.lon - 24.9384).abs() < 0.01, "{t:?}");
    assert_eq!(parsed.table.extra_columns, ["note"]);
    assert_eq!(t.extra, ["kerb ramp, e2e"]);
    // Round trip: importing the export replaces the same tag, adds nothing.
    let input = c.find(Locator::Css("[data-testid=import-file]")).await.unwrap();
    input.send_keys(&csv_path.display().to_string()).await.unwrap();
    wait_js(&c, "(r => r && r.dataset.added === '0' && r.dataset.rejected === '0')(document.querySelector('[data-testid=import-report]'))", "the round-trip import", 10).await;
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=tag-list] li').length === 1",
        "one tag after round trip",
        10,
    )
    .await;

    // A malformed CSV: valid rows kept, rejected rows listed with their reasons.
    let bad = out.join(format!("malformed-{backend}.csv"));
    std::fs::write(
        &bad,
        "id,lat,lon,type,source\nok-1,60.17,24.94,elevator,user\nbad-1,not-a-number,24.94,ramp,user\nok-2,60.171,24.941,obstacle,osm\nbad-2,60.17,24.94,stairs,user\n",
    )
    .unwrap();
    let input = c.find(Locator::Css("[data-testid=import-file]")).await.unwrap();
    input.send_keys(&bad.display().to_string()).await.unwrap();
    wait_js(&c, "(r => r && r.dataset.added === '2' && r.dataset.rejected === '2')(document.querySelector('[data-testid=import-report]'))", "the malformed import report", 10).await;
    wait_js(
        &c,
        "document.querySelectorAll('[data-testid=tag-list] li').length === 3",
        "three tags",
        10,
    )
    .await;
    let rejects =
        c.find(Locator::Css("[data-testid=import-rejected]")).await.unwrap().text().await.unwrap();
    assert!(rejects.contains("line 3") && rejects.contains("lat"), "{rejects}");
    assert!(rejects.contains("line 5") && rejects.contains("stairs"), "{rejects}");

    // Keyboard: focus the map, Enter tags the crosshair (opens the form with a prediction).
    c.execute("document.querySelector('[data-testid=tag-form] button.secondary')?.click(); document.querySelector('.leaflet-container').focus();", vec![]).await.unwrap();
    c.active_element().await.unwrap().send_keys("\u{E007}").await.unwrap();
    wait_js(
        &c,
        "document.querySelector('[data-testid=tag-form]')",
        "the form from the keyboard",
        10,
    )
    .await;

    // Accessibility: axe-core on the whole page, no serious or critical violations.
    let axe = std::fs::read_to_string(format!("{ROOT}/tests/vendor/axe-core/axe.min.js")).unwrap();
    c.execute(&axe, vec![]).await.unwrap();
    let result = c
        .execute_async(
            "const done = arguments[arguments.length - 1]; axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})))).catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));",
            vec![],
        )
        .await
        .unwrap();
    std::fs::write(
        out.join(format!("axe-{backend}.json")),
        serde_json::to_string_pretty(&result).unwrap(),
    )
    .unwrap();
    let bad: Vec<&Value> = result
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .collect();
    assert!(bad.is_empty(), "axe-core violations: {}", serde_json::to_string_pretty(&bad).unwrap());

    // A screenshot as a test artifact (and for the README when asked).
    let png = c.screenshot().await.unwrap();
    std::fs::write(out.join(format!("screenshot-{backend}.png")), &png).unwrap();
    if std::env::var_os("ACCESSATLAS_UPDATE_SCREENSHOT").is_some() && backend == "cpu" {
        std::fs::write(format!("{ROOT}/docs/img/app.png"), &png).unwrap();
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the built app and Chromium: `cargo xtask test` runs it"]
async fn app_in_chromium_cpu() {
    run_backend("cpu", false).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the built app (with the webgpu feature) and Chromium: `cargo xtask test` runs it"]
async fn app_in_chromium_webgpu() {
    run_backend("webgpu", true).await;
}
