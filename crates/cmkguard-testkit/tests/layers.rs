//! Every crate's modules depend one way: no module imports one that imports it back, directly or
//! not (the crate root counts as a module: its own items, not what it re-exports). No impl block
//! grows past 150 lines, and no type past 300 lines of impl blocks in its crate, without a
//! `// Long:` comment above it that says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a test: panic where it fails, print the sizes

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cmkguard_testkit::workspace_root;

const IMPL_LINES: usize = 150;
const TYPE_LINES: usize = 300;

/// The crate root's name in a graph.
const ROOT: &str = "crate";

/// The top-level modules of one crate (lib or binary) and the modules each one names.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Reads a source file; `None` when there is none (a module declared but missing).
type Read<'a> = &'a dyn Fn(&Path) -> Option<String>;

fn read_disk(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The source before its first `#[cfg(test)]` (tests may use anything), without comment lines.
fn code(text: &str) -> Vec<&str> {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect()
}

/// The modules `mod name;` declares in `code` (not `mod name { ... }`: that is the file's own).
fn declared(code: &[&str]) -> Vec<String> {
    code.iter()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line.strip_prefix("pub ").unwrap_or(line);
            let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// Where the submodules of the module in `path` are: beside a crate root or a `mod.rs`, in a
/// folder named after the module otherwise.
fn children(path: &Path, root: bool) -> PathBuf {
    let folder = path.parent().unwrap_or(Path::new(""));
    match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if !root && stem != "mod" => folder.join(stem),
        _ => folder.to_owned(),
    }
}

/// The file of module `name` in folder `dir` (`name.rs` or `name/mod.rs`), and its text.
fn module_file(dir: &Path, name: &str, read: Read) -> Option<(PathBuf, String)> {
    [
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find_map(|path| read(&path).map(|text| (path, text)))
}

/// A module's file and every file of its submodules.
fn module_files(path: PathBuf, text: String, read: Read, files: &mut Vec<(PathBuf, String)>) {
    let dir = children(&path, false);
    for name in declared(&code(&text)) {
        if let Some((sub, sub_text)) = module_file(&dir, &name, read) {
            module_files(sub, sub_text, read, files);
        }
    }
    files.push((path, text));
}

/// `word` followed by `::` in `line`, where `word` starts a path (not `x::word::`).
fn names_path(line: &str, word: &str) -> bool {
    let pattern = format!("{word}::");
    line.match_indices(&pattern).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    })
}

/// The identifiers after each `crate::` in `line`.
fn crate_paths(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split("crate::").skip(1).map(|part| {
        part.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    })
}

/// The names `pub use module::{A, B}` (or `pub use module::A`) re-exports, by the module they
/// come from. Only the first segment is kept: that is the module the root depends on.
fn reexports(code: &[&str]) -> BTreeMap<String, String> {
    let text = code.join("\n");
    let mut names = BTreeMap::new();
    for item in text.split(';') {
        let item = item.trim();
        let Some(path) = item
            .strip_prefix("pub use ")
            .or_else(|| item.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let path = path.strip_prefix("crate::").unwrap_or(path);
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        for name in rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !name.is_empty() && name != "self" {
                names.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    names
}

/// The graph of the crate whose root file is `root`: each top-level module and the crate root
/// (its own items), with the modules it names. A name the root re-exports counts as the module
/// it comes from.
fn crate_graph(root: &Path, read: Read) -> Graph {
    let root_text = read(root).unwrap_or_default();
    let root_code = code(&root_text);
    let modules = declared(&root_code);
    let reexported = reexports(&root_code);
    // What a `crate::name` path reaches.
    let target = |name: &str| -> Option<String> {
        if modules.iter().any(|m| m == name) {
            Some(name.to_owned())
        } else if let Some(module) = reexported.get(name) {
            Some(module.clone())
        } else if name.is_empty() {
            None
        } else {
            Some(ROOT.to_owned())
        }
    };
    let mut graph = Graph::new();
    for module in &modules {
        let Some((path, text)) = module_file(&children(root, true), module, read) else {
            continue;
        };
        let mut files = Vec::new();
        module_files(path, text, read, &mut files);
        let mut uses = BTreeSet::new();
        for (_, text) in &files {
            for line in code(text) {
                uses.extend(crate_paths(line).filter_map(|name| target(&name)));
            }
        }
        uses.remove(module);
        graph.insert(module.clone(), uses);
    }
    // The root's own code: what it uses, not what it declares or re-exports.
    let mut uses = BTreeSet::new();
    let own = root_code.iter().filter(|line| {
        let line = line.trim_start();
        !(line.starts_with("mod ")
            || line.starts_with("pub mod ")
            || line.starts_with("pub(crate) mod ")
            || line.starts_with("pub use ")
            || line.starts_with("pub(crate) use "))
    });
    for line in own {
        uses.extend(crate_paths(line).filter_map(|name| target(&name)));
        uses.extend(modules.iter().filter(|m| names_path(line, m)).cloned());
    }
    uses.remove(ROOT);
    graph.insert(ROOT.to_owned(), uses);
    // A root without code of its own (only declarations) is no node: nothing can loop through it.
    if !graph.values().any(|uses| uses.contains(ROOT)) && graph[ROOT].is_empty() {
        graph.remove(ROOT);
    }
    graph
}

/// A circle through `start`, as the modules along it.
fn cycle_from(graph: &Graph, start: &str, at: &str, path: &mut Vec<String>) -> Option<Vec<String>> {
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

/// Every circle, one per module it passes through first (in name order).
fn cycles(graph: &Graph) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for module in graph.keys() {
        if seen.contains(module) {
            continue;
        }
        let mut path = vec![module.clone()];
        if let Some(cycle) = cycle_from(graph, module, module, &mut path) {
            seen.extend(cycle.iter().cloned());
            found.push(cycle.join(" -> "));
        }
    }
    found
}

/// Each crate of the workspace: its folder name and its crate roots (`src/lib.rs`,
/// `src/main.rs`, `src/bin/*.rs`).
fn crates() -> Vec<(String, Vec<PathBuf>)> {
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .filter(|p| p.is_file())
            .collect();
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            roots.extend(bins.map(|e| e.unwrap().path()));
        }
        roots.sort();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        crates.push((name, roots));
    }
    crates.sort();
    crates
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let mut graphs = BTreeMap::new();
    for (name, roots) in crates() {
        for root in roots {
            let label = format!("{name} ({})", root.file_name().unwrap().to_string_lossy());
            graphs.insert(label, crate_graph(&root, &read_disk));
        }
    }
    // The test reads what it should: the crates and the modules the README's layout names.
    for (krate, modules) in [
        ("cmkguard-core (lib.rs)", &["guard", "act", "sweep"][..]),
        ("cmkguard-cli (lib.rs)", &["audit", "output", "report"][..]),
        ("cmkguard-aws (lib.rs)", &["ports"][..]),
        ("cmkguard-testkit (lib.rs)", &["standin"][..]),
    ] {
        let graph = graphs
            .get(krate)
            .unwrap_or_else(|| panic!("{krate}: {graphs:?}"));
        assert!(
            modules.iter().all(|m| graph.contains_key(*m)),
            "{krate}: {graph:?}"
        );
    }
    let circles: Vec<String> = graphs
        .iter()
        .flat_map(|(krate, graph)| {
            cycles(graph)
                .into_iter()
                .map(move |c| format!("{krate}: {c}"))
        })
        .collect();
    assert!(
        circles.is_empty(),
        "module circles:\n{}",
        circles.join("\n")
    );
    // The direction the README's layout gives.
    let engine = &graphs["cmkguard-core (lib.rs)"];
    for (lower, upper) in [("guard", "dispatch"), ("guard", "sweep"), ("act", "guard")] {
        assert!(
            !engine[lower].contains(upper),
            "`{lower}` must not use `{upper}`"
        );
    }
}

/// Whether the comment and attribute lines right above line `at` say why it is long.
fn explained(lines: &[&str], at: usize) -> bool {
    lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.starts_with("//") || l.starts_with("#["))
        .any(|l| l.starts_with("// Long:"))
}

/// The type an impl block's first line is for: `impl<T> Trait for a::Type<T> {` is `Type`.
fn impl_type(line: &str) -> String {
    let mut rest = line.strip_prefix("impl").unwrap_or(line);
    if rest.starts_with('<') {
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                depth += match c {
                    '<' => 1,
                    '>' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i + 1);
        rest = &rest[end..];
    }
    let rest = rest.split(" where").next().unwrap_or(rest);
    let rest = rest.split('{').next().unwrap_or(rest);
    let rest = rest.rsplit(" for ").next().unwrap_or(rest);
    let path = rest
        .trim()
        .trim_start_matches('&')
        .trim_start_matches("mut ");
    let path = path.split('<').next().unwrap_or(path);
    path.rsplit("::").next().unwrap_or(path).trim().to_owned()
}

/// Whether `line` defines the type `name`.
fn defines(line: &str, name: &str) -> bool {
    let line = line.strip_prefix("pub ").unwrap_or(line);
    let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
    ["struct ", "enum ", "trait ", "union ", "type "]
        .iter()
        .any(|kind| {
            line.strip_prefix(kind).is_some_and(|rest| {
                rest.strip_prefix(name).is_some_and(|after| {
                    !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                })
            })
        })
}

#[test]
fn impl_blocks_and_types_stay_short_or_say_why() {
    let mut long = Vec::new();
    // Per crate and type: the lines of its impl blocks, and where they are.
    let mut types: BTreeMap<(String, String), (usize, Vec<String>)> = BTreeMap::new();
    let mut texts = Vec::new();
    for (krate, _) in crates() {
        for path in sources(&workspace_root().join("crates").join(&krate).join("src")) {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            let shown = path
                .strip_prefix(workspace_root())
                .unwrap_or(&path)
                .display();
            for (i, line) in lines.iter().enumerate() {
                if !line.starts_with("impl") {
                    continue;
                }
                let end = lines[i..].iter().position(|l| *l == "}").unwrap() + i;
                if end - i > IMPL_LINES && !explained(&lines, i) {
                    long.push(format!("impl block {shown}:{} ({} lines)", i + 1, end - i));
                }
                let size = types.entry((krate.clone(), impl_type(line))).or_default();
                size.0 += end - i;
                size.1.push(format!("{shown}:{}", i + 1));
            }
            texts.push((krate.clone(), text));
        }
    }
    for ((krate, name), (size, _)) in &types {
        let said = texts.iter().filter(|(k, _)| k == krate).any(|(_, text)| {
            let lines: Vec<&str> = text.lines().collect();
            (0..lines.len()).any(|i| defines(lines[i], name) && explained(&lines, i))
        });
        if *size > TYPE_LINES && !said {
            long.push(format!(
                "type `{name}` in {krate} ({size} lines of impl blocks)"
            ));
        }
    }
    let mut largest: Vec<_> = types.iter().collect();
    largest.sort_by_key(|(_, (size, _))| std::cmp::Reverse(*size));
    println!("the largest types (lines of impl blocks, per crate):");
    for ((krate, name), (size, blocks)) in largest.iter().take(10) {
        println!("{size:5}  {krate} `{name}`: {}", blocks.join(", "));
    }
    assert!(
        long.is_empty(),
        "over {IMPL_LINES} lines an impl block, or {TYPE_LINES} a type, with no `// Long:` reason:\n{}",
        long.join("\n")
    );
}

/// The checks themselves, on small crates held in memory.
mod checks {
    use super::*;

    fn graph_of(files: &[(&str, &str)]) -> Graph {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
            .collect();
        crate_graph(Path::new("src/lib.rs"), &|path| files.get(path).cloned())
    }

    #[test]
    fn a_planted_circle_is_found() {
        let graph = graph_of(&[
            (
                "src/lib.rs",
                "pub mod audit;\npub mod output;\nmod report;\n",
            ),
            ("src/audit.rs", "use crate::output::Printer;\n"),
            ("src/output.rs", "use crate::report::Report;\n"),
            // Through a submodule's file: `report/html.rs` is part of `report`.
            ("src/report.rs", "mod html;\n"),
            ("src/report/html.rs", "fn f() { crate::audit::run(); }\n"),
        ]);
        assert_eq!(cycles(&graph), ["audit -> output -> report -> audit"]);
    }

    #[test]
    fn the_root_and_a_module_that_use_each_other_are_a_circle() {
        let graph = graph_of(&[
            (
                "src/lib.rs",
                "pub mod audit;\npub use audit::Args;\npub type Failure = u8;\nfn run() { audit::run(); }\n",
            ),
            ("src/audit.rs", "use crate::Failure;\npub fn run() {}\n"),
        ]);
        assert_eq!(cycles(&graph), ["audit -> crate -> audit"]);
    }

    #[test]
    fn one_way_uses_and_reexports_are_no_circle() {
        let graph = graph_of(&[
            (
                "src/lib.rs",
                "pub mod guard;\npub mod record;\npub use record::Record;\n#[cfg(test)]\nmod tests { use crate::guard::x; }\n",
            ),
            // A re-exported name reaches the module it comes from, not the root.
            (
                "src/guard.rs",
                "use crate::Record;\n// crate::guard::itself\n",
            ),
            (
                "src/record.rs",
                "pub struct Record;\n#[cfg(test)]\nmod tests { use crate::guard::Guard; }\n",
            ),
        ]);
        assert!(cycles(&graph).is_empty(), "{graph:?}");
        assert_eq!(graph["guard"], BTreeSet::from(["record".to_owned()]));
        assert!(!graph.contains_key(ROOT), "{graph:?}");
    }

    #[test]
    fn an_impl_block_is_counted_for_its_type() {
        assert_eq!(impl_type("impl Actor<'_> {"), "Actor");
        assert_eq!(impl_type("impl<W: Write> Printer<W> {"), "Printer");
        assert_eq!(
            impl_type("impl<P: Ports> fmt::Display for crate::x::Guard<P> {"),
            "Guard"
        );
        assert_eq!(impl_type("impl<T> From<T> for Wrapper<T>"), "Wrapper");
        assert!(defines("pub struct Actor<'a> {", "Actor"));
        assert!(!defines("pub struct ActorKind {", "Actor"));
        let lines = [
            "// Long: one decision, read top to bottom",
            "#[derive(Debug)]",
            "pub struct Actor;",
        ];
        assert!(explained(&lines, 2));
        assert!(!explained(&lines, 0));
    }
}
