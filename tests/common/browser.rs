//! Browser harness shared by the end-to-end tests and the browser benchmark: a test tile
//! server, the app served by `accessatlas serve`'s router, chromedriver and a headless
//! Chromium session, and a JS polling helper. All on 127.0.0.1.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accessatlas::osm::OsmMap;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use accessatlas::serve::{ServeConfig, TileLimits, serve};
use accessatlas::tiles::rendered::TileRenderer;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub fn out_dir() -> PathBuf {
    let d = PathBuf::from(ROOT).join("target/e2e");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn start_app(dist: &Path) -> String {
    start_app_with(dist, TileLimits::default())
}

/// [`start_app`] with these limits on drawing tiles.
pub fn start_app_with(dist: &Path, tile_limits: TileLimits) -> String {
    // The API as `accessatlas serve` runs it: "Scan this view" asks it for candidates.
    format!("{}/", start_server(Some(dist), Default::default(), tile_limits))
}

/// `accessatlas serve`'s router on 127.0.0.1 (a free port), in a thread of the test: the
/// bundled extract's rendered tiles, the shipped model, the API with `api`, and the app from
/// `dist` if given. Its base URL, `http://127.0.0.1:PORT`.
pub fn start_server(
    dist: Option<&Path>,
    api: accessatlas::api::ApiConfig,
    tile_limits: TileLimits,
) -> String {
    let (base, stop) = start_stoppable_server(dist, api, tile_limits);
    // Never stopped: the server lives as long as the test process.
    std::mem::forget(stop);
    base
}

/// Stops a server [`start_stoppable_server`] started when sent to, or dropped.
pub struct StopServer(tokio::sync::oneshot::Sender<()>);

impl StopServer {
    /// Stops the server: it stops listening and drops its connections at once (a server
    /// gone, as a phone out of reach sees it), then returns.
    pub fn stop(self) {
        let _ = self.0.send(());
    }
}

/// [`start_server`], and its stop.
pub fn start_stoppable_server(
    dist: Option<&Path>,
    api: accessatlas::api::ApiConfig,
    tile_limits: TileLimits,
) -> (String, StopServer) {
    start_stoppable_server_with(dist, &super::model::bundle(), api, tile_limits)
}

/// [`start_stoppable_server`] serving another model bundle than the shipped one.
pub fn start_stoppable_server_with(
    dist: Option<&Path>,
    model: &Path,
    api: accessatlas::api::ApiConfig,
    tile_limits: TileLimits,
) -> (String, StopServer) {
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    start_stoppable_server_on(dist, model, map, api, tile_limits)
}

/// [`start_stoppable_server_with`] on another extract than the bundled one: its tiles, what
/// it maps and its candidates.
pub fn start_stoppable_server_on(
    dist: Option<&Path>,
    model: &Path,
    map: OsmMap,
    api: accessatlas::api::ApiConfig,
    tile_limits: TileLimits,
) -> (String, StopServer) {
    let (model, tiles) = (model.to_path_buf(), Arc::new(TileRenderer::new(map)));
    let api = accessatlas::api::Api::serving(&model, Some(tiles.clone()), api).unwrap();
    let cfg = ServeConfig {
        dist: dist.map(Path::to_path_buf),
        model,
        tiles,
        api: Some(Arc::new(api)),
        tile_limits,
    };
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            tokio::select! {
                r = serve(cfg, "127.0.0.1:0".parse().unwrap(), move |a| tx.send(a).unwrap()) => r.unwrap(),
                _ = stop_rx => {}
            }
        });
        // The listener is closed; the connections' tasks go with the runtime.
        rt.shutdown_background();
    });
    (format!("http://{}", rx.recv().unwrap()), StopServer(stop_tx))
}

/// chromedriver, in a process group of its own with the browsers it starts: dropping it kills
/// the whole group, so a test that ends without closing its session (a panic, an early
/// return) leaves no Chromium behind holding its profile and downloads folders.
pub struct Driver(Child);
impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_chromedriver() -> (Driver, String) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exe = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let child = Command::new(&exe)
        .process_group(0)
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

/// What the model worker's wasm memory may reach on a phone once the model is loaded and warmed
/// up (#33): a budget a mid-range phone's browser tab holds beside the page.
pub const PHONE_MEMORY_BUDGET_MB: f64 = 256.0;

/// The screen a browser session emulates.
#[derive(Clone, Copy, PartialEq, Default)]
pub enum Screen {
    /// A 1280x900 window, mouse and keyboard.
    #[default]
    Desktop,
    /// A 390x844 phone screen with touch (Chromium's mobile emulation), as issue #33 measures.
    Phone,
}

pub async fn browser(
    webdriver: &str,
    webgpu: bool,
    downloads: &Path,
    profile: &Path,
    screen: Screen,
) -> Client {
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
                // A model bundle downloads as two files (model.json, weights.bpk).
                "profile.default_content_setting_values.automatic_downloads": 1,
            },
        }
    });
    let mut caps = caps.as_object().unwrap().clone();
    if screen == Screen::Phone {
        caps["goog:chromeOptions"]["mobileEmulation"] = json!({
            "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": true},
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36",
        });
    }
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .expect("a WebDriver session")
}

/// How long [`wait_js`] waits between two polls: each poll runs a script in the page through
/// WebDriver, and polling without a pause kept the driver, this process and the page's main
/// thread busy, taking a core of a two-core machine from the page being measured.
const POLL: Duration = Duration::from_millis(20);

/// Polls a JS expression until it returns something truthy; returns it.
pub async fn wait_js(c: &Client, expr: &str, what: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let script = format!("return ({expr});");
    loop {
        if let Ok(v) = c.execute(&script, vec![]).await
            && !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0))
        {
            return v;
        }
        tokio::time::sleep(POLL).await;
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

/// Loads `url` as a new document, never as a jump within the current one: a query parameter
/// of its own (`load=N`) goes before any `#` fragment, so a URL that differs from the current
/// one only in its fragment still loads the page afresh, with no separate reload. A navigation
/// WebDriver reports as failed (a busy page's "aborted by navigation" once failed a CI run
/// here) is tried again, up to three times in all, each with a new `load=N`.
pub async fn load_fresh(c: &Client, url: &str) {
    static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let (doc, fragment) = match url.split_once('#') {
        Some((d, f)) => (d, format!("#{f}")),
        None => (url, String::new()),
    };
    let sep = if doc.contains('?') { '&' } else { '?' };
    for attempt in 1..=3 {
        let n = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match c.goto(&format!("{doc}{sep}load={n}{fragment}")).await {
            Ok(()) => return,
            Err(e) if attempt < 3 => {
                eprintln!("loading {url} failed (try {attempt} of 3), trying again: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => panic!("loading {url} failed three times: {e}"),
        }
    }
}

/// The built app directory (`ACCESSATLAS_DIST`, default `dist/`), which must exist.
pub fn dist_dir() -> PathBuf {
    let dist =
        PathBuf::from(std::env::var("ACCESSATLAS_DIST").unwrap_or_else(|_| format!("{ROOT}/dist")));
    assert!(
        dist.join("index.html").is_file(),
        "{} has no built app: run `cargo xtask test` (it builds it with trunk)",
        dist.display()
    );
    dist
}

/// Percent-encodes a URL for a query parameter.
pub fn encode(s: &str) -> String {
    s.chars()
        .map(|ch| match ch {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => ch.to_string(),
            _ => format!("%{:02X}", ch as u32),
        })
        .collect()
}

/// Everything a browser run needs, on 127.0.0.1: the test tile server, the app, chromedriver
/// and a fresh Chromium profile (`target/e2e/profile-{name}`, downloads to
/// `target/e2e/downloads-{name}`).
pub struct Session {
    pub client: Client,
    /// The app's base URL (ends with `/`).
    pub base: String,
    /// The tile server's XYZ template (its grey base map).
    pub tiles: String,
    /// What the tile server saw.
    pub tile_stats: Arc<super::tile_server::Stats>,
    pub downloads: PathBuf,
    /// chromedriver's address, for the commands fantoccini has no call for.
    pub webdriver: String,
    stop: Option<StopServer>,
    /// The server's own address (`base` may be a slow link's in front of it).
    server: String,
    _driver: Driver,
}

/// What a [`Session`] runs on. The default: a desktop, the CPU backend, the shipped model,
/// the bundled extract, and the server reached directly.
#[derive(Default, Clone, Copy)]
pub struct Setup<'a> {
    pub webgpu: bool,
    pub screen: Screen,
    /// The bundle the server serves at `/model/`, where the page loads it.
    pub model: Option<&'a Path>,
    /// The extract the server renders and maps.
    pub osm: Option<&'a Path>,
    /// A slow link between the browser and the server, workers included.
    pub link: Option<super::slow_link::SlowLink>,
    /// The built app the server serves (default: [`dist_dir`]).
    pub dist: Option<&'a Path>,
}

impl Session {
    pub async fn start(name: &str, webgpu: bool) -> Self {
        Self::start_with(name, Setup { webgpu, ..Setup::default() }).await
    }

    /// A session on an emulated phone ([`Screen::Phone`]), CPU backend.
    pub async fn start_phone(name: &str) -> Self {
        Self::start_with(name, Setup { screen: Screen::Phone, ..Setup::default() }).await
    }

    /// [`Session::start_phone`] whose page, worker included, reaches the app's server over
    /// `link` (a [`super::slow_link`] proxy in front of it).
    pub async fn start_phone_slow(name: &str, link: super::slow_link::SlowLink) -> Self {
        Self::start_with(
            name,
            Setup { screen: Screen::Phone, link: Some(link), ..Setup::default() },
        )
        .await
    }

    /// A desktop session, CPU backend, whose server serves the bundle `model` (at `/model/`,
    /// where the page loads it) instead of the shipped one.
    pub async fn start_with_model(name: &str, model: &Path) -> Self {
        Self::start_with(name, Setup { model: Some(model), ..Setup::default() }).await
    }

    /// A session as `setup` says: a fresh Chromium profile and downloads folder named `name`.
    pub async fn start_with(name: &str, setup: Setup<'_>) -> Self {
        let Setup { webgpu, screen, model, osm, link, dist } = setup;
        let dist = dist.map_or_else(dist_dir, Path::to_path_buf);
        let out = out_dir();
        let downloads = out.join(format!("downloads-{name}"));
        let _ = std::fs::remove_dir_all(&downloads);
        std::fs::create_dir_all(&downloads).unwrap();
        let profile = out.join(format!("profile-{name}"));
        let _ = std::fs::remove_dir_all(&profile);
        let (tile_base, tile_stats) = super::tile_server::start();
        let tiles = format!("{tile_base}/grey/{{z}}/{{x}}/{{y}}.png");
        let shipped = super::model::bundle();
        let model = model.unwrap_or(&shipped);
        let map = match osm {
            Some(path) => OsmMap::read(path).unwrap(),
            None => OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap(),
        };
        let (base, stop) = start_stoppable_server_on(
            Some(&dist),
            model,
            map,
            Default::default(),
            Default::default(),
        );
        let server = base.trim_start_matches("http://").to_string();
        let base = match link {
            Some(link) => format!("{}/", super::slow_link::start(&base, link)),
            None => format!("{base}/"),
        };
        let (driver, wd) = start_chromedriver();
        let client = browser(&wd, webgpu, &downloads, &profile, screen).await;
        Self {
            client,
            base,
            tiles,
            tile_stats,
            downloads,
            webdriver: wd,
            stop: Some(stop),
            server,
            _driver: driver,
        }
    }

    /// Stops the app's server (the browser and the tile server stay): until it has stopped
    /// listening.
    pub async fn stop_server(&mut self) {
        self.stop.take().expect("the server is running").stop();
        let addr = self.server.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_ok() {
            assert!(Instant::now() < deadline, "the server at {addr} did not stop");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs `body` to this session's chromedriver command `path` (after `/session/{id}/`).
    pub async fn webdriver_post(&self, path: &str, body: Value) {
        let id = self.client.session_id().await.unwrap().expect("a session id");
        let url = format!("{}/session/{id}/{path}", self.webdriver);
        tokio::task::spawn_blocking(move || {
            let mut r = ureq::post(&url)
                .header("content-type", "application/json")
                .config()
                .http_status_as_error(false)
                .build()
                .send(body.to_string())
                .unwrap();
            let status = r.status().as_u16();
            let text = r.body_mut().read_to_string().unwrap_or_default();
            assert_eq!(status, 200, "chromedriver {url}: {text}");
        })
        .await
        .unwrap();
    }

    /// Grants or denies the page a permission (WebDriver's Permissions extension).
    pub async fn set_permission(&self, name: &str, state: &str) {
        self.webdriver_post("permissions", json!({"descriptor": {"name": name}, "state": state}))
            .await;
    }

    /// Where the browser's Geolocation API says the device is (chromedriver's location
    /// command: the position Chromium's DevTools emulation reports).
    pub async fn set_location(&self, lat: f64, lon: f64, accuracy_m: f64) {
        self.webdriver_post(
            "location",
            json!({"location": {"latitude": lat, "longitude": lon, "altitude": 0.0, "accuracy": accuracy_m}}),
        )
        .await;
    }

    /// The app's address with the test tile server as the map layer and a backend forced.
    pub fn url(&self, backend: &str) -> String {
        format!("{}?backend={backend}&tiles={}", self.base, encode(&self.tiles))
    }
}

/// Clicks the element `css` finds (the first one).
pub async fn click(c: &Client, css: &str) {
    c.find(fantoccini::Locator::Css(css)).await.unwrap().click().await.unwrap();
}

/// Sets an input's value and fires `event` on it (`change` or `input`), as a user would.
pub async fn set_input(c: &Client, css: &str, value: &str, event: &str) {
    c.execute(
        &format!(
            "const e = document.querySelector('{css}'); e.value = '{value}'; e.dispatchEvent(new Event('{event}', {{bubbles: true}}));"
        ),
        vec![],
    )
    .await
    .unwrap();
}

/// Imports a tags CSV written to `target/e2e/{name}` and waits until the list shows `expect` tags.
pub async fn import_tags(c: &Client, name: &str, csv: &str, expect: usize) {
    let path = out_dir().join(name);
    std::fs::write(&path, csv).unwrap();
    c.find(fantoccini::Locator::Css("[data-testid=import-file]"))
        .await
        .unwrap()
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    wait_js(
        c,
        &format!("document.querySelectorAll('[data-testid=tag-list] li').length === {expect}"),
        "the imported tags",
        30,
    )
    .await;
}
