//! `accessatlas serve`'s router on a real socket: rendered tiles equal the renderer's output,
//! the model bundle and the app are served with the right types, compression and caching; a
//! flood of new tiles gets 503s, not a stall.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use accessatlas::osm::OsmMap;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use accessatlas::render::Renderer;
use accessatlas::serve::TileLimits;
use common::browser::{start_app, start_app_with};
use common::tmp;
use model_core::data::tile::lat_lon_to_tile;

mod common;

/// The server's base URL and its app folder, which the test keeps while it makes requests.
fn start() -> (String, tempfile::TempDir) {
    let dist = tmp("serve");
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><title>AccessAtlas test</title>",
    )
    .unwrap();
    std::fs::write(dist.path().join("app-0123456789abcdef_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let base = start_app(dist.path()).trim_end_matches('/').to_string();
    (base, dist)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn get(url: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut res = agent().get(url).header("Accept-Encoding", "identity").call().unwrap();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = Vec::new();
    res.body_mut().as_reader().read_to_end(&mut body).unwrap();
    (res.status().as_u16(), headers, body)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[test]
fn serves_tiles_model_and_app() {
    let (base, dist) = start();

    // A tile at the bundled model's zoom equals what `collect --tiles render` draws.
    let t = lat_lon_to_tile(60.1699, 24.9384, 19).unwrap();
    let (status, h, body) = get(&format!("{base}/tiles/{}/{}/{}.png", t.z, t.x, t.y));
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("image/png"));
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&h, "x-accessatlas-style"), Some(accessatlas::render::style::STYLE_VERSION));
    let served = image::load_from_memory(&body).unwrap().to_rgb8();
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let drawn =
        image::DynamicImage::ImageRgba8(Renderer::new(&map, 19).unwrap().render_tile(t)).to_rgb8();
    assert_eq!(served.dimensions(), (256, 256));
    assert!(served == drawn, "served tile differs from the renderer's");
    // Cached: the second request gives the same bytes.
    assert_eq!(get(&format!("{base}/tiles/{}/{}/{}.png", t.z, t.x, t.y)).2, body);
    // Other zooms work too (the map's base layer), out-of-range ones are 404 with a reason.
    assert_eq!(get(&format!("{base}/tiles/14/9326/4743.png")).0, 200);
    let (s, _, b) = get(&format!("{base}/tiles/21/0/0.png"));
    assert_eq!(s, 404);
    assert!(String::from_utf8_lossy(&b).contains("zoom"));
    assert_eq!(get(&format!("{base}/tiles/3/8/0.png")).0, 404);
    assert_eq!(get(&format!("{base}/tiles/3/1/zero.png")).0, 404);
    let (s, _, b) = get(&format!("{base}/tiles/style"));
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&b).contains(accessatlas::render::style::STYLE_VERSION));

    // The model bundle.
    let (s, h, b) = get(&format!("{base}/model/model.json"));
    assert_eq!(s, 200);
    assert_eq!(header(&h, "cache-control"), Some("no-cache"));
    model_core::infer::bundle::BundleManifest::from_json(std::str::from_utf8(&b).unwrap()).unwrap();
    assert_eq!(get(&format!("{base}/model/missing.bin")).0, 404);

    // The app, its wasm with the right type and a long cache, and the SPA fallback.
    let (s, _, b) = get(&format!("{base}/"));
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&b).contains("AccessAtlas test"));
    let (s, h, _) = get(&format!("{base}/app-0123456789abcdef_bg.wasm"));
    assert_eq!(s, 200);
    assert_eq!(header(&h, "content-type"), Some("application/wasm"));
    assert_eq!(header(&h, "cache-control"), Some("public, max-age=31536000, immutable"));
    assert!(String::from_utf8_lossy(&get(&format!("{base}/some/page")).2).contains("AccessAtlas"));
    // A file that is not there is a 404, not the page in its place.
    let (s, _, b) = get(&format!("{base}/icons/missing-icon.png"));
    assert_eq!(s, 404);
    assert!(!String::from_utf8_lossy(&b).contains("AccessAtlas"));
    assert_eq!(get(&format!("{base}/worker_bg.wasm")).0, 404);

    // Compression when the client asks for it (raw HTTP: ureq would decode it silently).
    let host = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "GET /model/model.json HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let head =
        String::from_utf8_lossy(&raw[..raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap()])
            .to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    drop(dist);
}

/// 64 distinct zoom-19 tiles at once against a server that draws one at a time and lets a
/// request wait 1 ms for its turn (a tile takes about that to draw here, so 64 cannot all get
/// theirs; with 100 ms a fast, idle machine drew all 64 in time): every request is answered,
/// with its tile or with 503 and `Retry-After`, none stalls, and the server answers at once
/// afterwards.
#[test]
fn a_flood_of_new_tiles_gets_503s_not_a_stall() {
    let dist = tmp("serve-flood");
    std::fs::write(dist.path().join("index.html"), "<!doctype html>").unwrap();
    let limits = TileLimits { renders: 1, wait: Duration::from_millis(1) };
    let base = start_app_with(dist.path(), limits).trim_end_matches('/').to_string();
    let t0 = lat_lon_to_tile(60.1720, 24.9330, 19).unwrap();
    let answers: Vec<(u16, Option<String>, Duration)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..64u32)
            .map(|i| {
                let url = format!("{base}/tiles/19/{}/{}.png", t0.x + i % 8, t0.y + i / 8);
                s.spawn(move || {
                    let start = Instant::now();
                    let (status, h, _) = get(&url);
                    (status, header(&h, "retry-after").map(String::from), start.elapsed())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let drawn = answers.iter().filter(|a| a.0 == 200).count();
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(drawn + busy.len(), 64, "a tile or a 503 each: {answers:?}");
    assert!(drawn >= 1 && !busy.is_empty(), "{drawn} drawn, {} busy", busy.len());
    assert!(busy.iter().all(|a| a.1.as_deref() == Some("1")), "Retry-After: {busy:?}");
    let slowest = answers.iter().map(|a| a.2).max().unwrap();
    assert!(slowest < Duration::from_secs(60), "a request stalled for {slowest:?}");
    let start = Instant::now();
    assert_eq!(get(&format!("{base}/tiles/style")).0, 200);
    assert!(start.elapsed() < Duration::from_secs(10), "the server is still busy");
}

/// The slow link the phone e2e and the browser benchmark load the page over: what comes
/// through it is what the server sent, byte for byte, and no sooner than its rate and latency
/// allow (a floor, not a timing: a link that did not slow would pass in milliseconds).
#[test]
fn the_slow_link_passes_everything_at_its_rate() {
    use common::slow_link::SlowLink;
    let (base, dist) = start();
    let body = vec![7u8; 300_000];
    std::fs::write(dist.path().join("big.bin"), &body).unwrap();
    let link = SlowLink { down_bytes_per_s: 1_000_000.0, latency: Duration::from_millis(200) };
    let slow = common::slow_link::start(&base, link);
    let (status, _, direct) = get(&format!("{base}/big.bin"));
    assert_eq!((status, direct.len()), (200, body.len()));
    let t = Instant::now();
    let (status, _, through) = get(&format!("{slow}/big.bin"));
    let took = t.elapsed().as_secs_f64();
    assert_eq!(status, 200);
    assert!(through == body, "the same bytes through the link");
    let floor = 0.2 + body.len() as f64 / 1e6;
    assert!(took >= 0.9 * floor, "{took:.2} s through a link that needs {floor:.2} s");
}
