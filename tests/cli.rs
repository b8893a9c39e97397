//! The CLI as users run it: the real binary, real files.

use std::path::PathBuf;

mod common;

use common::{bin, tmp};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn weights() -> PathBuf {
    std::env::var_os("ACCESSATLAS_PRETRAINED").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/accessatlas/pretrained/efficientnet-lite0-57934424.pth")
    })
}

#[test]
fn model_summary_json_reports_reference_counts() {
    let out = bin()
        .args(["model", "summary", "--encoder", "resnet50", "--imagenet-head", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["encoder"], "resnet50");
    assert_eq!(v["imagenet_encoder"], 25_557_032);
    let p = &v["parts"];
    let sum: u64 =
        ["encoder", "metadata", "fusion", "head"].iter().map(|k| p[k].as_u64().unwrap()).sum();
    assert_eq!(p["total"].as_u64().unwrap(), sum);
}

#[test]
fn unknown_encoder_is_a_clear_error() {
    let out = bin().args(["model", "summary", "--encoder", "vgg16"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("vgg16") && err.contains("efficientnet_lite0"), "{err}");
}

#[test]
fn pretrained_verify_recognises_the_cat() {
    let fixtures = root().join("tests/fixtures/pretrained");
    let out = bin()
        .args(["pretrained", "verify", "--json", "--image"])
        .arg(fixtures.join("chelsea.png"))
        .arg("--weights")
        .arg(weights())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let top: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(top.len(), 5);
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("reference_logits.json")).unwrap())
            .unwrap();
    let want = reference["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["image"] == "chelsea.png")
        .unwrap()["top5"]
        .clone();
    let got: Vec<u64> = top.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    let want: Vec<u64> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(got, want);
    // 281..=285 are ImageNet's domestic cat classes.
    assert!((281..=285).contains(&got[0]));
    let p: Vec<f64> = top.iter().map(|r| r["probability"].as_f64().unwrap()).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]) && p[0] > 0.2);
}

#[test]
fn verify_names_missing_weights_and_bad_images() {
    let out = bin()
        .args(["pretrained", "verify", "--image", "x.png", "--weights", "/nonexistent/w.pth"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/w.pth") && err.contains("pretrained fetch"), "{err}");

    let dir = tmp("cli");
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let out = bin()
        .args(["pretrained", "verify", "--image"])
        .arg(&bad)
        .arg("--weights")
        .arg(weights())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.png"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_gpu_backend_missing_from_the_build_is_a_clear_error() {
    let dir = tmp("cli-device");
    let out_dir = dir.path().join("out");
    let out = bin()
        .args(["train", "--device", "wgpu", "--data", "/nonexistent", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "wgpu") {
        return;
    }
    assert!(!out.status.success());
    assert!(err.contains("--features wgpu"), "{err}");
    assert!(!out_dir.exists(), "nothing is written");
}

#[test]
fn serve_refuses_zero_concurrency_or_batch_at_start() {
    for flag in ["--max-concurrent", "--max-batch"] {
        let out = bin().args(["serve", "--port", "0", flag, "0"]).output().unwrap();
        assert!(!out.status.success(), "{flag} 0 must not start a server");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains("at least 1"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn pipeline_flags_before_a_subcommand_are_refused() {
    let out = bin()
        .args(["--epochs", "3", "model", "summary", "--encoder", "custom_cnn"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the pipeline's --epochs would be dropped silently");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("model") && !err.contains("panicked"), "{err}");
}

/// `train --help` lists every enum flag's values, and the defaults it states are the recipe's
/// (`TrainConfig::default()`; the flags are optional so a `--config` file can set them, so
/// clap cannot show them by itself).
#[test]
fn train_help_lists_values_and_the_recipe_defaults() {
    let out = bin().args(["train", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let d = model_core::train::recipe::TrainConfig::default();
    for (flag, value) in [
        ("--encoder", d.encoder.to_string()),
        ("--epochs", d.epochs.to_string()),
        ("--batch-size", d.batch_size.to_string()),
        ("--lr", format!("{:e}", d.lr)),
        ("--scheduler", d.scheduler.name().to_string()),
        ("--patience", d.patience.to_string()),
        ("--seed", d.seed.to_string()),
    ] {
        let at = help.find(&format!("{flag} <")).unwrap_or_else(|| panic!("{flag}: {help}"));
        let next = help[at + 2..].find("\n  -").map_or(help.len(), |n| at + 2 + n);
        let text = &help[at..next];
        assert!(text.contains(&format!("[default: {value}")), "{flag}: {text}");
    }
    for v in
        ["custom_cnn", "mobilenet_v3_small", "efficientnet_lite0", "resnet18", "bf16", "plateau"]
    {
        assert!(help.contains(v), "train --help does not list {v}:\n{help}");
    }
    let out = bin().args(["train", "--precision", "f8"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("f16") && err.contains("bf16"), "{err}");
}
