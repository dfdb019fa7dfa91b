//! How `cmkguard audit` prints records: `table` for people, `json` (one audit record per line, as
//! the Lambda logs them) and `csv` for tools, `html` and `markdown` reports (the `report` module).

use std::io::{self, Write};

use clap::ValueEnum;
use cmkguard_core::arn::secret_name;
use cmkguard_core::{Reason, Record, Verdict};

use crate::keys::{self, Keys};
use crate::report::{self, Kind, Report};
use crate::tally::{Tally, is_finding};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// One row per secret that is not compliant, then a summary by region and verdict
    #[default]
    Table,
    /// One audit record per line
    Json,
    /// A header row, then one row per secret
    Csv,
    /// One self-contained HTML document: a summary, charts, the findings in a table that sorts
    /// and filters
    Html,
    /// A summary and the findings as GitHub-flavoured Markdown (a CI job summary, a comment)
    Markdown,
}

/// The verdicts a summary counts, in column order.
const VERDICTS: [Verdict; 5] = [
    Verdict::Compliant,
    Verdict::Exempt,
    Verdict::NonCompliant,
    Verdict::Managed,
    Verdict::Error,
];

/// The CSV columns, in order (the record's fields, in its order).
pub const CSV_HEADER: [&str; 11] = [
    "account",
    "region",
    "secret_arn",
    "key_id",
    "key_manager",
    "key_policy",
    "verdict",
    "reason",
    "dry_run",
    "actions",
    "detail",
];

/// Writes records in one format.
pub struct Printer<W: Write> {
    out: Out<W>,
}

enum Out<W: Write> {
    /// Rows held back to the end (column widths need them all).
    Table {
        out: W,
        rows: Vec<[String; 8]>,
    },
    Json(W),
    /// Boxed: the writer's state dwarfs the other variants.
    Csv(Box<csv::Writer<W>>),
    /// The findings held back to the end, for the summary above them.
    Report {
        out: W,
        report: Report,
    },
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W) -> io::Result<Self> {
        let out = match format {
            Format::Table => Out::Table {
                out,
                rows: Vec::new(),
            },
            Format::Json => Out::Json(out),
            Format::Csv => {
                // Quotes only the fields that need it; lines end in `\n`.
                let mut csv = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_writer(out);
                csv.write_record(CSV_HEADER)?;
                Out::Csv(Box::new(csv))
            }
            Format::Html => Out::Report {
                out,
                report: Report::new(Kind::Html),
            },
            Format::Markdown => Out::Report {
                out,
                report: Report::new(Kind::Markdown),
            },
        };
        Ok(Printer { out })
    }

    pub fn record(&mut self, record: &Record) -> io::Result<()> {
        match &mut self.out {
            Out::Json(out) => writeln!(out, "{}", record.to_json_line()),
            Out::Csv(csv) => {
                csv.write_record([
                    record.account.as_deref().unwrap_or_default(),
                    record.region.as_deref().unwrap_or_default(),
                    record.secret_arn.as_deref().unwrap_or_default(),
                    record.key_id.as_deref().unwrap_or_default(),
                    key_manager(record),
                    &key_policy(record, ";"),
                    record.verdict.as_str(),
                    &record.reason.to_string(),
                    &record.dry_run.to_string(),
                    &actions(record),
                    record.detail.as_deref().unwrap_or_default(),
                ])?;
                // Each record goes out as it comes, as the other formats do (the writer buffers).
                csv.flush()
            }
            Out::Report { report, .. } => {
                report.record(record);
                Ok(())
            }
            Out::Table { rows, .. } => {
                if is_finding(record.verdict) {
                    rows.push([
                        record.account.clone().unwrap_or_default(),
                        record.region.clone().unwrap_or_default(),
                        record
                            .secret_arn
                            .as_deref()
                            .map_or_else(|| "-".to_owned(), secret_name),
                        record.verdict.as_str().to_owned(),
                        record.reason.to_string(),
                        record
                            .key_id
                            .clone()
                            .unwrap_or_else(|| "aws/secretsmanager (default)".into()),
                        match key_policy(record, ",") {
                            words if words.is_empty() => "-".to_owned(),
                            words => words,
                        },
                        actions(record),
                    ]);
                }
                Ok(())
            }
        }
    }

    /// Ends the output: for `table`, the rows and the summary; for a report, all of it.
    pub fn finish(self, tally: &Tally, applied: bool) -> io::Result<()> {
        let (mut out, rows) = match self.out {
            Out::Table { out, rows } => (out, rows),
            Out::Json(mut out) => return out.flush(),
            Out::Csv(mut csv) => return csv.flush(),
            Out::Report { mut out, report } => {
                report.finish(&mut out, tally, applied)?;
                return out.flush();
            }
        };
        write_findings(&mut out, &rows)?;
        writeln!(out)?;
        write_summary(&mut out, tally, applied)?;
        write_keys(&mut out, &tally.keys)?;
        out.flush()
    }
}

/// The table's findings, then what to do about them.
fn write_findings(out: &mut impl Write, rows: &[[String; 8]]) -> io::Result<()> {
    let header = [
        "ACCOUNT",
        "REGION",
        "SECRET",
        "VERDICT",
        "REASON",
        "KEY",
        "KEY POLICY",
        "ACTIONS",
    ];
    if rows.is_empty() {
        return writeln!(out, "Every secret is compliant or exempt.");
    }
    write_columns(out, &header, rows)?;
    // What to do, once per reason found (not per row: readable at 1,000 accounts).
    let reasons: std::collections::BTreeSet<&str> =
        rows.iter().map(|row| row[4].as_str()).collect();
    writeln!(out)?;
    writeln!(out, "What to do:")?;
    for reason in reasons.into_iter().filter_map(Reason::parse) {
        writeln!(out, "  {reason}: {}", report::advice(reason))?;
    }
    Ok(())
}

/// The table's summary: totals first, then only the account-regions with findings (readable at
/// 1,000 accounts), then the planned actions that would not go through.
fn write_summary(out: &mut impl Write, tally: &Tally, applied: bool) -> io::Result<()> {
    let mut header = vec!["ACCOUNT".to_owned(), "REGION".to_owned()];
    header.extend(VERDICTS.iter().map(|v| v.as_str().to_uppercase()));
    header.push("TOTAL".to_owned());
    let mut total = vec!["total".to_owned(), String::new()];
    total.extend(VERDICTS.iter().map(|v| tally.count(*v).to_string()));
    total.push(tally.total().to_string());
    let mut rows = vec![total];
    rows.extend(tally.counts.iter().map(|((account, region), counts)| {
        let mut row = vec![account.clone(), region.clone()];
        row.extend(
            VERDICTS
                .iter()
                .map(|v| counts.get(v).copied().unwrap_or(0).to_string()),
        );
        row.push(counts.values().sum::<usize>().to_string());
        row
    }));
    write_columns(out, &header, &rows)?;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    writeln!(
        out,
        "{} in {} audited, {}.",
        plural(tally.places, "account-region", "account-regions"),
        plural(tally.accounts(), "account", "accounts"),
        match tally.counts.len() {
            0 => "none with findings".to_owned(),
            n if n == tally.places => "each with findings, each listed".to_owned(),
            n => format!("the {n} with findings listed"),
        }
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{} of {} secrets are not compliant or exempt.{}",
        tally.flagged(),
        tally.total(),
        if applied {
            ""
        } else {
            " Nothing was changed: pass `--apply` to run the actions listed as `dry_run`."
        }
    )?;
    if !tally.would_fail.is_empty() {
        writeln!(out)?;
        writeln!(out, "Planned actions that would not go through:")?;
        for ((account, region), reasons) in &tally.would_fail {
            for (why, n) in reasons {
                writeln!(out, "  {account} {region}: {why} ({n} secrets)")?;
            }
        }
    }
    Ok(())
}

/// After the summary, the keys whose policy review found something: the most secrets first, at
/// most [`keys::LISTED`] of them (readable at 1,000 accounts), then what to do, once per word.
fn write_keys(out: &mut impl Write, keys: &Keys) -> io::Result<()> {
    if !keys.any() {
        return Ok(());
    }
    let found = keys.with_findings();
    writeln!(out)?;
    if found.is_empty() {
        let n = keys.reviewed();
        writeln!(
            out,
            "{n} customer managed {} reviewed: no policy finding.",
            if n == 1 { "key" } else { "keys" }
        )?;
    } else {
        writeln!(
            out,
            "Keys with policy findings ({} of {} keys reviewed):",
            found.len(),
            keys.reviewed()
        )?;
        let rows: Vec<[String; 3]> = found
            .iter()
            .take(keys::LISTED)
            .map(|(arn, key)| {
                [
                    (*arn).to_owned(),
                    keys::words(&key.review, ","),
                    key.secrets.to_string(),
                ]
            })
            .collect();
        write_columns(out, &["KEY", "KEY POLICY", "SECRETS"], &rows)?;
        if found.len() > keys::LISTED {
            writeln!(
                out,
                "{} more keys with findings: `--format html` lists every one.",
                found.len() - keys::LISTED
            )?;
        }
    }
    if keys.unkept_secrets > 0 {
        writeln!(out, "{}", keys::unkept_note(keys))?;
    }
    if found.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "What to do about the keys:")?;
    for word in keys.words_found() {
        writeln!(out, "  {word}: {}", report::advice(word.reason()))?;
    }
    Ok(())
}

/// The record's key policy words, most severe first (empty when none or not reviewed).
fn key_policy(record: &Record, separator: &str) -> String {
    record
        .key_policy
        .as_ref()
        .map(|review| keys::words(review, separator))
        .unwrap_or_default()
}

fn key_manager(record: &Record) -> &'static str {
    match record.key_manager {
        Some(cmkguard_core::KeyManager::Aws) => "AWS",
        Some(cmkguard_core::KeyManager::Customer) => "CUSTOMER",
        None => "",
    }
}

/// `tag:dry_run;notify:skipped`: each action and its outcome.
fn actions(record: &Record) -> String {
    let words: Vec<String> = record
        .actions
        .iter()
        .map(|a| format!("{}:{}", a.action.as_str(), a.outcome.as_str()))
        .collect();
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(";")
    }
}

/// Left-aligned columns two spaces apart under `header`, no borders, lines without trailing spaces.
pub fn write_columns<S: AsRef<str>>(
    out: &mut impl Write,
    header: &[S],
    rows: &[impl AsRef<[String]>],
) -> io::Result<()> {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().map(AsRef::as_ref))
        .add_rows(rows.iter().map(AsRef::as_ref));
    // Without borders, the right padding is what separates columns.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{KEY_A, KEY_B, on_key};
    use cmkguard_core::keypolicy::KeyPolicyWord;

    fn record(arn: &str) -> Record {
        let meta = cmkguard_core::event::EventMeta::default();
        let (verdict, reason) = (
            Verdict::Compliant,
            cmkguard_core::Reason::CustomerManagedKey,
        );
        Record::new(&meta, Some(arn.into()), verdict, reason, None, true)
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut out = Vec::new();
        let mut printer = Printer::new(Format::Csv, &mut out).unwrap();
        printer
            .record(&Record {
                account: Some("a,b".into()),
                region: Some("line\nbreak".into()),
                detail: Some("say \"hi\"".into()),
                ..record("plain")
            })
            .unwrap();
        printer.finish(&Tally::default(), false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "account,region,secret_arn,key_id,key_manager,key_policy,verdict,reason,dry_run,actions,detail\n\
             \"a,b\",\"line\nbreak\",plain,,,,compliant,customer-managed-key,true,-,\"say \"\"hi\"\"\"\n"
        );
    }

    /// `records` through a printer of `format`, counted as the sink counts them.
    fn print(format: Format, records: &[Record]) -> String {
        let mut out = Vec::new();
        let mut printer = Printer::new(format, &mut out).unwrap();
        let mut tally = Tally::default();
        for record in records {
            tally.add(record);
            printer.record(record).unwrap();
        }
        tally.place("111111111111", "us-east-1");
        printer.finish(&tally, false).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_lines_carry_the_key_policy_words() {
        let reviewed = on_key(
            "a",
            KEY_A,
            &[
                (KeyPolicyWord::GrantDecrypt, "grant `g1`"),
                (KeyPolicyWord::Public, "statement `Open`"),
            ],
        );
        let clean = on_key("b", KEY_A, &[]);
        let off = Record {
            key_policy: None,
            ..on_key("c", KEY_A, &[])
        };
        let text = print(Format::Json, &[reviewed, clean, off]);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines[0]["key_policy"],
            serde_json::json!(["key-policy-public", "key-grant-decrypt"])
        );
        assert_eq!(lines[1]["key_policy"], serde_json::json!([]));
        assert!(lines[2].get("key_policy").is_none(), "{text}");
    }

    #[test]
    fn csv_has_the_key_policy_words() {
        let text = print(
            Format::Csv,
            &[
                on_key(
                    "a",
                    KEY_A,
                    &[
                        (KeyPolicyWord::DelegatedToIam, "root"),
                        (KeyPolicyWord::OtherAccount, "x"),
                    ],
                ),
                on_key("b", KEY_A, &[]),
            ],
        );
        let rows: Vec<&str> = text.lines().collect();
        assert!(
            rows[1].contains(
                ",CUSTOMER,key-policy-other-account;key-policy-delegated-to-iam,compliant,"
            ),
            "{text}"
        );
        assert!(rows[2].contains(",CUSTOMER,,compliant,"), "{text}");
    }

    #[test]
    fn table_lists_the_keys_with_findings_most_secrets_first_capped() {
        let mut records = vec![
            Record {
                verdict: Verdict::NonCompliant,
                reason: Reason::KeyDisabled,
                ..on_key("flagged", KEY_A, &[(KeyPolicyWord::Public, "x")])
            },
            on_key("b1", KEY_B, &[(KeyPolicyWord::GrantDecrypt, "g")]),
            on_key("b2", KEY_B, &[(KeyPolicyWord::GrantDecrypt, "g")]),
            on_key("clean", "arn:aws:kms:us-east-1:111111111111:key/clean", &[]),
        ];
        for i in 0..keys::LISTED + 2 {
            let key = format!("arn:aws:kms:us-east-1:111111111111:key/k{i:02}");
            records.push(on_key("s", &key, &[(KeyPolicyWord::Unreadable, "denied")]));
        }
        let text = print(Format::Table, &records);
        // The finding's row names its key's words.
        let row = text.lines().find(|l| l.contains(" flagged ")).unwrap();
        assert!(row.contains(" key-policy-public "), "{text}");
        let block = text.split("Keys with policy findings").nth(1).unwrap();
        assert!(
            block.starts_with(" (24 of 25 keys reviewed):\nKEY "),
            "{text}"
        );
        let listed: Vec<&str> = block
            .lines()
            .filter(|l| l.starts_with("arn:aws:kms:"))
            .collect();
        assert_eq!(listed.len(), keys::LISTED, "{text}");
        assert!(
            listed[0].starts_with(KEY_B) && listed[0].ends_with(" 2"),
            "{text}"
        );
        assert!(block.contains("\n4 more keys with findings"), "{text}");
        assert!(
            block.contains("What to do about the keys:\n  key-policy-public: "),
            "{text}"
        );
        assert!(
            block.contains("\n  key-policy-unreadable: Allow the guard"),
            "{text}"
        );
        assert!(!block.contains("/key/clean"), "{text}");
    }

    #[test]
    fn table_says_when_reviewed_keys_are_clean_and_nothing_when_unreviewed() {
        let text = print(Format::Table, &[on_key("a", KEY_A, &[])]);
        assert!(
            text.ends_with("\n1 customer managed key reviewed: no policy finding.\n"),
            "{text}"
        );
        let off = Record {
            key_policy: None,
            ..on_key("a", KEY_A, &[])
        };
        assert!(!print(Format::Table, &[off]).contains("keys reviewed"));
    }

    #[test]
    fn columns_are_left_aligned_two_spaces_apart() {
        let mut out = Vec::new();
        let rows = [
            vec!["a".to_owned(), "longer".to_owned(), "x".to_owned()],
            vec!["wide cell".to_owned(), String::new(), String::new()],
        ];
        write_columns(&mut out, &["ONE", "TWO", "THREE"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ONE        TWO     THREE\na          longer  x\nwide cell\n"
        );
    }
}
