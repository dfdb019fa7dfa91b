//! The README's configuration table lists every variable the binaries read, and no other.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a failed setup should panic where it happens

use std::collections::BTreeSet;

#[test]
fn the_configuration_table_is_what_the_binaries_read() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md at the workspace root");
    let listed: BTreeSet<String> = readme
        .split("\n## Configuration\n")
        .nth(1)
        .expect("a `## Configuration` section")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|row| row.split('`').nth(1).map(str::to_owned))
        .collect();
    let read: BTreeSet<String> = cmkguard_core::config::VARIABLES
        .iter()
        .chain(&[
            cmkguard_aws::ATTEMPT_TIMEOUT_MS,
            cmkguard_aws::RETRY_BUDGET_MS,
        ])
        .map(|v| (*v).to_owned())
        .collect();
    assert_eq!(
        listed, read,
        "README.md's configuration table and the variables the binaries read differ"
    );
}
