//! File helpers: every file the CLI writes goes through [`write_atomic`].

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
/// A reader sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = &folder_of(path);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = temp_path(path);
    let result = (|| -> Result<()> {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Where a writer puts `path`'s content before renaming it into place: `.NAME.tmpPID` beside
/// it (what [`sweep_stale_temps`] recognises).
pub fn temp_path(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    folder_of(path).join(format!(".{name}.tmp{}", std::process::id()))
}

/// The folder a file `path` lies in (`.` for a bare name).
pub fn folder_of(path: &Path) -> std::path::PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// Removes the temporary files ([`write_atomic`]'s `.NAME.tmpPID`, the MBTiles writer's too)
/// that a stopped run left in `dir` (and its sub-folders when `deep`): a process killed midway
/// leaves its temporary file behind, never a half-written file under the real name. Files
/// of a process still running are left alone. Says what it removed; returns how many.
pub fn sweep_stale_temps(dir: &Path, deep: bool) -> usize {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if deep {
                    stack.push(path);
                }
            } else if let Some(pid) = stale_temp_pid(&e.file_name().to_string_lossy())
                && !std::path::Path::new(&format!("/proc/{pid}")).exists()
                && std::fs::remove_file(&path).is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::warn!(
            "removed {removed} half-written temporary file(s) that a stopped run left in {}",
            dir.display()
        );
    }
    removed
}

/// The process id in a temporary file's name `.NAME.tmpPID`, if it is one.
fn stale_temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, pid) = rest.rsplit_once(".tmp")?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// A command's rejected rows: written (atomically) to `path` when there are any, and an old
/// list removed when there are none, so the file always describes the last run.
pub fn write_rejected(path: &Path, rejected: &[model_core::data::tags::Rejected]) -> Result<()> {
    if rejected.is_empty() {
        let _ = std::fs::remove_file(path);
        Ok(())
    } else {
        write_atomic(path, &model_core::data::tags::write_rejected_csv(rejected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary file of a process that is gone is removed, one of a running process and
    /// files that only look alike are kept.
    #[test]
    fn stale_temps_are_swept_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("images/ramp");
        std::fs::create_dir_all(&sub).unwrap();
        let dead = sub.join(".a.png.tmp4294967294");
        let live = sub.join(format!(".b.png.tmp{}", std::process::id()));
        let others = [sub.join("c.png"), sub.join(".hidden"), sub.join(".d.tmpx")];
        for p in others.iter().chain([&dead, &live]) {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(sweep_stale_temps(dir.path(), false), 0, "only the folder itself");
        assert_eq!(sweep_stale_temps(dir.path(), true), 1);
        assert!(!dead.exists() && live.exists());
        assert!(others.iter().all(|p| p.exists()));
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
