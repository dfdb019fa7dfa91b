"""Enough of IAM and KMS policy evaluation to decide what the templates' policies allow.

moto does not evaluate key policies, so the tests evaluate them here. What is modelled:

- Statements: Effect, Action/NotAction (wildcards, case-insensitive), Resource/NotResource,
  Principal ({"AWS": ...} with ARNs, account ids, "*"; {"Service": ...}; "*"), Condition.
- Conditions: String*, Arn*, Bool, Null, the ...IfExists forms and the ForAllValues: /
  ForAnyValue: prefixes; keys case-insensitive; every key of a block must hold, any value of
  a key may match. An operator not listed raises, so that a policy is never judged on
  semantics the evaluator does not have.
- KMS authorization: an explicit Deny in the key policy or in an IAM policy wins. Otherwise
  a request is allowed when a key policy statement allows the caller directly, or when a
  statement allows the caller's account (its root: the delegation to IAM) and an IAM policy
  of the caller allows the request too. A caller of another account always needs an IAM
  policy of its own as well. The account root user is allowed by IAM itself.

Not modelled (not used by the templates): grants, SCPs, permission boundaries, sessions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from cfntools import action_covers, as_list, statements


@dataclass(frozen=True)
class Request:
    principal: str  # an IAM ARN (role, user, account root) or a service (logs.us-east-1.amazonaws.com)
    action: str
    resource: str  # the key's ARN for KMS; the secret's for Secrets Manager
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_service(self) -> bool:
        return not self.principal.startswith("arn:")

    @property
    def account(self) -> str | None:
        return None if self.is_service else self.principal.split(":")[4]


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def _like(value: str, pattern: str, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


_MATCHERS = {
    "StringEquals": lambda v, p: str(v) == str(p),
    "StringEqualsIgnoreCase": lambda v, p: str(v).lower() == str(p).lower(),
    "StringLike": lambda v, p: _like(str(v), str(p)),
    # ArnEquals and ArnLike both take wildcards.
    "ArnEquals": lambda v, p: _like(str(v), str(p)),
    "ArnLike": lambda v, p: _like(str(v), str(p)),
    "Bool": lambda v, p: str(v).lower() == str(p).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def _condition_holds(operator: str, key: str, values: list[Any], context: Mapping[str, Any]) -> bool:
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    present = key in context and context[key] is not None
    if operator == "Null":
        [wanted] = values
        return (not present) == (str(wanted).lower() == "true")
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if base not in _MATCHERS or qualifier not in ("", "ForAllValues", "ForAnyValue"):
        raise NotImplementedError(f"condition operator {qualifier + ':' if qualifier else ''}{operator}")
    if not present:
        # A missing key matches nothing: negated operators, IfExists and ForAllValues hold.
        return negated or if_exists or qualifier == "ForAllValues"
    request_values = as_list(context[key])

    def one(value: Any) -> bool:
        hit = any(_MATCHERS[base](value, p) for p in values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in request_values)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in request_values)
    assert len(request_values) == 1, f"{key} is multivalued: the policy needs ForAllValues/ForAnyValue"
    return one(request_values[0])


def conditions_hold(condition: Mapping[str, Any] | None, context: Mapping[str, Any]) -> bool:
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, tests in (condition or {}).items():
        for key, values in tests.items():
            if not _condition_holds(operator, key.lower(), as_list(values), lowered):
                return False
    return True


def _actions_match(statement: Mapping[str, Any], action: str) -> bool:
    if "NotAction" in statement:
        return not any(action_covers(a, action) for a in as_list(statement["NotAction"]))
    return any(action_covers(a, action) for a in as_list(statement.get("Action")))


def _resources_match(statement: Mapping[str, Any], resource: str) -> bool:
    if "NotResource" in statement:
        return not any(_like(resource, r) for r in as_list(statement["NotResource"]))
    return any(_like(resource, r) for r in as_list(statement.get("Resource", "*")))


def principals(statement: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(AWS principals, services) a resource policy statement names; "*" stays "*" and a
    bare account id becomes that account's root."""
    principal = statement.get("Principal", {})
    if principal == "*":
        return ["*"], ["*"]
    aws = [f"arn:aws:iam::{p}:root" if isinstance(p, str) and p.isdigit() else p for p in as_list(principal.get("AWS"))]
    return aws, as_list(principal.get("Service"))


def names_directly(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether the statement names the caller itself (not by its account)."""
    aws, services = principals(statement)
    if request.is_service:
        return request.principal in services or "*" in services or "*" in aws
    return "*" in aws or request.principal in aws


def names_account(statement: Mapping[str, Any], request: Request) -> bool:
    """Whether the statement names the caller's account (its root): in a key policy, the
    delegation to that account's IAM policies."""
    aws, _ = principals(statement)
    return not request.is_service and f"arn:aws:iam::{request.account}:root" in aws


def applies(statement: Mapping[str, Any], request: Request) -> bool:
    """Action, resource and conditions match (principals are for the caller to check)."""
    return (
        _actions_match(statement, request.action)
        and _resources_match(statement, request.resource)
        and conditions_hold(statement.get("Condition"), request.context)
    )


def identity_decision(policies: Iterable[Mapping[str, Any]], request: Request) -> str | None:
    """"Deny", "Allow" or None (implicit deny) from the caller's own IAM policies."""
    effects = {s["Effect"] for p in policies for s in statements(p) if applies(s, request)}
    return "Deny" if "Deny" in effects else "Allow" if "Allow" in effects else None


def kms_allows(key_policy: Mapping[str, Any], request: Request, iam_policies: Iterable[Mapping[str, Any]] = ()) -> bool:
    """Whether KMS allows the request under this key policy and the caller's IAM policies."""
    key_statements = [s for s in statements(key_policy) if applies(s, request)]
    for statement in key_statements:
        # A Deny that names an account applies to every principal of that account.
        if statement["Effect"] == "Deny" and (names_directly(statement, request) or names_account(statement, request)):
            return False
    iam = identity_decision(list(iam_policies), request)
    if iam == "Deny":
        return False
    root_user = not request.is_service and request.principal == f"arn:aws:iam::{request.account}:root"
    iam_allows = iam == "Allow" or root_user
    allows = [s for s in key_statements if s["Effect"] == "Allow"]
    direct = any(names_directly(s, request) for s in allows)
    delegated = iam_allows and any(names_account(s, request) for s in allows)
    if request.is_service or request.account == account_of(request.resource):
        return direct or delegated
    return (direct and iam_allows) or delegated


def iam_allows(policies: Iterable[Mapping[str, Any]], request: Request) -> bool:
    """Whether identity policies alone allow the request (same account, no resource policy)."""
    return identity_decision(list(policies), request) == "Allow"
