//! Security Hub findings about keys: one per key and key policy finding word (resource
//! `AwsKmsKey`), naming the secrets that depend on the key. A sweep sees which secrets are on
//! which key ([`KeysSeen`]); at its end, the findings of each reviewed key are imported in the
//! key's own account and region.

use std::collections::BTreeMap;

use crate::arn::Arn;
use crate::finding::{Compliance, Finding, RecordState, Severity, Subject};
use crate::keypolicy::{KeyPolicyWord, KeyReview};
use crate::ports::Scope;
use crate::record::{Record, Verdict};

/// How many secrets a key finding names (ASFF takes 32 resources: the key and these).
pub const SECRETS_NAMED: usize = 31;

/// How many keys one sweep of an account and region keeps track of; a listing with more keys
/// than this imports findings for the first ones (the next sweep for the same ones: the count
/// says how many were left out).
pub const KEYS_KEPT: usize = 1000;

/// The reviewed keys of one sweep, and the secrets seen on each.
#[derive(Debug, Default)]
pub struct KeysSeen {
    keys: BTreeMap<String, Seen>,
    /// Keys not kept, over [`KEYS_KEPT`].
    pub left_out: usize,
}

#[derive(Debug)]
struct Seen {
    review: KeyReview,
    secrets: Vec<String>,
    count: usize,
}

impl KeysSeen {
    /// Notes the record's key, when its policy was reviewed.
    pub fn see(&mut self, record: &Record) {
        let (Some(review), Some(key), Some(secret)) = (
            &record.key_policy,
            record.key_arn.as_deref(),
            record.secret_arn.as_deref(),
        ) else {
            return;
        };
        if !self.keys.contains_key(key) && self.keys.len() >= KEYS_KEPT {
            self.left_out += 1;
            return;
        }
        let seen = self.keys.entry(key.to_owned()).or_insert_with(|| Seen {
            review: review.clone(),
            secrets: Vec::new(),
            count: 0,
        });
        seen.count += 1;
        if seen.secrets.len() < SECRETS_NAMED {
            seen.secrets.push(secret.to_owned());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The findings to import, by the scope (the key's account and region) to import them in:
    /// a `FAILED` finding per word the key has; with `resolve`, also a `PASSED`, archived one
    /// per word it does not have (a finding fixed since is closed).
    pub fn findings(&self, resolve: bool) -> BTreeMap<Scope, Vec<Finding>> {
        let mut out: BTreeMap<Scope, Vec<Finding>> = BTreeMap::new();
        for (key, seen) in &self.keys {
            let Some(arn) = Arn::kms_key(key) else {
                continue;
            };
            let scope = Scope::new(arn.account, arn.region);
            for word in KeyPolicyWord::ALL {
                let present = seen.review.findings.iter().find(|f| f.word == word);
                if present.is_none() && !resolve {
                    continue;
                }
                let detail = present.map(|f| f.detail.as_str());
                out.entry(scope.clone()).or_default().push(key_finding(
                    key,
                    word,
                    detail,
                    &seen.secrets,
                    seen.count,
                ));
            }
        }
        out
    }
}

/// The finding `Id` of a key and word: stable, so every review of the key updates it.
pub fn key_finding_id(key_arn: &str, word: KeyPolicyWord) -> String {
    format!("cmkguard/key-policy/{key_arn}/{word}")
}

/// The finding about `word` on the key `key_arn`: `FAILED` with the finding's `detail` when the
/// key has it, else `PASSED` and archived.
pub fn key_finding(
    key_arn: &str,
    word: KeyPolicyWord,
    detail: Option<&str>,
    secrets: &[String],
    secret_count: usize,
) -> Finding {
    let arn = Arn::kms_key(key_arn);
    let (partition, region, account) = arn
        .map(|a| (a.partition, a.region, a.account))
        .unwrap_or(("aws", "", ""));
    let reason = word.reason();
    let advice = crate::advice::of(reason);
    let on_it = match secret_count {
        1 => "1 secret depends on it".to_owned(),
        n => format!("{n} secrets depend on it"),
    };
    let (compliance, severity, record_state, title, description) = match detail {
        Some(detail) => (
            Compliance::Failed,
            Severity::of_reason(reason),
            RecordState::Active,
            format!(
                "KMS key `{key_arn}`: {}",
                advice.what.replacen("its ", "", 1)
            ),
            format!(
                "cmkguard reviewed the policy and grants of customer managed key `{key_arn}` ({on_it}): `{word}`: {detail}. {}",
                advice.why
            ),
        ),
        None => (
            Compliance::Passed,
            Severity::Informational,
            RecordState::Archived,
            format!("KMS key `{key_arn}`: no `{word}` finding"),
            format!(
                "cmkguard reviewed the policy and grants of customer managed key `{key_arn}` ({on_it}) and found no `{word}`."
            ),
        ),
    };
    Finding {
        id: key_finding_id(key_arn, word),
        partition: partition.to_owned(),
        account: account.to_owned(),
        region: region.to_owned(),
        subject: Subject::Key {
            arn: key_arn.to_owned(),
            secrets: secrets.to_vec(),
            secret_count,
        },
        compliance,
        severity,
        record_state,
        title,
        description,
        verdict: match detail {
            Some(_) => Verdict::NonCompliant,
            None => Verdict::Compliant,
        },
        reason,
        recommendation: advice.to_do.to_owned(),
        created_at: None,
    }
    .within_asff_limits()
}
