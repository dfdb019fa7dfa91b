//! Condition operators, evaluated against a request's context as IAM does.
//!
//! AWS, "IAM JSON policy elements: Condition operators": "If the key that you specify in a policy
//! condition is not present in the request context, the values do not match and the condition is
//! false. If the policy condition requires that the key is not matched, such as StringNotLike or
//! ArnNotLike, and the right key is not present, the condition is true. This logic applies to all
//! condition operators except ...IfExists and Null check."
//! And "Conditions with multiple context keys or values": "If a single condition operator includes
//! multiple values for a context key, those values are evaluated using a logical OR. If a single
//! negated matching condition operator includes multiple values for a context key, those values
//! are evaluated using a logical NOR."

use std::collections::BTreeMap;

use super::matching::{Tri, glob, has_variable};

/// How a value of the request is compared with a value of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compare {
    Equals,
    EqualsIgnoreCase,
    Like,
    /// `ArnEquals` and `ArnLike` alike: both take wildcards, per ARN component.
    Arn,
    Bool,
    /// `Null`: whether the key is absent.
    Null,
    /// An operator the review does not evaluate (numeric, date, IP address, binary, or unknown):
    /// wherever it could matter the answer is unknown.
    Unjudged,
}

/// `ForAnyValue:` / `ForAllValues:`, for keys with many values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SetQualifier {
    Single,
    AnyValue,
    AllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Operator {
    pub(super) set: SetQualifier,
    pub(super) compare: Compare,
    /// `StringNotEquals`, `ArnNotLike`, ...: true when no policy value matches.
    pub(super) negated: bool,
    pub(super) if_exists: bool,
}

impl Operator {
    pub(super) fn parse(name: &str) -> Operator {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::AnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::AllValues, r)
        } else {
            (SetQualifier::Single, name)
        };
        let (if_exists, base) = match rest.strip_suffix("IfExists") {
            Some(base) => (true, base),
            None => (false, rest),
        };
        let (compare, negated) = match base {
            "StringEquals" => (Compare::Equals, false),
            "StringNotEquals" => (Compare::Equals, true),
            "StringEqualsIgnoreCase" => (Compare::EqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Compare::EqualsIgnoreCase, true),
            "StringLike" => (Compare::Like, false),
            "StringNotLike" => (Compare::Like, true),
            "ArnEquals" | "ArnLike" => (Compare::Arn, false),
            "ArnNotEquals" | "ArnNotLike" => (Compare::Arn, true),
            "Bool" => (Compare::Bool, false),
            "Null" if !if_exists && set == SetQualifier::Single => (Compare::Null, false),
            _ => (Compare::Unjudged, false),
        };
        Operator {
            set,
            compare,
            negated,
            if_exists,
        }
    }

    /// A positive match that works only when the key is present and matches: the kind of
    /// condition that can limit who calls (not `...IfExists`, not `Not...`, not `Null`).
    pub(super) fn requires_match(self) -> bool {
        !self.negated
            && !self.if_exists
            && self.set != SetQualifier::AllValues
            && matches!(
                self.compare,
                Compare::Equals
                    | Compare::EqualsIgnoreCase
                    | Compare::Like
                    | Compare::Arn
                    | Compare::Bool
            )
    }
}

/// One key of one operator, with the policy's values for it.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    pub(super) operator: Operator,
    /// Lower case: condition key names are case-insensitive.
    pub(super) key: String,
    pub(super) values: Vec<String>,
}

/// A request's context: condition key (any case) to its values.
pub type Context = BTreeMap<String, Vec<String>>;

/// The values of `key` in `context`, whatever the case of either.
pub(super) fn lookup<'a>(context: &'a Context, key: &str) -> Option<&'a [String]> {
    context
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_slice())
        .filter(|v| !v.is_empty())
}

impl Condition {
    pub(super) fn new(operator: &str, key: &str, values: Vec<String>) -> Condition {
        Condition {
            operator: Operator::parse(operator),
            key: key.to_ascii_lowercase(),
            values,
        }
    }

    pub(super) fn holds(&self, context: &Context) -> Tri {
        let op = self.operator;
        let present = lookup(context, &self.key);
        if op.compare == Compare::Null {
            // `Null: true` asks that the key be absent; `false`, present.
            return Tri::any(
                self.values
                    .iter()
                    .map(|v| match v.to_ascii_lowercase().as_str() {
                        "true" => Tri::from_bool(present.is_none()),
                        "false" => Tri::from_bool(present.is_some()),
                        _ => Tri::Unknown,
                    }),
            );
        }
        if op.compare == Compare::Unjudged && !(op.if_exists && present.is_none()) {
            return Tri::Unknown;
        }
        let Some(request_values) = present else {
            return Tri::from_bool(match op.set {
                _ if op.if_exists => true,
                SetQualifier::AllValues => true,
                SetQualifier::AnyValue => false,
                SetQualifier::Single => op.negated,
            });
        };
        if self.values.iter().any(|v| has_variable(v)) {
            return Tri::Unknown;
        }
        // One request value against the policy's values: OR, or NOR when negated.
        let one = |r: &String| self.values.iter().any(|p| compare(op.compare, p, r)) != op.negated;
        Tri::from_bool(match op.set {
            SetQualifier::AllValues => request_values.iter().all(one),
            // A single-valued operator on a key with many values: any of them.
            SetQualifier::AnyValue | SetQualifier::Single if !op.negated => {
                request_values.iter().any(one)
            }
            _ => request_values.iter().all(one),
        })
    }
}

fn compare(how: Compare, policy: &str, request: &str) -> bool {
    match how {
        Compare::Equals => policy == request,
        Compare::EqualsIgnoreCase | Compare::Bool => policy.eq_ignore_ascii_case(request),
        Compare::Like => glob(policy, request, false),
        Compare::Arn => super::matching::arn_matches(policy, request) == Tri::Yes,
        Compare::Null | Compare::Unjudged => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &[&str])]) -> Context {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn holds(op: &str, key: &str, values: &[&str], context: &Context) -> Tri {
        Condition::new(op, key, values.iter().map(|s| s.to_string()).collect()).holds(context)
    }

    #[test]
    fn a_missing_key_fails_positive_operators_and_passes_negated_ones() {
        let empty = Context::new();
        assert_eq!(
            holds("StringEquals", "kms:CallerAccount", &["1"], &empty),
            Tri::No
        );
        assert_eq!(
            holds("StringNotEquals", "kms:CallerAccount", &["1"], &empty),
            Tri::Yes
        );
        assert_eq!(
            holds("StringEqualsIfExists", "kms:CallerAccount", &["1"], &empty),
            Tri::Yes
        );
        assert_eq!(
            holds("Bool", "kms:GrantIsForAWSResource", &["true"], &empty),
            Tri::No
        );
        assert_eq!(
            holds("ForAnyValue:StringEquals", "aws:TagKeys", &["a"], &empty),
            Tri::No
        );
        assert_eq!(
            holds("ForAllValues:StringEquals", "aws:TagKeys", &["a"], &empty),
            Tri::Yes
        );
    }

    #[test]
    fn if_exists_compares_a_present_key() {
        let c = ctx(&[("kms:calleraccount", &["2"])]);
        assert_eq!(
            holds("StringEqualsIfExists", "kms:CallerAccount", &["1"], &c),
            Tri::No
        );
        assert_eq!(
            holds("StringEqualsIfExists", "KMS:CALLERACCOUNT", &["2"], &c),
            Tri::Yes
        );
    }

    #[test]
    fn null_checks_presence() {
        let c = ctx(&[(
            "kms:ViaService",
            &["secretsmanager.us-east-1.amazonaws.com"],
        )]);
        assert_eq!(holds("Null", "kms:ViaService", &["false"], &c), Tri::Yes);
        assert_eq!(holds("Null", "kms:ViaService", &["true"], &c), Tri::No);
        assert_eq!(
            holds("Null", "kms:ViaService", &["true"], &Context::new()),
            Tri::Yes
        );
    }

    #[test]
    fn bool_and_strings() {
        let c = ctx(&[("kms:GrantIsForAWSResource", &["TRUE"]), ("k", &["Abc"])]);
        assert_eq!(
            holds("Bool", "kms:GrantIsForAWSResource", &["true"], &c),
            Tri::Yes
        );
        assert_eq!(holds("StringEquals", "k", &["abc"], &c), Tri::No);
        assert_eq!(holds("StringEqualsIgnoreCase", "k", &["abc"], &c), Tri::Yes);
        assert_eq!(holds("StringLike", "k", &["A*"], &c), Tri::Yes);
        assert_eq!(
            holds("StringNotEquals", "k", &["x", "Abc"], &c),
            Tri::No,
            "NOR"
        );
        assert_eq!(holds("StringNotEquals", "k", &["x", "y"], &c), Tri::Yes);
    }

    #[test]
    fn set_qualifiers() {
        let c = ctx(&[("aws:TagKeys", &["a", "b"])]);
        assert_eq!(
            holds("ForAnyValue:StringEquals", "aws:TagKeys", &["b"], &c),
            Tri::Yes
        );
        assert_eq!(
            holds("ForAllValues:StringEquals", "aws:TagKeys", &["b"], &c),
            Tri::No
        );
        assert_eq!(
            holds("ForAllValues:StringEquals", "aws:TagKeys", &["a", "b"], &c),
            Tri::Yes
        );
    }

    #[test]
    fn what_is_not_judged_is_unknown_only_where_it_matters() {
        let c = ctx(&[
            ("aws:CurrentTime", &["2030-01-01T00:00:00Z"]),
            ("aws:username", &["bob"]),
        ]);
        assert_eq!(
            holds(
                "DateLessThan",
                "aws:CurrentTime",
                &["2031-01-01T00:00:00Z"],
                &c
            ),
            Tri::Unknown
        );
        assert_eq!(
            holds("StringEquals", "aws:username", &["${aws:username}"], &c),
            Tri::Unknown
        );
        assert_eq!(
            holds("Frobnicate", "aws:username", &["x"], &c),
            Tri::Unknown
        );
        assert_eq!(
            holds("DateLessThanIfExists", "aws:EpochTime", &["1"], &c),
            Tri::Yes
        );
    }

    #[test]
    fn only_positive_required_matches_limit_callers() {
        assert!(Operator::parse("StringEquals").requires_match());
        assert!(Operator::parse("ArnLike").requires_match());
        assert!(!Operator::parse("StringEqualsIfExists").requires_match());
        assert!(!Operator::parse("StringNotEquals").requires_match());
        assert!(!Operator::parse("ForAllValues:StringEquals").requires_match());
    }
}
