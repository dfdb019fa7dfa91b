//! The report as GitHub-flavoured Markdown: a CI job summary or a pull request comment. Every
//! value from AWS is escaped for a table cell; the findings table stops at [`MAX_ROWS`], the keys
//! with policy findings at [`keys::LISTED`].

use std::io::{self, Write};

use super::{Row, Summary};
use crate::keys::{self, Keys};

/// Findings listed; the rest are counted in a line under the table (a comment has a size limit).
pub const MAX_ROWS: usize = 100;

pub(super) fn write(
    out: &mut impl Write,
    summary: &Summary,
    rows: &[Row],
    keys: &Keys,
) -> io::Result<()> {
    writeln!(out, "## cmkguard audit")?;
    writeln!(out)?;
    writeln!(out, "{} {}", summary.headline(), summary.mode())?;
    writeln!(out)?;
    writeln!(out, "| verdict | secrets |")?;
    writeln!(out, "| --- | ---: |")?;
    for (verdict, n) in &summary.by_verdict {
        writeln!(out, "| `{}` | {n} |", verdict.as_str())?;
    }
    writeln!(out, "| total | {} |", summary.audited)?;
    writeln!(out)?;
    writeln!(out, "| severity | findings |")?;
    writeln!(out, "| --- | ---: |")?;
    for (severity, n) in &summary.by_severity {
        writeln!(out, "| `{}` | {n} |", severity.as_str())?;
    }
    for (what, top) in [
        ("account", &summary.top_accounts),
        ("region", &summary.top_regions),
    ] {
        if top.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "| {what} (most findings) | findings |")?;
        writeln!(out, "| --- | ---: |")?;
        for (name, n) in top {
            writeln!(out, "| {} | {n} |", cell(name))?;
        }
    }
    if !summary.would_fail.is_empty() {
        writeln!(out)?;
        writeln!(out, "Planned actions that would not go through:")?;
        writeln!(out)?;
        for (account, region, why, n) in &summary.would_fail {
            writeln!(
                out,
                "- {} {}: {} ({n} secrets)",
                cell(account),
                cell(region),
                cell(why)
            )?;
        }
    }
    findings(out, rows)?;
    write_keys(out, keys)
}

fn findings(out: &mut impl Write, rows: &[Row]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "### Findings")?;
    writeln!(out)?;
    writeln!(
        out,
        "| account | region | secret | verdict | reason | severity | key | actions | what to do |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    for row in rows.iter().take(MAX_ROWS) {
        let reason = match &row.detail {
            Some(detail) => format!("`{}`: {}", row.reason.as_str(), cell(detail)),
            None => format!("`{}`", row.reason.as_str()),
        };
        let actions = if row.actions.is_empty() {
            "-".to_owned()
        } else {
            row.actions
                .iter()
                .map(|(action, outcome, _)| format!("{action}: `{outcome}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let key = if row.key_policy.is_empty() {
            cell(&row.key)
        } else {
            format!("{} ({})", cell(&row.key), code_words(&row.key_policy))
        };
        writeln!(
            out,
            "| {} | {} | {} | `{}` | {reason} | `{}` | {key} | {actions} | {} |",
            cell(&row.account),
            cell(&row.region),
            cell(&row.name),
            row.verdict.as_str(),
            row.severity.as_str(),
            // Our own words, with `code` spans: no `|` nor line break in them.
            row.advice(),
        )?;
    }
    if rows.len() > MAX_ROWS {
        let more = rows.len() - MAX_ROWS;
        writeln!(out)?;
        writeln!(
            out,
            "{more} more {} not listed: `--format csv` or `--format html` lists every one.",
            if more == 1 { "finding" } else { "findings" }
        )?;
    }
    Ok(())
}

/// The keys whose policy review found something, the most secrets first, at most
/// [`keys::LISTED`]; then what to do, once per word.
fn write_keys(out: &mut impl Write, keys: &Keys) -> io::Result<()> {
    if !keys.any() {
        return Ok(());
    }
    let found = keys.with_findings();
    writeln!(out)?;
    writeln!(out, "### Keys with policy findings")?;
    writeln!(out)?;
    writeln!(
        out,
        "{} of {} customer managed keys reviewed have findings.",
        found.len(),
        keys.reviewed()
    )?;
    if keys.unkept_secrets > 0 {
        writeln!(out)?;
        writeln!(out, "{}", keys::unkept_note(keys))?;
    }
    if found.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "| key | key policy | secrets |")?;
    writeln!(out, "| --- | --- | ---: |")?;
    for (arn, key) in found.iter().take(keys::LISTED) {
        writeln!(
            out,
            "| {} | {} | {} |",
            cell(arn),
            code_words(&key.review.words()),
            key.secrets
        )?;
    }
    if found.len() > keys::LISTED {
        writeln!(out)?;
        writeln!(
            out,
            "{} more keys with findings not listed: `--format html` lists them.",
            found.len() - keys::LISTED
        )?;
    }
    writeln!(out)?;
    for word in keys.words_found() {
        // Our own words (the advice table's): no `|` nor line break in them.
        writeln!(out, "- `{word}`: {}", super::advice(word.reason()))?;
    }
    Ok(())
}

/// Finding words as `code`, comma separated (our own words: nothing to escape).
fn code_words(words: &[cmkguard_core::keypolicy::KeyPolicyWord]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Text for a table cell: Markdown's punctuation backslash-escaped (so nothing from AWS becomes
/// a link, an image, HTML, emphasis, code or a column), line breaks as spaces.
fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::super::tests::{finding, rendered};
    use super::*;
    use cmkguard_core::Reason;

    #[test]
    fn cells_escape_what_would_break_the_table() {
        assert_eq!(cell("a|b\nc`d`"), "a\\|b c\\`d\\`");
        assert_eq!(
            cell("<img src=x onerror=alert(1)>"),
            "\\<img src=x onerror=alert(1)\\>"
        );
        assert_eq!(cell("[x](http://e)"), "\\[x\\](http://e)");
        assert_eq!(cell("app/db_1"), "app/db\\_1");
    }

    #[test]
    fn keys_with_findings_are_listed_most_secrets_first_and_cut_with_a_count() {
        use crate::keys::tests::{KEY_A, KEY_B, on_key};
        use cmkguard_core::keypolicy::KeyPolicyWord::{GrantDecrypt, Public, Unreadable};
        let mut records = vec![
            on_key("a", KEY_A, &[(Public, "<img src=x onerror=alert(1)>")]),
            on_key("b1", KEY_B, &[(GrantDecrypt, "g"), (Public, "p")]),
            on_key("b2", KEY_B, &[(GrantDecrypt, "g"), (Public, "p")]),
            on_key("clean", "arn:aws:kms:us-east-1:111111111111:key/clean", &[]),
        ];
        for i in 0..keys::LISTED + 1 {
            let key = format!("arn:aws:kms:us-east-1:111111111111:key/k{i:02}");
            records.push(on_key("s", &key, &[(Unreadable, "denied")]));
        }
        let text = rendered(Kind::Markdown, &records);
        let keys = text
            .split("### Keys with policy findings\n")
            .nth(1)
            .unwrap();
        assert!(keys.starts_with("\n23 of 24 customer managed keys reviewed have findings.\n"));
        let rows: Vec<&str> = keys.lines().filter(|l| l.starts_with("| arn")).collect();
        assert_eq!(rows.len(), keys::LISTED, "{text}");
        assert_eq!(
            rows[0],
            format!("| {KEY_B} | `key-policy-public`, `key-grant-decrypt` | 2 |")
        );
        assert!(
            keys.contains("\n3 more keys with findings not listed"),
            "{text}"
        );
        assert!(keys.contains("\n- `key-policy-public`: "), "{text}");
        // Details are the HTML report's: none here, hostile or not.
        assert!(!text.contains("onerror"), "{text}");
    }

    #[test]
    fn long_tables_are_cut_with_a_count() {
        let records: Vec<_> = (0..MAX_ROWS + 7)
            .map(|i| {
                finding(
                    "111111111111",
                    "us-east-1",
                    &format!("s{i}"),
                    Reason::AwsManagedKey,
                )
            })
            .collect();
        let text = rendered(Kind::Markdown, &records);
        let rows = text
            .lines()
            .filter(|l| l.starts_with("| 111111111111 | us-east-1 |"))
            .count();
        assert_eq!(rows, MAX_ROWS, "{text}");
        assert!(text.contains("\n7 more findings not listed"), "{text}");
    }
}
