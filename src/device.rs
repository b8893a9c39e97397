//! Which backend native training runs on: `--device cpu|wgpu|cuda`. The GPU backends are cargo
//! features of this package (`cargo run --release --features wgpu -- train --device wgpu`,
//! likewise `cuda`): a default build carries only the CPU backend (`flex`), which keeps the
//! build small; asking for a backend the build lacks is a clear error, not a silent fallback.

use anyhow::Result;
use burn::tensor::Device;
use model_core::train::precision::Precision;

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
    probe(
        "wgpu",
        "is a Vulkan, Metal or DX12 driver installed? (`cargo xtask gpu` installs Mesa's \
         software Vulkan on Debian)",
        Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
    )
}

#[cfg(not(feature = "wgpu"))]
fn wgpu() -> Result<Device> {
    anyhow::bail!(
        "this build has no wgpu backend: rebuild with `cargo build --release --features wgpu`"
    )
}

#[cfg(feature = "cuda")]
fn cuda() -> Result<Device> {
    probe("CUDA", "is an NVIDIA GPU with its driver present?", Device::cuda(0))
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> Result<Device> {
    anyhow::bail!(
        "this build has no CUDA backend: rebuild with `cargo build --release --features cuda`"
    )
}

/// Runs one tiny computation on a GPU `device`, so a missing driver or adapter is a clear
/// error before any file is read, not a panic from deep inside the backend mid-run.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn probe(name: &str, hint: &str, device: Device) -> Result<Device> {
    use burn::tensor::Tensor;
    let d = device.clone();
    // The backend reports a missing adapter by panicking; keep its message off the terminal
    // (it becomes the error below) and restore the hook after.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let sum = std::panic::catch_unwind(move || {
        Tensor::<1>::from_floats([1.0, 2.0], &d).sum().into_scalar::<f32>()
    });
    std::panic::set_hook(hook);
    match sum {
        Ok(v) if v == 3.0 => Ok(device),
        Ok(v) => anyhow::bail!("{name}: the device computed 1 + 2 = {v}; it is not usable"),
        Err(p) => {
            let why = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            anyhow::bail!(
                "{name}: no usable device ({why}; the backend's log line above says more); {hint}"
            )
        }
    }
}

/// Checks that `device` computes in `precision` and says what the run will do: an error that
/// names the backend when it cannot (no silent fallback to f32), otherwise the line training
/// logs.
pub fn check_precision(d: DeviceArg, device: &Device, precision: Precision) -> Result<String> {
    if precision == Precision::F32 {
        return Ok("precision: f32 (pass --precision f16 or bf16 for mixed precision)".into());
    }
    if !precision.supported_on(device) {
        anyhow::bail!(
            "--precision {precision}: this {d:?} device cannot compute in {precision}; \
             train with --precision f32 or another --device"
        );
    }
    let scaling = if precision == Precision::F16 { ", dynamic loss scaling" } else { "" };
    let mut note = format!("precision: mixed {precision} (f32 master weights{scaling})");
    if d == DeviceArg::Cpu {
        note += &format!(
            "; the CPU backend computes {precision} in software, slower than f32: use it to \
             check a run before a GPU"
        );
    }
    Ok(note)
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

    #[test]
    fn the_cpu_trains_in_every_precision_and_says_what_it_does() {
        let d = device(DeviceArg::Cpu).unwrap();
        assert!(check_precision(DeviceArg::Cpu, &d, Precision::F32).unwrap().contains("f32"));
        let note = check_precision(DeviceArg::Cpu, &d, Precision::Bf16).unwrap();
        assert!(note.contains("mixed bf16") && note.contains("slower"), "{note}");
        let note = check_precision(DeviceArg::Cpu, &d, Precision::F16).unwrap();
        assert!(note.contains("loss scaling"), "{note}");
    }
}
