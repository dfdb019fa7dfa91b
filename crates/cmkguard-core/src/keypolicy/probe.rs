//! The callers the review imagines, and the concrete requests each can make: the review judges a
//! statement by simulating these requests on the whole policy (so a `Deny` anywhere counts).
//!
//! A request's context has two kinds of keys. Some say who calls and AWS sets them: the caller
//! cannot choose them (`IDENTITY`); they come from the imagined caller. All the others the caller
//! can arrange (go through a service, pass an encryption context, tag its own role): they are set
//! to satisfy the statement under review.

use super::condition::{Compare, Condition, Context};
use super::document::{Effect, Statement};
use super::matching::{account_of, has_variable};
use super::request::Request;
use crate::arn::is_account_id;

/// Condition keys AWS sets from who is calling. AWS, "AWS global condition context keys":
/// `aws:PrincipalAccount` "is included in the request context for all signed requests" (and KMS
/// takes only signed requests); `kms:CallerAccount` "allow[s] or den[ies] access to all identities
/// (IAM users and roles) in an AWS account". `aws:PrincipalOrgID` is present only when the
/// caller's account is in an organization; `aws:Source*` only when a service calls for a resource.
const IDENTITY: [&str; 15] = [
    "aws:principalarn",
    "aws:principalaccount",
    "kms:calleraccount",
    "aws:userid",
    "aws:username",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principalisawsservice",
    "aws:principalservicename",
    "aws:principalservicenameslist",
    "aws:sourceaccount",
    "aws:sourcearn",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:sourceowner",
];

const VIA_SERVICE: &str = "kms:viaservice";
const GRANT_FOR_AWS_RESOURCE: &str = "kms:grantisforawsresource";
/// The role the review imagines in an account: a name no real policy is expected to hold.
const PROBE_ROLE: &str = "role/cmkguard-review-probe";

/// The key under review.
pub(super) struct Key<'a> {
    pub(super) arn: &'a str,
    pub(super) partition: &'a str,
    pub(super) region: &'a str,
    pub(super) account: &'a str,
}

/// An organization, with one of its paths when the policy names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Org {
    pub(super) id: String,
    pub(super) path: Option<String>,
}

/// Someone who calls KMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    pub(super) principal: String,
    pub(super) account: String,
    pub(super) org: Option<Org>,
    /// Calls KMS itself, not through an AWS service: no `kms:ViaService`.
    pub(super) direct: bool,
}

impl Caller {
    /// The probe role of `account`.
    pub(super) fn anyone_in(key: &Key, account: &str, org: Option<Org>, direct: bool) -> Caller {
        Caller {
            principal: format!("arn:{}:iam::{account}:{PROBE_ROLE}", key.partition),
            account: account.to_owned(),
            org,
            direct,
        }
    }

    /// A named principal (an ARN): its account is the ARN's.
    pub(super) fn named(arn: &str, org: Option<Org>) -> Option<Caller> {
        Some(Caller {
            principal: arn.to_owned(),
            account: account_of(arn)?.to_owned(),
            org,
            direct: false,
        })
    }

    /// Whom the caller stands for, for a person: its organization, else its account.
    pub(super) fn describe(&self) -> String {
        match &self.org {
            Some(org) => format!("a principal of organization `{}`", super::quote(&org.id)),
            None => format!("a principal of account {}", super::quote(&self.account)),
        }
    }

    /// Every request this caller can make for `action` that could pass `statement`.
    /// `all` is the whole policy: the caller also arranges its request to escape the conditions
    /// of its `Deny` statements where it can (pass the encryption context a `Deny` asks for).
    pub(super) fn requests(
        &self,
        key: &Key,
        statement: &Statement,
        all: &[Statement],
        action: &str,
    ) -> Vec<Request> {
        let mut context = self.identity();
        // A grant made or revoked by the caller itself, not by a service for an AWS resource.
        let own_grant = action.eq_ignore_ascii_case("kms:CreateGrant")
            || action.eq_ignore_ascii_case("kms:RevokeGrant");
        let chosen_elsewhere = |c: &Condition| {
            IDENTITY.contains(&c.key.as_str())
                || (self.direct && c.key == VIA_SERVICE)
                || (own_grant && c.key == GRANT_FOR_AWS_RESOURCE)
        };
        for c in &statement.conditions {
            if !chosen_elsewhere(c)
                && !context.contains_key(&c.key)
                && let Some(value) = satisfying(c)
            {
                context.insert(c.key.clone(), vec![value]);
            }
        }
        let mut escaping = context.clone();
        let denies = all.iter().filter(|s| s.effect == Effect::Deny);
        for c in denies.flat_map(|s| &s.conditions) {
            if !chosen_elsewhere(c)
                && !escaping.contains_key(&c.key)
                && let Some(value) = escaping_value(c)
            {
                escaping.insert(c.key.clone(), vec![value]);
            }
        }
        let mut variants = vec![context];
        if escaping != variants[0] {
            variants.push(escaping);
        }
        if !self.direct && !variants[0].contains_key(VIA_SERVICE) {
            // "With or without kms:ViaService": through Secrets Manager too, which a `Deny`
            // of direct use leaves open.
            let service = format!("secretsmanager.{}.amazonaws.com", key.region);
            let via: Vec<Context> = variants
                .iter()
                .filter(|v| !v.contains_key(VIA_SERVICE))
                .map(|v| {
                    let mut v = v.clone();
                    v.insert(VIA_SERVICE.into(), vec![service.clone()]);
                    v
                })
                .collect();
            variants.extend(via);
        }
        if own_grant {
            // The grant that hands out decryption (or that the caller revokes itself) is the one
            // not for an AWS resource: the key `false`, or absent (where an `...IfExists`
            // binding does not bind).
            let absent = variants.clone();
            for v in &mut variants {
                v.insert(GRANT_FOR_AWS_RESOURCE.into(), vec!["false".into()]);
            }
            variants.extend(absent);
        }
        variants
            .into_iter()
            .map(|context| Request {
                principal: self.principal.clone(),
                action: action.to_owned(),
                resource: key.arn.to_owned(),
                context,
            })
            .collect()
    }

    fn identity(&self) -> Context {
        let mut c = Context::new();
        let mut set = |k: &str, v: &str| c.insert(k.to_owned(), vec![v.to_owned()]);
        set("aws:principalarn", &self.principal);
        set("aws:principalaccount", &self.account);
        set("kms:calleraccount", &self.account);
        set("aws:userid", "AROACMKGUARDREVIEWPROBE:cmkguard-review");
        set("aws:principalisawsservice", "false");
        if let Some(org) = &self.org {
            set("aws:principalorgid", &org.id);
            if let Some(path) = &org.path {
                set("aws:principalorgpaths", path);
            }
        }
        c
    }
}

/// A value that satisfies a positive condition (`StringEquals`, `StringLike`, `Bool`, `Null:
/// false`, ...), wildcards filled in; `None` for a negated one, which an absent key satisfies.
fn satisfying(c: &Condition) -> Option<String> {
    let op = c.operator;
    if op.compare == Compare::Null {
        return c
            .values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("false"))
            .then(|| "cmkguard-review-probe".to_owned());
    }
    if op.negated || op.compare == Compare::Unjudged {
        return None;
    }
    c.values
        .iter()
        .find(|v| !has_variable(v))
        .map(|v| fill_wildcards(v))
}

/// A value that makes a `Deny`'s condition false, where setting the key can: the value a
/// negated operator excludes (`StringNotEquals`), or any value for `Null: true`. Keys a positive
/// condition tests stay absent, which already makes it false.
fn escaping_value(c: &Condition) -> Option<String> {
    let op = c.operator;
    if op.compare == Compare::Null {
        return c
            .values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("true"))
            .then(|| "cmkguard-review-probe".to_owned());
    }
    if !op.negated || op.compare == Compare::Unjudged {
        return None;
    }
    c.values
        .iter()
        .find(|v| !has_variable(v))
        .map(|v| fill_wildcards(v))
}

/// A concrete value a wildcard pattern matches.
pub(super) fn fill_wildcards(pattern: &str) -> String {
    pattern.replace(['*', '?'], "x")
}

/// An account id no statement mentions: the stranger's.
pub(super) fn stranger_account(policy: &str) -> String {
    (0..1000u64)
        .map(|i| (999_999_999_999 - i).to_string())
        .find(|a| !policy.contains(a.as_str()))
        .unwrap_or_else(|| "999999999999".to_owned())
}

/// The organizations the policy's conditions name, anywhere (an allow's limit or a deny's
/// exception): callers are imagined in each.
pub(super) fn orgs(statements: &[Statement]) -> Vec<Org> {
    let mut out = Vec::new();
    for c in statements.iter().flat_map(|s| &s.conditions) {
        for v in c.values.iter().filter(|v| !has_variable(v)) {
            let org = match c.key.as_str() {
                "aws:principalorgid" => Org {
                    id: fill_wildcards(v),
                    path: None,
                },
                "aws:principalorgpaths" => Org {
                    id: v.split('/').next().map(fill_wildcards).unwrap_or_default(),
                    path: Some(fill_wildcards(v)),
                },
                _ => continue,
            };
            if !out.contains(&org) {
                out.push(org);
            }
        }
    }
    out
}

/// Callers of other accounts that the policy's conditions name (`kms:CallerAccount`,
/// `aws:PrincipalAccount`, `aws:PrincipalArn`, ...), anywhere.
pub(super) fn named_callers(key: &Key, statements: &[Statement]) -> Vec<Caller> {
    let mut out = Vec::new();
    for c in statements.iter().flat_map(|s| &s.conditions) {
        for v in c.values.iter().filter(|v| !has_variable(v)) {
            let value = fill_wildcards(v);
            let caller = match c.key.as_str() {
                "aws:principalaccount" | "kms:calleraccount" | "aws:sourceaccount"
                    if is_account_id(&value) =>
                {
                    Some(Caller::anyone_in(key, &value, None, false))
                }
                "aws:principalarn" => Caller::named(&value, None),
                _ => None,
            };
            if let Some(caller) = caller.filter(|c| c.account != key.account && !out.contains(c)) {
                out.push(caller);
            }
        }
    }
    out
}
