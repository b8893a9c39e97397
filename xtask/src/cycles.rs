//! No import circles: within each crate, no two modules use each other, directly or through
//! others (a parent and its own submodules aside: `super::` is how a child reads its
//! parent's types). Read from the source text: `crate::a::b` and `super::x` paths, and the
//! names inside `use crate::{...}` / `use super::{...}` groups; comments and the unit tests
//! (`#[cfg(test)] mod tests`) are not the design and are left out.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Module path (`["cmd", "train"]`) of every `.rs` file under `src`.
    fn modules(src: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, String>) {
        for e in std::fs::read_dir(src).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            if p.is_dir() {
                if name == "bin" {
                    continue;
                }
                let mut next = prefix.to_vec();
                next.push(name);
                modules(&p, &next, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let mut m = prefix.to_vec();
                if !["mod", "lib", "main"].contains(&name.as_str()) {
                    m.push(name);
                }
                out.insert(m, code_only(&std::fs::read_to_string(&p).unwrap()));
            }
        }
    }

    /// The text without comment lines and without the unit-test module.
    fn code_only(text: &str) -> String {
        let body = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
        body.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
    }

    fn ident_at(s: &str) -> String {
        s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
    }

    /// The module paths `text` (of module `me`) refers to, longest known prefix of each.
    fn references(
        me: &[String],
        text: &str,
        known: &BTreeSet<Vec<String>>,
    ) -> BTreeSet<Vec<String>> {
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (base, anchor) in
            [("crate::", Vec::new()), ("super::", me[..me.len().saturating_sub(1)].to_vec())]
        {
            for (at, _) in text.match_indices(base) {
                if text[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let rest = &text[at + base.len()..];
                let mut heads = Vec::new();
                if let Some(group) = rest.strip_prefix('{') {
                    // `use crate::{a, b::c, d::{e}}`: the first segment of each top-level item.
                    let (mut depth, mut start) = (0, 0);
                    for (i, c) in group.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                heads.push(&group[start..i]);
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                heads.push(&group[start..i]);
                                start = i + 1;
                            }
                            _ => {}
                        }
                    }
                } else {
                    heads.push(rest);
                }
                for h in heads {
                    let mut path = anchor.clone();
                    for seg in h.trim().split("::") {
                        let id = ident_at(seg.trim());
                        if id.is_empty() {
                            break;
                        }
                        path.push(id);
                    }
                    paths.push(path);
                }
            }
        }
        paths
            .into_iter()
            .filter_map(|p| {
                (1..=p.len()).rev().map(|n| p[..n].to_vec()).find(|q| known.contains(q))
            })
            .filter(|q| !q.starts_with(me) && !me.starts_with(q))
            .collect()
    }

    fn cycles_in(src: &Path) -> Vec<String> {
        let mut files = BTreeMap::new();
        modules(src, &[], &mut files);
        let known: BTreeSet<Vec<String>> = files.keys().cloned().collect();
        let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> =
            files.iter().map(|(m, t)| (m.clone(), references(m, t, &known))).collect();
        // A pair that reach each other is a circle; report each once.
        let reach = |from: &Vec<String>| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(m) = todo.pop() {
                for n in graph.get(&m).into_iter().flatten() {
                    if seen.insert(n.clone()) {
                        todo.push(n.clone());
                    }
                }
            }
            seen
        };
        let mut out = Vec::new();
        for (m, deps) in &graph {
            for d in deps {
                if d > m && reach(d).contains(m) {
                    out.push(format!("{} <-> {}", m.join("::"), d.join("::")));
                }
            }
        }
        out
    }

    #[test]
    fn no_crate_has_an_import_circle() {
        let root = crate::project_root();
        let mut all = Vec::new();
        for krate in ["src", "model-core/src", "app/src", "xtask/src"] {
            for c in cycles_in(&root.join(krate)) {
                all.push(format!("{krate}: {c}"));
            }
        }
        assert!(all.is_empty(), "import circles:\n{}", all.join("\n"));
    }

    /// Commands stand on the library, never on each other (the pipeline, which runs them in
    /// order, aside).
    #[test]
    fn no_command_imports_another() {
        let dir = crate::project_root().join("src/cmd");
        let mut files = BTreeMap::new();
        modules(&dir, &[], &mut files);
        let commands: BTreeSet<Vec<String>> =
            files.keys().filter(|m| !m.is_empty()).cloned().collect();
        assert!(commands.len() > 5, "{commands:?}");
        // Read as the children of `cmd`: a sibling is `super::name`.
        let known: BTreeSet<Vec<String>> =
            commands.iter().map(|m| [vec!["cmd".to_string()], m.clone()].concat()).collect();
        let mut bad = Vec::new();
        for (m, text) in &files {
            if m.is_empty() || m == &["pipeline".to_string()] {
                continue;
            }
            let me = [vec!["cmd".to_string()], m.clone()].concat();
            for r in references(&me, text, &known) {
                bad.push(format!("cmd::{} uses {}", m.join("::"), r.join("::")));
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    #[test]
    fn a_circle_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("ui")).unwrap();
        std::fs::write(dir.join("lib.rs"), "mod a; mod b; mod ui;").unwrap();
        std::fs::write(dir.join("a.rs"), "use crate::b::thing;").unwrap();
        std::fs::write(dir.join("b.rs"), "use crate::{ui, a::other};").unwrap();
        std::fs::write(dir.join("ui/mod.rs"), "mod x; use super::b;").unwrap();
        std::fs::write(dir.join("ui/x.rs"), "use super::Ctx; fn f() { crate::a::g() }").unwrap();
        let found = cycles_in(dir);
        assert!(found.contains(&"a <-> b".to_string()), "{found:?}");
        assert!(found.contains(&"b <-> ui".to_string()), "{found:?}");
    }
}
