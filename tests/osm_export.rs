//! `accessatlas osm export` read back by real OpenStreetMap clients: osmium-tool (`fileinfo`,
//! `cat` to OPL) and JOSM's validator (headless, offline), both from Debian (`cargo xtask
//! test` installs them). Every type and preset, coordinates to 1e-7, tags exactly; the
//! already-mapped rule; bad rows reported and left out; an unknown preset refused.

use std::path::Path;

use accessatlas::osm::rules::Rules;
use accessatlas::osm::{BUNDLED_OSM, BUNDLED_OSM_NAME, OsmMap, labelled_features};
use model_core::LabelVocab;
use model_core::data::features::{FeatureTypes, format_osm_tags};

mod common;

use common::osm_clients::{OsmTags, josm_findings, osmium_nodes};
use common::{bin, tmp};

/// A tags CSV row: id, lat, lon, type, OSM tags.
type Row = (String, f64, f64, String, OsmTags);

/// One row per preset of every type, on a grid far from anything mapped (the harbour).
fn every_preset() -> Vec<Row> {
    let mut rows = Vec::new();
    for (i, ty) in FeatureTypes::builtin().types.iter().enumerate() {
        for (j, p) in ty.presets.iter().enumerate() {
            let (lat, lon) =
                (60.15 + 0.0003 * i as f64 + 1e-7 * j as f64, 24.96 + 0.0003 * j as f64);
            let mut tags = p.pairs();
            if let Some(extra) = ty.optional.first() {
                let key = extra.split('=').next().unwrap();
                let value = extra.split('=').nth(1).unwrap().split('|').next().unwrap();
                let value = if value == "*" { "yes" } else { value };
                tags.push((key.to_string(), value.to_string()));
            }
            rows.push((format!("t{i}-{j}"), lat, lon, ty.name.clone(), tags));
        }
    }
    rows
}

fn csv(rows: &[Row], extra: &str) -> String {
    let mut s = String::from("id,lat,lon,type,source,note,osm_tags\n");
    for (id, lat, lon, ty, tags) in rows {
        s += &format!(
            "{id},{lat:.9},{lon:.9},{ty},user,\"a note, with \"\"quotes\"\" & <more>\",{}\n",
            format_osm_tags(tags)
        );
    }
    s + extra
}

fn export(csv_path: &Path, format: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    bin()
        .args(["osm", "export", "--tags"])
        .arg(csv_path)
        .args(["--format", format, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn every_type_and_preset_reads_back_in_osmium_and_passes_josm() {
    let temp = tmp("osm-all");
    let dir = temp.path();
    let rows = every_preset();
    let path = dir.join("tags.csv");
    std::fs::write(&path, csv(&rows, "")).unwrap();
    let empty = dir.join("empty.osm");
    std::fs::write(&empty, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<osm version=\"0.6\"/>\n")
        .unwrap();
    for (format, file) in [("josm", "edit.osm"), ("osc", "edit.osc")] {
        let out = dir.join(file);
        let o = export(&path, format, &out, &["--with-notes"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let nodes = osmium_nodes(&out);
        assert_eq!(nodes.len(), rows.len(), "{format}: one node per tag");
        for ((_, lat, lon, _, tags), (nlat, nlon, ntags)) in rows.iter().zip(&nodes) {
            assert!(
                (lat - nlat).abs() <= 1e-7 && (lon - nlon).abs() <= 1e-7,
                "{format}: {lat},{lon} vs {nlat},{nlon}"
            );
            let mut want = tags.clone();
            want.push(("note".into(), "a note, with \"quotes\" & <more>".into()));
            assert_eq!(ntags, &want, "{format}");
        }
        let findings = match format {
            "josm" => josm_findings(&out, None, dir),
            _ => josm_findings(&empty, Some(&out), dir),
        };
        let errors: Vec<_> = findings.iter().filter(|(s, _)| s == "Errors").collect();
        assert!(errors.is_empty(), "{format}: JOSM finds errors: {errors:?}");
        // Warnings are listed in docs/osm-edits.md; a new kind would show here.
        for (_, m) in findings.iter().filter(|(s, _)| s == "Warnings") {
            assert!(KNOWN_WARNINGS.contains(&m.as_str()), "{format}: new JOSM warning `{m}`");
        }
    }
}

/// The positive control of the check above: JOSM's validator, run the same way on a file with
/// two identical kerbs at one place, reports them, and `josm_findings` reads the report. An
/// empty list above then means JOSM found nothing, not that its report went unread.
#[test]
fn josm_reports_what_it_must_warn_about() {
    let temp = tmp("osm-josm-control");
    let dir = temp.path();
    let kerb = r#"<tag k="barrier" v="kerb"/><tag k="kerb" v="lowered"/>"#;
    let file = dir.join("control.osm");
    std::fs::write(
        &file,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<osm version=\"0.6\">\n\
             <node id=\"-1\" lat=\"60.17\" lon=\"24.94\">{kerb}</node>\n\
             <node id=\"-2\" lat=\"60.17\" lon=\"24.94\">{kerb}</node>\n</osm>\n"
        ),
    )
    .unwrap();
    let findings = josm_findings(&file, None, dir);
    assert!(
        findings.iter().any(|(s, m)| s == "Warnings" && m.contains("duplicated nodes")),
        "JOSM's validator did not report the duplicated kerbs: {findings:?}"
    );
}

/// JOSM warnings the exports may carry (docs/osm-edits.md lists them).
const KNOWN_WARNINGS: [&str; 0] = [];

#[test]
fn already_mapped_features_and_bad_rows_are_left_out_and_reported() {
    let temp = tmp("osm-rules");
    let dir = temp.path();
    let labels = LabelVocab::default();
    let map = OsmMap::from_bytes(BUNDLED_OSM, BUNDLED_OSM_NAME).unwrap();
    let mapped = labelled_features(&map, &Rules::default_rules(&labels).unwrap());
    let e = mapped.iter().find(|f| f.label == "entrance" && f.id.starts_with("node/")).unwrap();
    // 1.1 m north of a mapped entrance: a duplicate. The same spot as an obstacle is new.
    let lat = e.lat + 1.0e-5;
    let body = format!(
        "id,lat,lon,type,source,osm_tags\n\
         dup,{lat},{lon},entrance,user,\n\
         other,{lat},{lon},obstacle,user,\n\
         fromosm,60.16,24.95,ramp,osm,\n\
         badlat,95,24.95,ramp,user,\n\
         twice,60.16,24.951,ramp,user,kerb=lowered;kerb=flush\n\
         nopreset,60.16,24.952,ramp,user,highway=elevator\n",
        lon = e.lon
    );
    let path = dir.join("tags.csv");
    std::fs::write(&path, body).unwrap();
    let out = dir.join("edit.osm");
    let o = export(&path, "josm", &out, &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.contains("already mapped: dup at") && stdout.contains(&e.id), "{stdout}");
    assert!(stdout.contains("skipped: fromosm"), "{stdout}");
    assert!(stdout.contains("1 node(s) written"), "{stdout}");
    // Rejected rows name the file, line and field.
    assert!(stderr.contains("tags.csv: line 5, field `lat`"), "{stderr}");
    assert!(stderr.contains("line 6, field `osm_tags`: key `kerb` is given twice"), "{stderr}");
    assert!(
        stderr.contains("line 7, field `osm_tags`: the OSM tags match no preset of `ramp`"),
        "{stderr}"
    );
    let nodes = osmium_nodes(&out);
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].2.contains(&("barrier".into(), "bollard".into())), "{:?}", nodes[0]);

    // Nothing valid to write: an error, and no file.
    let only_bad = dir.join("bad.csv");
    std::fs::write(&only_bad, "id,lat,lon,type,source\nx,95,24.9,ramp,user\n").unwrap();
    let none = dir.join("none.osc");
    let o = export(&only_bad, "osc", &none, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to export"));
    assert!(!none.exists(), "nothing is written");
    // An unknown type is a row-level rejection with the known types.
    std::fs::write(&only_bad, "id,lat,lon,type,source\nx,60.1,24.9,stairs,user\n").unwrap();
    let o = export(&only_bad, "osc", &none, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("field `type`") && err.contains("stairs") && err.contains("obstacle"),
        "{err}"
    );
}
