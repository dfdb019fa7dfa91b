//! Whether a key policy allows one request: the evaluator the review simulates with, exposed so
//! that the test table's probes (and an independent IAM implementation) can check it.

use super::condition::Context;
use super::document::{self, Effect, PrincipalEntry, PrincipalKind, Statement};
use super::matching::{
    Tri, account_of, account_of_root, action_matches, arn_matches, has_variable,
};
use crate::arn::is_account_id;

/// One request to the key: who (an IAM principal ARN or account id, or an AWS service principal
/// such as `logs.amazonaws.com`), what (`kms:Decrypt`), on what (the key's ARN), and the request's
/// context (condition keys, any case, to their values).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub principal: String,
    pub action: String,
    pub resource: String,
    pub context: Context,
}

/// What a key policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// An `Allow` statement applies and no `Deny` does. For a principal allowed through its
    /// account (`arn:aws:iam::ACCOUNT:root` or `ACCOUNT`) this means: allowed as far as the key
    /// policy goes, provided an IAM policy of that account allows it too.
    Allowed,
    /// No `Allow` applies, or an explicit `Deny` does.
    NotAllowed,
    /// The answer hangs on what the evaluator cannot judge (a policy variable, a condition
    /// operator it does not evaluate), or the policy could not be read.
    Unknown,
}

/// Evaluates the key policy document `policy` (JSON) on `request`.
pub fn is_allowed(policy: &str, request: &Request) -> Access {
    match document::parse(policy) {
        Ok(statements) => decide(&statements, request),
        Err(_) => Access::Unknown,
    }
}

/// IAM's evaluation within one policy: an explicit deny wins over any allow, and without an
/// allow the request is implicitly denied.
pub(super) fn decide(statements: &[Statement], request: &Request) -> Access {
    let of = |effect| {
        Tri::any(
            statements
                .iter()
                .filter(|s| s.effect == effect)
                .map(|s| applies(s, request)),
        )
    };
    let allow = of(Effect::Allow);
    if allow == Tri::No {
        return Access::NotAllowed;
    }
    match (of(Effect::Deny), allow) {
        (Tri::Yes, _) => Access::NotAllowed,
        (Tri::No, Tri::Yes) => Access::Allowed,
        _ => Access::Unknown,
    }
}

/// Whether a statement covers the request: principal, action, resource and every condition.
pub(super) fn applies(statement: &Statement, request: &Request) -> Tri {
    let listed = |not: bool, each: Tri| if not { each.not() } else { each };
    let principal = listed(
        statement.principals.not,
        Tri::any(
            statement
                .principals
                .items
                .iter()
                .map(|p| principal_matches(p, &request.principal)),
        ),
    );
    let action = listed(
        statement.actions.not,
        Tri::any(
            statement
                .actions
                .items
                .iter()
                .map(|a| action_matches(a, &request.action)),
        ),
    );
    let resource = listed(
        statement.resources.not,
        Tri::any(
            statement
                .resources
                .items
                .iter()
                .map(|r| arn_matches(r, &request.resource)),
        ),
    );
    let conditions = statement
        .conditions
        .iter()
        .fold(Tri::Yes, |acc, c| acc.and(c.holds(&request.context)));
    principal.and(action).and(resource).and(conditions)
}

/// Whether a request's principal is an IAM one (ARN or account id), not a service principal.
pub(super) fn is_iam_principal(principal: &str) -> bool {
    principal.starts_with("arn:") || is_account_id(principal)
}

/// A `Principal` entry against the request's principal.
///
/// An account (`111122223333` or `arn:aws:iam::111122223333:root`) stands for every principal of
/// that account: in a key policy it "gives the AWS account that owns the KMS key permission to use
/// IAM policies to allow access to all AWS KMS operations on the KMS key" (AWS, "Default key
/// policy"), so a role of the account is allowed as far as the key policy goes. Principal ARNs are
/// compared whole and case-insensitively (IAM user and role names are unique regardless of case).
fn principal_matches(entry: &PrincipalEntry, principal: &str) -> Tri {
    if has_variable(&entry.id) {
        return Tri::Unknown;
    }
    let iam = is_iam_principal(principal);
    Tri::from_bool(match entry.kind {
        PrincipalKind::Anyone => true,
        PrincipalKind::Aws if entry.id == "*" => iam,
        PrincipalKind::Aws => match account_of_root(&entry.id) {
            Some(account) => iam && account_of(principal) == Some(account),
            None => iam && entry.id.eq_ignore_ascii_case(principal),
        },
        PrincipalKind::Service | PrincipalKind::Other => {
            !iam && entry.id.eq_ignore_ascii_case(principal)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/k";

    fn request(principal: &str, action: &str, context: &[(&str, &str)]) -> Request {
        Request {
            principal: principal.into(),
            action: action.into(),
            resource: KEY.into(),
            context: context
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
        }
    }

    #[test]
    fn an_explicit_deny_wins() {
        let policy = r#"{"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*",
             "Condition": {"StringNotEquals": {"kms:CallerAccount": "111122223333"}}}]}"#;
        let stranger = "arn:aws:iam::444455556666:role/r";
        let own = "arn:aws:iam::111122223333:role/r";
        let ctx = |a| [("kms:CallerAccount", a)];
        assert_eq!(
            is_allowed(
                policy,
                &request(stranger, "kms:Decrypt", &ctx("444455556666"))
            ),
            Access::NotAllowed
        );
        assert_eq!(
            is_allowed(policy, &request(own, "kms:Decrypt", &ctx("111122223333"))),
            Access::Allowed
        );
        assert_eq!(
            is_allowed(
                policy,
                &request(stranger, "kms:Encrypt", &ctx("444455556666"))
            ),
            Access::Allowed
        );
    }

    #[test]
    fn an_unknown_deny_makes_an_allow_unknown_but_not_a_missing_allow() {
        let policy = r#"{"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:Decrypt", "Resource": "*"},
            {"Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
             "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}"#;
        let ctx = [("aws:CurrentTime", "2031-01-01T00:00:00Z")];
        let own = "arn:aws:iam::111122223333:role/r";
        assert_eq!(
            is_allowed(policy, &request(own, "kms:Decrypt", &ctx)),
            Access::Unknown
        );
        assert_eq!(
            is_allowed(policy, &request(own, "kms:Encrypt", &ctx)),
            Access::NotAllowed
        );
        let other = "arn:aws:iam::444455556666:root";
        assert_eq!(
            is_allowed(policy, &request(other, "kms:Decrypt", &ctx)),
            Access::NotAllowed
        );
    }

    #[test]
    fn accounts_stand_for_their_principals_and_not_principal_for_everyone_else() {
        let policy = r#"{"Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:Decrypt", "Resource": "*"},
            {"Effect": "Allow", "NotPrincipal": {"AWS": "arn:aws:iam::444455556666:role/x"}, "Action": "kms:Encrypt", "Resource": "*"}]}"#;
        for (who, action, access) in [
            (
                "arn:aws:iam::111122223333:role/any",
                "kms:Decrypt",
                Access::Allowed,
            ),
            ("111122223333", "kms:Decrypt", Access::Allowed),
            (
                "arn:aws:iam::444455556666:role/any",
                "kms:Decrypt",
                Access::NotAllowed,
            ),
            (
                "arn:aws:iam::444455556666:role/any",
                "kms:Encrypt",
                Access::Allowed,
            ),
            (
                "arn:aws:iam::444455556666:role/X",
                "kms:Encrypt",
                Access::NotAllowed,
            ),
            ("logs.amazonaws.com", "kms:Decrypt", Access::NotAllowed),
        ] {
            assert_eq!(
                is_allowed(policy, &request(who, action, &[])),
                access,
                "{who} {action}"
            );
        }
        assert_eq!(
            is_allowed("{", &request("111122223333", "kms:Decrypt", &[])),
            Access::Unknown
        );
    }

    #[test]
    fn resources_and_not_action() {
        let policy = r#"{"Statement": [
            {"Effect": "Allow", "Principal": "*", "NotAction": "kms:Put*", "Resource": "arn:aws:kms:*:111122223333:key/*"},
            {"Effect": "Allow", "Principal": "*", "Action": "kms:PutKeyPolicy", "Resource": "arn:aws:kms:*:444455556666:key/*"}]}"#;
        let who = "arn:aws:iam::111122223333:role/r";
        assert_eq!(
            is_allowed(policy, &request(who, "kms:Decrypt", &[])),
            Access::Allowed
        );
        assert_eq!(
            is_allowed(policy, &request(who, "kms:PutKeyPolicy", &[])),
            Access::NotAllowed
        );
    }
}
