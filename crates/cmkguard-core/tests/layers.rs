//! The engine's modules depend one way (dispatch -> sweep -> guard -> act -> facts, policy,
//! finding, record, ...): no module imports one that imports it back, directly or not. And no
//! impl block grows past 150 lines without a comment above it that says why.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src` (a file `m.rs` or a folder `m/`), with the modules it names as
/// `crate::other`. `#[cfg(test)]` modules and comments are left out.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" {
            continue;
        }
        let files: Vec<_> = if path.is_dir() {
            std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        } else {
            vec![path]
        };
        let mut uses = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for part in line.split("crate::").skip(1) {
                    let used: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !used.is_empty() && used != name {
                        uses.insert(used);
                    }
                }
            }
        }
        graph.insert(name, uses);
    }
    graph
}

fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, start, next, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = dependencies();
    assert!(
        graph.contains_key("guard") && graph.contains_key("act"),
        "{graph:?}"
    );
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if let Some(cycle) = cycle_from(&graph, module, module, &mut path) {
            panic!("a module circle: {}", cycle.join(" -> "));
        }
    }
    // The direction the README's layout gives.
    for (lower, upper) in [("guard", "dispatch"), ("guard", "sweep"), ("act", "guard")] {
        assert!(
            !graph[lower].contains(upper),
            "`{lower}` must not use `{upper}`"
        );
    }
}

#[test]
fn impl_blocks_stay_short_or_say_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut long = Vec::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with("impl") {
                continue;
            }
            let end = lines[i..].iter().position(|l| *l == "}").unwrap() + i;
            let explained = i > 0 && lines[i - 1].starts_with("// Long:");
            if end - i > 150 && !explained {
                long.push(format!("{}:{} ({} lines)", path.display(), i + 1, end - i));
            }
        }
    }
    assert!(
        long.is_empty(),
        "impl blocks over 150 lines with no `// Long:` reason: {long:?}"
    );
}
