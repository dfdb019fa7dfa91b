//! What an audit counts as records go by: totals by verdict, the account-regions with findings,
//! failures, the planned actions that would not go through, and the reviewed keys.

use std::collections::{BTreeMap, HashSet};

use cmkguard_core::{Outcome, Record, Verdict};

use crate::keys::Keys;

/// Counts by verdict: in total, and per account and region for the places with findings only
/// (an organization's thousands of clean account-regions are counted, not listed).
#[derive(Debug, Default)]
pub struct Tally {
    pub totals: BTreeMap<Verdict, usize>,
    /// Per account and region: while it is being audited, and afterwards when it has findings.
    pub counts: BTreeMap<(String, String), BTreeMap<Verdict, usize>>,
    /// Account-regions audited, and in how many accounts.
    pub places: usize,
    accounts: HashSet<String>,
    /// A record is `error` or one of its actions `failed`.
    pub failures: usize,
    /// Planned actions of a dry run that would not go through, per account and region: why, and
    /// for how many secrets.
    pub would_fail: BTreeMap<(String, String), BTreeMap<String, usize>>,
    /// The customer managed keys whose policy was reviewed: per key, its review and how many
    /// secrets are on it.
    pub keys: Keys,
}

/// A finding: what the summary lists a place for.
pub fn is_finding(verdict: Verdict) -> bool {
    !matches!(verdict, Verdict::Compliant | Verdict::Exempt)
}

impl Tally {
    pub fn add(&mut self, record: &Record) {
        let place = (
            record.account.clone().unwrap_or_default(),
            record.region.clone().unwrap_or_default(),
        );
        *self.totals.entry(record.verdict).or_default() += 1;
        *self
            .counts
            .entry(place.clone())
            .or_default()
            .entry(record.verdict)
            .or_default() += 1;
        self.failures += usize::from(record.is_failure());
        self.keys.add(record);
        for action in &record.actions {
            if action.outcome != Outcome::DryRun {
                continue;
            }
            if let Some(why) = &action.would_fail {
                *self
                    .would_fail
                    .entry(place.clone())
                    .or_default()
                    .entry(format!("{}: {why}", action.action.as_str()))
                    .or_default() += 1;
            }
        }
    }

    /// An account and region is done: counted, and kept for the summary when it has findings.
    pub fn place(&mut self, account: &str, region: &str) {
        self.places += 1;
        if !self.accounts.contains(account) {
            self.accounts.insert(account.to_owned());
        }
        let place = (account.to_owned(), region.to_owned());
        let clean = self
            .counts
            .get(&place)
            .is_none_or(|counts| !counts.iter().any(|(v, n)| is_finding(*v) && *n > 0));
        if clean {
            self.counts.remove(&place);
        }
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.totals.get(&verdict).copied().unwrap_or(0)
    }

    pub fn total(&self) -> usize {
        self.totals.values().sum()
    }

    /// Secrets that are not `compliant` or `exempt`.
    pub fn flagged(&self) -> usize {
        self.total() - self.count(Verdict::Compliant) - self.count(Verdict::Exempt)
    }

    /// Accounts audited.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{KEY_A, on_key};
    use cmkguard_core::keypolicy::KeyPolicyWord;

    #[test]
    fn a_key_policy_finding_in_report_mode_flags_no_secret() {
        let mut tally = Tally::default();
        tally.add(&on_key("a", KEY_A, &[(KeyPolicyWord::Public, "x")]));
        tally.place("111111111111", "us-east-1");
        assert_eq!((tally.flagged(), tally.failures), (0, 0));
        assert_eq!(tally.keys.with_findings().len(), 1);
        assert!(tally.counts.is_empty(), "a clean place is not listed");
    }
}
