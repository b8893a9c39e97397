//! Which backend native training runs on: `--device cpu|wgpu|cuda`. The GPU backends are cargo
//! features of this package (`cargo run --release --features wgpu -- train --device wgpu`,
//! likewise `cuda`): a default build carries only the CPU backend (`flex`), which keeps the
//! build small; asking for a backend the build lacks is a clear error, not a silent fallback.

use anyhow::Result;
use burn::tensor::Device;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceArg {
    /// Burn `flex` on the CPU (always built).
    #[default]
    Cpu,
    /// Burn `wgpu` (Vulkan, Metal or DX12 through wgpu); build with `--features wgpu`.
    Wgpu,
    /// Burn `cuda` (NVIDIA); build with `--features cuda`.
    Cuda,
}

/// The inference device for `d` (callers add `.autodiff()` to train).
pub fn device(d: DeviceArg) -> Result<Device> {
    match d {
        DeviceArg::Cpu => Ok(Device::flex()),
        DeviceArg::Wgpu => wgpu(),
        DeviceArg::Cuda => cuda(),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Result<Device> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device> {
    anyhow::bail!(
        "this build has no wgpu backend: rebuild with `cargo build --release --features wgpu`"
    )
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    Ok(Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    anyhow::bail!(
        "this build has no CUDA backend: rebuild with `cargo build --release --features cuda`"
    )
}

/// What training says about mixed precision on `d`.
pub fn mixed_precision_note(d: DeviceArg) -> &'static str {
    match d {
        DeviceArg::Cpu => "mixed precision: unavailable on the CPU (flex) backend; training in f32",
        DeviceArg::Wgpu | DeviceArg::Cuda => {
            "mixed precision: not implemented for GPU training yet (no f16/bf16 autocast in \
             this release); training in f32"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_always_works_and_missing_backends_say_how_to_get_them() {
        assert!(device(DeviceArg::Cpu).is_ok());
        #[cfg(not(feature = "wgpu"))]
        assert!(device(DeviceArg::Wgpu).unwrap_err().to_string().contains("--features wgpu"));
        #[cfg(not(feature = "cuda"))]
        assert!(device(DeviceArg::Cuda).unwrap_err().to_string().contains("--features cuda"));
    }
}
