//! `reference seeds` (by hand): the recipe trained again with other seeds, without each region
//! and (`--in-region`) on every region, so the recipe is judged on several trainings; and the
//! figures over seeds that the tables and the README read (`left_out_seeds`, `in_region_seeds`).

use super::*;

/// `reference seeds R… [--seeds 1,2]`: the recipe trained without each region `R` again with
/// other seeds (the split stays the seeded one; the seed of initialisation, order,
/// augmentation and dropout changes), each measured on all of `R` as the left-out row of
/// [`table`] is; written into the fixture's `left_out_seeds`, beside seed 42's row, with the
/// run's record under the region (`run` of the section itself: the regions measured before
/// records were kept per region). Runs
/// already in the work folder are measured again, not retrained.
pub fn seeds(root: &Path, args: &[String]) -> Result<()> {
    let mut regions = Vec::new();
    let mut seeds: Vec<u64> = vec![1, 2];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--seeds" {
            seeds = it
                .next()
                .context("--seeds needs a list, e.g. --seeds 1,2")?
                .split(',')
                .map(|n| n.trim().parse().with_context(|| format!("--seeds: `{n}`")))
                .collect::<Result<_>>()?;
        } else {
            regions.push(a.clone());
        }
    }
    let in_region = regions.iter().any(|r| r == "--in-region");
    regions.retain(|r| r != "--in-region");
    if regions.is_empty() && !in_region {
        bail!("reference seeds: name the regions to leave out, e.g. `reference seeds helsinki`");
    }
    let exe = crate::accessatlas_exe(root)?;
    let work = work_dir();
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    if in_region {
        // The pipeline's split (seed 42's, as the in-region figures'): the recipe trained on
        // it with each other seed, each region measured on its own test cells.
        crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
        for &seed in &seeds {
            let run = work.join("runs").join(format!("all-seed{seed}"));
            trained_with_seed(&exe, &data, &run, seed)?;
            let m = test_metrics(&exe, &data, &run)?;
            for (_, r) in extracts(root)? {
                out["in_region_seeds"][&r][seed.to_string()] = figures(&m, Some(&r));
            }
            out["in_region_seeds"]["run"] = json!(crate::bench::run_record(root));
            std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
        }
    }
    for r in &regions {
        for &seed in std::iter::once(&42).chain(&seeds) {
            let run = match seed {
                42 => work.join("runs").join(format!("without-{r}")),
                s => work.join("runs").join(format!("without-{r}-seed{s}")),
            };
            let hold_out = ["--hold-out", r.as_str()];
            crate::run(
                Command::new(&exe).arg("preprocess").arg("--data").arg(&data).args(hold_out),
            )?;
            trained_with_seed(&exe, &data, &run, seed)?;
            let f = figures(&test_metrics(&exe, &data, &run)?, None);
            // Each region's record: regions are trained in different sessions.
            out["left_out_seeds"][r][seed.to_string()] = f;
            out["left_out_seeds"][r]["run"] = json!(crate::bench::run_record(root));
            std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
        }
    }
    eprintln!("{} written; put this table in {DOC}:\n\n{}", fixture.display(), seeds_table(&out));
    Ok(())
}

/// The recipe trained into `run` on `data`'s current split with `seed`, unless an earlier
/// call left it there.
pub(super) fn trained_with_seed(exe: &Path, data: &Path, run: &Path, seed: u64) -> Result<()> {
    if run.join("checkpoints/best_model.bpk").is_file() {
        return Ok(());
    }
    let mut train = Command::new(exe);
    train.arg("train").arg("--data").arg(data).arg("--out").arg(run);
    crate::run(train.args(["--seed", &seed.to_string()]))
}

/// Each region's left-out feature-type macro-F1 by training seed (`left_out_seeds`), their
/// mean and range, against the in-region figure.
pub fn seeds_table(v: &Value) -> String {
    let mut out = String::from(
        "| region | macro-F1 left out, by seed | mean | lowest to highest | in-region |\n\
         |---|---|---|---|---|\n",
    );
    let Some(by) = v["left_out_seeds"].as_object() else { return out };
    for (r, seeds) in by.iter().filter(|(k, _)| *k != "run") {
        if !seeds.is_object() {
            continue;
        }
        let f1 = left_out_seeds_f1(v, r);
        let n = f1.len().max(1) as f64;
        let mean = f1.iter().map(|(_, f)| f).sum::<f64>() / n;
        let lo = f1.iter().map(|(_, f)| *f).fold(f64::INFINITY, f64::min);
        let hi = f1.iter().map(|(_, f)| *f).fold(f64::NEG_INFINITY, f64::max);
        let each: Vec<String> = f1.iter().map(|(s, f)| format!("{f:.3} (seed {s})")).collect();
        out += &format!(
            "| {r} | {} | {mean:.3} | {lo:.3} to {hi:.3} | {} |\n",
            each.join(", "),
            in_region_words(v, r)
        );
    }
    out
}

/// Region `r`'s left-out feature-type macro-F1 by training seed (`left_out_seeds`), in seed
/// order (the run records are not seeds).
pub(crate) fn left_out_seeds_f1(v: &Value, r: &str) -> Vec<(u64, f64)> {
    let mut f1: Vec<(u64, f64)> = v["left_out_seeds"][r]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(s, x)| Some((s.parse().ok()?, x["feature_types_macro_f1"].as_f64()?)))
        .collect();
    f1.sort_by_key(|(s, _)| *s);
    f1
}

/// Region `r`'s feature-type macro-F1 left out, the mean over the recipe's trainings without
/// it (`left_out_seeds`, else the first table's one), and each training's figure.
pub(crate) fn left_out_f1_mean(v: &Value, r: &str) -> (f64, Vec<f64>) {
    let mut f1: Vec<f64> = left_out_seeds_f1(v, r).into_iter().map(|(_, f)| f).collect();
    if f1.is_empty() {
        f1.extend(v["left_out"][r]["feature_types_macro_f1"].as_f64());
    }
    (f1.iter().sum::<f64>() / f1.len() as f64, f1)
}

/// Region `r`'s in-region feature-type macro-F1: the first table's (seed 42), and where
/// `reference seeds --in-region` trained the recipe with other seeds (`in_region_seeds`), the
/// mean of all and each seed's.
pub(super) fn in_region_words(v: &Value, r: &str) -> String {
    let (home, others, mean) = in_region_f1(v, r);
    if others.is_empty() {
        return format!("{home:.3}");
    }
    let each: Vec<String> = others.iter().map(|(s, f)| format!("{f:.3} (seed {s})")).collect();
    format!("{mean:.3}: {home:.3} (seed 42), {}", each.join(", "))
}

/// Region `r`'s in-region feature-type macro-F1: the first table's (seed 42), each other
/// seed's (`in_region_seeds`), and the mean of them all.
pub(crate) fn in_region_f1(v: &Value, r: &str) -> (f64, Vec<(String, f64)>, f64) {
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64();
    let home = f1(&v["in_region"][r]).unwrap_or(f64::NAN);
    let others: Vec<(String, f64)> = v["in_region_seeds"][r]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(s, x)| Some((s.clone(), f1(x)?)))
        .collect();
    let mean = (home + others.iter().map(|(_, f)| f).sum::<f64>()) / (others.len() + 1) as f64;
    (home, others, mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds table: each seed's figure in seed order, their mean and range, the
    /// in-region figure beside them; the run records (the section's, a region's) are not a
    /// region nor a seed.
    #[test]
    fn the_seeds_table_gives_each_seed_the_mean_and_the_range() {
        let f = |x: f64| json!({ "feature_types_macro_f1": x });
        let v = json!({
            "in_region": { "r": f(0.5) },
            "left_out_seeds": {
                "run": "_Run_",
                "r": { "42": f(0.3), "1": f(0.4), "2": f(0.2), "run": "_Run_" },
            },
        });
        let t = seeds_table(&v);
        assert!(
            t.contains("| r | 0.400 (seed 1), 0.200 (seed 2), 0.300 (seed 42) | 0.300 | 0.200 to 0.400 | 0.500 |"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 3, "{t}");
        // With the recipe trained in-region with other seeds, the in-region cell is their mean.
        let mut v = v;
        v["in_region_seeds"] = json!({ "run": "_Run_", "r": { "1": f(0.7), "2": f(0.6) } });
        let t = seeds_table(&v);
        assert!(t.ends_with("| 0.600: 0.500 (seed 42), 0.700 (seed 1), 0.600 (seed 2) |\n"), "{t}");
    }
}
