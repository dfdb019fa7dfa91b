//! The world, a function of (account, region, index), and what writes changed in it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The management account: where base credentials act, and the organization's owner.
pub const MANAGEMENT_ACCOUNT: &str = crate::DEFAULT_ACCOUNT;

/// Member accounts are `MEMBER_BASE + 1`, `MEMBER_BASE + 2`, ... (12 digits, never the
/// management account).
pub(super) const MEMBER_BASE: u64 = 100_000_000_000;
/// When every generated secret and key was made (2023-11-14).
pub(super) const CREATED: f64 = 1_700_000_000.0;

/// A secret's state changed by writes.
#[derive(Debug, Default, Clone)]
pub(super) struct Written {
    pub(super) kms_key_id: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
}

/// The organization's members, the secrets of each account-region, and the alias of its
/// customer managed key; what writes changed is kept per secret written.
#[derive(Debug)]
pub(super) struct World {
    pub(super) members: usize,
    pub(super) secrets: usize,
    pub(super) designated_alias: Option<String>,
    /// What writes changed, per secret ARN (the rest of the world is generated).
    written: Mutex<HashMap<String, Written>>,
}

impl World {
    pub(super) fn new(members: usize, secrets: usize, designated_alias: Option<String>) -> Self {
        World {
            members,
            secrets,
            designated_alias,
            written: Mutex::default(),
        }
    }

    pub(super) fn written(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.written.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn has_account(&self, account: &str) -> bool {
        account == MANAGEMENT_ACCOUNT
            || account
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_sub(MEMBER_BASE))
                .is_some_and(|i| (1..=self.members as u64).contains(&i))
    }

    /// The organization's accounts: the management account, then the members.
    pub(super) fn account(&self, position: usize) -> Option<String> {
        match position {
            0 => Some(MANAGEMENT_ACCOUNT.to_owned()),
            i if i <= self.members => Some(member_account(i)),
            _ => None,
        }
    }

    /// The index of the secret `secret_id` (a name, a full ARN or a partial one) names in
    /// `account` and `region` (the caller's).
    pub(super) fn secret_index(
        &self,
        account: &str,
        region: &str,
        secret_id: &str,
    ) -> Option<usize> {
        let name = match secret_id.strip_prefix("arn:") {
            Some(_) => {
                let parts: Vec<&str> = secret_id.splitn(7, ':').collect();
                let [
                    _,
                    _,
                    "secretsmanager",
                    arn_region,
                    arn_account,
                    "secret",
                    name,
                ] = parts[..]
                else {
                    return None;
                };
                if (arn_region, arn_account) != (region, account) {
                    return None;
                }
                name
            }
            None => secret_id,
        };
        let rest = name.strip_prefix("standin/secret-")?;
        // A full ARN ends with `-` and six random characters; a name or partial ARN does not.
        let (digits, suffix) = rest.split_once('-').unwrap_or((rest, ""));
        let index: usize = digits.parse().ok()?;
        let matches = suffix.is_empty() || suffix == secret_suffix(account, region, index);
        (index < self.secrets && matches).then_some(index)
    }
}

pub(super) fn member_account(i: usize) -> String {
    format!("{:012}", MEMBER_BASE + i as u64)
}

pub(super) fn secret_name(index: usize) -> String {
    format!("standin/secret-{index:04}")
}

pub(super) fn secret_arn(account: &str, region: &str, index: usize) -> String {
    format!(
        "arn:aws:secretsmanager:{region}:{account}:secret:{}-{}",
        secret_name(index),
        secret_suffix(account, region, index)
    )
}

/// The six random-looking letters AWS appends to a secret's ARN, here a hash of its place.
fn secret_suffix(account: &str, region: &str, index: usize) -> String {
    let mut h = fnv(&format!("{account}/{region}/{index}"));
    (0..6)
        .map(|_| {
            let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"[(h % 52) as usize];
            h /= 52;
            char::from(c)
        })
        .collect()
}

/// A UUID-shaped key id, a hash of the key's place and kind.
pub(super) fn key_id(account: &str, region: &str, kind: &str) -> String {
    let a = fnv(&format!("{kind}/{account}/{region}"));
    let b = fnv(&format!("{region}/{account}/{kind}"));
    let bits = u128::from(a) << 64 | u128::from(b);
    uuid::Builder::from_random_bytes(bits.to_be_bytes())
        .into_uuid()
        .to_string()
}

pub(super) fn key_arn(account: &str, region: &str) -> String {
    format!(
        "arn:aws:kms:{region}:{account}:key/{}",
        key_id(account, region, "customer")
    )
}

/// FNV-1a: a stable hash (std's are seeded per process).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_by_name_and_by_arn_in_their_own_account_and_region() {
        let world = World::new(2, 3, None);
        let member = member_account(2);
        let arn = secret_arn(&member, "eu-west-1", 2);
        assert_eq!(world.secret_index(&member, "eu-west-1", &arn), Some(2));
        let partial = arn.rsplit_once('-').unwrap().0;
        assert_eq!(world.secret_index(&member, "eu-west-1", partial), Some(2));
        assert_eq!(
            world.secret_index(&member, "eu-west-1", "standin/secret-0001"),
            Some(1)
        );
        assert_eq!(world.secret_index(&member, "us-east-1", &arn), None);
        assert_eq!(
            world.secret_index(MANAGEMENT_ACCOUNT, "eu-west-1", &arn),
            None
        );
        assert_eq!(
            world.secret_index(&member, "eu-west-1", "standin/secret-0003"),
            None
        );
        assert!(world.has_account(&member));
        assert!(!world.has_account(&member_account(3)));
    }
}
