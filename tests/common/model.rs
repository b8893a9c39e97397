//! The shipped model bundle and real rendered tiles as its inputs, shared by the tests that
//! compare backends and formats.
#![allow(dead_code)]

use std::path::PathBuf;

use accessatlas::osm::OsmMap;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME};
use accessatlas::render::Renderer;
use burn::tensor::Device;
use model_core::data::preprocess::ModelInput;
use model_core::data::tile::lat_lon_to_tile;
use model_core::infer::Predictor;
use model_core::infer::bundle::BundleManifest;

/// `assets/model`, the bundle the app ships.
pub fn bundle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/model")
}

/// The shipped bundle's compact copy and what export measured of it, when that is within the
/// page's budget: the bundle the page loads instead of the f32 one (the worker's rule).
pub fn page_compact() -> Option<(PathBuf, model_core::infer::bundle::PrecisionReport)> {
    use model_core::infer::bundle::{COMPACT_DIR, PRECISION_REPORT_FILE, PrecisionReport};
    let dir = bundle().join(COMPACT_DIR);
    let bytes = std::fs::read(dir.join(PRECISION_REPORT_FILE)).ok()?;
    let report: PrecisionReport = serde_json::from_slice(&bytes).ok()?;
    report.within_budget().then_some((dir, report))
}

/// The bundle the page loads: the compact copy when export measured it within the page's
/// budget (the worker's rule), else the f32 one.
pub fn page_model() -> PathBuf {
    page_compact().map_or_else(bundle, |(dir, _)| dir)
}

/// A copy of the shipped bundle (its compact copy included) in `dest` that never learned
/// `label`: its class weight 0, as `preprocess` writes for a type the training split holds no
/// example of. The weights are the shipped ones.
pub fn copy_bundle_without_type(dest: &std::path::Path, label: &str) {
    use model_core::infer::bundle::COMPACT_DIR;
    for (from, to) in
        [(bundle(), dest.to_path_buf()), (bundle().join(COMPACT_DIR), dest.join(COMPACT_DIR))]
    {
        if !from.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
        let path = to.join("model.json");
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let labels: Vec<String> = serde_json::from_value(m["config"]["labels"].clone()).unwrap();
        let i = labels.iter().position(|l| l == label).unwrap();
        m["class_weights"][i] = serde_json::json!(0.0);
        std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
}

/// The shipped bundle loaded on `device`.
pub fn shipped(device: &Device) -> Predictor {
    let dir = bundle();
    let manifest =
        BundleManifest::from_json(&std::fs::read_to_string(dir.join("model.json")).unwrap())
            .unwrap();
    let weights = std::fs::read(dir.join("weights.bpk")).unwrap();
    Predictor::from_bundle(&manifest, &weights, device).unwrap()
}

/// Real map tiles around Helsinki's centre as model inputs, with varied sources.
pub fn rendered_inputs(p: &Predictor, n: usize) -> Vec<ModelInput> {
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let r = Renderer::new(&map, 19).unwrap();
    (0..n)
        .map(|i| {
            let (lat, lon) = (60.1685 + 0.0004 * i as f64, 24.9375 + 0.0006 * i as f64);
            let img = image::DynamicImage::ImageRgba8(
                r.render_tile(lat_lon_to_tile(lat, lon, 19).unwrap()),
            )
            .to_rgb8();
            p.input(&img, lat, lon, ["osm", "user", "model", "other"][i % 4]).unwrap()
        })
        .collect()
}
