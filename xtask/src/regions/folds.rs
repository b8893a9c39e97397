//! `cargo xtask reference folds [K…]` (by hand): the in-region figure on every row of each
//! region, not on one test split. The first table's in-region figure rests on each region's
//! test cells alone (18 features in Andorra, 25 in Monaco), where the left-out figure is on all
//! of the region. Here the recipe is trained [`FOLDS`] times on every region, each time with
//! one fold of each region's map cells as the test split (`preprocess --folds 5 --fold K`, the
//! rest split 70:15 into training and validation), and each fold's model predicts its own test
//! rows: over the folds every row is predicted once, by a model that saw nothing of its cell.
//! Each fold's predictions of the rows with a feature are kept in [`PREDICTIONS`] (so folds
//! trained in different sessions add up), and `accessatlas pool` measures them as one test
//! set, written into the fixture's `folds`. Folds are named by number (all when none is); a
//! fold whose predictions are kept is not trained again.
//!
//! `--adapt R` adapts region `R`'s model trained without it (trained unless the work folder
//! holds it) to each fold as `reference adapt` does, with at most [`ADAPT_ROWS`] of `R`'s rows
//! of the fold's training and validation cells, and keeps its predictions of the fold's test
//! rows before and after (`adapt-R/left-out-fold-K.csv`, `adapt-R/adapted-fold-K.csv`):
//! pooled, the change adapting made and the gap it was to close, each paired over all of
//! `R`'s cells, where `reference adapt` had one test split's (`folds.adapted.R`).

use super::*;

/// How many folds: each holds a fifth of each region's cells, so each fold's model trains on
/// about two thirds of the rows, near the pipeline's 70 %.
pub const FOLDS: usize = 5;

/// Where each fold's predictions of the rows with a feature are kept (`fold-K.csv`).
pub const PREDICTIONS: &str = "tests/fixtures/reference/folds";

/// `cargo xtask reference folds`: see the module's doc.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut asked: Vec<usize> = Vec::new();
    let mut adapt: Option<String> = None;
    let mut trial_args = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), a.parse::<usize>()) {
            ("--adapt", _) => adapt = Some(it.next().context("--adapt needs a region")?.clone()),
            ("--trial" | "--sample", _) => {
                trial_args.push(a.clone());
                trial_args.push(it.next().with_context(|| format!("{a} needs a value"))?.clone());
            }
            (_, Ok(k)) if (1..=FOLDS).contains(&k) => asked.push(k),
            _ => bail!(
                "reference folds: `{a}` is not a fold (1 to {FOLDS}) nor --adapt R [--trial NAME --sample RULE]"
            ),
        }
    }
    let trial = AdaptTrial::parse(&trial_args)?;
    if trial.name.is_some() && adapt.is_none() {
        bail!("reference folds: --trial adapts a region: name it with --adapt R");
    }
    let folds: Vec<usize> = if asked.is_empty() { (1..=FOLDS).collect() } else { asked };
    let exe = crate::accessatlas_exe(root)?;
    let data = work_data(root, &exe)?;
    if let Some(r) = &adapt {
        named_regions(&extracts(root)?, std::slice::from_ref(r))?;
        let without = work_dir().join("runs").join(format!("without-{r}"));
        trained_unless_there(&exe, &data, &["--hold-out", r], &[], &without)?;
    }
    let kept = root.join(PREDICTIONS);
    std::fs::create_dir_all(&kept)?;
    kept_from_these_extracts(&kept, &extracts_manifest(&extracts(root)?)?)?;
    let fixture = root.join(FIXTURE);
    for k in folds {
        let dir = fold_data(&exe, &data, k)?;
        match &adapt {
            Some(r) => adapt_fold(&exe, &dir, &kept, r, k, &trial)?,
            None => in_region_fold(&exe, &dir, &kept, k)?,
        }
        let mut out = read_json(&fixture)?;
        match &adapt {
            Some(r) => {
                let mut x = pooled_adapted(&exe, &kept, r, &trial)?;
                x["run"] = json!(crate::bench::run_record(root));
                match &trial.name {
                    None => out["folds"]["adapted"][r] = x,
                    Some(n) => {
                        if let Some(rule) = trial.sample.name() {
                            x["sample"] = json!(rule);
                        }
                        out["folds"]["adapt_trials"][n][r] = x;
                    }
                }
            }
            None => {
                out["folds"]["runs"][k.to_string()] = json!(crate::bench::run_record(root));
                out["folds"]["pooled"] = pooled(&exe, &kept)?;
            }
        }
        out["folds"]["folds"] = json!(FOLDS);
        std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
        eprintln!("fold {k}: {} written", fixture.display());
    }
    let out = read_json(&fixture)?;
    eprintln!(
        "commit them, and put these tables in {DOC}:\n\n{}\n{}",
        table(&out),
        adapted_table(&out)
    );
    let trial_quote = trial.name.as_deref().and_then(|n| trial_quote(&out, n));
    for q in [readme_quote(&out), adapted_quote(&out), trial_quote].into_iter().flatten() {
        eprintln!("and quote in README.md: {q}");
    }
    Ok(())
}

/// The split arguments of fold `k`.
fn fold_args(k: usize) -> Vec<String> {
    ["--folds".to_string(), FOLDS.to_string(), "--fold".to_string(), k.to_string()].to_vec()
}

/// The work folder's data for fold `k` (its own folder: [`linked_data`]), split so.
fn fold_data(exe: &Path, data: &Path, k: usize) -> Result<PathBuf> {
    let dir = work_dir().join(format!("fold-{k}"));
    linked_data(data, &dir, &["tags.csv", "tile_source.json"])?;
    crate::run(Command::new(exe).arg("preprocess").arg("--data").arg(&dir).args(fold_args(k)))?;
    Ok(dir)
}

/// `model` evaluated on `data`'s test split; its predictions of the rows with a feature kept
/// in `file`.
fn keep_predictions(exe: &Path, data: &Path, model: &Path, file: &Path) -> Result<()> {
    test_metrics(exe, data, model)?;
    let predictions = model.join("errors/predictions.csv");
    std::fs::create_dir_all(file.parent().context("a folder")?)?;
    std::fs::write(file, feature_rows(&std::fs::read_to_string(&predictions)?)?)?;
    Ok(())
}

/// Checks that the predictions kept in `kept` (a fold is trained only where its file is
/// missing) were made from the extracts `manifest` describes, as the work folder's data is
/// (`extracts.json`, written beside them the first time): a region added or changed would
/// otherwise pool folds of other extracts with new ones.
fn kept_from_these_extracts(kept: &Path, manifest: &Value) -> Result<()> {
    let file = kept.join(MANIFEST);
    match read_json(&file) {
        Ok(then) if &then == manifest => Ok(()),
        Ok(_) => bail!(
            "{}: the folds kept there were predicted from other extracts than the bundled ones \
             ({}): remove the folder's files to measure them again",
            kept.display(),
            file.display()
        ),
        Err(_) => Ok(std::fs::write(&file, serde_json::to_string_pretty(manifest)? + "\n")?),
    }
}

/// Fold `k` in-region: the recipe trained on fold `k`'s split of every region (unless its
/// predictions are kept), its test rows predicted.
fn in_region_fold(exe: &Path, dir: &Path, kept: &Path, k: usize) -> Result<()> {
    let file = kept.join(format!("fold-{k}.csv"));
    if file.is_file() {
        eprintln!("{}: fold {k} is kept; not trained again", file.display());
        return Ok(());
    }
    let split = fold_args(k);
    let split: Vec<&str> = split.iter().map(String::as_str).collect();
    let run = work_dir().join("runs").join(format!("all-fold-{k}"));
    trained_unless_there(exe, dir, &split, &[], &run)?;
    keep_predictions(exe, dir, &run, &file)
}

/// Where region `r`'s adapted folds are kept (`adapt-R`, a trial's `adapt-R-NAME`), and the
/// name its work folders take.
fn adapt_name(r: &str, trial: &AdaptTrial) -> String {
    match &trial.name {
        None => r.to_string(),
        Some(n) => format!("{r}-{n}"),
    }
}

/// Fold `k` adapted: region `r`'s model trained without it, before and after adapting it
/// with the fold's training and validation rows of `r` (drawn as `trial` says), on the fold's
/// test rows of `r`.
fn adapt_fold(
    exe: &Path,
    dir: &Path,
    kept: &Path,
    r: &str,
    k: usize,
    trial: &AdaptTrial,
) -> Result<()> {
    let name = adapt_name(r, trial);
    let into = kept.join(format!("adapt-{name}"));
    let (before, after) =
        (into.join(format!("left-out-fold-{k}.csv")), into.join(format!("adapted-fold-{k}.csv")));
    if before.is_file() && after.is_file() {
        eprintln!("{}: fold {k} is kept; not adapted again", after.display());
        return Ok(());
    }
    let adapt_dir = work_dir().join(format!("fold-{k}-adapt-{name}"));
    let run = work_dir().join("runs").join(format!("adapted-{name}-fold-{k}"));
    // The adapted fold kept and its folder still here: only the model it started from is
    // measured again (its kept predictions removed, as after a fix to how it is measured).
    if after.is_file() && adapt_dir.join("tags_test.csv").is_file() {
        eprintln!("{}: fold {k} is kept adapted; measuring where it started", after.display());
        let without = work_dir().join("runs").join(format!("without-{r}"));
        return keep_predictions(exe, &adapt_dir, &without, &before);
    }
    adapted_run(exe, dir, &adapt_dir, &run, r, ADAPT_ROWS, trial, |without| {
        keep_predictions(exe, &adapt_dir, without, &before)
    })?;
    keep_predictions(exe, &adapt_dir, &run, &after)
}

/// The header and the rows of a `predictions.csv` whose true class is a feature type (the
/// feature-type figures read no other).
fn feature_rows(csv: &str) -> Result<String> {
    let mut lines = csv.lines();
    let header = lines.next().context("an empty predictions.csv")?;
    let truth = header.split(',').position(|c| c == "true").context("no `true` column")?;
    let mut out = header.to_string() + "\n";
    for l in lines.filter(|l| l.split(',').nth(truth) != Some("none")) {
        out += l;
        out.push('\n');
    }
    Ok(out)
}

/// The `fold-K.csv` files of `dir` whose name starts with `prefix`, sorted.
fn fold_files(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".csv"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `accessatlas pool` of `files` (against `baseline`'s, of `region`'s rows when named): its
/// JSON, one entry for all rows and one per region.
fn pool(
    exe: &Path,
    files: &[PathBuf],
    baseline: &[PathBuf],
    region: Option<&str>,
) -> Result<Value> {
    let out = work_dir().join("folds-pooled.json");
    let mut cmd = Command::new(exe);
    cmd.arg("pool").arg("--out").arg(&out);
    for f in files {
        cmd.arg("--predictions").arg(f);
    }
    for f in baseline {
        cmd.arg("--baseline").arg(f);
    }
    if let Some(r) = region {
        cmd.args(["--region", r]);
    }
    crate::run(&mut cmd)?;
    read_json(&out)
}

/// The names of `files` without their extension.
fn names(files: &[PathBuf]) -> Vec<String> {
    files.iter().filter_map(|f| Some(f.file_stem()?.to_str()?.to_string())).collect()
}

/// `accessatlas pool` of every kept in-region fold: per region, the rows with a feature, the
/// feature-type macro-F1 and its interval over cell resamples, and which folds it pools.
fn pooled(exe: &Path, kept: &Path) -> Result<Value> {
    let files = fold_files(kept, "fold-")?;
    let mut per_region = serde_json::Map::new();
    for p in pool(exe, &files, &[], None)?.as_array().into_iter().flatten() {
        per_region.insert(
            p["region"].as_str().unwrap_or("all").to_string(),
            json!({
                "feature_rows": p["feature_rows"],
                "feature_types_macro_f1": p["feature_types"]["macro"]["f1"],
                "feature_types_macro_f1_interval": p["feature_macro_f1_interval"],
            }),
        );
    }
    Ok(json!({ "folds": names(&files), "regions": per_region }))
}

/// Region `r`'s kept adapted folds pooled: the change from the model trained without it to
/// the adapted one, and the gap from it to the in-region folds' model on the same rows (the
/// folds both have), each paired over the cells.
fn pooled_adapted(exe: &Path, kept: &Path, r: &str, trial: &AdaptTrial) -> Result<Value> {
    let into = kept.join(format!("adapt-{}", adapt_name(r, trial)));
    let (before, after) =
        (fold_files(&into, "left-out-fold-")?, fold_files(&into, "adapted-fold-")?);
    // `adapted-fold-K.csv`'s `fold-K.csv`, which names its fold's other files.
    let fold_of =
        |f: &PathBuf| Some(f.file_name()?.to_str()?.strip_prefix("adapted-")?.to_string());
    // Only the folds measured both ways (one whose start is being measured again waits).
    let after: Vec<PathBuf> = after
        .into_iter()
        .filter(|f| fold_of(f).is_some_and(|k| into.join(format!("left-out-{k}")).is_file()))
        .collect();
    let change = &pool(exe, &after, &before, None)?[0];
    let mut out = json!({
        "folds": names(&after),
        "feature_rows": change["feature_rows"],
        "change": change["against_baseline"],
    });
    // The gap, where every adapted fold has its in-region fold.
    let in_region: Vec<PathBuf> =
        after.iter().filter_map(|f| Some(kept.join(fold_of(f)?))).collect();
    if in_region.iter().all(|f| f.is_file()) {
        let gap = &pool(exe, &in_region, &before, Some(r))?[0];
        out["gap"] = gap["against_baseline"].clone();
    }
    Ok(out)
}

/// Per region: the feature rows the kept folds tested, the recipe's in-region macro-F1 over
/// them (with where 90 % of the cell resamples put it), beside the first table's in-region
/// figure on one test split and the mean left out, and the gap from left out to each. Empty
/// before `reference folds` ran.
pub fn table(v: &Value) -> String {
    let f = &v["folds"];
    let Some(regions) = f["pooled"]["regions"].as_object() else { return String::new() };
    let done = f["pooled"]["folds"].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "| region | feature rows tested ({done} of {FOLDS} folds) | in-region, every fold's test rows pooled (90 % of cells) | in-region, one test split: mean of its trainings | left out, on all of it: mean of its trainings | gap: pooled folds / one split |\n\
         |---|---|---|---|---|---|\n",
    );
    for (r, x) in regions.iter().filter(|(r, _)| *r != "all") {
        let pooled = x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
        let i = &x["feature_types_macro_f1_interval"];
        let (_, _, split) = in_region_f1(v, r);
        let (left_out, _) = left_out_f1_mean(v, r);
        out += &format!(
            "| {r} | {} | {pooled:.3} ({} to {}, {} cells) | {split:.3} | {left_out:.3} | {:.3} / {:.3} |\n",
            x["feature_rows"],
            f3(&i["low"]),
            f3(&i["high"]),
            i["cells"],
            pooled - left_out,
            split - left_out,
        );
    }
    out
}

/// What the README quotes of the pooled folds: each region's cross-validated in-region
/// macro-F1 and its gap from the mean left out (`andorra 0.700 (gap 0.135), ...`); `None`
/// before `reference folds` ran.
pub fn readme_quote(v: &Value) -> Option<String> {
    let regions = v["folds"]["pooled"]["regions"].as_object()?;
    let each: Vec<String> = regions
        .iter()
        .filter(|(r, _)| *r != "all")
        .map(|(r, x)| {
            let f1 = x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
            format!("{r} {f1:.3} (gap {:.3})", f1 - left_out_f1_mean(v, r).0)
        })
        .collect();
    Some(each.join(", "))
}

/// What adapting did to the gap, pooled over a region's adapted folds (`x`, an entry of
/// `folds.adapted`): its paired change against its paired gap.
fn adapted_gap(x: &Value) -> Option<Gap> {
    let change = x["change"]["change"]["value"].as_f64()?;
    let gap = x["gap"]["change"]["value"].as_f64()?;
    Some(Gap::closing(change, gap))
}

/// What the README quotes of the adapted folds: each region's share of the gap closed, where
/// it has one (`helsinki 0.54 of 0.267`); `None` before `reference folds --adapt`.
pub fn adapted_quote(v: &Value) -> Option<String> {
    quote_of(&v["folds"]["adapted"])
}

/// The same of a trial's adapted folds (`folds.adapt_trials.NAME`); `None` before it ran.
pub fn trial_quote(v: &Value, name: &str) -> Option<String> {
    quote_of(&v["folds"]["adapt_trials"][name])
}

/// Each region's share of the gap closed in `regions` (an entry of region names to pooled
/// adapted folds), where it has one.
fn quote_of(regions: &Value) -> Option<String> {
    let regions = regions.as_object()?;
    let each: Vec<String> = regions
        .iter()
        .filter_map(|(r, x)| {
            let gap = x["gap"]["change"]["value"].as_f64()?;
            Some(format!("{r} {:.2} of {gap:.3}", adapted_gap(x)?.share()?))
        })
        .collect();
    (!each.is_empty()).then(|| each.join(", "))
}

/// Per region adapted fold by fold: the feature rows, macro-F1 left out -> adapted (and the
/// in-region folds' on the same rows), the share of the gap closed, and where 90 % of the paired
/// resamples of the cells put the change and the gap. Empty before `reference folds --adapt`.
pub fn adapted_table(v: &Value) -> String {
    let Some(regions) = v["folds"]["adapted"].as_object() else { return String::new() };
    let mut out = String::from(
        "| region | folds | feature rows | feature types macro-F1: left out -> adapted (in-region) | share of the gap closed | the change: 90 % of its paired resamples of the cells | the gap, in-region against left out: the same |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let interval = |c: &Value| match c["change"]["low"].as_f64() {
        Some(low) => format!(
            "{:+.3}: {low:+.3} to {:+.3} over {} cells",
            c["change"]["value"].as_f64().unwrap_or(f64::NAN),
            c["change"]["high"].as_f64().unwrap_or(f64::NAN),
            c["change"]["cells"]
        ),
        None => "-".to_string(),
    };
    // The default's rows, then each trial's (`helsinki, trial per-type`).
    let trials = v["folds"]["adapt_trials"].as_object().into_iter().flatten();
    let rows = regions.iter().map(|(r, x)| (r.clone(), x)).chain(trials.flat_map(|(n, t)| {
        let each = t.as_object().into_iter().flatten();
        each.map(move |(r, x)| (format!("{r}, trial {n}"), x))
    }));
    for (r, x) in rows {
        let (c, g) = (&x["change"], &x["gap"]);
        let share = match adapted_gap(x) {
            Some(Gap::Closed(share)) => format!("{share:.2}"),
            Some(Gap::Small(g)) => format!("gap {g:.3}: too small to share"),
            Some(Gap::None) => "no gap".to_string(),
            None => "-".to_string(),
        };
        out += &format!(
            "| {r} | {} of {FOLDS} | {} | {} -> {} ({}) | {share} | {} | {} |\n",
            x["folds"].as_array().map_or(0, Vec::len),
            x["feature_rows"],
            f3(&c["before"]),
            f3(&c["after"]),
            f3(&g["after"]),
            interval(c),
            interval(g),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the rows with a feature are kept, the header with them.
    #[test]
    fn a_fold_keeps_its_rows_with_a_feature() {
        let csv =
            "id,lat,lon,source,region,true,pred\na,1,2,osm,r,ramp,none\nb,1,2,osm,r,none,ramp\n";
        assert_eq!(
            feature_rows(csv).unwrap(),
            "id,lat,lon,source,region,true,pred\na,1,2,osm,r,ramp,none\n"
        );
        assert!(feature_rows("").is_err());
    }

    /// The table puts the pooled folds beside the one split's and the left-out figures, and
    /// takes both gaps from left out.
    #[test]
    fn the_folds_table_gives_both_gaps() {
        let f = |x: f64| json!({ "feature_types_macro_f1": x });
        let v = json!({
            "in_region": { "monaco": f(0.5) },
            "left_out": { "monaco": f(0.3) },
            "folds": { "pooled": {
                "folds": ["fold-1", "fold-2"],
                "regions": {
                    "all": { "feature_rows": 9 },
                    "monaco": {
                        "feature_rows": 185,
                        "feature_types_macro_f1": 0.45,
                        "feature_types_macro_f1_interval": { "low": 0.4, "high": 0.5, "cells": 38 },
                    },
                },
            }},
        });
        let t = table(&v);
        assert!(t.contains("(2 of 5 folds)"), "{t}");
        assert!(
            t.contains("| monaco | 185 | 0.450 (0.400 to 0.500, 38 cells) | 0.500 | 0.300 | 0.150 / 0.200 |"),
            "{t}"
        );
        assert!(!t.contains("| all |"), "{t}");
        assert_eq!(table(&json!({})), "");
        assert_eq!(readme_quote(&v).as_deref(), Some("monaco 0.450 (gap 0.150)"));
        assert_eq!(readme_quote(&json!({})), None);
    }

    /// Kept folds are used only with the extracts they were predicted from.
    #[test]
    fn kept_folds_belong_to_the_extracts_they_were_predicted_from() {
        let dir = tempfile::tempdir().unwrap();
        let four = json!({ "andorra": { "bytes": 1, "fnv1a": "01" } });
        kept_from_these_extracts(dir.path(), &four).unwrap();
        assert!(dir.path().join(MANIFEST).is_file(), "written the first time");
        kept_from_these_extracts(dir.path(), &four).unwrap();
        let mut six = four.clone();
        six["berlin"] = json!({ "bytes": 2, "fnv1a": "02" });
        let e = kept_from_these_extracts(dir.path(), &six).unwrap_err().to_string();
        assert!(e.contains("other extracts") && e.contains("remove"), "{e}");
    }

    /// The predictions kept in the repository are of the bundled extracts: adding or changing
    /// one asks for the folds again.
    #[test]
    fn the_kept_folds_are_of_the_bundled_extracts() {
        let root = crate::project_root();
        let kept = read_json(&root.join(PREDICTIONS).join(MANIFEST)).unwrap();
        let now = extracts_manifest(&extracts(&root).unwrap()).unwrap();
        assert_eq!(kept, now, "{PREDICTIONS}: run `cargo xtask reference folds` again");
    }

    /// The adapted folds' table: the share is the change over the gap, both from left out.
    #[test]
    fn the_adapted_folds_table_shares_the_pooled_gap() {
        let change = |before: f64, after: f64, low: f64, high: f64| {
            json!({ "before": before, "after": after,
                    "change": { "value": after - before, "low": low, "high": high, "cells": 38 } })
        };
        let v = json!({ "folds": { "adapted": {
            "monaco": {
                "folds": ["adapted-fold-1", "adapted-fold-2"],
                "feature_rows": 185,
                "change": change(0.3, 0.4, 0.05, 0.15),
                "gap": change(0.3, 0.5, 0.1, 0.3),
            },
            "andorra": {
                "folds": ["adapted-fold-1"],
                "feature_rows": 20,
                "change": change(0.6, 0.7, -0.1, 0.2),
                "gap": change(0.6, 0.63, -0.1, 0.2),
            },
        }}});
        let t = adapted_table(&v);
        assert!(
            t.contains("| monaco | 2 of 5 | 185 | 0.300 -> 0.400 (0.500) | 0.50 | +0.100: +0.050 to +0.150 over 38 cells | +0.200: +0.100 to +0.300 over 38 cells |"),
            "{t}"
        );
        assert!(
            t.contains(
                "| andorra | 1 of 5 | 20 | 0.600 -> 0.700 (0.630) | gap 0.030: too small to share |"
            ),
            "{t}"
        );
        // The README quotes the share only where there is a gap to share.
        assert_eq!(adapted_quote(&v).as_deref(), Some("monaco 0.50 of 0.200"));
        // A trial's rows follow, named so; the README quotes the default alone.
        let mut w = v.clone();
        w["folds"]["adapt_trials"]["per-type"]["monaco"] = json!({
            "folds": ["adapted-fold-1"],
            "feature_rows": 185,
            "change": change(0.3, 0.45, 0.1, 0.2),
            "gap": change(0.3, 0.5, 0.1, 0.3),
            "sample": "per-type",
        });
        let t = adapted_table(&w);
        assert!(
            t.contains("| monaco, trial per-type | 1 of 5 | 185 | 0.300 -> 0.450 (0.500) | 0.75 |"),
            "{t}"
        );
        assert!(t.find("| monaco |") < t.find("| monaco, trial per-type |"), "{t}");
        assert_eq!(adapted_quote(&w), adapted_quote(&v));
        assert_eq!(trial_quote(&w, "per-type").as_deref(), Some("monaco 0.75 of 0.200"));
        assert_eq!(trial_quote(&w, "other"), None);
        assert_eq!(adapted_table(&json!({})), "");
        assert_eq!(adapted_quote(&json!({})), None);
    }
}
