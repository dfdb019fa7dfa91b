//! `cmkguard audit --format html|markdown`: a report for people who were not at the terminal.
//! The records stream through [`Report::record`]; only the findings (records that are not
//! `compliant` or `exempt`) are kept, as rows, and everything else is counted by the [`Tally`],
//! so the report of a large organization stays as small as its findings. The keys whose policy
//! was reviewed come from the tally too ([`crate::keys`]): bounded per key and in all.

mod html;
mod markdown;

use std::collections::BTreeMap;
use std::io::{self, Write};

use cmkguard_core::arn::secret_name;
use cmkguard_core::finding::Severity;
use cmkguard_core::keypolicy::KeyPolicyWord;
use cmkguard_core::{Reason, Record, Verdict};

use crate::tally::{Tally, is_finding};

/// Which document [`Report::finish`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Html,
    Markdown,
}

/// The findings of an audit, held for the report.
#[derive(Debug)]
pub struct Report {
    kind: Kind,
    rows: Vec<Row>,
}

/// One finding, as the report shows it.
#[derive(Debug, Clone)]
struct Row {
    account: String,
    region: String,
    /// The secret's name (the ARN without the random suffix); `-` when there is no ARN.
    name: String,
    arn: String,
    verdict: Verdict,
    reason: Reason,
    severity: Severity,
    detail: Option<String>,
    key: String,
    /// The key's policy review: its finding words, most severe first (none when clean or not
    /// reviewed).
    key_policy: Vec<KeyPolicyWord>,
    /// Each action: its name, its outcome, its detail.
    actions: Vec<(&'static str, &'static str, String)>,
}

/// Severities, most severe first: the order the summaries list them in.
const SEVERITIES: [Severity; 5] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Informational,
];

/// How many accounts and regions the "most findings" charts show.
const TOP: usize = 10;

/// What the summaries at the top of a report say.
struct Summary {
    audited: usize,
    findings: usize,
    places: usize,
    accounts: usize,
    by_verdict: Vec<(Verdict, usize)>,
    by_severity: Vec<(Severity, usize)>,
    top_accounts: Vec<(String, usize)>,
    top_regions: Vec<(String, usize)>,
    /// Planned actions that would not go through: account, region, why, how many secrets.
    would_fail: Vec<(String, String, String, usize)>,
    applied: bool,
}

impl Report {
    pub fn new(kind: Kind) -> Self {
        Report {
            kind,
            rows: Vec::new(),
        }
    }

    /// Keeps `record` when it is a finding; the tally counts the rest.
    pub fn record(&mut self, record: &Record) {
        if is_finding(record.verdict) {
            self.rows.push(Row::of(record));
        }
    }

    pub fn finish(self, out: &mut impl Write, tally: &Tally, applied: bool) -> io::Result<()> {
        let summary = Summary::of(&self.rows, tally, applied);
        match self.kind {
            Kind::Html => html::write(out, &summary, &self.rows, &tally.keys),
            Kind::Markdown => markdown::write(out, &summary, &self.rows, &tally.keys),
        }
    }
}

impl Row {
    fn of(record: &Record) -> Row {
        let arn = record.secret_arn.clone().unwrap_or_default();
        Row {
            account: record.account.clone().unwrap_or_default(),
            region: record.region.clone().unwrap_or_default(),
            name: if arn.is_empty() {
                "-".to_owned()
            } else {
                secret_name(&arn)
            },
            arn,
            verdict: record.verdict,
            reason: record.reason,
            severity: Severity::of_reason(record.reason),
            detail: record.detail.clone(),
            key: record
                .key_id
                .clone()
                .unwrap_or_else(|| "aws/secretsmanager (default)".into()),
            key_policy: record
                .key_policy
                .as_ref()
                .map(|review| review.words())
                .unwrap_or_default(),
            actions: record
                .actions
                .iter()
                .map(|a| (a.action.as_str(), outcome(a.outcome), a.detail.clone()))
                .collect(),
        }
    }

    /// What a person should do about this finding.
    fn advice(&self) -> String {
        let advice = advice(self.reason);
        if self.verdict == Verdict::Managed {
            format!(
                "{advice} The secret is owned by another service: change its key through that \
                 service; the guard never re-encrypts it."
            )
        } else {
            advice.to_owned()
        }
    }
}

fn outcome(outcome: cmkguard_core::Outcome) -> &'static str {
    match outcome {
        cmkguard_core::Outcome::Done => "done",
        cmkguard_core::Outcome::DryRun => "dry_run",
        cmkguard_core::Outcome::Skipped => "skipped",
        cmkguard_core::Outcome::Failed => "failed",
    }
}

/// What a person should do, per reason: the reason's row of the engine's one advice table
/// (the e-mail and Security Hub read it too).
pub fn advice(reason: Reason) -> &'static str {
    cmkguard_core::advice::of(reason).to_do
}

impl Summary {
    fn of(rows: &[Row], tally: &Tally, applied: bool) -> Summary {
        let mut by_severity: BTreeMap<Severity, usize> = BTreeMap::new();
        let mut by_account: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_region: BTreeMap<&str, usize> = BTreeMap::new();
        for row in rows {
            *by_severity.entry(row.severity).or_default() += 1;
            *by_account.entry(&row.account).or_default() += 1;
            *by_region.entry(&row.region).or_default() += 1;
        }
        let top = |counts: BTreeMap<&str, usize>| {
            let mut counts: Vec<(String, usize)> = counts
                .into_iter()
                .map(|(name, n)| (name.to_owned(), n))
                .collect();
            // Most first; ties by name (the map's order, kept by a stable sort).
            counts.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            counts.truncate(TOP);
            counts
        };
        let mut by_verdict: Vec<(Verdict, usize)> = tally
            .totals
            .iter()
            .map(|(verdict, n)| (*verdict, *n))
            .collect();
        for verdict in [Verdict::Compliant, Verdict::NonCompliant] {
            if !by_verdict.iter().any(|(v, _)| *v == verdict) {
                by_verdict.push((verdict, 0));
            }
        }
        by_verdict.sort();
        Summary {
            audited: tally.total(),
            findings: rows.len(),
            places: tally.places,
            accounts: tally.accounts(),
            by_verdict,
            by_severity: SEVERITIES
                .iter()
                .map(|s| (*s, by_severity.get(s).copied().unwrap_or(0)))
                .collect(),
            top_accounts: top(by_account),
            top_regions: top(by_region),
            would_fail: tally
                .would_fail
                .iter()
                .flat_map(|((account, region), reasons)| {
                    reasons
                        .iter()
                        .map(|(why, n)| (account.clone(), region.clone(), why.clone(), *n))
                })
                .collect(),
            applied,
        }
    }

    /// One sentence: what was audited and what was found.
    fn headline(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        format!(
            "{} audited in {} of {}: {}.",
            plural(self.audited, "secret", "secrets"),
            plural(self.places, "account-region", "account-regions"),
            plural(self.accounts, "account", "accounts"),
            match self.findings {
                0 => "every secret is compliant or exempt".to_owned(),
                n => plural(n, "finding", "findings"),
            }
        )
    }

    fn mode(&self) -> &'static str {
        if self.applied {
            "The configured actions were run (`--apply`)."
        } else {
            "Dry run: nothing was changed; `dry_run` actions are what `--apply` would do."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cmkguard_core::{Action, ActionRecord, KeyManager, Outcome};

    /// `records` through a report of `kind`, as the audit's sink feeds it: the document.
    pub(super) fn rendered(kind: Kind, records: &[Record]) -> String {
        let mut report = Report::new(kind);
        let mut tally = crate::tally::Tally::default();
        for record in records {
            tally.add(record);
            report.record(record);
        }
        let mut out = Vec::new();
        report.finish(&mut out, &tally, false).unwrap();
        String::from_utf8(out).unwrap()
    }

    pub(super) fn finding(account: &str, region: &str, name: &str, reason: Reason) -> Record {
        let meta = cmkguard_core::event::EventMeta {
            event_name: Some("Audit".into()),
            account: Some(account.into()),
            region: Some(region.into()),
            ..Default::default()
        };
        let arn = format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf");
        let mut record = Record::new(&meta, Some(arn), Verdict::NonCompliant, reason, None, true);
        record.key_manager = Some(KeyManager::Aws);
        record.actions = vec![ActionRecord::new(
            Action::Tag,
            Outcome::DryRun,
            "would have tagged `cmkguard:status=non-compliant`",
        )];
        record
    }

    #[test]
    fn every_reason_has_advice() {
        for reason in Reason::ALL {
            let text = advice(*reason);
            assert!(text.ends_with('.') && text.len() < 400, "{reason}: {text}");
            // The Markdown table takes it as it is.
            assert!(!text.contains(['|', '\n']), "{reason}: {text}");
            assert_eq!(text.matches('`').count() % 2, 0, "{reason}: {text}");
        }
    }

    #[test]
    fn only_findings_are_kept_and_the_top_is_by_count() {
        let mut report = Report::new(Kind::Markdown);
        let mut tally = Tally::default();
        let mut records = vec![
            finding("111111111111", "us-east-1", "a", Reason::AwsManagedKey),
            finding("222222222222", "eu-west-1", "b", Reason::KeyPendingDeletion),
            finding("222222222222", "eu-west-1", "c", Reason::KeyDisabled),
        ];
        records.push(Record {
            verdict: Verdict::Compliant,
            reason: Reason::CustomerManagedKey,
            ..finding(
                "111111111111",
                "us-east-1",
                "ok",
                Reason::CustomerManagedKey,
            )
        });
        for record in &records {
            tally.add(record);
            report.record(record);
        }
        assert_eq!(report.rows.len(), 3);
        let summary = Summary::of(&report.rows, &tally, false);
        assert_eq!(summary.audited, 4);
        assert_eq!(
            summary.top_accounts,
            [
                ("222222222222".to_owned(), 2),
                ("111111111111".to_owned(), 1)
            ]
        );
        assert_eq!(summary.by_severity[0], (Severity::Critical, 1));
        assert_eq!(summary.by_severity[1], (Severity::High, 1));
        assert_eq!(summary.by_severity[2], (Severity::Medium, 1));
    }
}
