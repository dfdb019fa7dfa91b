//! The report as GitHub-flavoured Markdown: a CI job summary or a pull request comment. Every
//! value from AWS is escaped for a table cell; the findings table stops at [`MAX_ROWS`].

use std::io::{self, Write};

use super::{Row, Summary};

/// Findings listed; the rest are counted in a line under the table (a comment has a size limit).
pub const MAX_ROWS: usize = 100;

pub(super) fn write(out: &mut impl Write, summary: &Summary, rows: &[Row]) -> io::Result<()> {
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
        writeln!(
            out,
            "| {} | {} | {} | `{}` | {reason} | `{}` | {} | {actions} | {} |",
            cell(&row.account),
            cell(&row.region),
            cell(&row.name),
            row.verdict.as_str(),
            row.severity.as_str(),
            cell(&row.key),
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
    use super::super::tests::finding;
    use super::super::{Kind, Report};
    use super::*;
    use crate::tally::Tally;
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
    fn long_tables_are_cut_with_a_count() {
        let mut report = Report::new(Kind::Markdown);
        let mut tally = Tally::default();
        for i in 0..MAX_ROWS + 7 {
            let record = finding(
                "111111111111",
                "us-east-1",
                &format!("s{i}"),
                Reason::AwsManagedKey,
            );
            tally.add(&record);
            report.record(&record);
        }
        let mut out = Vec::new();
        report.finish(&mut out, &tally, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let rows = text
            .lines()
            .filter(|l| l.starts_with("| 111111111111 | us-east-1 |"))
            .count();
        assert_eq!(rows, MAX_ROWS, "{text}");
        assert!(text.contains("\n7 more findings not listed"), "{text}");
    }
}
