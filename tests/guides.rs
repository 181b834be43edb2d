//! The per-crate guides (docs/guides/<crate>.md) quote their crate's
//! `examples/embed.rs`, which CI compiles and runs. This test keeps the
//! quotes true: every quoted block must equal, line for line, the step of the
//! example it names, so a guide cannot drift from code that runs.
//!
//! In the example a step is the lines between `// guide: <step>` and
//! `// guide: end` (the marker lines excluded, common indentation removed). In
//! the guide a quote is a ```` ```rust ```` block whose first line is
//! `// from <crate>/examples/embed.rs: <step>`.

use std::collections::BTreeMap;

const LIBRARIES: [&str; 6] = ["kf-dag", "kf-train", "kf-tune", "kf-registry", "kf-serve", "kf-tenancy"];

/// The example's steps, by name, in the order they appear. Panics on a
/// marker left open, an `end` without a start, or a name used twice.
fn steps(source: &str, file: &str) -> Vec<(String, String)> {
    let mut steps: Vec<(String, String)> = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for (number, line) in source.lines().enumerate() {
        let marker = line.trim().strip_prefix("// guide:").map(str::trim);
        match (marker, open.as_mut()) {
            (Some("end"), Some(_)) => {
                if let Some((name, lines)) = open.take() {
                    assert!(!steps.iter().any(|(n, _)| *n == name), "{file}: step {name:?} is marked twice");
                    steps.push((name, dedent(&lines)));
                }
            }
            (Some("end"), None) => panic!("{file}:{}: `// guide: end` without a step to end", number + 1),
            (Some(name), Some((current, _))) => {
                panic!("{file}:{}: step {name:?} starts inside step {current:?}", number + 1)
            }
            (Some(name), None) => {
                assert!(!name.is_empty(), "{file}:{}: a step needs a name", number + 1);
                open = Some((name.to_string(), Vec::new()));
            }
            (None, Some((_, lines))) => lines.push(line),
            (None, None) => {}
        }
    }
    if let Some((name, _)) = open {
        panic!("{file}: step {name:?} has no `// guide: end`");
    }
    steps
}

/// `lines` without the indentation they all share, joined with `\n`.
fn dedent(lines: &[&str]) -> String {
    let indent =
        lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    lines.iter().map(|l| l.get(indent..).unwrap_or("").trim_end()).collect::<Vec<_>>().join("\n")
}

/// The guide's quotes: (file named, step named, the block's text after its first line).
fn quotes(guide: &str) -> Vec<(String, String, String)> {
    let mut quotes = Vec::new();
    let mut lines = guide.lines();
    while let Some(line) = lines.next() {
        if line.trim_end() != "```rust" {
            continue;
        }
        let mut block: Vec<&str> = lines.by_ref().take_while(|l| l.trim_end() != "```").collect();
        if block.is_empty() {
            continue;
        }
        let first = block.remove(0);
        if let Some((file, step)) = first.strip_prefix("// from ").and_then(|s| s.split_once(": ")) {
            let text = block.iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n");
            quotes.push((file.trim().to_string(), step.trim().to_string(), text));
        }
    }
    quotes
}

/// Fails with every problem found, one per line, so one run shows them all.
fn assert_none(problems: Vec<String>) {
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn every_crate_has_an_embed_example_and_a_guide() {
    let root = kf_tests::workspace_root();
    let mut problems = Vec::new();
    for krate in LIBRARIES {
        let example = root.join(krate).join("examples/embed.rs");
        let guide = format!("docs/guides/{krate}.md");
        if !example.is_file() {
            problems.push(format!("{krate} has no examples/embed.rs"));
        }
        let Ok(text) = std::fs::read_to_string(root.join(&guide)) else {
            problems.push(format!("{krate} has no {guide}"));
            continue;
        };
        let title = format!("# Use {krate} in your own binary");
        if text.lines().next().is_none_or(|l| l.trim() != title) {
            problems.push(format!("{guide}: expected the first line {title:?}"));
        }
        if !text.contains(&format!("(../{krate}.md)")) {
            problems.push(format!("{guide}: does not link the reference docs/{krate}.md"));
        }
    }
    assert_none(problems);
}

#[test]
fn every_quote_in_a_guide_is_the_code_of_its_example() {
    let root = kf_tests::workspace_root();
    let mut problems = Vec::new();
    for krate in LIBRARIES {
        let file = format!("{krate}/examples/embed.rs");
        let guide = format!("docs/guides/{krate}.md");
        let (Ok(source), Ok(text)) =
            (std::fs::read_to_string(root.join(&file)), std::fs::read_to_string(root.join(&guide)))
        else {
            problems.push(format!("{krate}: {file} or {guide} is missing"));
            continue;
        };
        let steps: BTreeMap<String, String> = steps(&source, &file).into_iter().collect();
        if steps.is_empty() {
            problems.push(format!("{file} marks no `// guide:` steps"));
        }
        let quotes = quotes(&text);
        for (named, step, quoted) in &quotes {
            if named != &file {
                problems.push(format!("{guide}: a quote names {named}, expected its own crate's {file}"));
            } else if let Some(code) = steps.get(step) {
                if code != quoted {
                    problems.push(format!(
                        "{guide}: the quote of step {step:?} differs from {file}\n--- guide\n{quoted}\n--- example\n{code}\n---"
                    ));
                }
            } else {
                problems.push(format!("{guide}: quotes step {step:?}, which {file} does not mark"));
            }
        }
        for step in steps.keys() {
            if !quotes.iter().any(|(_, s, _)| s == step) {
                problems.push(format!("{guide}: never quotes step {step:?} of {file}"));
            }
        }
    }
    assert_none(problems);
}

#[test]
fn ci_runs_every_embed_example() {
    let ci = std::fs::read_to_string(kf_tests::workspace_root().join(".ci/run")).expect(".ci/run is readable");
    let missing: Vec<&str> = LIBRARIES
        .into_iter()
        .filter(|krate| !ci.contains(&format!("-p {krate} --example embed_{}", krate.trim_start_matches("kf-"))))
        .collect();
    assert!(missing.is_empty(), ".ci/run does not run the embed example of {missing:?}");
}

#[test]
fn step_markers_and_quotes_parse_as_documented() {
    let source = "fn main() {\n    // guide: one\n    let a = 1;\n\n        nested();\n    // guide: end\n}\n";
    assert_eq!(steps(source, "x.rs"), vec![("one".to_string(), "let a = 1;\n\n    nested();".to_string())]);
    let guide = "text\n```rust\n// from k/examples/embed.rs: one\nlet a = 1;\n```\n```rust\nno marker\n```\n";
    assert_eq!(quotes(guide), vec![("k/examples/embed.rs".into(), "one".into(), "let a = 1;".into())]);
}
