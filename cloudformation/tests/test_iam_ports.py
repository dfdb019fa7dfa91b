"""Every role grants what the engine's ports need, as crates/cmkguard-core/src/iam.json
lists it (the engine's tests check that it lists every port and no other). A port added
there fails these tests until the roles grant it; a `when` that is wrong (the action
granted without its condition, or not with it) fails them too.

The roles are rendered from the templates (cfnrender.render) for given parameter values,
and each action is evaluated (policyeval.iam_allows) on a plausible resource of its
service, with the request context the guard's calls carry.
"""

from __future__ import annotations

import json

import pytest

from cfnrender import render, rendered_role_documents
from cfntools import (
    FULL_PARAMETERS,
    MEMBER_ACCOUNT,
    REGION,
    ROOT,
    load_template,
    parameter_violations,
    security_hub_product_arn,
)
from policyeval import Request, iam_allows

IAM_JSON = ROOT / "crates" / "cmkguard-core" / "src" / "iam.json"

# iam.json's roles: the template and logical id of each.
ROLES = {"guard": ("guard.yaml", "GuardRole"), "member": ("member.yaml", "MemberRole")}

# iam.json's `when`: the template parameters that turn it on, per template. A role whose
# template has no entry cannot be granted the port conditionally.
WHEN = {
    "remediation": {
        "guard.yaml": {"EnableRemediation": "true", "RemediateAccounts": MEMBER_ACCOUNT},
        "member.yaml": {"EnableRemediation": "true"},
    },
    # The rotate action: EnableRotation adds it to CMKGUARD_ACTIONS (Actions does not take
    # it), together with its permissions; like remediate, only for RemediateAccounts.
    "rotation": {
        "guard.yaml": {"EnableRotation": "true", "RemediateAccounts": MEMBER_ACCOUNT},
        "member.yaml": {"EnableRotation": "true"},
    },
    # The securityhub action: EnableSecurityHub adds it to CMKGUARD_ACTIONS (Actions
    # does not take it), together with its permission.
    "securityhub": {"guard.yaml": {"EnableSecurityHub": "true"}, "member.yaml": {"EnableSecurityHub": "true"}},
    "organization": {"guard.yaml": {"SweepAccounts": "organization", "AssumeRoleName": "cmkguard-member"}},
    "sweep-accounts": {"guard.yaml": {"SweepAccounts": MEMBER_ACCOUNT, "AssumeRoleName": "cmkguard-member"}},
}

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
TAG_KEYS = ["cmkguard:status", "cmkguard:reason", "cmkguard:previous-key"]


def ports() -> dict[str, dict]:
    return json.loads(IAM_JSON.read_text())["ports"]


def required(template_name: str) -> dict[str, str]:
    """The parameters without a default (cfntools.FULL_PARAMETERS' values)."""
    parameters = load_template(template_name)["Parameters"]
    return {k: v for k, v in FULL_PARAMETERS[template_name].items() if "Default" not in parameters[k]}


def when_parameters(port: str, when: str, template_name: str) -> dict[str, str]:
    if when not in WHEN:
        pytest.fail(
            f"iam.json port {port}: unknown `when` {when!r}; known: {sorted(WHEN)}. "
            f"Map it to the template parameters that turn it on in WHEN ({__file__})"
        )
    if template_name not in WHEN[when]:
        pytest.fail(f"iam.json port {port}: `when` {when!r} has no parameters in {template_name} (WHEN in {__file__})")
    return WHEN[when][template_name]


def plausible_request(role_arn: str, account: str, action: str, resources: dict) -> Request:
    """The action as the guard makes it, on a resource of its service in `account`."""
    service, _, name = action.partition(":")
    secret = f"arn:aws:secretsmanager:{REGION}:{account}:secret:app/database-AbCdEf"
    key = f"arn:aws:kms:{REGION}:{account}:key/{KEY_ID}"
    if service == "secretsmanager":
        resource = "*" if name == "ListSecrets" else secret
        context = {
            "TagResource": {"aws:TagKeys": TAG_KEYS[:2]},
            "UntagResource": {"aws:TagKeys": TAG_KEYS[:2]},
            # Re-encryption onto the account's designated key, named in the request.
            "UpdateSecret": {"secretsmanager:KmsKeyArn": key},
        }.get(name, {})
        return Request(role_arn, action, resource, context)
    if service == "kms":
        return Request(role_arn, action, key)
    if service == "sns":
        # The topic the function publishes to (CMKGUARD_SNS_TOPIC_ARN).
        function = resources.get("Function")
        if function is None:
            pytest.fail(f"{action} for a role whose stack has no function, hence no topic to publish to")
        return Request(role_arn, action, function["Properties"]["Environment"]["Variables"]["CMKGUARD_SNS_TOPIC_ARN"])
    if service == "securityhub":
        return Request(role_arn, action, security_hub_product_arn(account, REGION))
    if service == "lambda":
        # RotateSecret's lambda:InvokeFunction: the secret's rotation function, in its account.
        return Request(role_arn, action, f"arn:aws:lambda:{REGION}:{account}:function:SecretsManagerRotation-app-database")
    if service == "organizations":
        return Request(role_arn, action, "*")
    if service == "ssm":
        return Request(role_arn, action, f"arn:aws:ssm:{REGION}:{account}:parameter/cmkguard/sweep-cursor")
    pytest.fail(f"no plausible resource for {action}: add its service to plausible_request ({__file__})")


def role_allows(role: str, given: dict[str, str]):
    """allowed(action): whether the role, deployed with these parameters, may make it."""
    template_name, logical_id = ROLES[role]
    parameters = {**required(template_name), **given}
    assert parameter_violations(load_template(template_name), parameters) == [], (template_name, parameters)
    variant = render(template_name, parameters)
    assert logical_id in variant.resources, f"{template_name} creates no {logical_id} with {parameters}"
    documents = rendered_role_documents(variant.resources, logical_id)
    role_arn = f"arn:aws:iam::{variant.account}:role/{variant.resources[logical_id]['Properties']['RoleName']}"

    def allowed(action: str) -> bool:
        return iam_allows(documents, plausible_request(role_arn, variant.account, action, variant.resources))

    return allowed


def ports_of(role: str) -> dict[str, dict]:
    return {name: port for name, port in ports().items() if role in port["roles"]}


def test_iam_json_names_known_roles_conditions_and_actions():
    listed = ports()
    assert listed, IAM_JSON
    for name, port in listed.items():
        assert set(port) == {"actions", "roles", "when"}, name
        assert port["actions"] and all(a.count(":") == 1 and "*" not in a for a in port["actions"]), name
        assert port["roles"] and set(port["roles"]) <= set(ROLES), (name, port["roles"])
        for role in port["roles"]:
            if port["when"] is not None:
                when_parameters(name, port["when"], ROLES[role][0])


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_grants_every_port_with_everything_on(role):
    allowed = role_allows(role, FULL_PARAMETERS[ROLES[role][0]])
    missing = [f"{name}: {a}" for name, port in ports_of(role).items() for a in port["actions"] if not allowed(a)]
    assert not missing, f"{role} role, everything on, lacks {missing}"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_grants_the_unconditional_ports_by_default_and_no_other(role):
    allowed = role_allows(role, {})
    own = ports_of(role)
    always = {a for port in own.values() if port["when"] is None for a in port["actions"]}
    missing = sorted(a for a in always if not allowed(a))
    assert not missing, f"{role} role with the defaults lacks {missing}"
    # A `when` is a fact: without it, the action is not granted (unless an unconditional
    # port needs it as well).
    ungated = sorted(
        f"{name}: {a}" for name, port in own.items() if port["when"] for a in port["actions"] if a not in always and allowed(a)
    )
    assert not ungated, f"{role} role grants these without their `when`: {ungated}"


@pytest.mark.parametrize(("role", "when"), [(r, w) for r in sorted(ROLES) for w in sorted(WHEN) if ROLES[r][0] in WHEN[w]])
def test_each_when_grants_its_ports(role, when):
    # Each condition alone (the others at their defaults) grants what it is named for.
    gated = {name: port for name, port in ports_of(role).items() if port["when"] == when}
    allowed = role_allows(role, WHEN[when][ROLES[role][0]])
    missing = [f"{name}: {a}" for name, port in gated.items() for a in port["actions"] if not allowed(a)]
    assert not missing, f"{role} role with {when} lacks {missing}"
