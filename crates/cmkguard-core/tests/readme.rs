//! The README's verdict table lists every reason the engine gives, and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeSet;

use cmkguard_core::Reason;

/// The backticked kebab-case words of the `reasons` column of the README's verdict table.
fn readme_reasons() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md at the workspace root");
    let table = readme
        .split("### Verdicts")
        .nth(1)
        .expect("a `### Verdicts` section")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>();
    let header: Vec<&str> = table[0].split('|').map(str::trim).collect();
    let column = header
        .iter()
        .position(|h| *h == "reasons")
        .expect("a `reasons` column");
    table[2..]
        .iter()
        .flat_map(|row| {
            let cell = row.split('|').nth(column).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_readme_lists_every_reason_and_only_those() {
    let listed = readme_reasons();
    let known: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    let missing: Vec<_> = known.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&known).collect();
    assert!(
        missing.is_empty(),
        "reasons missing from README.md's verdict table: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "README.md lists reasons the engine never gives: {unknown:?}"
    );
}
