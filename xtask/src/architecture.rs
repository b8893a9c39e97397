//! Keeps `ARCHITECTURE.md` true: its crate graph is the one `cargo metadata` reports, its
//! table names every top-level folder of the repository, and every file its "Where a change
//! goes" table names exists.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::process::Command;

    fn architecture() -> String {
        std::fs::read_to_string(crate::project_root().join("ARCHITECTURE.md")).unwrap()
    }

    /// The lines of the fenced block after the `## Crate graph` heading: `crate -> dep, dep`.
    fn stated_graph(doc: &str) -> BTreeMap<String, BTreeSet<String>> {
        let section = doc.split("## Crate graph").nth(1).expect("a `## Crate graph` section");
        let block = section.split("```").nth(1).expect("a fenced block in it");
        block
            .lines()
            .filter_map(|l| l.split_once("->"))
            .map(|(from, to)| {
                let deps = to
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty() && *d != "(none)")
                    .map(String::from)
                    .collect();
                (from.trim().to_string(), deps)
            })
            .collect()
    }

    /// Workspace members and their dependencies on other members, from `cargo metadata`.
    fn actual_graph() -> BTreeMap<String, BTreeSet<String>> {
        let out = Command::new(env!("CARGO"))
            .current_dir(crate::project_root())
            .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let packages = meta["packages"].as_array().unwrap();
        let members: BTreeSet<String> =
            packages.iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
        packages
            .iter()
            .map(|p| {
                let deps = p["dependencies"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| d["kind"].is_null())
                    .map(|d| d["name"].as_str().unwrap().to_string())
                    .filter(|d| members.contains(d))
                    .collect();
                (p["name"].as_str().unwrap().to_string(), deps)
            })
            .collect()
    }

    #[test]
    fn the_stated_crate_graph_is_cargo_s() {
        assert_eq!(stated_graph(&architecture()), actual_graph());
    }

    #[test]
    fn every_top_level_folder_is_in_the_table() {
        let out = Command::new("git")
            .current_dir(crate::project_root())
            .args(["ls-files"])
            .output()
            .unwrap();
        let folders: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|f| f.split_once('/').map(|(d, _)| d.to_string()))
            .filter(|d| !d.starts_with('.'))
            .collect();
        assert!(!folders.is_empty());
        let doc = architecture();
        let table = doc.split("## Layers").nth(1).expect("a `## Layers` section");
        let missing: Vec<_> =
            folders.iter().filter(|d| !table.contains(&format!("`{d}/`"))).collect();
        assert!(missing.is_empty(), "ARCHITECTURE.md's table lacks {missing:?}");
    }

    /// Every path in the "Where a change goes" table (a backticked name with a `/` or a file
    /// extension) exists in the repository.
    #[test]
    fn where_a_change_goes_names_files_that_exist() {
        let doc = architecture();
        let section = doc.split("## Where a change goes").nth(1).expect("the section");
        let section = section.split("\n## ").next().unwrap();
        let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| a ")).collect();
        assert!(rows.len() >= 6, "{rows:?}");
        let root = crate::project_root();
        for row in rows {
            let paths: Vec<&str> = row
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|p| p.contains('/') || p.ends_with(".md") || p.ends_with(".rs"))
                .filter(|p| !p.contains(' '))
                .collect();
            assert!(!paths.is_empty(), "a row that names no file: {row}");
            for p in paths {
                assert!(
                    root.join(p).exists(),
                    "`{p}` in ARCHITECTURE.md's row {row:?} does not exist"
                );
            }
        }
    }
}
