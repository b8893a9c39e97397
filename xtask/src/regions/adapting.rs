//! `reference adapt` (the last step of `reference regions`, or alone on the runs it left):
//! each model trained without a region adapted to it (`train --init --rehearse`) with at most
//! [`ADAPT_ROWS`] of its rows, measured before and after on the region's own test cells; the
//! adapting trials (`--trial NAME`) and the tables of both, with the share of the gap closed.

use super::*;

/// The most labelled rows (features and background places together) of a region an adapted
/// model may learn from.
pub const ADAPT_ROWS: usize = 200;

/// A seeded, stratified sample of at most `n` of `rows`: each label keeps its share (largest
/// remainder), and within a label the rows come in an order fixed by their ids' hash. The same
/// draw as model-core's `stratified_sample` (what `train --rehearse` draws with), written again
/// here because xtask does not build model-core.
pub(super) fn sample(rows: Vec<Row>, n: usize) -> Vec<Row> {
    if rows.len() <= n {
        return rows;
    }
    let mut by_label = by_label(rows);
    let total: usize = by_label.values().map(Vec::len).sum();
    let mut quota: Vec<(String, usize, f64)> = by_label
        .iter()
        .map(|(l, v)| {
            let exact = v.len() as f64 * n as f64 / total as f64;
            (l.clone(), exact.floor() as usize, exact - exact.floor())
        })
        .collect();
    let mut left = n - quota.iter().map(|q| q.1).sum::<usize>();
    let mut order: Vec<usize> = (0..quota.len()).collect();
    order.sort_by(|&a, &b| quota[b].2.total_cmp(&quota[a].2));
    for i in order {
        if left == 0 {
            break;
        }
        quota[i].1 += 1;
        left -= 1;
    }
    let mut out = Vec::new();
    for (label, k, _) in quota {
        out.extend(by_label.remove(&label).unwrap_or_default().into_iter().take(k));
    }
    out
}

/// `rows` by label, each label's rows in an order fixed by their ids' hash.
fn by_label(rows: Vec<Row>) -> std::collections::BTreeMap<String, Vec<Row>> {
    let mut by_label: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    for r in rows {
        by_label.entry(r.label.clone()).or_default().push(r);
    }
    for v in by_label.values_mut() {
        v.sort_by_key(|r| fnv1a(42, r.id.as_bytes()));
    }
    by_label
}

/// The page's rule for what "learn this area" takes (model-core's `AreaLimits::default()`): at
/// most this many places of each feature type, of [`ADAPT_ROWS`]...
pub const PER_TYPE: usize = 30;
/// ... and this many background places: five types of 30 and 50 make 200.
pub const BACKGROUND: usize = 50;

/// At most `n` of `rows` by the page's rule: each feature type capped at [`PER_TYPE`] and the
/// background at [`BACKGROUND`] (both scaled to `n` against [`ADAPT_ROWS`]), a rare type
/// keeping all it has; within a label, the same order as [`sample`]'s. The budget a rare type
/// leaves is not handed on, as in the page.
pub(super) fn sample_per_type(rows: Vec<Row>, n: usize) -> Vec<Row> {
    let cap = |c: usize| c * n / ADAPT_ROWS;
    by_label(rows)
        .into_iter()
        .flat_map(|(label, v)| {
            let k = if label == "none" { cap(BACKGROUND) } else { cap(PER_TYPE) };
            v.into_iter().take(k)
        })
        .collect()
}

/// How the rows a region is adapted with are drawn from its training and validation cells.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// Each label keeps its share ([`sample`]): a region's rare types get few rows.
    #[default]
    Share,
    /// The page's rule ([`sample_per_type`]): every type gets rows, up to its cap.
    PerType,
}

impl Sample {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "share" => Ok(Sample::Share),
            "per-type" => Ok(Sample::PerType),
            other => bail!(
                "--sample `{other}`: `share` (each label its share) or `per-type` (the page's rule: at most {PER_TYPE} of a type, {BACKGROUND} background)"
            ),
        }
    }

    /// The name the fixture records (`None` for the default).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Sample::Share => None,
            Sample::PerType => Some("per-type"),
        }
    }

    fn draw(self, rows: Vec<Row>, n: usize) -> Vec<Row> {
        match self {
            Sample::Share => sample(rows, n),
            Sample::PerType => sample_per_type(rows, n),
        }
    }
}

/// What adapting to a region learns from and is measured on: its header, at most
/// `n` of its rows from the training and validation cells of `data`'s in-region
/// split (drawn as `how` says), and its test rows.
pub(super) struct AdaptRows {
    header: String,
    picked: Vec<Row>,
    test: Vec<Row>,
}

pub(super) fn adapt_rows(data: &Path, r: &str, n: usize, how: Sample) -> Result<AdaptRows> {
    let (header, mut learnable) = read_rows(&data.join("tags_train.csv"))?;
    learnable.extend(read_rows(&data.join("tags_val.csv"))?.1);
    learnable.retain(|x| x.region == r);
    let (_, mut test) = read_rows(&data.join("tags_test.csv"))?;
    test.retain(|x| x.region == r);
    Ok(AdaptRows { header, picked: how.draw(learnable, n), test })
}

/// A data folder `dir` (`data`'s images linked) of the picked rows, split into training and
/// validation, and region `r`'s test rows as its whole test split: they go under a region name
/// of their own, which `preprocess --hold-out` holds out.
pub(super) fn held_out_data(
    exe: &Path,
    data: &Path,
    dir: &Path,
    rows: &AdaptRows,
    r: &str,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    linked_data(data, dir, &["tile_source.json"])?;
    let test_region = format!("{r}-test-cells");
    let mut csv = rows.header.clone() + "\n";
    let region_col = rows.header.split(',').position(|c| c == "region").context("region")?;
    for x in &rows.picked {
        csv.push_str(&x.line);
        csv.push('\n');
    }
    for x in &rows.test {
        let mut f: Vec<&str> = x.line.split(',').collect();
        f[region_col] = &test_region;
        csv.push_str(&f.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.join("tags.csv"), csv)?;
    crate::run(
        Command::new(exe)
            .arg("preprocess")
            .arg("--data")
            .arg(dir)
            .args(["--hold-out", &test_region]),
    )
}

/// A trial of the adapting recipe (`reference adapt --trial NAME [--region R]… [--rehearse N]
/// [--rows N] [-- ARGS]`): the regions it runs on (all when none is named), and `train`
/// arguments added to `train --init`. A trial is written into the fixture under `adapt_trials.NAME`, never over
/// `adapted` (the default recipe's figures).
#[derive(Debug, Default, PartialEq)]
pub struct AdaptTrial {
    pub name: Option<String>,
    pub regions: Vec<String>,
    pub train_args: Vec<String>,
    /// Rehearsal (`train --rehearse` of the in-region data, whose other regions the model was
    /// trained on): `None`, train's default number of rows; `Some(0)`, none (the run then
    /// learns at a tenth of the rate); `Some(n)`, `n` rows.
    pub rehearse: Option<usize>,
    /// The most rows of the region to learn from (features and background places together):
    /// `None`, [`ADAPT_ROWS`].
    pub rows: Option<usize>,
    /// How those rows are drawn (`--sample share|per-type`).
    pub sample: Sample,
}

impl AdaptTrial {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut t = AdaptTrial::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--trial" => t.name = Some(it.next().context("--trial needs a name")?.clone()),
                "--region" => t.regions.push(it.next().context("--region needs a name")?.clone()),
                "--rehearse" => {
                    let n = it.next().context("--rehearse needs a number of rows")?;
                    t.rehearse = Some(n.parse().with_context(|| format!("--rehearse `{n}`"))?);
                }
                "--rows" => {
                    let n = it.next().context("--rows needs a number of rows")?;
                    t.rows = Some(n.parse().with_context(|| format!("--rows `{n}`"))?);
                }
                "--sample" => {
                    t.sample = Sample::parse(it.next().context("--sample needs a rule")?)?
                }
                "--" => t.train_args = it.by_ref().cloned().collect(),
                other => bail!("reference adapt: unknown argument `{other}`"),
            }
        }
        if t.name.is_none()
            && (!t.regions.is_empty()
                || !t.train_args.is_empty()
                || t.rehearse.is_some()
                || t.rows.is_some()
                || t.sample != Sample::Share)
        {
            bail!(
                "reference adapt: --region, --rehearse, --rows, --sample and train arguments need --trial NAME (`adapted` holds the default recipe on every region)"
            );
        }
        Ok(t)
    }
}

/// Each model trained without a region, adapted to it with at most [`ADAPT_ROWS`] of its rows
/// (rehearsing the other regions' rows unless a trial says otherwise) and measured on its
/// in-region test cells before and after; written into the fixture's `adapted` (a trial:
/// under `adapt_trials`, by its name).
pub fn adapt(root: &Path, trial: &AdaptTrial) -> Result<()> {
    let exe = crate::accessatlas_exe(root)?;
    let mut regions = extracts(root)?;
    if !trial.regions.is_empty() {
        regions.retain(|(_, r)| trial.regions.contains(r));
    }
    let work = work_dir();
    let data = work.join("data");
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    // Where this call's figures go: `adapted`, or a trial's own entry.
    let key = |out: &mut Value, adapted: &Value| match &trial.name {
        Some(n) => out["adapt_trials"][n] = adapted.clone(),
        None => out["adapted"] = adapted.clone(),
    };
    for (_, r) in &regions {
        if !work.join("runs").join(format!("without-{r}")).join("model.json").is_file() {
            bail!("{}: no run without {r}: run `cargo xtask reference regions`", work.display());
        }
    }
    // The in-region split again (seeded: the cells the in-region figures were measured on).
    crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
    let at_most = trial.rows.unwrap_or(ADAPT_ROWS);
    let mut adapted = json!({ "rows_at_most": at_most, "run": crate::bench::run_record(root) });
    if !trial.train_args.is_empty() {
        adapted["train_args"] = json!(trial.train_args);
    }
    if let Some(n) = trial.rehearse {
        adapted["rehearse"] = json!(n);
    }
    if let Some(n) = trial.sample.name() {
        adapted["sample"] = json!(n);
    }
    // A trial run again on some regions keeps its other regions' figures, when it is the same
    // recipe (the same arguments, rehearsal, rows and sample).
    if let (Some(n), false) = (&trial.name, trial.regions.is_empty()) {
        let then = &out["adapt_trials"][n];
        let same = |k: &str| then[k] == adapted[k];
        if same("train_args") && same("rehearse") && same("rows_at_most") && same("sample") {
            // A trial's object entries are its regions' figures.
            for (r, x) in then.as_object().into_iter().flatten() {
                if x.is_object() && !trial.regions.contains(r) {
                    adapted[r] = x.clone();
                }
            }
        }
    }
    for (_, r) in &regions {
        let dir = work.join(format!("adapt-{r}"));
        let without = work.join("runs").join(format!("without-{r}"));
        let evaluate = |model: &Path| -> Result<Value> {
            Ok(figures(&test_metrics(&exe, &dir, model)?, None))
        };
        let run = work.join("runs").join(format!("adapted-{r}"));
        let (rows, before) = adapted_run(&exe, &data, &dir, &run, r, at_most, trial, evaluate)?;
        let picked = &rows.picked;
        // After, and against the model it started from on the same rows (a paired bootstrap
        // of the test cells: how sure the change is).
        crate::run(
            Command::new(&exe)
                .args(["evaluate", "--no-suggestions", "--data"])
                .arg(&dir)
                .arg("--model")
                .arg(&run)
                .arg("--baseline")
                .arg(&without),
        )?;
        let measured = read_json(&run.join("errors/metrics.json"))?;
        let after = figures(&measured, None);
        let recipe = read_json(&run.join("train_config.json"))?;
        // The share of the gap closed is not stored: [`gap_closed`] reads it from these.
        adapted[r] = json!({
            "rows": picked.len(),
            "feature_rows": picked.iter().filter(|x| x.label != "none").count(),
            "rehearsed_rows": recipe["rehearse_rows"],
            "before": before,
            "after": after,
            "change": measured["against_baseline"]["change"],
        });
        key(&mut out, &adapted);
        std::fs::write(&fixture, serde_json::to_string_pretty(&out)? + "\n")?;
    }
    if trial.name.is_some() {
        eprintln!("{} written (a trial); put this table in {DOC}:\n", fixture.display());
        eprintln!("{}\n{}", trials_table(&out), trial_means_table(&out));
        return Ok(());
    }
    eprintln!("{} written; commit it, and put these tables in {DOC}:\n", fixture.display());
    let v = read_json(&fixture)?;
    eprintln!("{}\n{}", table(&v), adapt_table(&v));
    Ok(())
}

/// Region `r`'s model trained without it (`runs/without-{r}`) adapted to it into `run` with
/// `train --init`, on at most `at_most` of its rows of `data`'s training and validation cells
/// (rehearsing `data`'s other regions unless the trial says otherwise): `dir` becomes the data
/// folder of those rows with `r`'s test rows of `data` as its whole test split, on which
/// `before` measures the model it starts from first. The rows it learned from.
#[allow(clippy::too_many_arguments)]
pub(super) fn adapted_run<T>(
    exe: &Path,
    data: &Path,
    dir: &Path,
    run: &Path,
    r: &str,
    at_most: usize,
    trial: &AdaptTrial,
    before: impl FnOnce(&Path) -> Result<T>,
) -> Result<(AdaptRows, T)> {
    let rows = adapt_rows(data, r, at_most, trial.sample)?;
    held_out_data(exe, data, dir, &rows, r)?;
    let runs = work_dir().join("runs");
    let without = runs.join(format!("without-{r}"));
    let measured = before(&without)?;
    let bundle = runs.join(format!("without-{r}-bundle"));
    let _ = std::fs::remove_dir_all(&bundle);
    crate::run(
        Command::new(exe)
            .arg("export")
            .arg("--model")
            .arg(&without)
            .arg("--data")
            .arg(data)
            .arg("--out")
            .arg(&bundle),
    )?;
    let _ = std::fs::remove_dir_all(run);
    let mut train = Command::new(exe);
    train.arg("train").arg("--init").arg(&bundle).arg("--data").arg(dir).arg("--out").arg(run);
    // Rehearsal draws from the in-region data's training and validation rows; `train`
    // leaves out those of the region adapted to (its own data's region).
    if trial.rehearse != Some(0) {
        train.arg("--rehearse").arg(data);
    }
    if let Some(n) = trial.rehearse.filter(|&n| n > 0) {
        train.args(["--rehearse-rows", &n.to_string()]);
    }
    crate::run(train.args(&trial.train_args))?;
    Ok((rows, measured))
}

/// The smallest gap in feature-type macro-F1 between left out and in-region whose closed share
/// the adaptation table states.
pub const MIN_GAP: f64 = 0.05;

/// What adapting a region's left-out model did to the gap between it and the in-region model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Gap {
    /// The share of the gap the adapted model closed (negative when it did worse).
    Closed(f64),
    /// In-region was better by less than [`MIN_GAP`]: within what one training differs from
    /// the next on a few test features, so a share of it would only magnify noise.
    Small(f64),
    /// Left out, the model did at least as well as in-region.
    None,
}

impl Gap {
    /// A model that moved by `change` from where it started, `gap` below the figure it was
    /// to reach: the one rule for every share of a gap closed (native, folds, page).
    pub fn closing(change: f64, gap: f64) -> Gap {
        if gap.is_nan() || gap <= 0.0 {
            Gap::None
        } else if gap < MIN_GAP {
            Gap::Small(gap)
        } else {
            Gap::Closed(change / gap)
        }
    }

    /// The share closed, where there was a gap of at least [`MIN_GAP`] to close.
    pub fn share(self) -> Option<f64> {
        match self {
            Gap::Closed(share) => Some(share),
            Gap::Small(_) | Gap::None => None,
        }
    }
}

/// [`Gap`] for region `r` of the regions fixture `v` (its `adapted` and `in_region` figures).
pub fn gap_closed(v: &Value, r: &str) -> Gap {
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    let (home, a) = (f1(&v["in_region"][r]), &v["adapted"][r]);
    let (before, after) = (f1(&a["before"]), f1(&a["after"]));
    Gap::closing(after - before, home - before)
}

/// The adaptation table: per region, its in-region test cells measured with the
/// model trained without it, before and after adapting it with a few of the region's rows.
pub fn adapt_table(v: &Value) -> String {
    let mut out = String::from(
        "| region | adapted with (rows / of them features) | feature types macro-F1: left out -> adapted (in-region) | share of the gap closed | the change: 90 % of its paired resamples of the test cells |\n\
         |---|---|---|---|---|\n",
    );
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    for r in v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        let a = &v["adapted"][r];
        if a.is_null() {
            continue;
        }
        let closed = match gap_closed(v, r) {
            Gap::Closed(g) => format!("{g:.2}"),
            Gap::Small(gap) => format!("no gap to close (in-region only {gap:.3} higher)"),
            Gap::None => "no gap: left out it did as well".to_string(),
        };
        out.push_str(&format!(
            "| {r} | {} / {} | {:.3} -> {:.3} ({:.3}) | {} | {} |\n",
            a["rows"],
            a["feature_rows"],
            f1(&a["before"]),
            f1(&a["after"]),
            f1(&v["in_region"][r]),
            closed,
            change_words(&a["change"]),
        ));
    }
    out
}

/// An adapted run's change against the model it started from (`evaluate --baseline`):
/// "+0.059: -0.155 to +0.218 over 8 cells, higher in 66 %"; "-" for runs measured before.
pub(super) fn change_words(c: &Value) -> String {
    let f = |k: &str| c["change"][k].as_f64();
    match (f("value"), f("low"), f("high"), c["change"]["cells"].as_u64(), c["higher"].as_f64()) {
        (Some(v), Some(l), Some(h), Some(n), Some(up)) => {
            format!("{v:+.3}: {l:+.3} to {h:+.3} over {n} cells, higher in {:.0} %", up * 100.0)
        }
        _ => "-".to_string(),
    }
}

/// The adapting recipes tried (`adapt_trials` of the fixture, `reference adapt --trial`), each
/// region's feature-type macro-F1 left out -> adapted, beside the default recipe's (`adapted`).
pub fn trials_table(v: &Value) -> String {
    let (regions, mut out) = recipes_head(v, "`train --init` arguments");
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    let mut rows = vec![(format!("the default{}", rehearsal_words(&v["adapted"])), &v["adapted"])];
    if let Some(t) = v["adapt_trials"].as_object() {
        for (name, a) in t {
            let args: Vec<&str> = a["train_args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut label = match args.as_slice() {
                [] => format!("{name}: no arguments"),
                _ => format!("{name}: `{}`", args.join(" ")),
            };
            label += &rehearsal_words(a);
            if let Some(n) = a["rows_at_most"].as_u64().filter(|&n| n as usize != ADAPT_ROWS) {
                label += &format!(", learning from at most {n} of the region's rows");
            }
            if a["sample"] == "per-type" {
                label += &sample_words();
            }
            rows.push((label, a));
        }
    }
    for (name, a) in rows {
        let cells: Vec<String> = regions
            .iter()
            .map(|r| match &a[*r] {
                Value::Null => "-".to_string(),
                x => format!("{:.3} -> {:.3}", f1(&x["before"]), f1(&x["after"])),
            })
            .collect();
        out += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    out
}

/// How a run drawn by the page's rule says so in a table.
pub(super) fn sample_words() -> String {
    format!(
        ", its rows drawn by the page's rule (at most {PER_TYPE} of a type, {BACKGROUND} background)"
    )
}

/// What an adapting run (`adapted` or a trial) rehearsed, for the trials table: an entry's
/// `rehearse` is the rows asked for (0: none; absent: `train`'s default, recorded per region as
/// `rehearsed_rows`).
pub(super) fn rehearsal_words(a: &Value) -> String {
    let done = a.as_object().into_iter().flatten().find_map(|(_, x)| x["rehearsed_rows"].as_u64());
    match (a["rehearse"].as_u64(), done) {
        (Some(0), _) => ", no rehearsal".to_string(),
        (_, Some(n)) | (Some(n), None) => format!(", rehearsing {n} rows of the regions it knows"),
        (None, None) => String::new(),
    }
}

/// The adapting recipes trained with several seeds (trials named `NAME-seedS` beside `NAME`;
/// the default's are `default-seedS` beside `adapted`): per region the mean feature-type
/// macro-F1 after adapting over the recipe's runs, and the share of the gap that mean closes
/// (as [`gap_closed`] computes it). Recipes with one run are left out.
pub fn trial_means_table(v: &Value) -> String {
    let regions: Vec<&str> =
        v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let mut out = format!(
        "| recipe | runs | {} |\n|---|---|{}\n",
        regions.join(" | "),
        "---|".repeat(regions.len())
    );
    for (name, runs, cells) in recipe_means(v) {
        let cells: Vec<String> = cells
            .iter()
            .map(|c| match c {
                None => "-".to_string(),
                Some((_, mean, None)) => format!("{mean:.3} (no gap)"),
                Some((_, mean, Some(share))) => format!("{mean:.3} ({share:.2})"),
            })
            .collect();
        out += &format!("| {name} | {runs} | {} |\n", cells.join(" | "));
    }
    out
}

/// Per adapting recipe with more than one run (its name, the number of runs), per region: the
/// mean feature-type macro-F1 after adapting, and the share of the gap that mean closes where
/// the gap is at least [`MIN_GAP`]; `None` for a region some run lacks.
#[allow(clippy::type_complexity)]
pub fn recipe_means(v: &Value) -> Vec<(String, usize, Vec<Option<(String, f64, Option<f64>)>>)> {
    let regions: Vec<&str> =
        v["regions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let f1 = |x: &Value| x["feature_types_macro_f1"].as_f64().unwrap_or(f64::NAN);
    // Each recipe's runs, by its name without the seed.
    let recipes = by_recipe(vec![("default".into(), vec![&v["adapted"]])], &v["adapt_trials"]);
    let mut out = Vec::new();
    for (name, runs) in recipes.into_iter().filter(|(_, runs)| runs.len() > 1) {
        let cells = regions
            .iter()
            .map(|r| {
                let after: Vec<f64> =
                    runs.iter().filter(|a| !a[*r].is_null()).map(|a| f1(&a[*r]["after"])).collect();
                if after.len() < runs.len() {
                    return None;
                }
                let mean = after.iter().sum::<f64>() / after.len() as f64;
                let before = f1(&runs[0][*r]["before"]);
                let gap = f1(&v["in_region"][*r]) - before;
                Some((r.to_string(), mean, Gap::closing(mean - before, gap).share()))
            })
            .collect();
        out.push((name, runs.len(), cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(labels: &[(&str, usize)]) -> Vec<Row> {
        labels
            .iter()
            .flat_map(|&(l, n)| (0..n).map(move |i| (l, i)))
            .map(|(l, i)| Row {
                line: format!("{l}{i}"),
                id: format!("node/{l}{i}"),
                label: l.to_string(),
                region: "r".into(),
                lat: 43.7 + i as f64 * 1e-4,
                lon: 7.42,
            })
            .collect()
    }

    /// A trial names itself, its regions and the train arguments; without a name it may not
    /// narrow the regions or change the recipe (`adapted` holds the default on every region).
    #[test]
    fn an_adapt_trial_is_named_and_kept_apart_from_the_default() {
        let a =
            |v: &[&str]| AdaptTrial::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(a(&[]).unwrap(), AdaptTrial::default());
        let t = a(&["--trial", "long", "--region", "helsinki", "--", "--epochs", "20"]).unwrap();
        assert_eq!(t.name.as_deref(), Some("long"));
        assert_eq!(t.regions, ["helsinki"]);
        assert_eq!(t.train_args, ["--epochs", "20"]);
        assert!(a(&["--region", "helsinki"]).unwrap_err().to_string().contains("--trial"));
        assert!(a(&["--", "--lr", "1e-3"]).is_err());
        assert!(a(&["--bogus"]).unwrap_err().to_string().contains("--bogus"));
        assert_eq!(a(&["--trial", "r", "--rehearse", "600"]).unwrap().rehearse, Some(600));
        assert_eq!(a(&["--trial", "r", "--rehearse", "0"]).unwrap().rehearse, Some(0));
        assert_eq!(a(&[]).unwrap().rehearse, None);
        assert_eq!(a(&["--trial", "r", "--rows", "400"]).unwrap().rows, Some(400));
        assert_eq!(a(&[]).unwrap().rows, None);
        assert!(a(&["--rows", "400"]).unwrap_err().to_string().contains("--trial"));
        assert!(a(&["--rehearse", "600"]).unwrap_err().to_string().contains("--trial"));
        assert!(
            a(&["--trial", "r", "--rehearse", "many"]).unwrap_err().to_string().contains("many")
        );
        assert_eq!(a(&[]).unwrap().sample, Sample::Share);
        assert_eq!(a(&["--trial", "p", "--sample", "per-type"]).unwrap().sample, Sample::PerType);
        assert!(a(&["--sample", "per-type"]).unwrap_err().to_string().contains("--trial"));
        let e = a(&["--trial", "p", "--sample", "even"]).unwrap_err().to_string();
        assert!(e.contains("even") && e.contains("per-type"), "{e}");
    }

    /// The page's rule: each feature type at most 30 of 200, the background at most 50, a rare
    /// type all it has; the same rows every time, and scaled to another budget.
    #[test]
    fn the_per_type_sample_caps_each_type_as_the_page_does() {
        let all = [("none", 500), ("obstacle", 300), ("ramp", 6), ("tactile_path", 40)];
        let picked = sample_per_type(rows(&all), 200);
        let n = |p: &[Row], l: &str| p.iter().filter(|r| r.label == l).count();
        let counts =
            |p: &[Row]| (n(p, "none"), n(p, "obstacle"), n(p, "ramp"), n(p, "tactile_path"));
        assert_eq!(counts(&picked), (50, 30, 6, 30));
        let again: Vec<String> =
            sample_per_type(rows(&all), 200).into_iter().map(|r| r.id).collect();
        assert_eq!(again, picked.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
        assert_eq!(counts(&sample_per_type(rows(&all), 400)), (100, 60, 6, 40));
        // By share, the same rows give the rare types far less.
        assert_eq!(n(&sample(rows(&all), 200), "ramp"), 1);
        // The caps are model-core's: the page's `AreaLimits::default()`.
        let area =
            std::fs::read_to_string(crate::project_root().join("model-core/src/train/area.rs"))
                .unwrap();
        let limits = format!("Self {{ per_type: {PER_TYPE}, background: {BACKGROUND} }}");
        assert!(area.contains(&limits), "model-core's AreaLimits::default() is not `{limits}`");
    }

    /// The sample keeps each label's share, is at most `n`, and is the same every time.
    #[test]
    fn the_sample_is_stratified_bounded_and_seeded() {
        let all = [("none", 500), ("entrance", 300), ("ramp", 150), ("elevator", 50)];
        let picked = sample(rows(&all), 200);
        assert_eq!(picked.len(), 200);
        let n = |l: &str| picked.iter().filter(|r| r.label == l).count();
        assert_eq!((n("none"), n("entrance"), n("ramp"), n("elevator")), (100, 60, 30, 10));
        let again: Vec<String> = sample(rows(&all), 200).into_iter().map(|r| r.id).collect();
        assert_eq!(again, picked.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
        // Not simply the first rows of each label.
        let first: Vec<String> = (0..100).map(|i| format!("node/none{i}")).collect();
        assert!(picked.iter().filter(|r| r.label == "none").any(|r| !first.contains(&r.id)));
        assert_eq!(sample(rows(&[("ramp", 7)]), 200).len(), 7);
    }
}
