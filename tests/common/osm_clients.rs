//! Real OpenStreetMap clients reading the files AccessAtlas writes for editors: osmium-tool
//! (`fileinfo -e`, `cat` to OPL) and JOSM's validator (headless, offline), both from Debian
//! (`cargo xtask test` installs them). Used by the CLI export tests and the e2e page exports.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `(key, value)` tags in file order.
pub type OsmTags = Vec<(String, String)>;

/// Nodes of an OSM file as osmium reads it (OPL): `(lat, lon, tags)` in file order.
pub fn osmium_nodes(file: &Path) -> Vec<(f64, f64, OsmTags)> {
    let info = Command::new("osmium").args(["fileinfo", "-e"]).arg(file).output().unwrap();
    assert!(info.status.success(), "osmium fileinfo: {}", String::from_utf8_lossy(&info.stderr));
    let out = Command::new("osmium").arg("cat").arg(file).args(["-f", "opl"]).output().unwrap();
    assert!(out.status.success(), "osmium cat: {}", String::from_utf8_lossy(&out.stderr));
    let unescape = |s: &str| -> String {
        // OPL writes special characters as %hex%.
        let mut out = String::new();
        let mut parts = s.split('%');
        out += parts.next().unwrap_or("");
        let mut code = true;
        for p in parts {
            if code {
                out.push(char::from_u32(u32::from_str_radix(p, 16).unwrap()).unwrap());
            } else {
                out += p;
            }
            code = !code;
        }
        out
    };
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('n'))
        .map(|l| {
            let field = |c: char| l.split(' ').find(|f| f.starts_with(c)).unwrap()[1..].to_string();
            let tags = field('T')
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| {
                    let (k, v) = t.split_once('=').unwrap();
                    (unescape(k), unescape(v))
                })
                .collect();
            (field('y').parse().unwrap(), field('x').parse().unwrap(), tags)
        })
        .collect()
}

/// JOSM's validator findings (line-by-line GeoJSON) as `(severity, message)`.
pub fn josm_findings(input: &Path, change: Option<&Path>, dir: &Path) -> Vec<(String, String)> {
    let report = dir.join(format!("josm-{}.geojson", input.file_stem().unwrap().to_string_lossy()));
    let mut cmd = Command::new("josm");
    cmd.args(["validate", "--input"]).arg(input).arg("--output").arg(&report);
    if let Some(c) = change {
        cmd.arg("--change-file").arg(c);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "josm validate: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(&report)
        .unwrap_or_default()
        .lines()
        // Line-by-line GeoJSON: each record starts with the record separator (RFC 8142).
        .map(|l| l.trim_start_matches('\u{1e}'))
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("JOSM's report line {l:?}: {e}"));
            v["features"].as_array().cloned().unwrap_or_default()
        })
        .map(|f| {
            let p = &f["properties"];
            (
                p["severity"].as_str().unwrap_or("").to_string(),
                p["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}
