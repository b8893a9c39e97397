//! Native inference benchmark (run by `cargo xtask bench`, never as a test): the shipped
//! EfficientNet-Lite0 bundle's forward pass on the CPU at the given batch sizes, through
//! `Predictor::predict_batch` (what `predict` and the API run), with the model's own kernels
//! (`infer_kernels`, what the product runs) and with Burn `flex` (`infer_burn`, the reference
//! they are tested against), each in a block of its own after a warm-up, as the references
//! run.
//!
//! `cargo bench --bench infer -- [--batches 1,16] [--repeat N]`. One JSON line per batch and
//! engine.

mod util;
use util::arg;

use std::time::Instant;

use burn::tensor::Device;
use model_core::data::preprocess::ModelInput;
use model_core::infer::Predictor;
use model_core::infer::bundle::BundleManifest;
use model_core::rng::Rng;
use serde_json::json;

fn main() {
    let repeat: usize = arg("--repeat", 20usize).max(1);
    let batches: String = arg("--batches", "1,16".to_string());
    // `--bundle DIR`: another bundle than the shipped one (`cargo xtask reference encoders`).
    let dir: String = arg("--bundle", concat!(env!("CARGO_MANIFEST_DIR"), "/assets/model").into());
    let manifest =
        BundleManifest::from_json(&std::fs::read_to_string(format!("{dir}/model.json")).unwrap())
            .unwrap();
    let weights = std::fs::read(format!("{dir}/weights.bpk")).unwrap();
    let device = Device::flex();
    let p = Predictor::from_bundle(&manifest, &weights, &device).unwrap();
    let burn = p.clone().without_kernels();
    let isa = p.kernels().map_or("none", |k| k.isa().name());
    let s = p.config.image_size as usize;
    let k = p.config.sources.one_hot_len();
    let mut rng = Rng::new(7);
    for batch in batches.split(',').filter_map(|b| b.parse::<usize>().ok()) {
        let inputs: Vec<ModelInput> = (0..batch)
            .map(|i| {
                let mut source = vec![0.0; k];
                source[i % k] = 1.0;
                ModelInput {
                    image: (0..3 * s * s).map(|_| rng.uniform(-2.0, 2.0) as f32).collect(),
                    coords: [rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32],
                    source,
                    outside_trained_area: false,
                }
            })
            .collect();
        let engines = [("infer_kernels", &p), ("infer_burn", &burn)];
        let mut times = [Vec::new(), Vec::new()];
        // Each engine runs its passes in a block of its own after a warm-up, as the references
        // (onnxruntime, PyTorch) do in their processes: alternating with Burn's pass, whose
        // tensors push the kernels' weights out of the cache, timed the kernels cold.
        for ((_, e), t) in engines.iter().zip(&mut times) {
            e.predict_batch(&inputs).unwrap(); // warm-up
            for _ in 0..repeat {
                let start = Instant::now();
                e.predict_batch(&inputs).unwrap();
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        for ((name, _), mut t) in engines.into_iter().zip(times) {
            t.sort_by(f64::total_cmp);
            println!(
                "{}",
                json!({
                    "bench": name,
                    "batch": batch,
                    "repeat": repeat,
                    "p50_ms": t[t.len() / 2],
                    "isa": isa,
                    "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                })
            );
        }
    }
}
