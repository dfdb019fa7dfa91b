"""guard.yaml in moto's CloudFormation (the variant of motostacks.moto_variant): what
was made, and the guard role's permissions as IAM holds them."""

from __future__ import annotations

import json

import pytest

from cfntools import (
    ACCOUNT,
    FULL_PARAMETERS,
    MEMBER_ACCOUNT,
    REGION,
    action_covers,
    as_list,
    load_template,
    policy_document,
    security_hub_product_arn,
    statements,
)
from motostacks import MOTO_LACKS, create_stack, moto_variant, outputs, package
from policyeval import Request, iam_allows, kms_allows

FORBIDDEN_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:*", "kms:*")
GUARD_ROLE = f"cmkguard-guard-{REGION}"


def assert_security_hub_import_only_into(document: dict, role: str, account: str, other: str) -> None:
    """BatchImportFindings into `account`'s default product in any region; nothing else."""
    for region in (REGION, "eu-west-1"):
        assert iam_allows([document], Request(role, "securityhub:BatchImportFindings", security_hub_product_arn(account, region)))
    for resource in (
        security_hub_product_arn(other, REGION),
        security_hub_product_arn(account, REGION, product_account=other),
        security_hub_product_arn(account, REGION, product_account="aws", product="guardduty"),
    ):
        assert not iam_allows([document], Request(role, "securityhub:BatchImportFindings", resource)), resource
    for action in ("securityhub:BatchUpdateFindings", "securityhub:GetFindings", "securityhub:DisableSecurityHub"):
        assert not iam_allows([document], Request(role, action, security_hub_product_arn(account, REGION))), action


def create_guard_stack(aws, parameters: dict[str, str]) -> dict:
    template = load_template("guard.yaml")
    variant, dropped = moto_variant(template, code=package(aws("s3")))
    # The variant leaves out only what moto cannot create; everything else must be made.
    assert set(dropped.values()) <= set(MOTO_LACKS)
    return create_stack(aws("cloudformation"), "cmkguard-guard", variant, parameters)


def live_role_actions(aws) -> dict[str, set[str]]:
    iam = aws("iam")
    assert iam.list_attached_role_policies(RoleName=GUARD_ROLE)["AttachedPolicies"] == []
    granted = {}
    for name in iam.list_role_policies(RoleName=GUARD_ROLE)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=GUARD_ROLE, PolicyName=name)["PolicyDocument"]
        document = policy_document(document)
        granted[name] = {a for s in statements(document) if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    return granted


def test_everything_on(aws):
    parameters = FULL_PARAMETERS["guard.yaml"]
    resources = create_guard_stack(aws, parameters)
    out = outputs(aws("cloudformation"), "cmkguard-guard")

    # The function.
    fn = aws("lambda").get_function(FunctionName=resources["Function"]["PhysicalResourceId"])["Configuration"]
    assert (fn["Runtime"], fn["Handler"], fn["Timeout"], fn["MemorySize"]) == ("provided.al2023", "bootstrap", 300, 128)
    assert fn["Role"] == f"arn:aws:iam::{ACCOUNT}:role/{GUARD_ROLE}" == out["GuardRoleArn"]
    # moto keeps a Number parameter's default as a number; CloudFormation passes strings.
    assert {k: str(v) for k, v in fn["Environment"]["Variables"].items()} == {
        "CMKGUARD_ACTIONS": "tag,notify,remediate,rotate,securityhub",
        "CMKGUARD_REMEDIATE_ACCOUNTS": parameters["RemediateAccounts"],
        "CMKGUARD_KEY_ALIAS": "alias/cmkguard/secrets",
        "CMKGUARD_ALLOWED_KEY_ARNS": parameters["AllowedKeyArns"],
        "CMKGUARD_EXEMPT_TAG": "cmkguard:exempt",
        "CMKGUARD_SNS_TOPIC_ARN": out["TopicArn"],
        "CMKGUARD_DRY_RUN": "true",
        "CMKGUARD_CHECK_VERSIONS": "true",
        "CMKGUARD_KEY_POLICY": "enforce",
        "CMKGUARD_ASSUME_ROLE_NAME": "cmkguard-member",
        "CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS": "10000",
        "CMKGUARD_RETRY_BUDGET_MS": "60000",
        "CMKGUARD_SWEEP_ACCOUNTS": "organization",
    }
    assert aws("lambda").get_function_concurrency(FunctionName=fn["FunctionName"])["ReservedConcurrentExecutions"] == 5

    # Its role: the calls it makes, UpdateSecret, RotateSecret, BatchImportFindings,
    # AssumeRole, the sweep cursor and ListAccounts included (all on); ListSecretVersionIds
    # is in the base policy, with or without CheckVersions.
    granted = live_role_actions(aws)
    assert "secretsmanager:ListSecretVersionIds" in granted["cmkguard-guard"]
    assert {"kms:GetKeyPolicy", "kms:ListGrants"} <= granted["cmkguard-guard"]
    assert granted["cmkguard-remediate"] == {"secretsmanager:UpdateSecret"}
    assert granted["cmkguard-rotate"] == {"secretsmanager:RotateSecret", "lambda:InvokeFunction"}
    assert granted["cmkguard-securityhub"] == {"securityhub:BatchImportFindings"}
    assert granted["cmkguard-assume-member-role"] == {"sts:AssumeRole"}
    assert granted["cmkguard-sweep-cursor"] == {"ssm:GetParameter", "ssm:PutParameter"}
    assert granted["cmkguard-list-organization-accounts"] == {"organizations:ListAccounts"}
    for actions in granted.values():
        for action in actions:
            assert "*" not in action
            assert not any(action_covers(action, f) for f in FORBIDDEN_ACTIONS), action

    # The topic and the dead-letter queue, both on the stack's operations key.
    operations_key = resources["OperationsKey"]["PhysicalResourceId"]
    topic = aws("sns").get_topic_attributes(TopicArn=out["TopicArn"])["Attributes"]
    assert topic["KmsMasterKeyId"] == operations_key
    queue = aws("sqs").get_queue_attributes(QueueUrl=out["DeadLetterQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert queue["KmsMasterKeyId"] == operations_key
    assert queue["MessageRetentionPeriod"] == "1209600"
    assert aws("kms").get_key_rotation_status(KeyId=operations_key)["KeyRotationEnabled"] is True

    # The operations key as KMS holds it: IAM grants work through SNS and SQS (and S3 for
    # the trail), never directly; the account keeps the administration.
    key_policy = policy_document(aws("kms").get_key_policy(KeyId=operations_key, PolicyName="default")["Policy"])
    key_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{operations_key}"
    app, iam = f"arn:aws:iam::{ACCOUNT}:role/some-app", [{"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}]
    for service, allowed in (("sqs", True), ("s3", True), ("secretsmanager", False), (None, False)):
        context = {"kms:CallerAccount": ACCOUNT, **({"kms:ViaService": f"{service}.{REGION}.amazonaws.com"} if service else {})}
        assert kms_allows(key_policy, Request(app, "kms:Decrypt", key_arn, context), iam) is allowed, service
    root = f"arn:aws:iam::{ACCOUNT}:root"
    assert kms_allows(key_policy, Request(root, "kms:PutKeyPolicy", key_arn, {"kms:CallerAccount": ACCOUNT}))

    # Re-encryption as IAM holds it: onto a key of this account, named in the request.
    remediate = policy_document(aws("iam").get_role_policy(RoleName=GUARD_ROLE, PolicyName="cmkguard-remediate")["PolicyDocument"])
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app-AbCdEf"
    for key, allowed in ((key_arn, True), (f"arn:aws:kms:{REGION}:999999999999:key/x", False), (None, False)):
        context = {"secretsmanager:KmsKeyArn": key} if key else {}
        assert iam_allows([remediate], Request(fn["Role"], "secretsmanager:UpdateSecret", secret, context)) is allowed, key

    # Rotation as IAM holds it: the secret's own rotation, never a new configuration; the
    # rotation function of this account.
    rotate = policy_document(aws("iam").get_role_policy(RoleName=GUARD_ROLE, PolicyName="cmkguard-rotate")["PolicyDocument"])
    elsewhere = {"secretsmanager:RotationLambdaARN": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:x"}
    for context, allowed in (({}, True), (elsewhere, False)):
        assert iam_allows([rotate], Request(fn["Role"], "secretsmanager:RotateSecret", secret, context)) is allowed, context
    for account, allowed in ((ACCOUNT, True), (MEMBER_ACCOUNT, False)):
        function = f"arn:aws:lambda:{REGION}:{account}:function:SecretsManagerRotation-app"
        assert iam_allows([rotate], Request(fn["Role"], "lambda:InvokeFunction", function)) is allowed, account

    # Security Hub as IAM holds it: this account's default product, in any region, nothing else.
    security_hub = policy_document(
        aws("iam").get_role_policy(RoleName=GUARD_ROLE, PolicyName="cmkguard-securityhub")["PolicyDocument"]
    )
    [statement] = statements(security_hub)
    assert statement["Resource"] == security_hub_product_arn(ACCOUNT)
    assert_security_hub_import_only_into(security_hub, fn["Role"], ACCOUNT, MEMBER_ACCOUNT)

    # The rules: the CloudTrail events (Secrets Manager calls and service event, KMS) and
    # the sweep, all to the function, undeliverable events to the dead-letter queue.
    events = aws("events")
    rules = []
    for name in ("SecretsManagerEventsRule", "SecretsManagerServiceEventsRule", "KmsKeyEventsRule"):
        rule = events.describe_rule(Name=resources[name]["PhysicalResourceId"])
        template_rule = load_template("guard.yaml")["Resources"][name]["Properties"]
        assert json.loads(rule["EventPattern"]) == template_rule["EventPattern"], name
        assert rule["State"] == "ENABLED"
        rules.append(rule)
    sweep = events.describe_rule(Name=resources["SweepScheduleRule"]["PhysicalResourceId"])
    assert sweep["ScheduleExpression"] == "rate(1 day)" and sweep["State"] == "ENABLED"
    for r in (*rules, sweep):
        [target] = events.list_targets_by_rule(Rule=r["Name"])["Targets"]
        assert target["Arn"] == fn["FunctionArn"]
        assert target["DeadLetterConfig"]["Arn"] == queue["QueueArn"]

    # Only these four rules, from this account, may invoke the function.
    permissions = json.loads(aws("lambda").get_policy(FunctionName=fn["FunctionName"])["Policy"])["Statement"]
    assert sorted(p["Condition"]["ArnLike"]["AWS:SourceArn"] for p in permissions) == sorted([r["Arn"] for r in (*rules, sweep)])
    assert all(p["Principal"] == {"Service": "events.amazonaws.com"} for p in permissions)
    assert all(p["Condition"]["StringEquals"]["AWS:SourceAccount"] == ACCOUNT for p in permissions)

    # The audit records' log group.
    [group] = aws("logs").describe_log_groups(logGroupNamePrefix=out["LogGroupName"])["logGroups"]
    assert group["retentionInDays"] == 365

    # The trail's bucket (the trail and bucket policy are in MOTO_LACKS).
    assert "TrailBucket" in resources


def test_defaults_leave_remediation_security_hub_and_other_accounts_off(aws):
    resources = create_guard_stack(aws, {})
    assert not {
        "RemediationPolicy",
        "RotationPolicy",
        "SecurityHubPolicy",
        "AssumeMemberRolePolicy",
        "SweepCursorPolicy",
        "ListOrganizationAccountsPolicy",
        "TrailBucket",
    } & set(resources)
    granted = live_role_actions(aws)
    assert set(granted) == {"cmkguard-guard"}
    everything = set().union(*granted.values())
    assert "secretsmanager:UpdateSecret" not in everything and "sts:AssumeRole" not in everything
    # Always granted: the versions' CreatedDate tells whether a moved secret's new
    # AWSCURRENT finishes the move (CheckVersions only sets CMKGUARD_CHECK_VERSIONS).
    assert "secretsmanager:ListSecretVersionIds" in granted["cmkguard-guard"]
    # Always granted too: KeyPolicyReview only sets CMKGUARD_KEY_POLICY.
    assert {"kms:GetKeyPolicy", "kms:ListGrants"} <= granted["cmkguard-guard"]
    assert not any(a.lower().startswith(("securityhub:", "ssm:", "organizations:", "lambda:")) for a in everything)
    assert "secretsmanager:RotateSecret" not in everything

    fn = aws("lambda").get_function(FunctionName=resources["Function"]["PhysicalResourceId"])["Configuration"]
    variables = fn["Environment"]["Variables"]
    # Optional variables are left unset (CONTRACT.md defaults), not set to "".
    assert set(variables) == {
        "CMKGUARD_ACTIONS",
        "CMKGUARD_KEY_ALIAS",
        "CMKGUARD_EXEMPT_TAG",
        "CMKGUARD_SNS_TOPIC_ARN",
        "CMKGUARD_DRY_RUN",
        "CMKGUARD_CHECK_VERSIONS",
        "CMKGUARD_KEY_POLICY",
        "CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS",
        "CMKGUARD_RETRY_BUDGET_MS",
    }
    assert (variables["CMKGUARD_ACTIONS"], variables["CMKGUARD_DRY_RUN"]) == ("tag", "false")
    assert variables["CMKGUARD_CHECK_VERSIONS"] == "false"
    assert variables["CMKGUARD_KEY_POLICY"] == "report"


@pytest.mark.parametrize(("actions", "expected"), [("none", "remediate"), ("tag", "tag,remediate"), ("notify", "notify,remediate")])
def test_remediation_is_added_to_the_actions(aws, actions, expected):
    resources = create_guard_stack(aws, {"Actions": actions, "EnableRemediation": "true", "RemediateAccounts": "*"})
    fn = aws("lambda").get_function(FunctionName=resources["Function"]["PhysicalResourceId"])["Configuration"]
    assert fn["Environment"]["Variables"]["CMKGUARD_ACTIONS"] == expected
    assert fn["Environment"]["Variables"]["CMKGUARD_REMEDIATE_ACCOUNTS"] == "*"


@pytest.mark.parametrize(
    ("actions", "remediation", "expected"),
    [
        ("none", "false", "securityhub"),
        ("tag", "false", "tag,securityhub"),
        ("tag,notify", "false", "tag,notify,securityhub"),
        ("none", "true", "remediate,securityhub"),
        ("notify", "true", "notify,remediate,securityhub"),
    ],
)
def test_security_hub_is_added_to_the_actions_with_its_permission(aws, actions, remediation, expected):
    parameters = {"Actions": actions, "EnableSecurityHub": "true", "EnableRemediation": remediation}
    if remediation == "true":
        parameters["RemediateAccounts"] = "*"
    resources = create_guard_stack(aws, parameters)
    assert "SecurityHubPolicy" in resources
    fn = aws("lambda").get_function(FunctionName=resources["Function"]["PhysicalResourceId"])["Configuration"]
    assert fn["Environment"]["Variables"]["CMKGUARD_ACTIONS"] == expected
    granted = live_role_actions(aws)
    assert granted["cmkguard-securityhub"] == {"securityhub:BatchImportFindings"}
    assert [n for n, actions in granted.items() if any(a.startswith("securityhub:") for a in actions)] == ["cmkguard-securityhub"]


@pytest.mark.parametrize(
    ("actions", "remediation", "expected"),
    [
        ("none", "false", "rotate"),
        ("tag", "false", "tag,rotate"),
        ("none", "true", "remediate,rotate"),
        ("notify", "true", "notify,remediate,rotate"),
    ],
)
def test_rotation_is_added_to_the_actions_with_its_permissions(aws, actions, remediation, expected):
    parameters = {"Actions": actions, "EnableRotation": "true", "EnableRemediation": remediation, "RemediateAccounts": "*"}
    resources = create_guard_stack(aws, parameters)
    assert "RotationPolicy" in resources
    fn = aws("lambda").get_function(FunctionName=resources["Function"]["PhysicalResourceId"])["Configuration"]
    assert fn["Environment"]["Variables"]["CMKGUARD_ACTIONS"] == expected
    granted = live_role_actions(aws)
    assert granted["cmkguard-rotate"] == {"secretsmanager:RotateSecret", "lambda:InvokeFunction"}
    assert ("cmkguard-remediate" in granted) is (remediation == "true")


SWEEP_CURSOR = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cmkguard/sweep-cursor"


@pytest.mark.parametrize("sweep_accounts", ["organization", f"{ACCOUNT},{MEMBER_ACCOUNT}", MEMBER_ACCOUNT])
def test_sweep_accounts_as_the_function_and_iam_hold_them(aws, sweep_accounts):
    resources = create_guard_stack(aws, {"SweepAccounts": sweep_accounts, "AssumeRoleName": "cmkguard-member"})
    organization = sweep_accounts == "organization"
    assert "SweepCursorPolicy" in resources
    assert ("ListOrganizationAccountsPolicy" in resources) is organization
    fn = aws("lambda").get_function(FunctionName=resources["Function"]["PhysicalResourceId"])["Configuration"]
    assert fn["Environment"]["Variables"]["CMKGUARD_SWEEP_ACCOUNTS"] == sweep_accounts
    assert fn["Environment"]["Variables"]["CMKGUARD_ASSUME_ROLE_NAME"] == "cmkguard-member"

    granted = live_role_actions(aws)
    expected = {"cmkguard-guard", "cmkguard-assume-member-role", "cmkguard-sweep-cursor"}
    assert set(granted) == expected | ({"cmkguard-list-organization-accounts"} if organization else set())
    iam = aws("iam")
    documents = [
        policy_document(iam.get_role_policy(RoleName=GUARD_ROLE, PolicyName=name)["PolicyDocument"]) for name in granted
    ]

    def allowed(action: str, resource: str) -> bool:
        return iam_allows(documents, Request(fn["Role"], action, resource))

    assert allowed("organizations:ListAccounts", "*") is organization
    for action in ("ssm:GetParameter", "ssm:PutParameter"):
        assert allowed(action, SWEEP_CURSOR)
        for other in (
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cmkguard/other",
            f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/database-password",
            f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/cmkguard/sweep-cursor",
            f"arn:aws:ssm:{REGION}:{MEMBER_ACCOUNT}:parameter/cmkguard/sweep-cursor",
        ):
            assert not allowed(action, other), (action, other)
    assert not allowed("ssm:GetParameters", SWEEP_CURSOR) and not allowed("ssm:DeleteParameter", SWEEP_CURSOR)
    assert not allowed("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{MEMBER_ACCOUNT}:secret:app-AbCdEf")
    assert not allowed("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app-AbCdEf")
