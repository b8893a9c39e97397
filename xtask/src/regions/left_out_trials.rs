//! `reference left-out --trial NAME [R…] -- ARGS` (by hand): a change to the training recipe
//! tried where it matters most to a mapper elsewhere, on the regions it was not trained on.
//! Each named region (all of them when none is named) is left out and the recipe trained
//! without it with `train ARGS` (run `without-R-NAME` in the work folder, kept so a second
//! call measures it again without training), then measured on all of `R` as the first
//! table's left-out rows are, its suggestions with the other regions' prior and threshold as
//! `left_out_pooled`'s are. Written into the fixture's `left_out_trials.NAME`, never over the
//! recipe's own figures; [`table`] sets each trial beside the recipe's left-out figures.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{
    DOC, FIXTURE, by_recipe, extracts, f2, f3, figures, in_region_f1, left_out, left_out_f1_mean,
    named_regions, recipes_head, trained_unless_there, work_data, work_dir,
};
use crate::encoders::{read_json, test_metrics};

/// A trial: its name, the regions to leave out (all when empty), and `train`'s arguments.
#[derive(Debug, Default, PartialEq)]
pub struct Trial {
    pub name: String,
    pub regions: Vec<String>,
    pub train_args: Vec<String>,
    /// Also trained on every region and measured on each region's own test cells.
    pub in_region: bool,
}

impl Trial {
    /// `--trial NAME [--in-region] [R…] [-- ARGS]`; `None` when no `--trial` is given.
    pub fn parse(args: &[String]) -> Result<Option<Self>> {
        let (mut name, mut regions, mut train_args) = (None, Vec::new(), Vec::new());
        let mut in_region = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--trial" => name = Some(it.next().context("--trial needs a name")?.clone()),
                "--in-region" => in_region = true,
                "--" => train_args = it.by_ref().cloned().collect(),
                r => regions.push(r.to_string()),
            }
        }
        match name {
            Some(name) => Ok(Some(Trial { name, regions, train_args, in_region })),
            None if !train_args.is_empty() || in_region => bail!(
                "reference left-out: --in-region and train arguments need --trial NAME (`left_out_pooled` holds the recipe's own figures)"
            ),
            None => Ok(None),
        }
    }
}

/// Trains (unless the work folder holds the run) and measures `trial` on each of its regions.
pub fn run(root: &Path, trial: &Trial) -> Result<()> {
    let exe = crate::accessatlas_exe(root)?;
    let regions = extracts(root)?;
    let named = named_regions(&regions, &trial.regions)?;
    let data = work_data(root, &exe)?;
    let fixture = root.join(FIXTURE);
    let mut out = read_json(&fixture)?;
    let args: Vec<&str> = trial.train_args.iter().map(String::as_str).collect();
    let trained =
        |hold_out: &[&str], run: &Path| trained_unless_there(&exe, &data, hold_out, &args, run);
    let save = |out: &mut Value| -> Result<()> {
        let t = &mut out["left_out_trials"][&trial.name];
        t["train_args"] = json!(trial.train_args);
        t["run"] = json!(crate::bench::run_record(root));
        std::fs::write(&fixture, serde_json::to_string_pretty(out)? + "\n")?;
        Ok(())
    };
    for r in &named {
        let run = work_dir().join("runs").join(format!("without-{r}-{}", trial.name));
        trained(&["--hold-out", r], &run)?;
        out["left_out_trials"][&trial.name][r] = left_out(&exe, &regions, r, &run)?;
        save(&mut out)?;
    }
    if trial.in_region {
        let run = work_dir().join("runs").join(format!("all-{}", trial.name));
        trained(&[], &run)?;
        crate::run(Command::new(&exe).arg("preprocess").arg("--data").arg(&data))?;
        let m = test_metrics(&exe, &data, &run)?;
        for (_, r) in &regions {
            out["left_out_trials"][&trial.name]["in_region"][r] = figures(&m, Some(r));
        }
        save(&mut out)?;
    }
    eprintln!(
        "{} written; put these tables in {DOC}:\n\n{}\n{}",
        fixture.display(),
        table(&out),
        means_table(&out)
    );
    Ok(())
}

/// Each trial beside the recipe, on each region left out: feature-type macro-F1 on all of the
/// region and the suggestions' lift under the other regions' rule. The recipe's macro-F1 is
/// the mean over its seeds where `reference seeds` trained several (else the first table's),
/// its lift `left_out_pooled`'s.
pub fn table(v: &Value) -> String {
    let (regions, mut out) = recipes_head(v, "`train` arguments");
    let cell = |f1: String, lift: &Value| format!("{f1}, lift {}", f2(lift));
    let recipe: Vec<String> = regions
        .iter()
        .map(|r| {
            let f1 = match left_out_f1_mean(v, r) {
                (_, f1) if f1.len() < 2 => f3(&v["left_out"][r]["feature_types_macro_f1"]),
                (mean, f1) => format!("{mean:.3} (mean of {})", f1.len()),
            };
            cell(f1, &v["left_out_pooled"][r]["suggestions"]["lift"])
        })
        .collect();
    out += &format!("| the recipe, left out | {} |\n", recipe.join(" | "));
    let trials: Vec<(&String, &Value)> =
        v["left_out_trials"].as_object().into_iter().flatten().collect();
    if trials.iter().any(|(_, t)| t["in_region"].is_object()) {
        let cells: Vec<String> = regions
            .iter()
            .map(|r| match in_region_f1(v, r) {
                (_, others, mean) if !others.is_empty() => {
                    format!("{mean:.3} (mean of {})", others.len() + 1)
                }
                (home, ..) => format!("{home:.3}"),
            })
            .collect();
        out += &format!("| the recipe, trained with it | {} |\n", cells.join(" | "));
    }
    for (name, t) in trials {
        let args: Vec<&str> =
            t["train_args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let cells: Vec<String> = regions
            .iter()
            .map(|r| match t.get(*r) {
                Some(x) => cell(f3(&x["feature_types_macro_f1"]), &x["suggestions"]["lift"]),
                None => "-".to_string(),
            })
            .collect();
        let args = args.join(" ");
        out += &format!("| {name}: `{args}`, left out | {} |\n", cells.join(" | "));
        if t["in_region"].is_object() {
            let cells: Vec<String> =
                regions.iter().map(|r| f3(&t["in_region"][r]["feature_types_macro_f1"])).collect();
            out += &format!("| {name}: `{args}`, trained with it | {} |\n", cells.join(" | "));
        }
    }
    out
}

/// Each recipe over its trainings, the figure a recipe is judged on: per region the mean
/// feature-type macro-F1 left out (on all of the region) and trained with it (its own test
/// cells), each with its number of trainings, and how far apart the two means are (this
/// project's goal: at most 0.10). A trial's trainings are its runs named `NAME` and
/// `NAME-seedS`; the recipe's are `left_out_seeds` (else the first table's) and its in-region
/// seeds.
pub fn means_table(v: &Value) -> String {
    let (regions, mut out) = recipes_head(v, "trainings");
    let mean = |f: &[f64]| f.iter().sum::<f64>() / f.len() as f64;
    let cell = |left: &[f64], with: &[f64]| match (left.is_empty(), with.is_empty()) {
        (true, _) => "-".to_string(),
        (false, true) => format!("{:.3} ({}) / -", mean(left), left.len()),
        (false, false) => format!(
            "{:.3} ({}) / {:.3} ({}), gap {:.3}",
            mean(left),
            left.len(),
            mean(with),
            with.len(),
            mean(with) - mean(left)
        ),
    };
    let recipe: Vec<String> = regions
        .iter()
        .map(|r| {
            let (_, left) = left_out_f1_mean(v, r);
            let (home, others, _) = in_region_f1(v, r);
            let with: Vec<f64> =
                std::iter::once(home).chain(others.into_iter().map(|(_, f)| f)).collect();
            cell(&left, &with)
        })
        .collect();
    out += &format!("| the recipe | {} |\n", recipe.join(" | "));
    for (name, runs) in by_recipe(Vec::new(), &v["left_out_trials"]) {
        let f1s = |key: Option<&str>, r: &str| -> Vec<f64> {
            runs.iter()
                .filter_map(|t| {
                    let x = key.map_or(&t[r], |k| &t[k][r]);
                    x["feature_types_macro_f1"].as_f64()
                })
                .collect()
        };
        let cells: Vec<String> =
            regions.iter().map(|r| cell(&f1s(None, r), &f1s(Some("in_region"), r))).collect();
        out += &format!("| {name} | {} |\n", cells.join(" | "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_trial_names_itself_its_regions_and_trains_arguments() {
        let t = Trial::parse(&s(&["--trial", "pd", "monaco", "--", "--position-dropout", "0.5"]));
        let want = Trial {
            name: "pd".into(),
            regions: s(&["monaco"]),
            train_args: s(&["--position-dropout", "0.5"]),
            in_region: false,
        };
        assert_eq!(t.unwrap(), Some(want));
        let t = Trial::parse(&s(&["--trial", "pd", "--in-region"])).unwrap().unwrap();
        assert!(t.in_region && t.regions.is_empty());
        // Without --trial: the recipe's own measurement, which takes no train arguments.
        assert_eq!(Trial::parse(&s(&["monaco"])).unwrap(), None);
        assert!(Trial::parse(&s(&["--", "--epochs", "2"])).is_err());
        assert!(Trial::parse(&s(&["--in-region"])).is_err());
    }

    #[test]
    fn the_means_table_pools_a_trials_seeds_and_gives_each_gap() {
        let f = |f1: f64| json!({"feature_types_macro_f1": f1});
        let v = json!({
            "regions": ["a", "b"],
            "in_region": {"a": f(0.6), "b": f(0.7)},
            "in_region_seeds": {"a": {"1": f(0.8)}},
            "left_out": {"a": f(0.2), "b": f(0.4)},
            "left_out_seeds": {"a": {"1": f(0.3), "2": f(0.1), "42": f(0.2)}},
            "left_out_trials": {
                "pd": {"a": f(0.5), "b": f(0.3), "in_region": {"a": f(0.5), "b": f(0.6)}},
                "pd-seed1": {"a": f(0.3), "in_region": {"a": f(0.7), "b": f(0.8)}},
                "other": {"b": f(0.45)},
            },
        });
        let want = "| recipe (trainings) | a | b |\n|---|---|---|\n\
                    | the recipe | 0.200 (3) / 0.700 (2), gap 0.500 | 0.400 (1) / 0.700 (1), gap 0.300 |\n\
                    | other | - | 0.450 (1) / - |\n\
                    | pd | 0.400 (2) / 0.600 (2), gap 0.200 | 0.300 (1) / 0.700 (2), gap 0.400 |\n";
        assert_eq!(means_table(&v), want);
    }

    #[test]
    fn the_table_sets_each_trial_beside_the_recipes_mean_over_seeds() {
        let f = |f1: f64| json!({"feature_types_macro_f1": f1});
        let v = json!({
            "regions": ["a", "b"],
            "left_out": {"a": f(0.2), "b": f(0.4)},
            "left_out_seeds": {"a": {"1": f(0.3), "2": f(0.1), "42": f(0.2)}},
            "left_out_pooled": {"a": {"suggestions": {"lift": 1.5}}},
            "left_out_trials": {"pd": {
                "b": {"feature_types_macro_f1": 0.5, "suggestions": {"lift": 2.0}},
                "train_args": ["--position-dropout", "0.5"],
            }},
        });
        let head = "| recipe (`train` arguments) | a | b |\n|---|---|---|\n";
        let recipe = "| the recipe, left out | 0.200 (mean of 3), lift 1.50 | 0.400, lift - |\n";
        let trial = "| pd: `--position-dropout 0.5`, left out | - | 0.500, lift 2.00 |\n";
        assert_eq!(table(&v), format!("{head}{recipe}{trial}"));
        // A trial trained with the regions too: both it and the recipe (the mean over its
        // seeds) get a row of each region's own test cells.
        let mut v = v;
        v["in_region"] = json!({"a": f(0.6), "b": f(0.7)});
        v["in_region_seeds"] = json!({"a": {"1": f(0.8)}});
        v["left_out_trials"]["pd"]["in_region"] = json!({"a": f(0.75), "b": f(0.65)});
        assert_eq!(
            table(&v),
            format!(
                "{head}{recipe}| the recipe, trained with it | 0.700 (mean of 2) | 0.700 |\n\
                 {trial}| pd: `--position-dropout 0.5`, trained with it | 0.750 | 0.650 |\n"
            )
        );
    }
}
