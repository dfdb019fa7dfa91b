//! How `cmkguard audit` prints records: `table` for people, `json` (one audit record per line, as
//! the Lambda logs them) and `csv` for tools. Records come in a fixed order (accounts, then
//! regions, as asked; secrets in listing order) whatever order the sweeps finish in.

use std::collections::BTreeMap;
use std::io::{self, Write};

use clap::ValueEnum;
use cmkguard_core::act::WOULD_FAIL;
use cmkguard_core::{Outcome, Record, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// One row per secret that is not compliant, then a summary by region and verdict
    #[default]
    Table,
    /// One audit record per line
    Json,
    /// A header row, then one row per secret
    Csv,
}

/// The verdicts a summary counts, in column order.
const VERDICTS: [Verdict; 5] = [
    Verdict::Compliant,
    Verdict::Exempt,
    Verdict::NonCompliant,
    Verdict::Managed,
    Verdict::Error,
];

pub const CSV_HEADER: &str =
    "account,region,secret_arn,key_id,key_manager,verdict,reason,dry_run,actions,detail";

/// Counts per account and region and verdict.
#[derive(Debug, Default)]
pub struct Tally {
    pub counts: BTreeMap<(String, String), BTreeMap<Verdict, usize>>,
    /// A record is `error` or one of its actions `failed`.
    pub failures: usize,
    /// Planned actions of a dry run that would not go through, per account and region: why, and
    /// for how many secrets.
    pub would_fail: BTreeMap<(String, String), BTreeMap<String, usize>>,
}

impl Tally {
    pub fn add(&mut self, record: &Record) {
        let place = (
            record.account.clone().unwrap_or_default(),
            record.region.clone().unwrap_or_default(),
        );
        *self
            .counts
            .entry(place.clone())
            .or_default()
            .entry(record.verdict)
            .or_default() += 1;
        self.failures += usize::from(record.is_failure());
        for action in &record.actions {
            if action.outcome != Outcome::DryRun {
                continue;
            }
            if let Some(why) = action.detail.strip_prefix(WOULD_FAIL) {
                *self
                    .would_fail
                    .entry(place.clone())
                    .or_default()
                    .entry(format!("{}: {why}", action.action.as_str()))
                    .or_default() += 1;
            }
        }
    }

    /// Counts an account and region even when it has no secret.
    pub fn place(&mut self, account: &str, region: &str) {
        self.counts
            .entry((account.to_owned(), region.to_owned()))
            .or_default();
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.counts.values().filter_map(|c| c.get(&verdict)).sum()
    }

    pub fn total(&self) -> usize {
        self.counts.values().flat_map(|c| c.values()).sum()
    }
}

/// Writes records in one format.
pub struct Printer<W> {
    format: Format,
    out: W,
    /// Table rows, printed at the end (column widths need them all).
    rows: Vec<[String; 7]>,
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, mut out: W) -> io::Result<Self> {
        if format == Format::Csv {
            writeln!(out, "{CSV_HEADER}")?;
        }
        Ok(Printer {
            format,
            out,
            rows: Vec::new(),
        })
    }

    pub fn record(&mut self, record: &Record) -> io::Result<()> {
        match self.format {
            Format::Json => writeln!(self.out, "{}", record.to_json_line()),
            Format::Csv => {
                let fields = [
                    record.account.clone().unwrap_or_default(),
                    record.region.clone().unwrap_or_default(),
                    record.secret_arn.clone().unwrap_or_default(),
                    record.key_id.clone().unwrap_or_default(),
                    key_manager(record).to_owned(),
                    record.verdict.as_str().to_owned(),
                    record.reason.to_string(),
                    record.dry_run.to_string(),
                    actions(record),
                    record.detail.clone().unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(self.out, "{}", line.join(","))
            }
            Format::Table => {
                if !matches!(record.verdict, Verdict::Compliant | Verdict::Exempt) {
                    self.rows.push([
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
                        actions(record),
                    ]);
                }
                Ok(())
            }
        }
    }

    /// Ends the output: for `table`, the rows and the summary.
    pub fn finish(mut self, tally: &Tally, applied: bool) -> io::Result<()> {
        if self.format != Format::Table {
            return self.out.flush();
        }
        let header = [
            "ACCOUNT", "REGION", "SECRET", "VERDICT", "REASON", "KEY", "ACTIONS",
        ]
        .map(str::to_owned);
        if self.rows.is_empty() {
            writeln!(self.out, "Every secret is compliant or exempt.")?;
        } else {
            let rows = std::mem::take(&mut self.rows);
            write_columns(&mut self.out, &header, &rows)?;
        }
        writeln!(self.out)?;
        let mut header = vec!["ACCOUNT".to_owned(), "REGION".to_owned()];
        header.extend(VERDICTS.iter().map(|v| v.as_str().to_uppercase()));
        header.push("TOTAL".to_owned());
        let mut rows: Vec<Vec<String>> = tally
            .counts
            .iter()
            .map(|((account, region), counts)| {
                let mut row = vec![account.clone(), region.clone()];
                row.extend(
                    VERDICTS
                        .iter()
                        .map(|v| counts.get(v).copied().unwrap_or(0).to_string()),
                );
                row.push(counts.values().sum::<usize>().to_string());
                row
            })
            .collect();
        let mut total = vec!["total".to_owned(), String::new()];
        total.extend(VERDICTS.iter().map(|v| tally.count(*v).to_string()));
        total.push(tally.total().to_string());
        rows.push(total);
        write_columns(&mut self.out, &header, &rows)?;
        let flagged =
            tally.total() - tally.count(Verdict::Compliant) - tally.count(Verdict::Exempt);
        writeln!(self.out)?;
        writeln!(
            self.out,
            "{flagged} of {} secrets are not compliant or exempt.{}",
            tally.total(),
            if applied {
                ""
            } else {
                " Nothing was changed: pass `--apply` to run the actions listed as `dry_run`."
            }
        )?;
        if !tally.would_fail.is_empty() {
            writeln!(self.out)?;
            writeln!(self.out, "Planned actions that would not go through:")?;
            for ((account, region), reasons) in &tally.would_fail {
                for (why, n) in reasons {
                    writeln!(self.out, "  {account} {region}: {why} ({n} secrets)")?;
                }
            }
        }
        self.out.flush()
    }
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
        .map(|a| {
            let value = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            let action = serde_json::to_value(a.action)
                .map(value)
                .unwrap_or_default();
            let outcome = serde_json::to_value(a.outcome)
                .map(value)
                .unwrap_or_default();
            format!("{action}:{outcome}")
        })
        .collect();
    if words.is_empty() {
        "-".to_owned()
    } else {
        words.join(";")
    }
}

/// The secret's name from its ARN, without the 6 random characters AWS appends.
fn secret_name(arn: &str) -> String {
    let name = arn.split_once(":secret:").map_or(arn, |(_, name)| name);
    match name.rsplit_once('-') {
        Some((base, suffix))
            if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            base.to_owned()
        }
        _ => name.to_owned(),
    }
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn write_columns<S: AsRef<str>>(
    out: &mut impl Write,
    header: &[S],
    rows: &[impl AsRef<[String]>],
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row.as_ref()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            text.push_str(cell);
            if i < last {
                text.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, header.iter().map(AsRef::as_ref).collect())?;
    for row in rows {
        line(out, row.as_ref().iter().map(String::as_str).collect())?;
    }
    Ok(())
}

/// Holds back the records of a scope until every scope before it is done, so the output has the
/// same order whatever order the sweeps finish in (a scope's records stream once it is first).
pub struct InOrder {
    next: usize,
    done: Vec<bool>,
    held: Vec<Vec<Record>>,
}

impl InOrder {
    pub fn new(scopes: usize) -> Self {
        InOrder {
            next: 0,
            done: vec![false; scopes],
            held: (0..scopes).map(|_| Vec::new()).collect(),
        }
    }

    /// The records that can be written now.
    pub fn record(&mut self, scope: usize, record: Record) -> Vec<Record> {
        if scope == self.next {
            vec![record]
        } else {
            self.held[scope].push(record);
            Vec::new()
        }
    }

    /// Marks a scope done; returns the held records that can be written now.
    pub fn scope_done(&mut self, scope: usize) -> Vec<Record> {
        self.done[scope] = true;
        let mut ready = Vec::new();
        while self.next < self.done.len() && self.done[self.next] {
            self.next += 1;
            if let Some(held) = self.held.get_mut(self.next) {
                ready.append(held);
            }
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_the_random_suffix() {
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf"),
            "app/db"
        );
        assert_eq!(secret_name("arn:aws:x:secret:plain"), "plain");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn records_come_out_in_scope_order() {
        let record = |n: &str| Record {
            request_id: None,
            event_id: None,
            event_name: None,
            account: None,
            region: None,
            secret_arn: Some(n.into()),
            actor: None,
            key_id: None,
            key_manager: None,
            verdict: Verdict::Compliant,
            reason: cmkguard_core::Reason::CustomerManagedKey,
            detail: None,
            dry_run: true,
            actions: Vec::new(),
        };
        let names = |v: Vec<Record>| -> Vec<String> {
            v.into_iter().filter_map(|r| r.secret_arn).collect()
        };
        let mut order = InOrder::new(3);
        assert!(order.record(2, record("c1")).is_empty());
        assert!(order.record(1, record("b1")).is_empty());
        assert_eq!(names(order.record(0, record("a1"))), ["a1"]);
        assert!(order.scope_done(2).is_empty());
        assert_eq!(names(order.scope_done(0)), ["b1"]);
        assert_eq!(names(order.record(1, record("b2"))), ["b2"]);
        assert_eq!(names(order.scope_done(1)), ["c1"]);
    }
}
