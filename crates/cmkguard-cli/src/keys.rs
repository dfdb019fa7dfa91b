//! The customer managed keys an audit's secrets are on, as the key policy review judged them:
//! per key its review (once) and how many secrets are on it, never the secrets themselves, and at
//! most [`MAX_KEYS`] keys: an organization's audit keeps a bounded amount per key and in all.

use std::collections::{BTreeSet, HashMap};

use cmkguard_core::arn::Arn;
use cmkguard_core::event::EventMeta;
use cmkguard_core::keypolicy::{KeyPolicyWord, KeyReview};
use cmkguard_core::{Reason, Record, Verdict};

/// Keys kept; the secrets on any further key are counted, not listed.
pub const MAX_KEYS: usize = 10_000;

/// Keys with findings that the table and the Markdown report list (the most secrets first); the
/// HTML report lists more.
pub const LISTED: usize = 20;

/// The reviewed keys of an audit, by key ARN.
#[derive(Debug, Default)]
pub struct Keys {
    kept: HashMap<String, Key>,
    /// Secrets on keys seen after [`MAX_KEYS`] were kept, and how many of those keys' reviews
    /// had findings.
    pub unkept_secrets: usize,
    pub unkept_with_findings: usize,
}

/// One reviewed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// Secrets on it (each record counts once).
    pub secrets: usize,
    /// The first review seen: an audit reads a key's policy once.
    pub review: KeyReview,
}

impl Keys {
    /// Counts `record`'s key when its policy was reviewed (a customer managed key, the review on).
    pub fn add(&mut self, record: &Record) {
        let Some(review) = &record.key_policy else {
            return;
        };
        let Some(arn) = record.key_arn.as_deref().or(record.key_id.as_deref()) else {
            return;
        };
        if let Some(key) = self.kept.get_mut(arn) {
            key.secrets += 1;
        } else if self.kept.len() < MAX_KEYS {
            let key = Key {
                secrets: 1,
                review: review.clone(),
            };
            self.kept.insert(arn.to_owned(), key);
        } else {
            self.unkept_secrets += 1;
            self.unkept_with_findings += usize::from(!review.is_clean());
        }
    }

    /// Keys reviewed and kept.
    pub fn reviewed(&self) -> usize {
        self.kept.len()
    }

    /// Whether any key was reviewed at all (the review is on and a secret is on a customer
    /// managed key).
    pub fn any(&self) -> bool {
        !self.kept.is_empty() || self.unkept_secrets > 0
    }

    /// The keys with findings, most secrets first (ties by ARN).
    pub fn with_findings(&self) -> Vec<(&str, &Key)> {
        self.sorted(|key| !key.review.is_clean())
    }

    /// Every word the keys with findings have, most severe first: what to do, once per word.
    pub fn words_found(&self) -> BTreeSet<KeyPolicyWord> {
        self.kept
            .values()
            .flat_map(|key| key.review.words())
            .collect()
    }

    /// The keys without a finding, most secrets first (ties by ARN).
    pub fn clean(&self) -> Vec<(&str, &Key)> {
        self.sorted(|key| key.review.is_clean())
    }

    fn sorted(&self, keep: impl Fn(&Key) -> bool) -> Vec<(&str, &Key)> {
        let mut keys: Vec<(&str, &Key)> = self
            .kept
            .iter()
            .filter(|(_, key)| keep(key))
            .map(|(arn, key)| (arn.as_str(), key))
            .collect();
        keys.sort_by(|(a, x), (b, y)| y.secrets.cmp(&x.secrets).then_with(|| a.cmp(b)));
        keys
    }
}

/// What every output says when more keys were seen than kept.
pub fn unkept_note(keys: &Keys) -> String {
    format!(
        "More than {MAX_KEYS} keys were reviewed: {} secrets on further keys were counted, not \
         listed ({} of them on keys with findings); `--format csv` has each secret's `key_policy`.",
        keys.unkept_secrets, keys.unkept_with_findings
    )
}

/// The audit's record of the secret `name` on the key `key_arn` (in the key's account and
/// region), reviewed as `review`: what the reports' tests and example pages are made of.
pub fn on_reviewed_key(name: &str, key_arn: &str, review: KeyReview, verdict: Verdict) -> Record {
    let (account, region) = place(key_arn);
    let meta = EventMeta {
        event_name: Some("Audit".into()),
        account: Some(account.into()),
        region: Some(region.into()),
        ..EventMeta::default()
    };
    let reason = match verdict {
        Verdict::Compliant => Reason::CustomerManagedKey,
        _ => Reason::KeyNotAllowed,
    };
    let secret = format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf");
    let mut record = Record::new(&meta, Some(secret), verdict, reason, None, true);
    record.key_id = Some(key_arn.into());
    record.key_arn = Some(key_arn.into());
    record.key_manager = Some(cmkguard_core::KeyManager::Customer);
    record.key_policy = Some(review);
    record
}

/// The account and region of a key ARN (empty when it is not one).
pub fn place(arn: &str) -> (&str, &str) {
    Arn::parse(arn).map_or(("", ""), |a| (a.account, a.region))
}

/// The review's finding words, most severe first, joined by `separator` (empty when none).
pub fn words(review: &KeyReview, separator: &str) -> String {
    review
        .findings
        .iter()
        .map(|f| f.word.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A compliant secret `name` on the key `key`, reviewed with `findings`.
    pub(crate) fn on_key(name: &str, key: &str, findings: &[(KeyPolicyWord, &str)]) -> Record {
        let mut record = on_reviewed_key(name, key, KeyReview::of(findings), Verdict::Compliant);
        record.key_id = Some("alias/app".into());
        record
    }

    pub(crate) const KEY_A: &str =
        "arn:aws:kms:us-east-1:111111111111:key/aaaaaaaa-0000-0000-0000-000000000000";
    pub(crate) const KEY_B: &str =
        "arn:aws:kms:eu-west-1:222222222222:key/bbbbbbbb-0000-0000-0000-000000000000";

    #[test]
    fn a_key_is_counted_per_secret_and_its_review_kept_once() {
        let mut keys = Keys::default();
        keys.add(&on_key(
            "a",
            KEY_A,
            &[(KeyPolicyWord::DelegatedToIam, "root")],
        ));
        keys.add(&on_key("b", KEY_B, &[(KeyPolicyWord::Public, "x")]));
        keys.add(&on_key("c", KEY_B, &[(KeyPolicyWord::Public, "x")]));
        keys.add(&on_key("d", "arn:aws:kms:us-east-1:1:key/clean", &[]));
        // Not reviewed: no key, or the review off.
        keys.add(&Record {
            key_policy: None,
            ..on_key("e", KEY_A, &[])
        });
        let found = keys.with_findings();
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0, found[0].1.secrets), (KEY_B, 2));
        assert_eq!((found[1].0, found[1].1.secrets), (KEY_A, 1));
        assert_eq!(keys.clean().len(), 1);
        assert_eq!(keys.reviewed(), 3);
        assert_eq!(words(&found[0].1.review, ";"), "key-policy-public");
        assert_eq!(place(KEY_B), ("222222222222", "eu-west-1"));
    }

    #[test]
    fn keys_past_the_cap_are_counted_not_kept() {
        let mut keys = Keys::default();
        for i in 0..MAX_KEYS + 3 {
            let key = format!("arn:aws:kms:us-east-1:111111111111:key/{i}");
            let findings: &[(KeyPolicyWord, &str)] = if i % 2 == 0 {
                &[(KeyPolicyWord::GrantDecrypt, "grant")]
            } else {
                &[]
            };
            keys.add(&on_key("s", &key, findings));
        }
        assert_eq!(keys.reviewed(), MAX_KEYS);
        assert_eq!(keys.unkept_secrets, 3);
        assert_eq!(keys.unkept_with_findings, 2);
        // A kept key still counts its secrets.
        keys.add(&on_key(
            "t",
            "arn:aws:kms:us-east-1:111111111111:key/0",
            &[],
        ));
        assert_eq!(keys.with_findings()[0].1.secrets, 2);
    }
}
