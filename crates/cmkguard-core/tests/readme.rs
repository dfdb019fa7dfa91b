//! The README's tables are the code's: the verdict table lists every reason the engine gives, and
//! nothing else; the severity table gives each finding reason the severity the code gives it; the
//! IAM list next to the ports (`src/iam.json`) names every port and no other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeSet;

use cmkguard_core::Reason;
use cmkguard_core::finding::Severity;

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

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md at the workspace root")
}

/// The rows of the first table after `heading`, as cells.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    text.split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("a `{heading}` in README.md"))
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| row.split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_severity_table_is_the_codes() {
    let mut listed = BTreeSet::new();
    for row in table_after(&readme(), "reason, by what the finding puts at stake:") {
        let severity = backticked(&row[2]).concat();
        for reason in backticked(&row[1]) {
            let known = Reason::parse(&reason)
                .unwrap_or_else(|| panic!("README.md's severity table: unknown reason `{reason}`"));
            assert_eq!(
                Severity::of_reason(known).as_str(),
                severity,
                "README.md's severity of `{reason}`"
            );
            listed.insert(known);
        }
    }
    let findings: BTreeSet<Reason> = Reason::ALL
        .iter()
        .copied()
        .filter(|r| Severity::of_reason(*r) != Severity::Informational)
        .collect();
    assert_eq!(
        listed, findings,
        "README.md's severity table lists exactly the reasons a FAILED finding can have"
    );
}

#[test]
fn the_iam_list_names_every_port_and_no_other() {
    let iam: serde_json::Value =
        serde_json::from_str(include_str!("../src/iam.json")).expect("src/iam.json is JSON");
    let listed: BTreeSet<String> = iam["ports"]
        .as_object()
        .expect("a `ports` object")
        .keys()
        .cloned()
        .collect();
    let source = include_str!("../src/ports.rs");
    let ports: BTreeSet<String> = source
        .split("\nports!(")
        .nth(1)
        .expect("the `ports!(...)` list in ports.rs")
        .split(')')
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    assert!(ports.len() >= 8, "{ports:?}");
    assert_eq!(
        listed, ports,
        "src/iam.json must list the IAM actions of every port in ports.rs, and no other"
    );
    for (port, entry) in iam["ports"].as_object().unwrap() {
        let actions = entry["actions"].as_array().unwrap();
        assert!(!actions.is_empty(), "{port}: no action");
        assert!(
            actions
                .iter()
                .all(|a| a.as_str().is_some_and(|a| a.contains(':'))),
            "{port}: {actions:?}"
        );
    }
}

/// The tags table lists every tag the guard writes (`src/tags.rs`) and every value of
/// `cmkguard:status`.
#[test]
fn the_tags_table_lists_every_tag_and_status() {
    use cmkguard_core::tags::{self, Status};
    let table = table_after(&readme(), "### Tags written on secrets");
    let row = |tag: &str| {
        table
            .iter()
            .find(|row| row[1] == format!("`{tag}`"))
            .unwrap_or_else(|| panic!("README.md's tags table has no row for `{tag}`"))
            .join("|")
    };
    for tag in [
        tags::STATUS_TAG,
        tags::REASON_TAG,
        tags::PREVIOUS_KEY_TAG,
        tags::MOVED_VERSION_TAG,
        tags::ROTATION_REQUESTED_TAG,
    ] {
        row(tag);
    }
    let status = row(tags::STATUS_TAG);
    for value in Status::ALL {
        assert!(
            status.contains(&format!("`{value}`")),
            "README.md's `{}` row does not name `{value}`",
            tags::STATUS_TAG
        );
    }
    // And the source names no other `cmkguard:` tag constant than these.
    let source = include_str!("../src/tags.rs");
    let declared = source.matches(": &str = \"cmkguard:").count();
    assert_eq!(
        declared, 5,
        "a tag in src/tags.rs is missing from this test"
    );
}
