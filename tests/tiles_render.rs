//! `accessatlas tiles render` and `accessatlas serve --tiles FILE.mbtiles`: an area drawn once
//! equals what the renderer draws on request, byte for byte, whether read from the MBTiles
//! file, the folder, or served; `collect` cuts the same images from the file as from the
//! renderer; a server started on the file alone holds no extract and says so.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Output, Stdio};

use accessatlas::osm::OsmMap;
use accessatlas::render::Renderer;
use accessatlas::tiles::rendered::tile_png;
use model_core::data::tile::{BBox, TileId};

mod common;

use common::{bin, tmp};

const BBOX: &str = "24.9440,60.1690,24.9470,60.1705";

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn render(out: &Path) {
    let o = bin()
        .args(["tiles", "render", "--bbox", BBOX, "--zoom", "18-19", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Every tile of the area at zoom 18 and 19.
fn area_tiles() -> Vec<TileId> {
    accessatlas::cmd::tiles::tiles_in(&BBox::parse(BBOX).unwrap(), (18, 19)).unwrap()
}

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = bin()
        .arg("serve")
        .args(["--dist", "/nonexistent-dist", "--port", &port.to_string()])
        .arg("--model")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/model"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child, port);
    for _ in 0..600 {
        if get(port, "/tiles/style").0 == 200 {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("serve did not answer in 30 s");
}

fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    match agent.get(&format!("http://127.0.0.1:{port}{path}")).call() {
        Ok(mut r) => {
            let mut b = Vec::new();
            r.body_mut().as_reader().read_to_end(&mut b).unwrap();
            (r.status().as_u16(), b)
        }
        Err(_) => (0, Vec::new()),
    }
}

#[test]
fn rendered_once_equals_rendered_on_request_in_file_folder_and_server() {
    let temp = tmp("tiles-render-same");
    let dir = temp.path();
    let file = dir.join("area.mbtiles");
    let folder = dir.join("area");
    render(&file);
    render(&folder);
    // No temporary file is left beside the output.
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let (map, _) = OsmMap::open(None).unwrap();
    let renderers = [Renderer::new(&map, 18).unwrap(), Renderer::new(&map, 19).unwrap()];
    let want = |t: TileId| tile_png(renderers[usize::from(t.z - 18)].render_tile(t)).unwrap();
    let tiles = area_tiles();
    assert!(tiles.len() >= 6, "{}", tiles.len());

    let file_server = serve(&["--tiles", file.to_str().unwrap()]);
    let live_server = serve(&[]);
    for &t in &tiles {
        let expected = want(t);
        let path = format!("/tiles/{}/{}/{}.png", t.z, t.x, t.y);
        let on_disk = std::fs::read(folder.join(format!("{}/{}/{}.png", t.z, t.x, t.y))).unwrap();
        assert_eq!(on_disk, expected, "folder {path}");
        assert_eq!(get(file_server.1, &path), (200, expected.clone()), "served from file {path}");
        assert_eq!(get(live_server.1, &path).1, expected, "rendered on request {path}");
    }
    // Outside the rendered area: a 404 naming the file.
    let (code, body) = get(file_server.1, "/tiles/19/0/0.png");
    assert_eq!(code, 404);
    assert!(String::from_utf8_lossy(&body).contains("area.mbtiles"));
    // The style the file was drawn with, and its zooms.
    let (_, style) = get(file_server.1, "/tiles/style");
    let style: serde_json::Value = serde_json::from_slice(&style).unwrap();
    assert_eq!(style["style"], accessatlas::render::style::STYLE_VERSION);
    assert_eq!((style["min_zoom"].as_u64(), style["max_zoom"].as_u64()), (Some(18), Some(19)));
    // No extract behind it: features and suggestions say what is missing.
    let (code, body) = get(file_server.1, &format!("/api/features?bbox={BBOX}"));
    assert_eq!(code, 501, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("--osm"));
    let (code, _) = get(live_server.1, &format!("/api/features?bbox={BBOX}"));
    assert_eq!(code, 200);
}

#[test]
fn collect_cuts_the_same_images_from_the_file_as_from_the_renderer() {
    let temp = tmp("tiles-render-collect");
    let dir = temp.path();
    let file = dir.join("area.mbtiles");
    render(&file);
    let tags = dir.join("tags.csv");
    std::fs::write(&tags, "id,lat,lon,type,source\na,60.1697,24.9455,ramp,user\n").unwrap();
    let collect = |data: &Path, extra: &[&str]| {
        let o = bin()
            .args(["collect", "--negatives-per-label", "0", "--data"])
            .arg(data)
            .arg("--tags")
            .arg(&tags)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        std::fs::read(data.join("images/a.png")).unwrap()
    };
    let from_file =
        collect(&dir.join("file"), &["--tiles", "mbtiles", "--path", file.to_str().unwrap()]);
    let rendered = collect(&dir.join("render"), &[]);
    assert_eq!(from_file, rendered);
}

#[test]
fn bad_areas_and_zooms_are_refused_and_write_nothing() {
    let temp = tmp("tiles-render-bad");
    let dir = temp.path();
    for (args, word) in [
        (vec!["--bbox", "24.95,60.17,24.94,60.18"], "inverted"),
        (vec!["--bbox", BBOX, "--zoom", "19-15"], "inverted"),
        (vec!["--bbox", BBOX, "--zoom", "23"], "above"),
    ] {
        let out = dir.join("x.mbtiles");
        let o =
            bin().args(["tiles", "render"]).args(&args).arg("--out").arg(&out).output().unwrap();
        assert!(!o.status.success());
        assert!(text(&o).contains(word), "{args:?}: {}", text(&o));
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "{args:?}");
    }
}
