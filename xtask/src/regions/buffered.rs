//! `cargo xtask reference buffered [--buffer-m M]` (by hand): how much of the in-region figure
//! comes from training places next to the test places. The pipeline's split keeps whole map
//! cells (zoom 17, a few hundred metres) apart, but a test cell's places lie metres from the
//! next training cell's, whose tiles show the same streets. Here the recipe is trained on the
//! same split less every training and validation row within `M` metres of a test row
//! (`preprocess --buffer-m`, default [`BUFFER_M`]) and measured on each region's same test
//! cells, beside the model trained without the region on those cells: the gap between left out
//! and in-region with nothing of the test places' surroundings seen. Written into the
//! fixture's `in_region_buffered`.

use super::*;

/// The buffer around the test places, in metres: a training tile (224 pixels at zoom 19)
/// shows about 35 m around its place, so a training place farther than this shares no
/// ground with a test place's tile.
pub const BUFFER_M: f64 = 100.0;

/// `cargo xtask reference buffered`: see the module's doc.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let buffer = match args {
        [] => BUFFER_M,
        [flag, m] if flag == "--buffer-m" => {
            m.parse().with_context(|| format!("--buffer-m `{m}`: a distance in metres"))?
        }
        _ => bail!("reference buffered: unknown arguments {args:?} (only --buffer-m M)"),
    };
    let exe = crate::accessatlas_exe(root)?;
    let regions = extracts(root)?;
    let data = work_data(root, &exe)?;
    let runs = work_dir().join("runs");
    for (_, r) in &regions {
        if !runs.join(format!("without-{r}/model.json")).is_file() {
            bail!("no run without {r} in {}: run `cargo xtask reference regions`", runs.display());
        }
    }
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    let split = ["--buffer-m".to_string(), buffer.to_string()];
    crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data).args(&split))?;
    let meta = read_json(&data.join("preprocessing_metadata.json"))?;
    let kept: u64 = meta["counts"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, per)| per.as_object().into_iter().flatten())
        .filter_map(|(_, n)| n.as_u64())
        .sum();
    let rows = read_rows(&data.join("tags.csv"))?.1.len() as u64;
    let run = runs.join(format!("all-buffered-{buffer}"));
    if !run.join("model.json").is_file() {
        crate::run(
            Command::new(&exe).arg("train").arg("--data").arg(&data).arg("--out").arg(&run),
        )?;
    }
    let buffered = test_metrics(&exe, &data, &run)?;
    // The split without the buffer: the same test cells, on which each model trained without
    // a region is measured.
    crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
    let mut per_region = serde_json::Map::new();
    for (_, r) in &regions {
        let without = runs.join(format!("without-{r}"));
        let left_out = figures(&test_metrics(&exe, &data, &without)?, Some(r));
        per_region.insert(
            r.clone(),
            json!({ "buffered": figures(&buffered, Some(r)), "left_out": left_out }),
        );
    }
    out["in_region_buffered"] = json!({
        "buffer_m": buffer,
        "rows": rows,
        "rows_left_out": rows - kept,
        "regions": per_region,
        "run": crate::bench::run_record(root),
    });
    std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    eprintln!("{} written; commit it, and put this table in {DOC}:\n", fixture.display());
    eprintln!("{}", table(&out));
    Ok(())
}

/// Per region, feature-type macro-F1 on its own test cells: trained with it (the first
/// table's in-region figure), trained with it but on nothing within the buffer of a test
/// place, and trained without it; and the gap between left out and each in-region figure.
/// Empty before `reference buffered` ran.
pub fn table(v: &Value) -> String {
    let b = &v["in_region_buffered"];
    let Some(regions) = b["regions"].as_object() else { return String::new() };
    let m = b["buffer_m"].as_f64().unwrap_or(f64::NAN);
    let mut out = format!(
        "| region | test cells' feature rows | trained with it | trained with it, nothing within {m:.0} m of a test place | trained without it | gap, left out to in-region: as the pipeline splits / with the buffer |\n\
         |---|---|---|---|---|---|\n",
    );
    for (r, x) in regions {
        let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64();
        let (full, buf, lo) = (f1(&v["in_region"][r]), f1(&x["buffered"]), f1(&x["left_out"]));
        let gap =
            |h: Option<f64>| h.zip(lo).map_or("-".to_string(), |(h, l)| format!("{:.3}", h - l));
        out += &format!(
            "| {r} | {} | {} | {} | {} | {} / {} |\n",
            x["buffered"]["feature_rows"],
            f3(&v["in_region"][r]["feature_types_macro_f1"]),
            f3(&x["buffered"]["feature_types_macro_f1"]),
            f3(&x["left_out"]["feature_types_macro_f1"]),
            gap(full),
            gap(buf),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table puts the three figures side by side and takes each gap from left out.
    #[test]
    fn the_buffered_table_gives_both_gaps() {
        let f = |x: f64| json!({ "feature_types_macro_f1": x, "feature_rows": 25 });
        let v = json!({
            "in_region": { "monaco": f(0.5) },
            "in_region_buffered": {
                "buffer_m": 100.0,
                "regions": { "monaco": { "buffered": f(0.4), "left_out": f(0.3) } },
            },
        });
        let t = table(&v);
        assert!(t.contains("nothing within 100 m of a test place"), "{t}");
        assert!(t.contains("| monaco | 25 | 0.500 | 0.400 | 0.300 | 0.200 / 0.100 |"), "{t}");
        assert_eq!(table(&json!({})), "");
    }
}
