//! `collect --tiles xyz` against a real HTTP tile server started on 127.0.0.1 by the test,
//! and `collect --tiles mbtiles` against an MBTiles file the test builds.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;

use model_core::data::tile::{TileId, lat_lon_to_tile};

mod common;

use common::tile_server::{start as start_server, tile_colour, tile_png};
use common::{bin, tmp};

const POINTS: [(&str, f64, f64); 3] =
    [("a", 60.1700, 24.9450), ("b", 60.1705, 24.9460), ("c", 60.1690, 24.9500)];

fn write_tags(dir: &Path) -> PathBuf {
    let p = dir.join("tags_in.csv");
    let mut s = String::from("id,lat,lon,type,source\n");
    for (id, lat, lon) in POINTS {
        s.push_str(&format!("{id},{lat},{lon},ramp,user\n"));
    }
    std::fs::write(&p, s).unwrap();
    p
}

fn collect(data: &Path, extra: &[&str]) -> Output {
    let tags = write_tags(data);
    bin()
        // Only the listed points: no background points (their tiles would count too).
        .args(["collect", "--zoom", "17", "--backoff-ms", "10", "--retries", "2"])
        .args(["--negatives-per-label", "0", "--data"])
        .arg(data)
        .arg("--tags")
        .arg(&tags)
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Tiles the three points' windows need at zoom 17.
fn needed_tiles() -> usize {
    let mut set = std::collections::BTreeSet::new();
    for (_, lat, lon) in POINTS {
        let w = model_core::data::tile::Window::centered(lat, lon, 17, 224).unwrap();
        set.extend(w.placements().into_iter().map(|p| p.tile));
    }
    set.len()
}

#[test]
fn xyz_client_fetches_caches_and_resumes() {
    let (base, stats) = start_server();
    let temp = tmp("tiles-ok");
    let data = temp.path();
    let url = format!("{base}/ok/{{z}}/{{x}}/{{y}}.png");
    let out = collect(data, &["--tiles", "xyz", "--url", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let need = needed_tiles();
    assert_eq!(stats.total("/ok/"), need, "each tile fetched once");
    assert!(stats.max_active.load(Ordering::SeqCst) <= 2, "more than 2 connections at once");
    assert!(stats.user_agents.lock().unwrap().iter().all(|ua| ua.starts_with("AccessAtlas/")));
    // The centre pixel of each image comes from the tile that contains the point.
    for (id, lat, lon) in POINTS {
        let img = image::open(data.join(format!("images/{id}.png"))).unwrap().to_rgb8();
        let t: TileId = lat_lon_to_tile(lat, lon, 17).unwrap();
        assert_eq!(img.get_pixel(112, 112).0, tile_colour(t.x, t.y), "{id}");
    }
    // A second run is served from the cache: no request at all.
    let again = collect(data, &["--tiles", "xyz", "--url", &url]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(stats.total("/ok/"), need);
    assert!(text(&again).contains(&format!("{need} cached")), "{}", text(&again));
    // Resume: a tile missing from the cache (an interrupted run) is the only one fetched.
    let cached: Vec<_> = walk(&data.join("tile_cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tile"))
        .collect();
    assert_eq!(cached.len(), need);
    std::fs::remove_file(&cached[0]).unwrap();
    let resumed = collect(data, &["--tiles", "xyz", "--url", &url]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(stats.total("/ok/"), need + 1);
    // The cache keeps tiles at least 7 days although the server said max-age=60.
    let meta = walk(&data.join("tile_cache"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(m["expires"].as_u64().unwrap() >= now + 7 * 24 * 3600 - 60);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

#[test]
fn xyz_client_retries_429_and_reports_failures() {
    let (base, stats) = start_server();
    let temp = tmp("tiles-flaky");
    let data = temp.path();
    let out =
        collect(data, &["--tiles", "xyz", "--url", &format!("{base}/flaky/{{z}}/{{x}}/{{y}}.png")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stats.total("/flaky/"), 2 * needed_tiles(), "one 429 then one success per tile");

    for (route, needle) in [("broken", "HTTP 500"), ("corrupt", "corrupt tile bytes")] {
        let temp = tmp(&format!("tiles-{route}"));
        let data = temp.path();
        let out = collect(
            data,
            &["--tiles", "xyz", "--url", &format!("{base}/{route}/{{z}}/{{x}}/{{y}}.png")],
        );
        assert!(!out.status.success(), "{route}: {}", text(&out));
        let t = text(&out);
        assert!(t.contains(needle) && t.contains("failed: a:"), "{route}: {t}");
        let rejected = std::fs::read_to_string(data.join("rejected_rows.csv")).unwrap();
        assert!(rejected.contains(needle), "{rejected}");
    }
    // 500 is retried: 1 + 2 retries per tile.
    assert_eq!(stats.total("/broken/"), 3 * needed_tiles());
    // corrupt bytes are not retried
    assert_eq!(stats.total("/corrupt/"), needed_tiles());
}

#[test]
fn xyz_client_times_out_slow_servers() {
    let (base, _stats) = start_server();
    let temp = tmp("tiles-slow");
    let data = temp.path();
    let out = collect(
        data,
        &[
            "--tiles",
            "xyz",
            "--timeout-secs",
            "0.5",
            "--url",
            &format!("{base}/slow/{{z}}/{{x}}/{{y}}.png"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).to_lowercase().contains("timeout")
            || text(&out).to_lowercase().contains("timed out"),
        "{}",
        text(&out)
    );
}

#[test]
fn osm_tile_servers_are_refused() {
    let temp = tmp("tiles-osmorg");
    let data = temp.path();
    let out = collect(
        data,
        &["--tiles", "xyz", "--url", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("Tile Usage Policy"), "{}", text(&out));
}

#[test]
fn mbtiles_tiles_are_read_back() {
    let temp = tmp("tiles-mbtiles");
    let data = temp.path();
    let file = data.join("fixture.mbtiles");
    {
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "CREATE TABLE metadata (name TEXT, value TEXT);
             CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
             INSERT INTO metadata VALUES ('name', 'fixture'), ('format', 'png');",
        )
        .unwrap();
        for (_, lat, lon) in POINTS {
            let w = model_core::data::tile::Window::centered(lat, lon, 17, 224).unwrap();
            for p in w.placements() {
                let tms = (1u32 << 17) - 1 - p.tile.y;
                conn.execute(
                    "INSERT INTO tiles VALUES (17, ?1, ?2, ?3)",
                    (p.tile.x, tms, tile_png(p.tile.x, p.tile.y)),
                )
                .unwrap();
            }
        }
    }
    let out = collect(data, &["--tiles", "mbtiles", "--path", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    for (id, lat, lon) in POINTS {
        let img = image::open(data.join(format!("images/{id}.png"))).unwrap().to_rgb8();
        let t = lat_lon_to_tile(lat, lon, 17).unwrap();
        assert_eq!(img.get_pixel(112, 112).0, tile_colour(t.x, t.y), "{id}");
    }
    let bad = data.join("not.mbtiles");
    std::fs::write(&bad, b"SQLite format 3\0 but not really").unwrap();
    let out = collect(data, &["--tiles", "mbtiles", "--path", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not.mbtiles"), "{}", text(&out));
}
