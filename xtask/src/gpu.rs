//! `cargo xtask gpu`: the wgpu backend against the CPU one (`tests/gpu.rs`): inference of the
//! shipped bundle, training steps in f32 and f16, and a whole `train --device wgpu` run.
//!
//! It runs on the machine's GPU where wgpu finds one (Vulkan, Metal or DX12). On a machine
//! without a Vulkan driver it installs Mesa's lavapipe (Debian `mesa-vulkan-drivers`), a
//! software Vulkan implementation: slow, but a real driver compiling and running the same
//! shaders, which checks the code path end to end.
//!
//! Not part of `cargo xtask test` (CI): its cold release build with wgpu took ~40 minutes on two
//! cores, and CI machines have no GPU to measure.

use std::path::Path;

use anyhow::Result;

use crate::{apt_install, cargo, run};

const ICD_DIRS: [&str; 3] =
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"];

fn has_vulkan_driver() -> bool {
    ICD_DIRS.iter().any(|d| {
        std::fs::read_dir(d)
            .map(|mut entries| {
                entries.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
            })
            .unwrap_or(false)
    })
}

pub fn gpu(_root: &Path) -> Result<()> {
    if cfg!(target_os = "linux") && !has_vulkan_driver() {
        eprintln!("no Vulkan driver found: installing Mesa's lavapipe (software Vulkan)");
        apt_install(&["mesa-vulkan-drivers"])?;
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "--features",
        "wgpu",
        "--test",
        "gpu",
        "--",
        "--test-threads=1",
    ]);
    // Mesa's loader warns on every start without a runtime dir; give it a private one.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("accessatlas-xdg-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        cmd.env("XDG_RUNTIME_DIR", dir);
    }
    run(&mut cmd)?;
    eprintln!("xtask gpu: wgpu agrees with the CPU");
    Ok(())
}
