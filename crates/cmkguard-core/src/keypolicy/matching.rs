//! IAM's matching of names: wildcards in actions, resources and principals, and the three-valued
//! truth (`Tri`) a statement holds with when it names what the review cannot judge.

use crate::arn::{Arn, is_account_id};

/// A truth that may be unknown: a policy variable (`${aws:username}`) or an operator the review
/// does not evaluate can make a statement's match unknowable. Unknown is never a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tri {
    Yes,
    No,
    Unknown,
}

impl Tri {
    pub(super) fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    /// Kleene's AND: a known `No` decides whatever else is unknown.
    pub(super) fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Unknown,
        }
    }

    pub(super) fn not(self) -> Tri {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            Tri::Unknown => Tri::Unknown,
        }
    }

    /// Kleene's OR over many: a known `Yes` decides whatever else is unknown.
    pub(super) fn any(items: impl IntoIterator<Item = Tri>) -> Tri {
        let mut out = Tri::No;
        for t in items {
            match t {
                Tri::Yes => return Tri::Yes,
                Tri::Unknown => out = Tri::Unknown,
                Tri::No => {}
            }
        }
        out
    }
}

/// Whether `s` holds a policy variable (`${...}`), which the review never resolves.
pub(super) fn has_variable(s: &str) -> bool {
    s.contains("${")
}

/// IAM's wildcard match: `*` any run of characters (colons included), `?` any one character.
pub(super) fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |p: char, t: char| {
        if ignore_case {
            p.eq_ignore_ascii_case(&t)
        } else {
            p == t
        }
    };
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in practice, never
    // exponential, whatever a hostile policy holds.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// An action pattern (`kms:De?rypt`, `KMS:*`, `*`) against an action: case-insensitive.
pub(super) fn action_matches(pattern: &str, action: &str) -> Tri {
    if has_variable(pattern) {
        return Tri::Unknown;
    }
    Tri::from_bool(glob(pattern, action, true))
}

/// A resource pattern against the key's ARN. AWS, "ARN condition operators": "Each of the six
/// colon-delimited components of the ARN is checked separately and each can include multi-character
/// match wildcards (*) or single-character match wildcards (?)".
pub(super) fn arn_matches(pattern: &str, arn: &str) -> Tri {
    if has_variable(pattern) {
        return Tri::Unknown;
    }
    if pattern == "*" {
        return Tri::Yes;
    }
    let (p, a): (Vec<&str>, Vec<&str>) = (
        pattern.splitn(6, ':').collect(),
        arn.splitn(6, ':').collect(),
    );
    Tri::from_bool(p.len() == a.len() && p.iter().zip(&a).all(|(p, a)| glob(p, a, false)))
}

/// The account a principal id stands for when it names a whole account: a bare account id or
/// `arn:PARTITION:iam::ACCOUNT:root`.
pub(super) fn account_of_root(id: &str) -> Option<&str> {
    if is_account_id(id) {
        return Some(id);
    }
    Arn::parse(id)
        .filter(|a| a.service == "iam" && a.resource == "root" && is_account_id(a.account))
        .map(|a| a.account)
}

/// The account of a request's principal (an ARN or a bare account id).
pub(super) fn account_of(principal: &str) -> Option<&str> {
    if is_account_id(principal) {
        return Some(principal);
    }
    Arn::parse(principal)
        .map(|a| a.account)
        .filter(|a| is_account_id(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_does() {
        assert!(glob("kms:De?rypt", "kms:Decrypt", true));
        assert!(glob("kms:ReEncrypt*", "kms:ReEncryptFrom", true));
        assert!(glob("kms:*", "kms:CreateGrant", true));
        assert!(glob("*", "kms:Decrypt", true));
        assert!(glob("*:Decrypt", "kms:Decrypt", true));
        assert!(!glob("kms:Encrypt*", "kms:Decrypt", true));
        assert!(!glob("kms:De?rypt", "kms:Deecrypt", true));
        assert!(!glob("kms:Decrypt", "kms:DecryptX", true));
        assert!(glob("a*b*c", "aXXbYYbZc", false));
        assert!(!glob("a*b*c", "aXXbYYbZ", false));
    }

    #[test]
    fn actions_ignore_case_and_strings_do_not() {
        assert_eq!(action_matches("KMS:DECRYPT", "kms:Decrypt"), Tri::Yes);
        assert_eq!(action_matches("kms:create*", "kms:CreateGrant"), Tri::Yes);
        assert_eq!(
            action_matches("kms:${aws:username}", "kms:Decrypt"),
            Tri::Unknown
        );
        assert!(!glob(
            "Secretsmanager.*",
            "secretsmanager.us-east-1.amazonaws.com",
            false
        ));
    }

    #[test]
    fn arns_match_per_component() {
        let key = "arn:aws:kms:us-east-1:111122223333:key/abc";
        assert_eq!(arn_matches("*", key), Tri::Yes);
        assert_eq!(
            arn_matches("arn:aws:kms:*:111122223333:key/*", key),
            Tri::Yes
        );
        assert_eq!(
            arn_matches("arn:aws:kms:*:444455556666:key/*", key),
            Tri::No
        );
        assert_eq!(
            arn_matches("arn:aws:kms:us-east-1:111122223333", key),
            Tri::No
        );
    }

    #[test]
    fn roots_name_accounts() {
        assert_eq!(account_of_root("111122223333"), Some("111122223333"));
        assert_eq!(
            account_of_root("arn:aws-cn:iam::111122223333:root"),
            Some("111122223333")
        );
        assert_eq!(account_of_root("arn:aws:iam::111122223333:role/x"), None);
        assert_eq!(
            account_of("arn:aws:iam::111122223333:role/x"),
            Some("111122223333")
        );
    }

    #[test]
    fn unknown_is_decided_only_by_a_known_answer() {
        assert_eq!(Tri::Unknown.and(Tri::No), Tri::No);
        assert_eq!(Tri::Unknown.and(Tri::Yes), Tri::Unknown);
        assert_eq!(Tri::any([Tri::No, Tri::Unknown]), Tri::Unknown);
        assert_eq!(Tri::any([Tri::Unknown, Tri::Yes]), Tri::Yes);
        assert_eq!(Tri::Unknown.not(), Tri::Unknown);
    }
}
