"""member.yaml in moto's CloudFormation, in a member account."""

from __future__ import annotations

import json

from cfntools import (
    ACCOUNT,
    FULL_PARAMETERS,
    MEMBER_ACCOUNT,
    ORG_ID,
    REGION,
    as_list,
    load_template,
    policy_document,
    role_arn,
    security_hub_product_arn,
    statements,
)
from motostacks import create_stack
from policyeval import Request, applies, iam_allows, names_directly
from test_guard_stack import assert_security_hub_import_only_into


def policy_actions(iam, role: str) -> dict[str, set[str]]:
    granted = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        document = policy_document(document)
        granted[name] = {a for s in statements(document) if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    return granted


def test_member_role_and_forwarding(aws):
    parameters = FULL_PARAMETERS["member.yaml"]
    resources = create_stack(
        aws("cloudformation", MEMBER_ACCOUNT), "cmkguard-member", load_template("member.yaml"), parameters, MEMBER_ACCOUNT
    )

    iam = aws("iam", MEMBER_ACCOUNT)
    role = iam.get_role(RoleName="cmkguard-member")["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = policy_document(trust)
    [statement] = statements(trust)
    assert statement["Principal"] == {"AWS": parameters["GuardRoleArn"]}
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}}
    granted = policy_actions(iam, "cmkguard-member")
    assert granted["cmkguard-remediate"] == {"secretsmanager:UpdateSecret"}
    assert granted["cmkguard-securityhub"] == {"securityhub:BatchImportFindings"}
    assert "secretsmanager:ListSecretVersionIds" in granted["cmkguard-member"]
    assert "cmkguard-check-versions" not in granted
    assert granted["cmkguard-rotate"] == {"secretsmanager:RotateSecret", "lambda:InvokeFunction"}
    assert "secretsmanager:GetSecretValue" not in set().union(*granted.values())
    # Security Hub as IAM holds it: the member account's default product only (not even the guard's).
    security_hub = policy_document(
        iam.get_role_policy(RoleName="cmkguard-member", PolicyName="cmkguard-securityhub")["PolicyDocument"]
    )
    [sh_statement] = statements(security_hub)
    assert sh_statement["Resource"] == security_hub_product_arn(MEMBER_ACCOUNT)
    assert_security_hub_import_only_into(security_hub, role["Arn"], MEMBER_ACCOUNT, ACCOUNT)
    # Re-encryption as IAM holds it: onto a key of the member account, named in the request.
    remediate = policy_document(iam.get_role_policy(RoleName="cmkguard-member", PolicyName="cmkguard-remediate")["PolicyDocument"])
    secret = f"arn:aws:secretsmanager:{REGION}:{MEMBER_ACCOUNT}:secret:app-AbCdEf"
    for key, allowed in (
        (f"arn:aws:kms:{REGION}:{MEMBER_ACCOUNT}:key/k", True),
        (f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k", False),  # not even the guard's account
        (None, False),
    ):
        context = {"secretsmanager:KmsKeyArn": key} if key else {}
        assert iam_allows([remediate], Request(role["Arn"], "secretsmanager:UpdateSecret", secret, context)) is allowed, key

    events = aws("events", MEMBER_ACCOUNT)
    for name in ("ForwardSecretsManagerEventsRule", "ForwardSecretsManagerServiceEventsRule", "ForwardKmsKeyEventsRule"):
        rule = events.describe_rule(Name=resources[name]["PhysicalResourceId"])
        assert json.loads(rule["EventPattern"]) == load_template("member.yaml")["Resources"][name]["Properties"]["EventPattern"]
        [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert target["Arn"] == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default", name
        assert target["RoleArn"] == iam.get_role(RoleName=resources["ForwarderRole"]["PhysicalResourceId"])["Role"]["Arn"], name


def test_no_forwarding_to_its_own_bus_and_no_remediation_or_security_hub_by_default(aws):
    # The member stack in the guard's own account and region: forwarding there would loop.
    parameters = {
        "GuardRoleArn": role_arn(f"cmkguard-guard-{REGION}"),
        "GuardEventBusArn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
        "OrganizationId": ORG_ID,
    }
    resources = create_stack(aws("cloudformation"), "cmkguard-member", load_template("member.yaml"), parameters)
    assert set(resources) == {"MemberRole"}
    granted = policy_actions(aws("iam"), "cmkguard-member")
    assert set(granted) == {"cmkguard-member"}
    # The version listing is granted by default (the guard reads the versions' CreatedDate
    # when a moved secret's AWSCURRENT changes); never a value.
    assert "secretsmanager:ListSecretVersionIds" in granted["cmkguard-member"]
    assert "secretsmanager:GetSecretValue" not in granted["cmkguard-member"]


def test_other_regions_only_forward(aws):
    # IAM is global: only the stack in MemberRoleRegion creates the role.
    parameters = {**FULL_PARAMETERS["member.yaml"], "MemberRoleRegion": "eu-west-1"}
    resources = create_stack(
        aws("cloudformation", MEMBER_ACCOUNT), "cmkguard-member", load_template("member.yaml"), parameters, MEMBER_ACCOUNT
    )
    assert set(resources) == {
        "ForwarderRole",
        "ForwardSecretsManagerEventsRule",
        "ForwardSecretsManagerServiceEventsRule",
        "ForwardKmsKeyEventsRule",
    }


def test_security_hub_alone(aws):
    off = {"EnableRemediation": "false", "EnableRotation": "false"}
    parameters = {**FULL_PARAMETERS["member.yaml"], **off}
    resources = create_stack(
        aws("cloudformation", MEMBER_ACCOUNT), "cmkguard-member", load_template("member.yaml"), parameters, MEMBER_ACCOUNT
    )
    assert "MemberSecurityHubPolicy" in resources and "MemberRemediationPolicy" not in resources
    assert "MemberRotationPolicy" not in resources
    granted = policy_actions(aws("iam", MEMBER_ACCOUNT), "cmkguard-member")
    assert set(granted) == {"cmkguard-member", "cmkguard-securityhub"}
    assert granted["cmkguard-securityhub"] == {"securityhub:BatchImportFindings"}


def test_member_role_lets_the_guard_sweep_the_account(aws):
    # SweepAccounts (CMKGUARD_SWEEP_ACCOUNTS): the guard's role assumes this role and lists,
    # describes and tags this account's secrets, reads their keys' state; never a value.
    off = {"EnableRemediation": "false", "EnableRotation": "false", "EnableSecurityHub": "false"}
    parameters = {**FULL_PARAMETERS["member.yaml"], **off}
    create_stack(aws("cloudformation", MEMBER_ACCOUNT), "cmkguard-member", load_template("member.yaml"), parameters, MEMBER_ACCOUNT)
    iam = aws("iam", MEMBER_ACCOUNT)
    role = iam.get_role(RoleName="cmkguard-member")["Role"]

    # The trust policy as IAM holds it: the guard's role of the organization, nobody else.
    [trust] = statements(policy_document(role["AssumeRolePolicyDocument"]))
    guard = parameters["GuardRoleArn"]
    for principal, org, trusted in (
        (guard, ORG_ID, True),
        (guard, "o-someoneelse", False),
        (guard, None, False),
        (role_arn("some-other-role"), ORG_ID, False),
        (role_arn(f"cmkguard-guard-{REGION}", MEMBER_ACCOUNT), ORG_ID, False),
    ):
        request = Request(principal, "sts:AssumeRole", role["Arn"], {"aws:PrincipalOrgID": org} if org else {})
        assert (trust["Effect"] == "Allow" and names_directly(trust, request) and applies(trust, request)) is trusted, principal

    [name] = iam.list_role_policies(RoleName="cmkguard-member")["PolicyNames"]
    documents = [policy_document(iam.get_role_policy(RoleName="cmkguard-member", PolicyName=name)["PolicyDocument"])]
    secret = f"arn:aws:secretsmanager:eu-west-1:{MEMBER_ACCOUNT}:secret:app-AbCdEf"
    for action, resource, context in (
        ("secretsmanager:ListSecrets", "*", {}),
        ("secretsmanager:DescribeSecret", secret, {}),
        # The versions' CreatedDate (and, for the guard's CheckVersions, their keys).
        ("secretsmanager:ListSecretVersionIds", secret, {}),
        ("kms:DescribeKey", f"arn:aws:kms:eu-west-1:{MEMBER_ACCOUNT}:key/k", {}),
        ("secretsmanager:TagResource", secret, {"aws:TagKeys": ["cmkguard:status", "cmkguard:reason"]}),
        ("secretsmanager:UntagResource", secret, {"aws:TagKeys": ["cmkguard:status", "cmkguard:reason"]}),
        # The remediated mark with the version a move left readable, and its removal.
        ("secretsmanager:TagResource", secret, {"aws:TagKeys": ["cmkguard:status", "cmkguard:moved-version"]}),
        ("secretsmanager:UntagResource", secret, {"aws:TagKeys": ["cmkguard:moved-version"]}),
        ("secretsmanager:TagResource", secret, {"aws:TagKeys": ["cmkguard:rotation-requested"]}),
    ):
        assert iam_allows(documents, Request(role["Arn"], action, resource, context)), action
    assert not iam_allows(documents, Request(role["Arn"], "secretsmanager:GetSecretValue", secret))
    assert not iam_allows(documents, Request(role["Arn"], "secretsmanager:TagResource", secret, {"aws:TagKeys": ["owner"]}))
    exempt = {"aws:TagKeys": ["cmkguard:status", "cmkguard:exempt"]}
    assert not iam_allows(documents, Request(role["Arn"], "secretsmanager:TagResource", secret, exempt))
