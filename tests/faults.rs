//! Faults in the middle of a write: `collect` killed with SIGKILL midway, and commands that
//! run out of disk (`train` among them; a small tmpfs mounted in a private mount namespace
//! with `unshare`, so no root is needed). The previous outputs stay whole, no half-written file sits under a real
//! name, the error names the file, and the next run says what it found and goes on.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{bin, tmp};

/// The files under `dir` (relative paths), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn is_temp(name: &str) -> bool {
    Path::new(name).file_name().unwrap().to_string_lossy().starts_with('.')
}

/// `collect` on the bundled extract, killed once it has written some images: no `tags.csv`
/// (it is written last, whole), every image there is a whole PNG, and the same command then
/// says it swept the stopped run's temporary files, draws the images again and writes the
/// `tags.csv` that an unbroken run writes.
#[test]
fn collect_killed_midway_goes_on_and_writes_what_an_unbroken_run_does() {
    let dir = tmp("fault-collect");
    let (whole, stopped) = (dir.path().join("whole"), dir.path().join("stopped"));
    let collect = |data: &Path| {
        let mut c = bin();
        c.current_dir(env!("CARGO_MANIFEST_DIR")).arg("collect").arg("--data").arg(data);
        c
    };
    let o = collect(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = collect(&stopped)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    let pngs = |d: &Path| {
        if d.exists() { files(d).iter().filter(|f| f.ends_with(".png")).count() } else { 0 }
    };
    while pngs(&stopped) < 20 {
        assert!(child.try_wait().unwrap().is_none(), "collect ended before 20 images");
        assert!(Instant::now() < deadline, "no images in 10 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!stopped.join("tags.csv").exists(), "tags.csv is written last");
    for f in files(&stopped).iter().filter(|f| f.ends_with(".png") && !is_temp(f)) {
        image::open(stopped.join(f)).unwrap_or_else(|e| panic!("{f} is not whole: {e}"));
    }
    // As if the stop had come in the middle of a write: a temporary file of a gone process.
    let litter = stopped.join("images/.x.png.tmp4294967294");
    std::fs::create_dir_all(litter.parent().unwrap()).unwrap();
    std::fs::write(&litter, b"half a png").unwrap();

    let o = collect(&stopped).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("half-written temporary file"), "{err}");
    assert!(files(&stopped).iter().all(|f| !is_temp(f)), "{:?}", files(&stopped));
    assert_eq!(
        std::fs::read_to_string(stopped.join("tags.csv")).unwrap(),
        std::fs::read_to_string(whole.join("tags.csv")).unwrap()
    );
}

/// Runs `script` with `$D` a fresh 1 MB tmpfs in a private mount namespace and `$BIN` the
/// binary; returns its standard output and error, and `$D`. The tmpfs is gone when it ends,
/// so the script prints what the test checks.
fn on_a_full_disk(script: &str) -> (String, String, String) {
    on_a_disk_of("1m", script)
}

/// [`on_a_full_disk`] with a tmpfs of `size` (`mount -o size=`).
fn on_a_disk_of(size: &str, script: &str) -> (String, String, String) {
    let dir = tmp("fault-disk");
    let o = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(format!("set -u; mount -t tmpfs -o size={size} tmpfs \"$D\" || exit 97; {script}"))
        .env("D", dir.path())
        .env("BIN", env!("CARGO_BIN_EXE_accessatlas"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("unshare (util-linux) runs the full-disk tests");
    assert_ne!(
        o.status.code(),
        Some(97),
        "mounting the tmpfs: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let d = dir.path().display().to_string();
    (String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into(), d)
}

/// `collect`, `tiles render`, `export` and `suggest --out` on a full disk: each fails with an error that
/// says the disk is full and names the file, the previous output is byte for byte what it
/// was, and no temporary file is left.
#[test]
fn a_full_disk_fails_clearly_and_keeps_the_previous_outputs() {
    let cases = [
        ("collect", "tags.csv", "\"$BIN\" collect --data \"$D\""),
        (
            "tiles render",
            "t.mbtiles",
            "\"$BIN\" tiles render --bbox 24.935,60.165,24.945,60.170 --zoom 19 --out \"$D/t.mbtiles\"",
        ),
        ("export", "b/model.json", "\"$BIN\" export --model assets/model --out \"$D/b\""),
        (
            "suggest",
            "s.csv",
            "head -c 1040000 /dev/zero > \"$D/filler\"; \"$BIN\" suggest --bbox 24.9370,60.1685,24.9410,60.1705 --threshold 0 --out \"$D/s.csv\"",
        ),
    ];
    for (what, old, run) in cases {
        let script = format!(
            "mkdir -p \"$(dirname \"$D/{old}\")\"; printf 'the previous output' > \"$D/{old}\"; {run}; echo \"rc=$?\"; \
             echo \"old=$(cat \"$D/{old}\")\"; ls -aR \"$D\" | grep -c '\\.tmp' || true"
        );
        let (out, err, d) = on_a_full_disk(&script);
        let mut lines = out.lines().rev();
        let temps = lines.next().unwrap_or("");
        let kept = out.lines().find(|l| l.starts_with("old=")).unwrap_or("");
        assert!(!out.contains("rc=0"), "{what} succeeded on a full disk: {out}{err}");
        // The OS's words, or SQLite's for the MBTiles file.
        let full = err.contains("No space left on device") || err.contains("disk is full");
        assert!(full && err.contains(&d), "{what}: the error names the file: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(kept, "old=the previous output", "{what}: {out}");
        assert_eq!(temps.trim(), "0", "{what} left temporary files: {out}");
    }
}

/// `train --resume` whose next checkpoint does not fit on the disk: it fails with the OS's
/// words naming the file, the last committed epoch (`state.json`, the history) is byte for
/// byte what it was, so a later `--resume` with room goes on from it, and no temporary file
/// is left.
#[test]
fn train_on_a_full_disk_keeps_the_last_committed_epoch() {
    let work = tmp("fault-train");
    let (data, run) = (work.path().join("data"), work.path().join("run"));
    let recipe = "--encoder custom_cnn --image-size 64 --batch-size 32 --scheduler constant";
    for cmd in ["collect", "preprocess"] {
        let o = bin().arg(cmd).arg("--data").arg(&data).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = bin()
        .arg("train")
        .args(recipe.split(' '))
        .args(["--epochs", "1", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The run (about 11 MB: weights, optimizer state) copied onto a 13 MB disk: less room is
    // left than the next epoch's checkpoint takes.
    let committed = "\"$D/run/checkpoints/state.json\" \"$D/run/logs/training_history.json\"";
    let script = format!(
        "cp -r '{run}' \"$D/run\" || exit 98; before=$(cat {committed} | sha256sum); \
         \"$BIN\" train --resume {recipe} --epochs 2 --data '{data}' --out \"$D/run\"; echo \"rc=$?\"; \
         [ \"$before\" = \"$(cat {committed} | sha256sum)\" ] && echo kept; \
         ls -aR \"$D\" | grep -c '\\.tmp' || true",
        run = run.display(),
        data = data.display(),
    );
    let (out, err, d) = on_a_disk_of("13m", &script);
    assert!(
        out.contains("rc=") && !out.contains("rc=0"),
        "train succeeded on a full disk: {out}{err}"
    );
    assert!(err.contains("No space left on device") && err.contains(&d), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.lines().any(|l| l == "kept"), "the committed epoch changed: {out}");
    assert_eq!(out.lines().last().unwrap_or("").trim(), "0", "temporary files left: {out}");
}

/// `export` killed at moments spread over its run, over a previous bundle whose manifest and
/// weights both differ from the new ones: the folder always holds one whole bundle, the
/// previous or the new (never one's manifest beside the other's weights); the next export
/// writes the bundle an unbroken export writes, with the folder's other files (a note of the
/// mapper's) back in it, and nothing is left beside it. (A kill between the two renames, which leaves the folder moved aside, is put
/// right by `fsutil::recover_dir`: its unit test.)
#[test]
fn export_killed_midway_leaves_one_whole_bundle() {
    let dir = tmp("fault-export");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let export = |out: &Path| {
        let mut c = bin();
        c.current_dir(root).args(["export", "--model", "assets/model", "--out"]).arg(out);
        c
    };
    let whole = dir.path().join("whole");
    let o = export(&whole).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bundle = |d: &Path| {
        (std::fs::read(d.join("model.json")).ok(), std::fs::read(d.join("weights.bpk")).ok())
    };
    let new = bundle(&whole);
    // The previous bundle: another manifest, other weights, and a file of the mapper's own.
    let manifest = std::fs::read_to_string(root.join("assets/model/model.json")).unwrap();
    let previous = (
        Some(manifest.replacen('{', "{\"note\": \"previous\", ", 1).into_bytes()),
        Some(b"old weights".to_vec()),
    );
    assert_ne!(previous, new);
    let out = dir.path().join("b");
    let (mut moved_aside, mut whole_new, mut whole_old) = (0, 0, 0);
    // Killed after a delay, or (None) the moment new weights show under the bundle's name:
    // where a writer that replaced file by file would leave the old manifest beside them.
    let delays = [0, 5, 10, 20, 40, 60, 80, 100, 120, 150, 180, 220, 300, 500, 1000].map(Some);
    for delay_ms in delays.into_iter().chain([None; 5]) {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("model.json"), previous.0.as_ref().unwrap()).unwrap();
        std::fs::write(out.join("weights.bpk"), previous.1.as_ref().unwrap()).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let mut child = export(&out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                let deadline = Instant::now() + Duration::from_secs(60);
                while std::fs::metadata(out.join("weights.bpk"))
                    .is_ok_and(|m| m.len() == previous.1.as_ref().unwrap().len() as u64)
                    && child.try_wait().unwrap().is_none()
                {
                    assert!(Instant::now() < deadline, "no new weights in 60 s");
                }
            }
        }
        let _ = child.kill();
        child.wait().unwrap();
        if out.exists() {
            let got = bundle(&out);
            assert!(got == previous || got == new, "{delay_ms:?} ms: a mixed or partial bundle");
            if got == new { whole_new += 1 } else { whole_old += 1 }
        } else {
            moved_aside += 1;
        }
        let o = export(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{delay_ms:?} ms, the next export: {err}");
        assert_eq!(bundle(&out), new, "{delay_ms:?} ms: the next export's bundle");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
        let beside: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".b."))
            .collect();
        assert!(beside.is_empty(), "{delay_ms:?} ms: left beside the bundle: {beside:?}");
    }
    // The kills landed both before and after the bundle was replaced.
    assert!(
        whole_old > 0 && whole_new > 0,
        "old {whole_old}, new {whole_new}, aside {moved_aside}"
    );
}
