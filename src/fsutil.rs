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

/// Replaces the files `files` (name, bytes) of the folder `dir` as one bundle: they are written
/// and synced in a staging folder beside it (`.NAME.tmpPID`), the old folder is moved aside
/// (`.NAME.oldPID`), the staging folder takes its name, and whatever else the old folder held
/// (another file, a sub-folder such as a bundle's `compact/`), except the `superseded` names,
/// moves into the new one before the old is removed. A reader never sees one write's file beside another's. A process killed
/// midway leaves `dir` as it was or whole and new, except between the two renames, when `dir`
/// is missing: [`recover_dir`], which this calls first, puts the old one back.
pub fn replace_dir_files(dir: &Path, files: &[(&str, &[u8])], superseded: &[&str]) -> Result<()> {
    let parent = folder_of(dir);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    recover_dir(dir);
    let staging = aside(dir, "tmp", std::process::id());
    let _ = std::fs::remove_dir_all(&staging);
    let written = (|| -> Result<()> {
        std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        for (name, bytes) in files {
            let path = staging.join(name);
            let mut f = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            f.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
            f.sync_all().with_context(|| format!("syncing {}", path.display()))?;
        }
        sync_dir(&staging)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let old = aside(dir, "old", std::process::id());
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old)
            .with_context(|| format!("moving {} aside to {}", dir.display(), old.display()))?;
    }
    if let Err(e) = std::fs::rename(&staging, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e)
            .with_context(|| format!("renaming {} to {}", staging.display(), dir.display()));
    }
    if had_old {
        for name in superseded {
            let _ = std::fs::remove_file(old.join(name));
        }
        keep_the_rest(&old, dir);
    }
    sync_dir(&parent)
}

/// `.NAME.KINDPID` beside `dir`: [`replace_dir_files`]'s staging (`tmp`) and moved-aside
/// (`old`) folders.
fn aside(dir: &Path, kind: &str, pid: u32) -> std::path::PathBuf {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("folder");
    folder_of(dir).join(format!(".{name}.{kind}{pid}"))
}

/// Moves what `old` holds that `new` does not into `new`, then removes `old`.
fn keep_the_rest(old: &Path, new: &Path) {
    if let Ok(entries) = std::fs::read_dir(old) {
        for e in entries.flatten() {
            let to = new.join(e.file_name());
            if !to.exists() {
                let _ = std::fs::rename(e.path(), to);
            }
        }
    }
    let _ = std::fs::remove_dir_all(old);
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Puts right what a stopped [`replace_dir_files`] on `dir` left: a missing `dir` gets its
/// moved-aside folder back; a moved-aside folder beside a new `dir` gives it what the new one
/// lacks and goes; staging folders go. Only a stopped process's leftovers are touched. Says
/// what it did; returns how many leftovers it found.
pub fn recover_dir(dir: &Path) -> usize {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else { return 0 };
    let Ok(entries) = std::fs::read_dir(folder_of(dir)) else { return 0 };
    let mut found = 0;
    let mut leftovers: Vec<(String, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let rest = file.strip_prefix(&format!(".{name}."))?;
            let (kind, pid) = rest.split_at(rest.find(|c: char| c.is_ascii_digit())?);
            let pid: u32 = pid.parse().ok()?;
            let stopped = pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
                && (kind == "tmp" || kind == "old");
            (stopped && e.path().is_dir()).then(|| (kind.to_string(), e.path()))
        })
        .collect();
    // The moved-aside folders first: a missing `dir` is put back before staging goes.
    leftovers.sort_by_key(|(kind, _)| kind != "old");
    for (kind, path) in leftovers {
        found += 1;
        if kind == "old" && !dir.exists() && std::fs::rename(&path, dir).is_ok() {
            tracing::warn!(
                "{}: a stopped run had moved it aside to {}; put it back",
                dir.display(),
                path.display()
            );
        } else if kind == "old" {
            keep_the_rest(&path, dir);
            tracing::warn!("{}: removed the previous copy a stopped run left", path.display());
        } else {
            let _ = std::fs::remove_dir_all(&path);
            tracing::warn!("{}: removed the half-written copy a stopped run left", path.display());
        }
    }
    found
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

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| format!("({}: {e})", p.display()))
    }

    /// The new files replace the old ones as one; what else the folder held stays, except what
    /// the new files supersede; nothing is left beside it.
    #[test]
    fn a_folder_of_files_is_replaced_whole_and_keeps_the_rest() {
        let root = tempfile::tempdir().unwrap();
        let b = root.path().join("bundle");
        replace_dir_files(&b, &[("model.json", b"m1"), ("report.json", b"r1")], &[]).unwrap();
        std::fs::create_dir(b.join("compact")).unwrap();
        std::fs::write(b.join("compact/w"), "c").unwrap();
        replace_dir_files(&b, &[("model.json", b"m2"), ("weights", b"w2")], &["report.json"])
            .unwrap();
        assert_eq!(
            (read(&b.join("model.json")), read(&b.join("weights"))),
            ("m2".into(), "w2".into())
        );
        assert_eq!(read(&b.join("compact/w")), "c", "a sub-folder moves into the new one");
        assert!(!b.join("report.json").exists(), "superseded");
        let beside: Vec<_> =
            std::fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(beside, ["bundle"]);
    }

    /// A run stopped between moving the old folder aside and renaming the new one into place:
    /// the next one puts the old folder back and removes the half-done copy; beside a new
    /// folder, an old copy gives it what it lacks and goes.
    #[test]
    fn a_stopped_replacement_is_put_right() {
        let root = tempfile::tempdir().unwrap();
        let b = root.path().join("bundle");
        let (old, tmp) =
            (root.path().join(".bundle.old4294967294"), root.path().join(".bundle.tmp4294967294"));
        for (d, v) in [(&old, "old"), (&tmp, "new")] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("model.json"), v).unwrap();
        }
        assert_eq!(recover_dir(&b), 2);
        assert_eq!(read(&b.join("model.json")), "old");
        assert!(!old.exists() && !tmp.exists());
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("notes"), "n").unwrap();
        std::fs::write(old.join("model.json"), "older").unwrap();
        assert_eq!(recover_dir(&b), 1);
        assert_eq!(
            (read(&b.join("model.json")), read(&b.join("notes"))),
            ("old".into(), "n".into())
        );
        assert!(!old.exists());
        // A live process's folders are its own.
        let live = root.path().join(format!(".bundle.tmp{}", std::process::id()));
        std::fs::create_dir(&live).unwrap();
        assert_eq!(recover_dir(&b), 0);
        assert!(live.exists());
    }

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
