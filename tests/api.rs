//! The prediction API of `accessatlas serve` on a real socket with the shipped model bundle:
//! multipart and JSON give `accessatlas predict`'s answer; every kind of bad payload gets its
//! 4xx with a JSON body naming the field; concurrent requests (batched by the server) give the
//! answers sequential ones do.

use std::io::{Read, Write};
use std::path::PathBuf;

use accessatlas::api::ApiConfig;
use accessatlas::osm::OsmMap;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use accessatlas::render::Renderer;
use accessatlas::serve::TileLimits;
use base64::Engine;
use burn::tensor::Device;
use model_core::Prediction;
use model_core::data::tile::lat_lon_to_tile;

mod common;

use common::bin;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn bundle() -> PathBuf {
    PathBuf::from(ROOT).join("assets/model")
}

fn start(cfg: ApiConfig) -> String {
    common::browser::start_server(None, cfg, TileLimits::default())
}

/// The features of `map` that the rules give a type.
fn mapped(map: &OsmMap) -> Vec<accessatlas::osm::Labelled> {
    let rules = accessatlas::osm::rules::Rules::default_rules(&Default::default()).unwrap();
    accessatlas::osm::labelled_features(map, &rules)
}

/// `GET /api/features`: what the extract maps in a bbox, as GeoJSON with OSM ids and tags; a
/// bad or too large bbox is a 4xx naming it.
#[test]
fn features_in_a_bbox_and_bad_bboxes() {
    let base = start(ApiConfig::default());
    let bbox = "24.935,60.165,24.950,60.172";
    let (status, v) = get(&format!("{base}/api/features?bbox={bbox}"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "FeatureCollection");
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let b = model_core::data::tile::BBox::parse(bbox).unwrap();
    let want: Vec<_> = mapped(&map).into_iter().filter(|f| b.contains(f.lat, f.lon)).collect();
    let got = v["features"].as_array().unwrap();
    assert!(want.len() > 10, "the area holds {} features", want.len());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        let p = &g["properties"];
        assert_eq!(format!("{}/{}", p["osm_type"].as_str().unwrap(), p["osm_id"]), w.id);
        assert_eq!(p["type"], w.label.as_str());
        for (k, val) in &w.tags {
            assert_eq!(p["tags"][k], val, "{k} of {}", w.id);
        }
        // JSON round trip: the last bit of a float may differ.
        let at = g["geometry"]["coordinates"].as_array().unwrap();
        let (lon, lat) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        assert!((lon - w.lon).abs() < 1e-9 && (lat - w.lat).abs() < 1e-9, "{at:?} vs {w:?}");
    }
    for (query, status, code) in [
        ("", 400, "missing_field"),
        ("?bbox=1,2,3", 400, "bad_bbox"),
        ("?bbox=24.95,60.16,24.93,60.17", 400, "bad_bbox"),
        ("?bbox=NaN,60.16,24.95,60.17", 400, "bad_bbox"),
        ("?bbox=24.93,86,24.95,87", 400, "bad_bbox"),
        ("?bbox=24,60,25,61", 422, "area_too_large"),
    ] {
        let (s, v) = get(&format!("{base}/api/features{query}"));
        assert_eq!((s, v["code"].as_str().unwrap()), (status, code), "{query}: {v}");
        assert_eq!(v["field"], "bbox", "{query}: {v}");
    }
}

/// `GET /api/suggest` gives what `accessatlas suggest --format geojson` gives for the same
/// bbox and threshold; a bad threshold or an area outside the extract is a 4xx naming it.
#[test]
fn suggest_answers_what_the_cli_does() {
    let base = start(ApiConfig::default());
    let bbox = "24.9370,60.1685,24.9410,60.1705";
    let (status, api) = get(&format!("{base}/api/suggest?bbox={bbox}&threshold=0.03"));
    assert_eq!(status, 200, "{api}");
    let out = bin()
        .current_dir(ROOT)
        .args(["suggest", "--bbox", bbox, "--threshold", "0.03", "--format", "geojson"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (a, c) = (api["features"].as_array().unwrap(), cli["features"].as_array().unwrap());
    assert!(!a.is_empty());
    assert_eq!(a.len(), c.len());
    assert_eq!(api["candidates"], cli["candidates"]);
    // Central Helsinki is the shipped model's own area: nothing is flagged.
    assert_eq!(
        (api["outside_trained_area"].as_u64(), cli["outside_trained_area"].as_u64()),
        (Some(0), Some(0))
    );
    for (x, y) in a.iter().zip(c) {
        assert_eq!(x["properties"]["outside_trained_area"], false);
        assert_eq!(x["properties"]["type"], y["properties"]["type"]);
        assert_eq!(x["properties"]["candidate"], y["properties"]["candidate"]);
        let f = |v: &serde_json::Value| v.as_f64().unwrap();
        let (px, py) = (&x["properties"]["confidence"], &y["properties"]["confidence"]);
        assert!((f(px) - f(py)).abs() < 1e-6, "{px} vs {py}");
        for i in 0..2 {
            let (u, w) = (f(&x["geometry"]["coordinates"][i]), f(&y["geometry"]["coordinates"][i]));
            assert!((u - w).abs() < 1e-9);
        }
    }
    // Without a threshold, both use the model's own.
    let (status, api) = get(&format!("{base}/api/suggest?bbox={bbox}"));
    assert_eq!(status, 200, "{api}");
    let out = bin()
        .current_dir(ROOT)
        .args(["suggest", "--bbox", bbox, "--format", "geojson"])
        .output()
        .unwrap();
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let places = |v: &serde_json::Value| {
        v["features"].as_array().unwrap().iter().map(|f| f["geometry"].clone()).collect::<Vec<_>>()
    };
    assert!(!places(&api).is_empty());
    assert_eq!(places(&api), places(&cli));
    for (query, status, code, field) in [
        (format!("bbox={bbox}&threshold=2"), 400, "bad_threshold", "threshold"),
        (format!("bbox={bbox}&threshold=high"), 400, "bad_threshold", "threshold"),
        ("bbox=10.0,50.0,10.01,50.01".to_string(), 422, "outside_extract", "bbox"),
        ("bbox=24.95,60.16,24.93,60.17".to_string(), 400, "bad_bbox", "bbox"),
        ("threshold=0.5".to_string(), 400, "missing_field", "bbox"),
    ] {
        let (s, v) = get(&format!("{base}/api/suggest?{query}"));
        assert_eq!(
            (s, v["code"].as_str().unwrap(), v["field"].as_str().unwrap()),
            (status, code, field),
            "{query}: {v}"
        );
    }
}

/// `suggest` in a region the model never saw (Andorra la Vella, from the bundled Andorran
/// extract, with the shipped bundle as if it had been trained without Andorra: its recorded
/// areas less Andorra's): it warns how many candidates lie outside the trained area and marks
/// each.
#[test]
fn suggest_outside_the_trained_area_says_so() {
    let dir = common::tmp("suggest-outside");
    let bundle = bundle();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("model.json")).unwrap()).unwrap();
    let areas = m["scaler"]["areas"].as_array_mut().expect("the bundle records its areas");
    areas.retain(|a| a["region"] != "andorra");
    assert!(!areas.is_empty(), "{}", m["scaler"]);
    // Nor Andorra's own suggestion rule (a bundle refuses a rule for a region it lacks).
    m["area_rules"].as_object_mut().expect("the bundle's own rules").remove("andorra");
    std::fs::write(dir.path().join("model.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    std::fs::copy(bundle.join("weights.bpk"), dir.path().join("weights.bpk")).unwrap();
    let out = bin()
        .current_dir(ROOT)
        .arg("suggest")
        .arg("--model")
        .arg(dir.path())
        .args(["--osm", "assets/osm/andorra.osm.pbf", "--bbox", "1.5210,42.5070,1.5216,42.5074"])
        .args(["--threshold", "0.01", "--format", "geojson"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = v["candidates"].as_u64().unwrap();
    assert!(n > 0, "{v}");
    assert_eq!(v["outside_trained_area"].as_u64(), Some(n), "{v}");
    assert!(err.contains("outside the area the model was trained on"), "{err}");
    for f in v["features"].as_array().unwrap() {
        assert_eq!(f["properties"]["outside_trained_area"], true, "{f}");
    }
}

/// Real map tiles from the bundled extract around Helsinki's centre.
fn tiles(n: usize) -> Vec<(Vec<u8>, f64, f64)> {
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let r = Renderer::new(&map, 19).unwrap();
    (0..n)
        .map(|i| {
            let (lat, lon) = (60.1690 + 0.0004 * i as f64, 24.9370 + 0.0005 * i as f64);
            let img = image::DynamicImage::ImageRgba8(
                r.render_tile(lat_lon_to_tile(lat, lon, 19).unwrap()),
            )
            .to_rgb8();
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
            (png, lat, lon)
        })
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

struct Reply {
    status: u16,
    json: serde_json::Value,
    retry_after: Option<String>,
}

fn post(url: &str, content_type: &str, body: &[u8]) -> Reply {
    let mut res = agent()
        .post(url)
        .header("Content-Type", content_type)
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = res.status().as_u16();
    let retry_after =
        res.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_string());
    let text = res.body_mut().read_to_string().unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    Reply { status, json, retry_after }
}

fn get(url: &str) -> (u16, serde_json::Value) {
    let mut res = agent().get(url).call().unwrap();
    let status = res.status().as_u16();
    (status, serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap())
}

/// A `multipart/form-data` body: `(name, filename, bytes)` per part.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "accessatlas-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        write!(body, "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").unwrap();
        if let Some(f) = file {
            write!(body, "; filename=\"{f}\"\r\nContent-Type: application/octet-stream").unwrap();
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn form(png: &[u8], lat: &str, lon: &str, source: &str) -> (String, Vec<u8>) {
    multipart(&[
        ("image", Some("tile.png"), png),
        ("lat", None, lat.as_bytes()),
        ("lon", None, lon.as_bytes()),
        ("source", None, source.as_bytes()),
    ])
}

fn prediction(v: &serde_json::Value) -> Prediction {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

fn assert_close(a: &Prediction, b: &Prediction, tol: f32) {
    assert_eq!(a.label, b.label);
    assert_eq!(a.probabilities.0.len(), b.probabilities.0.len());
    for (k, va) in &a.probabilities.0 {
        let vb = b.probabilities.0.iter().find(|(kb, _)| kb == k).map(|(_, v)| *v);
        assert!(vb.is_some_and(|vb| (va - vb).abs() <= tol), "{k}: {va} vs {vb:?}");
    }
}

fn assert_error(r: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.json["code"], code, "{}", r.json);
    assert!(!r.json["error"].as_str().unwrap_or("").is_empty(), "{}", r.json);
    if let Some(f) = field {
        assert_eq!(r.json["field"], f, "{}", r.json);
    }
}

#[test]
fn predicts_like_the_cli_in_both_formats() {
    let base = start(ApiConfig::default());
    let url = format!("{base}/api/predict");
    let (png, lat, lon) = tiles(1).pop().unwrap();
    let local = accessatlas::run::load_predictor(&bundle(), &Device::flex()).unwrap();
    let want = accessatlas::cmd::predict::predict_bytes(&local, &png, lat, lon, "osm").unwrap();

    let (ct, body) = form(&png, &lat.to_string(), &lon.to_string(), "osm");
    let r = post(&url, &ct, &body);
    assert_eq!(r.status, 200, "{}", r.json);
    let keys: Vec<&String> = r.json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["confidence", "outside_trained_area", "probabilities", "type"],
        "predict --json's schema"
    );
    assert_eq!(r.json["outside_trained_area"], false, "the bundled data's own area");
    let got = prediction(&r.json);
    assert_close(&got, &want, 1e-6);
    let sum: f32 = got.probabilities.0.iter().map(|(_, p)| p).sum();
    assert!((sum - 1.0).abs() < 1e-4);

    let json = serde_json::json!({
        "image": base64::engine::general_purpose::STANDARD.encode(&png),
        "lat": lat, "lon": lon, "source": "osm",
    });
    let r = post(&url, "application/json", json.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.json);
    assert_close(&prediction(&r.json), &want, 1e-6);

    // An unknown source falls back to the `unknown` bucket, as the CLI does: no error.
    let (ct, body) = form(&png, &lat.to_string(), &lon.to_string(), "drone");
    assert_eq!(post(&url, &ct, &body).status, 200);

    // Health, the model description and the OpenAPI document.
    let (s, h) = get(&format!("{base}/api/health"));
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, m) = get(&format!("{base}/api/model"));
    assert_eq!(s, 200);
    // The shipped model: five types and "no feature here", with the candidates' prior.
    assert_eq!(m["config"]["labels"].as_array().unwrap().len(), 6);
    assert_eq!(m["candidate_prior"].as_array().unwrap().len(), 6);
    assert!(m["provenance"]["git_revision"].is_string(), "{m}");
    assert!(m["tile_source"]["zoom"].is_u64(), "{m}");
    // Its limits: the areas it was trained on (every bundled region, the Helsinki tile's
    // place inside one of them), and the type it never saw.
    let areas = m["trained_areas"].as_array().unwrap();
    let regions: Vec<&str> = areas.iter().filter_map(|a| a["region"].as_str()).collect();
    assert_eq!(regions, ["andorra", "helsinki", "liechtenstein", "monaco"], "{m}");
    let inside = |a: &serde_json::Value, k: &str, v: f64| {
        a[format!("min_{k}")].as_f64().unwrap() < v && v < a[format!("max_{k}")].as_f64().unwrap()
    };
    assert!(areas.iter().any(|a| inside(a, "lat", lat) && inside(a, "lon", lon)), "{m}");
    // Monaco maps tactile paving: the shipped model saw every type.
    assert_eq!(m["unlearned_types"], serde_json::json!([]), "{m}");
    // A bundle whose training split held no tactile paving (class weight 0) lists it.
    let dir = common::tmp("unlearned");
    let unlearned = dir.path().join("model");
    common::model::copy_bundle_without_type(&unlearned, "tactile_path");
    let (other, _stop) = common::browser::start_stoppable_server_with(
        None,
        &unlearned,
        ApiConfig::default(),
        TileLimits::default(),
    );
    let (s, u) = get(&format!("{other}/api/model"));
    assert_eq!((s, &u["unlearned_types"]), (200, &serde_json::json!(["tactile_path"])), "{u}");
    let (s, o) = get(&format!("{base}/api/openapi.json"));
    assert_eq!(s, 200);
    assert!(o["paths"]["/api/predict"]["post"].is_object());
    let (s, e) = get(&format!("{base}/api/nothing"));
    assert_eq!((s, e["code"].as_str()), (404, Some("not_found")));
}

/// The bug this guards against: with the same tile, a place on another continent got `none`
/// at 100 % (its position arrived as a z-score in the thousands). Now the answer is the
/// model's guess from the tile alone, not saturated, and says it lies outside the trained
/// area; it equals the answer at the trained area's centre, which tells the model nothing of
/// position either.
#[test]
fn a_place_far_from_the_trained_area_is_flagged_not_saturated() {
    let base = start(ApiConfig::default());
    let url = format!("{base}/api/predict");
    let (png, lat, lon) = tiles(1).pop().unwrap();
    let ask = |lat: f64, lon: f64| {
        let (ct, body) = form(&png, &lat.to_string(), &lon.to_string(), "osm");
        let r = post(&url, &ct, &body);
        assert_eq!(r.status, 200, "{}", r.json);
        r.json
    };
    let home = ask(lat, lon);
    assert_eq!(home["outside_trained_area"], false);
    for (far_lat, far_lon) in [(-0.18, -78.47), (-33.87, 151.21), (45.76, 4.84)] {
        let far = ask(far_lat, far_lon);
        assert_eq!(far["outside_trained_area"], true, "{far_lat},{far_lon}: {far}");
        let p = prediction(&far);
        assert!(p.confidence < 0.99, "{far_lat},{far_lon}: saturated {far}");
        let centre = accessatlas::run::load_predictor(&bundle(), &Device::flex()).unwrap();
        let mean = centre.scaler.areas[0].mean;
        let at_centre =
            accessatlas::cmd::predict::predict_bytes(&centre, &png, mean[0], mean[1], "osm")
                .unwrap();
        assert!(!at_centre.outside_trained_area);
        assert_close(&p, &at_centre, 1e-5);
    }
}

#[test]
fn bad_payloads_get_the_right_4xx() {
    let cfg = ApiConfig::default();
    let max_body = cfg.max_body_bytes;
    let base = start(cfg);
    let url = format!("{base}/api/predict");
    let (png, lat, lon) = tiles(1).pop().unwrap();
    let (la, lo) = (lat.to_string(), lon.to_string());

    // Missing fields.
    let (ct, body) = multipart(&[("image", Some("t.png"), &png), ("lon", None, lo.as_bytes())]);
    assert_error(&post(&url, &ct, &body), 400, "missing_field", Some("lat"));
    let (ct, body) = multipart(&[("lat", None, la.as_bytes()), ("lon", None, lo.as_bytes())]);
    assert_error(&post(&url, &ct, &body), 400, "missing_field", Some("image"));
    let r = post(&url, "application/json", br#"{"lat": 60.17, "lon": 24.94}"#);
    assert_error(&r, 400, "missing_field", Some("image"));

    // Wrong types.
    let (ct, body) = form(&png, "sixty", &lo, "osm");
    assert_error(&post(&url, &ct, &body), 400, "wrong_type", Some("lat"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let r = post(
        &url,
        "application/json",
        format!(r#"{{"image":"{b64}","lat":60.17,"lon":"24.94"}}"#).as_bytes(),
    );
    assert_error(&r, 400, "wrong_type", Some("lon"));
    let r = post(&url, "application/json", br#"{"image": 12, "lat": 60.17, "lon": 24.94}"#);
    assert_error(&r, 400, "wrong_type", Some("image"));
    assert_error(&post(&url, "application/json", b"{not json"), 400, "bad_json", None);
    assert_error(&post(&url, "text/plain", b"hello"), 415, "unsupported_content_type", None);

    // Non-image bytes, a truncated PNG.
    let (ct, body) = form(b"this is not a picture at all", &la, &lo, "osm");
    assert_error(&post(&url, &ct, &body), 415, "not_an_image", Some("image"));
    let (ct, body) = form(&png[..png.len() / 2], &la, &lo, "osm");
    assert_error(&post(&url, &ct, &body), 422, "bad_image", Some("image"));

    // A 50-megapixel image (a few KB of PNG: a decompression bomb) is refused from its header.
    let bomb = {
        let img = image::GrayImage::new(7072, 7072);
        let mut out = Vec::new();
        image::DynamicImage::ImageLuma8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    };
    assert!(bomb.len() < max_body, "the bomb must pass the body limit to reach the pixel check");
    let (ct, body) = form(&bomb, &la, &lo, "osm");
    let r = post(&url, &ct, &body);
    assert_error(&r, 413, "too_large", Some("image"));
    assert!(r.json["error"].as_str().unwrap().contains("50013184"), "{}", r.json);

    // Out-of-range coordinates.
    let (ct, body) = form(&png, "95", &lo, "osm");
    assert_error(&post(&url, &ct, &body), 422, "out_of_range", Some("lat"));
    let (ct, body) = form(&png, &la, "-181", "osm");
    assert_error(&post(&url, &ct, &body), 422, "out_of_range", Some("lon"));
    let r = post(
        &url,
        "application/json",
        format!(r#"{{"image":"{b64}","lat":60.17,"lon":1e400}}"#).as_bytes(),
    );
    assert!(r.status == 400 || r.status == 422, "{}", r.json);

    // Oversized bodies: declared (Content-Length) and streamed (chunked), both formats.
    let big = vec![b'x'; max_body + 1024];
    let (ct, body) = multipart(&[("image", Some("t.png"), &big)]);
    assert_error(&post(&url, &ct, &body), 413, "too_large", None);
    let mut json = br#"{"image":""#.to_vec();
    json.extend_from_slice(&big);
    json.extend_from_slice(br#""}"#);
    assert_error(&post(&url, "application/json", &json), 413, "too_large", None);
    let (status, text) = chunked_post(&base, "application/json", &json);
    assert_eq!(status, 413, "{text}");

    // Unknown and duplicate fields are named, not ignored.
    let (ct, body) = multipart(&[
        ("image", Some("t.png"), &png),
        ("latitude", None, la.as_bytes()),
        ("lon", None, lo.as_bytes()),
    ]);
    assert_error(&post(&url, &ct, &body), 400, "unknown_field", Some("latitude"));
    let (ct, body) = multipart(&[
        ("image", Some("t.png"), &png),
        ("lat", None, la.as_bytes()),
        ("lat", None, la.as_bytes()),
        ("lon", None, lo.as_bytes()),
    ]);
    assert_error(&post(&url, &ct, &body), 400, "duplicate_field", Some("lat"));
    let dup = format!(r#"{{"image":"iVBORw0KGgo=","lat":{la},"lon":{lo},"lon":{lo}}}"#);
    assert_error(
        &post(&url, "application/json", dup.as_bytes()),
        400,
        "duplicate_field",
        Some("lon"),
    );

    // After all that, the server still answers.
    let (ct, body) = form(&png, &la, &lo, "osm");
    assert_eq!(post(&url, &ct, &body).status, 200);
}

/// POSTs `body` with `Transfer-Encoding: chunked` (no Content-Length) over a raw socket.
fn chunked_post(base: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let host = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // The server may answer and close before the whole body is sent: stop writing then.
    for chunk in body.chunks(64 * 1024) {
        if write!(conn, "{:x}\r\n", chunk.len()).is_err()
            || conn.write_all(chunk).is_err()
            || conn.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = conn.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = conn.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn concurrent_requests_answer_as_sequential_ones() {
    let base = start(ApiConfig { max_batch: 8, ..ApiConfig::default() });
    let url = format!("{base}/api/predict");
    let inputs = tiles(12);
    let sources = ["osm", "user", "model"];
    let sequential: Vec<Prediction> = inputs
        .iter()
        .enumerate()
        .map(|(i, (png, lat, lon))| {
            let (ct, body) = form(png, &lat.to_string(), &lon.to_string(), sources[i % 3]);
            let r = post(&url, &ct, &body);
            assert_eq!(r.status, 200, "{}", r.json);
            prediction(&r.json)
        })
        .collect();
    let concurrent: Vec<Prediction> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .enumerate()
            .map(|(i, (png, lat, lon))| {
                let url = &url;
                s.spawn(move || {
                    let (ct, body) = form(png, &lat.to_string(), &lon.to_string(), sources[i % 3]);
                    let r = post(url, &ct, &body);
                    assert_eq!(r.status, 200, "{}", r.json);
                    prediction(&r.json)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Batched and single forward passes may round differently in the last bits only.
    for (a, b) in sequential.iter().zip(&concurrent) {
        assert_close(a, b, 1e-5);
    }
    assert!(
        sequential.iter().map(|p| &p.label).collect::<std::collections::HashSet<_>>().len() > 1
            || sequential.windows(2).any(|w| w[0].confidence != w[1].confidence),
        "different inputs should not all give one identical answer"
    );
}

#[test]
fn over_capacity_is_503_with_retry_after() {
    // One request at a time: a burst gets some 503s, each with Retry-After, and no 5xx else.
    let base = start(ApiConfig { max_concurrent: 1, ..ApiConfig::default() });
    let url = format!("{base}/api/predict");
    let (png, lat, lon) = tiles(1).pop().unwrap();
    let (ct, body) = form(&png, &lat.to_string(), &lon.to_string(), "osm");
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8).map(|_| s.spawn(|| post(&url, &ct, &body))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(replies.iter().any(|r| r.status == 200));
    let busy: Vec<&Reply> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "8 simultaneous requests with a limit of 1 must see a 503");
    for r in busy {
        assert_error(r, 503, "busy", None);
        assert_eq!(r.retry_after.as_deref(), Some("1"));
    }
    assert!(replies.iter().all(|r| r.status == 200 || r.status == 503));
}

#[test]
fn a_body_that_stalls_times_out_with_408() {
    let base = start(ApiConfig {
        read_timeout: std::time::Duration::from_millis(300),
        ..ApiConfig::default()
    });
    let host = base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"lat\": 60"
    )
    .unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut raw = vec![0u8; 4096];
    let n = conn.read(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
}
