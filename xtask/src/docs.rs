//! Keeps the documentation's figures honest: every speed, size or ratio that the README and
//! the pages under `docs/` about the app, the API, scale and the benchmarks quote is a figure
//! of `BENCHMARKS.md`, which `cargo xtask bench` writes, and of the section of it that the
//! quoting paragraph names (`"In the browser"`), not merely somewhere in the file.

/// The documents (and their sections, `None`: the whole file) whose figures must come from
/// `BENCHMARKS.md`.
#[cfg(test)]
const MEASURED_SECTIONS: [(&str, Option<&str>); 5] = [
    ("README.md", None),
    ("docs/app.md", Some("## The browser app")),
    ("docs/app.md", Some("### The prediction API")),
    ("docs/benchmarks.md", Some("## Benchmarks")),
    ("docs/data.md", Some("## From a city to a country")),
];

/// Units that mark a measured figure.
#[cfg(test)]
const UNITS: [&str; 7] = ["ms", "MB", "KB", "img/s", "requests/s", "tiles/s", "x"];

/// `(number, unit)` for every measured figure in `text`: a decimal number followed (after an
/// optional space) by one of [`UNITS`], the unit ending at a word boundary.
#[cfg(test)]
fn figures(text: &str) -> Vec<(String, String)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len()
            && (b[j].is_ascii_digit()
                || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()))
        {
            j += 1;
        }
        let number = &text[i..j];
        let rest = text[j..].strip_prefix(' ').unwrap_or(&text[j..]);
        if let Some(unit) = UNITS.iter().find(|u| {
            rest.starts_with(**u)
                && !rest[u.len()..].chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        }) {
            out.push((number.to_string(), unit.to_string()));
        }
        i = j.max(i + 1);
    }
    out
}

/// Whether `number` stands in `text` as a whole number (not inside a longer one).
#[cfg(test)]
fn has_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + number.len()..].chars().next();
        let digitish = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit() || c == '.');
        let sentence_end = text[at + number.len()..].starts_with(". ");
        !digitish(before) && (!digitish(after) || sentence_end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str) -> String {
        std::fs::read_to_string(crate::project_root().join(name)).unwrap()
    }

    fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
        let start = doc.find(&format!("\n{heading}")).unwrap_or_else(|| panic!("no {heading}"));
        let body = &doc[start + 1 + heading.len()..];
        let level = heading.split(' ').next().unwrap();
        let end = body
            .match_indices("\n#")
            .find(|(at, _)| {
                let h = body[at + 1..].split(' ').next().unwrap_or("");
                h.len() <= level.len() && h.chars().all(|c| c == '#')
            })
            .map_or(body.len(), |(at, _)| at);
        &body[..end]
    }

    #[test]
    fn figures_are_found_with_their_units() {
        let f =
            figures("load 1693 ms, 3.65 MB and 0.28x-0.34x; 25.3 requests/s; 11.17x; v0.22.1 x");
        let got: Vec<String> = f.iter().map(|(n, u)| format!("{n} {u}")).collect();
        assert_eq!(got, ["1693 ms", "3.65 MB", "0.28 x", "0.34 x", "25.3 requests/s", "11.17 x"]);
        assert!(has_number("| 1693 ms |", "1693") && !has_number("| 11693 ms |", "1693"));
        assert!(!has_number("16.93", "16.9"));
    }

    /// The README's first-run time is the one `cargo xtask first-run` wrote.
    #[test]
    fn the_readmes_first_run_time_is_the_measured_one() {
        let bench = read("BENCHMARKS.md");
        let first = section(&bench, "## First run");
        let at = first.find("**Serving after ").expect("the First run section states its time");
        let rest = &first[at + "**Serving after ".len()..];
        let time = &rest[..rest.find(".**").expect("the time ends the sentence")];
        let readme = read("README.md");
        let setup = section(&readme, "## Set-up: two commands");
        assert!(
            setup.contains(&format!("serving after {time}")),
            "README's set-up does not say `serving after {time}`"
        );
        assert!(setup.contains("cargo xtask first-run"), "README names the command");
    }

    /// The README's time for the tests from nothing is the one `cargo xtask first-run --test`
    /// wrote.
    #[test]
    fn the_readmes_tests_from_nothing_time_is_the_measured_one() {
        let bench = read("BENCHMARKS.md");
        let tests = section(&bench, "## Tests from nothing");
        let at = tests.find("**All green after ").expect("the section states its time");
        let rest = &tests[at + "**All green after ".len()..];
        let time = &rest[..rest.find("**").expect("the time ends in bold")];
        let readme = read("README.md");
        let setup = section(&readme, "## Set-up: two commands");
        assert!(
            setup.contains(&format!("all green after {time}")),
            "README's set-up does not say `all green after {time}`"
        );
        assert!(setup.contains("cargo xtask first-run --test"), "README names the command");
    }

    #[test]
    fn documented_figures_come_from_benchmarks() {
        let bench = read("BENCHMARKS.md");
        let mut missing = Vec::new();
        let mut seen = 0;
        for (file, heading) in MEASURED_SECTIONS {
            let doc = read(file);
            let text = heading.map_or(doc.as_str(), |h| section(&doc, h));
            for (number, unit) in figures(text) {
                seen += 1;
                if !has_number(&bench, &number) {
                    missing.push(format!("{file} {}: {number} {unit}", heading.unwrap_or("")));
                }
            }
        }
        assert!(seen > 10, "only {seen} figures found: is the documents' layout the one expected?");
        assert!(missing.is_empty(), "figures not in BENCHMARKS.md:\n{}", missing.join("\n"));
    }

    /// The measured text's blocks (paragraphs and list items) with the `BENCHMARKS.md`
    /// sections each names (`"In the browser"`, quoted, or a link to the section's anchor).
    fn blocks_with_sections<'a>(text: &'a str, titles: &[&'a str]) -> Vec<(&'a str, Vec<&'a str>)> {
        let mut out = Vec::new();
        for para in text.split("\n\n") {
            for block in para.split("\n- ") {
                let named: Vec<&str> = titles
                    .iter()
                    .copied()
                    .filter(|t| {
                        block.contains(&format!("\"{t}\""))
                            || block.contains(&format!("BENCHMARKS.md#{}", anchor(t)))
                    })
                    .collect();
                out.push((block, named));
            }
        }
        out
    }

    /// Each figure is checked against the section of `BENCHMARKS.md` its paragraph names, not
    /// anywhere in the file: a figure that names no section, or is not in the one it names,
    /// is reported.
    #[test]
    fn each_figure_is_in_the_benchmark_section_it_names() {
        let bench = read("BENCHMARKS.md");
        let sections: Vec<(&str, &str)> = bench
            .split("\n## ")
            .skip(1)
            .map(|s| (s.lines().next().unwrap_or("").trim(), s))
            .collect();
        let titles: Vec<&str> = sections.iter().map(|(t, _)| *t).collect();
        let mut wrong = Vec::new();
        for (file, heading) in MEASURED_SECTIONS {
            let doc = read(file);
            let text = heading.map_or(doc.as_str(), |h| section(&doc, h));
            for (block, named) in blocks_with_sections(text, &titles) {
                for (number, unit) in figures(block) {
                    let first = block.lines().next().unwrap_or("");
                    if named.is_empty() {
                        wrong.push(format!("{file}: {number} {unit} names no section ({first})"));
                    } else if !sections
                        .iter()
                        .any(|(t, body)| named.contains(t) && has_number(body, &number))
                    {
                        wrong.push(format!("{file}: {number} {unit} not in {named:?} ({first})"));
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{} figures:\n{}", wrong.len(), wrong.join("\n"));
    }

    /// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
    /// spaces to hyphens.
    fn anchor(heading: &str) -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }

    /// The README, ARCHITECTURE.md, BENCHMARKS.md and every page under `docs/`.
    fn documents() -> Vec<std::path::PathBuf> {
        let root = crate::project_root();
        let mut out: Vec<_> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
            .iter()
            .map(|f| root.join(f))
            .collect();
        for e in std::fs::read_dir(root.join("docs")).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
        out
    }

    /// Every relative link of the documentation leads to a file that exists, and to a heading
    /// of it where it names one: the README's pages moved to `docs/` and must stay reachable.
    #[test]
    fn every_documentation_link_resolves() {
        let docs = documents();
        assert!(docs.len() >= 8, "{docs:?}");
        let mut broken = Vec::new();
        for doc in &docs {
            let text = std::fs::read_to_string(doc).unwrap();
            // Links in code blocks are code.
            let prose: String =
                text.split("```").enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, t)| t).collect();
            for (at, _) in prose.match_indices("](") {
                let rest = &prose[at + 2..];
                let Some(end) = rest.find(')') else { continue };
                let target = &rest[..end];
                if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                    continue;
                }
                let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
                let file =
                    if path.is_empty() { doc.clone() } else { doc.parent().unwrap().join(path) };
                if !file.exists() {
                    broken.push(format!("{}: {target} (no such file)", doc.display()));
                    continue;
                }
                if !fragment.is_empty() && file.extension().is_some_and(|x| x == "md") {
                    let headings = std::fs::read_to_string(&file).unwrap();
                    let found = headings
                        .lines()
                        .filter(|l| l.starts_with('#'))
                        .any(|l| anchor(l.trim_start_matches('#')) == fragment);
                    if !found {
                        broken.push(format!("{}: {target} (no such heading)", doc.display()));
                    }
                }
            }
        }
        assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
        assert_eq!(
            anchor("In another city: what the model knows, several regions"),
            "in-another-city-what-the-model-knows-several-regions"
        );
        assert_eq!(
            anchor("The shipped model: `cargo run --release`"),
            "the-shipped-model-cargo-run---release"
        );
    }

    /// The README is the door, not the manual: short enough to read in a few minutes.
    #[test]
    fn the_readme_stays_short() {
        let lines = read("README.md").lines().count();
        assert!(lines <= 200, "README.md has {lines} lines: move the detail to docs/");
    }

    #[test]
    fn every_benchmark_section_names_its_run() {
        let bench = read("BENCHMARKS.md");
        let sections: Vec<&str> = bench.split("\n## ").skip(1).collect();
        assert!(sections.len() >= 5, "{} sections", sections.len());
        for s in sections {
            let title = s.lines().next().unwrap_or("");
            let record = s.lines().find(|l| l.starts_with("_Run: commit `"));
            assert!(record.is_some(), "`## {title}` does not say which run wrote it");
            let r = record.unwrap();
            assert!(r.contains("cores") && r.contains("rustc"), "`## {title}`: {r}");
        }
    }
}
