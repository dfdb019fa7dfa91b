"""What can be proven from the templates themselves, for every parameter value: the
guard's permissions, the function's configuration, and the resources moto cannot create."""

from __future__ import annotations

import json
import re

import pytest

from cfnrender import rendered_role_documents, variants
from cfntools import (
    ACCOUNT,
    CFN_DIR,
    CLOUDTRAIL_RULES,
    FULL_PARAMETERS,
    HANDLED_EVENT_NAMES,
    HANDLED_KMS_EVENT_NAMES,
    HANDLED_SERVICE_EVENT_NAMES,
    MEMBER_ACCOUNT,
    REGION,
    ROOT,
    TEMPLATES,
    action_covers,
    as_list,
    iter_allowed_actions,
    load_template,
    parameter_violations,
    role_arn,
    role_policy_documents,
    security_hub_product_arn,
    statements,
)
from policyeval import Request, iam_allows

# The secret's value, and the wildcards that would include it or any other call.
FORBIDDEN_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:*", "kms:*", "*")

# Exactly what the guard calls, per role: the IAM actions of the engine's ports
# (crates/cmkguard-core/src/iam.json, checked against the ports by the engine's tests), so a new
# port's actions are expected here without being listed; the tests below check which template
# condition turns each on.
_PORTS = json.loads((ROOT / "crates" / "cmkguard-core" / "src" / "iam.json").read_text())["ports"]


def _port_actions(role: str) -> set[str]:
    return {action for port in _PORTS.values() if role in port["roles"] for action in port["actions"]}


GUARD_ACTIONS = _port_actions("guard") | {
    # Not a port's: the function's own plumbing, and the member role it assumes.
    "sqs:SendMessage",  # Lambda's dead-letter queue, sent with the function's role
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sts:AssumeRole",  # only with AssumeRoleName set, see below
}
MEMBER_ACTIONS = _port_actions("member")
# The one Security Hub grant (CONTRACT.md "Findings in Security Hub"): the account's own
# default product, in every region (like the secretsmanager grants: the secret's region).
SECURITY_HUB_RESOURCE = {"Fn::Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"}
# CONTRACT.md "Tags written on secrets": every tag key the engine declares
# (crates/cmkguard-core/src/tags.rs), read from the source so a new tag is expected here too.
GUARD_TAG_KEYS = set(
    re.findall(
        r': &str = "(cmkguard:[a-z-]+)";',
        (ROOT / "crates" / "cmkguard-core" / "src" / "tags.rs").read_text(),
    )
)
assert GUARD_TAG_KEYS >= {"cmkguard:status", "cmkguard:reason"}, GUARD_TAG_KEYS

ROLES = [("guard.yaml", "GuardRole", GUARD_ACTIONS), ("member.yaml", "MemberRole", MEMBER_ACTIONS)]


def documents_of(template_name: str, role: str):
    return list(role_policy_documents(load_template(template_name), role))


@pytest.mark.parametrize(("template_name", "role", "_expected"), ROLES)
def test_role_can_never_read_a_secret_value(template_name, role, _expected):
    documents = documents_of(template_name, role)
    assert documents, f"{role} has no policy at all?"
    for where, _condition, document in documents:
        assert document, f"{where}: a managed policy is not reviewable here; use an inline policy"
        for statement in statements(document):
            assert "NotAction" not in statement, f"{where}: NotAction allows everything else"
            if statement.get("Effect") != "Allow":
                continue
            for action in as_list(statement.get("Action")):
                assert "*" not in action and "?" not in action, f"{where}: wildcard action {action}"
                for forbidden in FORBIDDEN_ACTIONS:
                    assert not action_covers(action, forbidden), f"{where}: {action} covers {forbidden}"
                    assert action.lower() != forbidden.lower(), f"{where}: {action}"


@pytest.mark.parametrize(("template_name", "role", "expected"), ROLES)
def test_role_has_exactly_the_calls_the_guard_makes(template_name, role, expected):
    documents = documents_of(template_name, role)
    granted = {a for _, a in iter_allowed_actions(d for _, _, d in documents)}
    assert granted == expected


@pytest.mark.parametrize(("template_name", "role", "_expected"), ROLES)
def test_tags_only_the_guards_own_keys(template_name, role, _expected):
    for _where, _condition, document in documents_of(template_name, role):
        for statement in statements(document):
            actions = set(as_list(statement.get("Action")))
            if not actions & {"secretsmanager:TagResource", "secretsmanager:UntagResource"}:
                continue
            condition = statement.get("Condition", {})
            keys = set(as_list(condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys")))
            assert keys == GUARD_TAG_KEYS
            assert all(k.startswith("cmkguard:") for k in keys)
            # ForAllValues holds vacuously for a request without tags: require them.
            assert condition.get("Null", {}).get("aws:TagKeys") == "false"


@pytest.mark.parametrize(("template_name", "role"), [("guard.yaml", "GuardRole"), ("member.yaml", "MemberRole")])
def test_tagging_is_granted_whenever_an_action_writes_tags(template_name, role):
    # tag, notify (its record of what was notified) and remediate (the remediating and
    # remediated marks) all write the status mark. The member role cannot know the
    # guard's actions: it always may.
    policy_types = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy")
    extra = ("ActionsNone", "RemediationEnabled") if template_name == "guard.yaml" else ()
    checked = 0
    for variant in variants(template_name, policy_types, extra):
        if role not in variant.resources:
            continue
        writes_tags = template_name == "member.yaml" or not (
            variant.conditions["ActionsNone"] and not variant.conditions["RemediationEnabled"]
        )
        props = variant.resources[role]["Properties"]
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        # Policies attached by name (the rendered Ref of the role).
        documents += [
            r["Properties"]["PolicyDocument"]
            for r in variant.resources.values()
            if props["RoleName"] in r.get("Properties", {}).get("Roles", [])
        ]
        granted = {a for _, a in iter_allowed_actions(documents)}
        if writes_tags:
            assert {"secretsmanager:TagResource", "secretsmanager:UntagResource"} <= granted, variant.label
            checked += 1
    assert checked


@pytest.mark.parametrize(("template_name", "role"), [("guard.yaml", "GuardRole"), ("member.yaml", "MemberRole")])
def test_update_secret_only_when_remediation_is_enabled(template_name, role):
    template = load_template(template_name)
    assert template["Parameters"]["EnableRemediation"]["Default"] == "false"
    # The condition requires EnableRemediation=true (and may require more).
    condition = template["Conditions"]["RemediationEnabled"]
    assert condition == {"Fn::Equals": [{"Ref": "EnableRemediation"}, "true"]} or (
        "Fn::And" in condition and {"Fn::Equals": [{"Ref": "EnableRemediation"}, "true"]} in condition["Fn::And"]
    )
    found = False
    for where, resource_condition, document in role_policy_documents(template, role):
        for _statement, granted in iter_allowed_actions([document]):
            if granted == "secretsmanager:UpdateSecret":
                found = True
                assert resource_condition == "RemediationEnabled", f"{where} grants UpdateSecret without RemediationEnabled"
    assert found


@pytest.mark.parametrize(("template_name", "role"), [("guard.yaml", "GuardRole"), ("member.yaml", "MemberRole")])
def test_security_hub_import_only_when_enabled_and_only_into_the_own_default_product(template_name, role):
    template = load_template(template_name)
    parameter = template["Parameters"]["EnableSecurityHub"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("false", ["false", "true"])
    enabled = {"Fn::Equals": [{"Ref": "EnableSecurityHub"}, "true"]}
    condition = template["Conditions"]["SecurityHubEnabled"]
    assert condition == enabled or ("Fn::And" in condition and enabled in condition["Fn::And"])
    found = 0
    for where, resource_condition, document in role_policy_documents(template, role):
        for statement in statements(document):
            actions = as_list(statement.get("Action"))
            if not any(a.lower().startswith("securityhub:") for a in actions):
                continue
            found += 1
            assert resource_condition == "SecurityHubEnabled", f"{where} grants Security Hub without SecurityHubEnabled"
            assert statement["Effect"] == "Allow"
            assert actions == ["securityhub:BatchImportFindings"], f"{where}: {actions}"
            assert statement["Resource"] == SECURITY_HUB_RESOURCE, f"{where}: {statement['Resource']}"
            assert not {"NotAction", "NotResource"} & set(statement), where
    assert found == 1


IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy")


@pytest.mark.parametrize(("template_name", "role"), [("guard.yaml", "GuardRole"), ("member.yaml", "MemberRole")])
def test_security_hub_grant_as_iam_decides_it_in_every_variant(template_name, role):
    # Rendered for the account each template is deployed in (guard: its own, member: the
    # member account), every condition variant, the requests evaluated.
    checked = 0
    for variant in variants(template_name, IAM_TYPES, ("SecurityHubEnabled",)):
        account = variant.account
        other = ACCOUNT if account == MEMBER_ACCOUNT else MEMBER_ACCOUNT
        documents = rendered_role_documents(variant.resources, role)
        # Every identity policy of the stack, any role's: only the guard's role grants it.
        everywhere = [
            d
            for r in variant.resources.values()
            for d in [r["Properties"].get("PolicyDocument")] + [p["PolicyDocument"] for p in r["Properties"].get("Policies", [])]
            if d is not None
        ]
        granting = [s for d in everywhere for s in statements(d) if any("securityhub" in a.lower() for a in as_list(s.get("Action")))]
        assert bool(granting) == variant.conditions["SecurityHubEnabled"], variant.label
        assert all(any(s in statements(d) for d in documents) for s in granting), variant.label
        for statement in granting:
            assert statement["Resource"] == security_hub_product_arn(account), variant.label

        def allowed(action: str, resource: str) -> bool:
            return iam_allows(documents, Request(role_arn("cmkguard", account), action, resource))

        own = [security_hub_product_arn(account, region) for region in (REGION, "eu-west-1", "ap-southeast-2")]
        assert all(allowed("securityhub:BatchImportFindings", arn) for arn in own) is variant.conditions["SecurityHubEnabled"]
        for resource in (
            security_hub_product_arn(other, REGION),  # another account's default product
            security_hub_product_arn(account, REGION, product_account=other),  # as another account's product
            security_hub_product_arn(account, REGION, product_account="aws", product="guardduty"),  # as an AWS service
            f"arn:aws:securityhub:{REGION}:{account}:hub/default",
            "*",
        ):
            assert not allowed("securityhub:BatchImportFindings", resource), (variant.label, resource)
        for action in (
            "securityhub:BatchUpdateFindings",
            "securityhub:UpdateFindings",
            "securityhub:GetFindings",
            "securityhub:DisableSecurityHub",
            "securityhub:EnableImportFindingsForProduct",
        ):
            assert not allowed(action, own[0]), (variant.label, action)
        checked += variant.conditions["SecurityHubEnabled"]
    assert checked


@pytest.mark.parametrize(("template_name", "role"), [("guard.yaml", "GuardRole"), ("member.yaml", "MemberRole")])
def test_rotation_grants_as_iam_decides_them_in_every_variant(template_name, role):
    # Action rotate: RotateSecret with the secret's own rotation configuration only, and the
    # lambda:InvokeFunction AWS requires with it, on the role's own account only; nothing
    # without EnableRotation=true.
    template = load_template(template_name)
    parameter = template["Parameters"]["EnableRotation"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("false", ["false", "true"])
    seen = set()
    for variant in variants(template_name, IAM_TYPES, ("RotationEnabled",)):
        if role not in variant.resources:
            continue
        account = variant.account
        other = ACCOUNT if account == MEMBER_ACCOUNT else MEMBER_ACCOUNT
        documents = rendered_role_documents(variant.resources, role)
        on = variant.conditions["RotationEnabled"]

        def allowed(action: str, resource: str, context: dict | None = None) -> bool:
            return iam_allows(documents, Request(role_arn("cmkguard", account), action, resource, context or {}))

        secret = f"arn:aws:secretsmanager:{REGION}:{account}:secret:app-AbCdEf"
        function = f"arn:aws:lambda:{REGION}:{account}:function:SecretsManagerRotation-app"
        # The guard's own request: the secret's id alone (RotateImmediately at its default).
        assert allowed("secretsmanager:RotateSecret", secret) is on, variant.label
        assert allowed("secretsmanager:RotateSecret", secret, {"secretsmanager:ModifyRotationRules": False}) is on
        assert allowed("secretsmanager:RotateSecret", secret.replace(REGION, "eu-west-1")) is on, variant.label
        assert allowed("lambda:InvokeFunction", function) is on, variant.label
        assert allowed("lambda:InvokeFunction", function.replace(REGION, "eu-west-1")) is on, variant.label
        # Never a new rotation function, an external rotation role or new rules; never another account.
        for context in (
            {"secretsmanager:RotationLambdaARN": f"arn:aws:lambda:{REGION}:{account}:function:someone-elses"},
            {"secretsmanager:ExternalSecretRotationRoleArn": f"arn:aws:iam::{account}:role/rotation"},
            {"secretsmanager:ModifyRotationRules": True},
        ):
            assert not allowed("secretsmanager:RotateSecret", secret, context), (variant.label, context)
        assert not allowed("secretsmanager:RotateSecret", secret.replace(f":{account}:", f":{other}:")), variant.label
        assert not allowed("lambda:InvokeFunction", function.replace(f":{account}:", f":{other}:")), variant.label
        for action in ("secretsmanager:CancelRotateSecret", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue"):
            assert not allowed(action, secret), (variant.label, action)
        for action in ("lambda:UpdateFunctionCode", "lambda:GetFunction", "lambda:InvokeAsync"):
            assert not allowed(action, function), (variant.label, action)
        seen.add(on)
    assert seen == {True, False}


def _contract_actions() -> set[str] | None:
    contract = ROOT.parent / "shared" / "CONTRACT.md"
    if not contract.exists():
        return None
    [row] = re.findall(r"^\| `CMKGUARD_ACTIONS` \|([^|]*)\|", contract.read_text(), re.MULTILINE)
    return set(re.findall(r"`([a-z]+)`", row))


def test_every_action_of_the_contract_can_be_configured():
    template = load_template("guard.yaml")
    configurable = {a for v in template["Parameters"]["Actions"]["AllowedValues"] for a in v.split(",")}
    configurable |= {"remediate", "rotate", "securityhub"}  # EnableRemediation, EnableRotation, EnableSecurityHub
    contract = _contract_actions()
    assert configurable == (contract if contract is not None else {"none", "tag", "notify", "remediate", "rotate", "securityhub"})


def test_actions_variable_in_every_variant():
    # CMKGUARD_ACTIONS is Actions, then remediate, rotate and securityhub as their parameters
    # say; none only when nothing is on.
    actions = "tag,notify"  # cfntools.FULL_PARAMETERS, what the variants are rendered with
    contract = _contract_actions()
    seen = set()
    extra = ("ActionsNone", "RemediationEnabled", "RotationEnabled", "SecurityHubEnabled")
    for variant in variants("guard.yaml", ("AWS::Lambda::Function",), extra):
        c = variant.conditions
        expected = ([] if c["ActionsNone"] else actions.split(",")) + ["remediate"] * c["RemediationEnabled"]
        expected += ["rotate"] * c["RotationEnabled"] + ["securityhub"] * c["SecurityHubEnabled"]
        value = variant.resources["Function"]["Properties"]["Environment"]["Variables"]["CMKGUARD_ACTIONS"]
        assert value == (",".join(expected) or "none"), variant.label
        if contract is not None:
            assert set(value.split(",")) <= contract, value
        seen.add(value)
    assert len(seen) == 16


def test_guard_assumes_only_the_member_role_and_only_when_named():
    template = load_template("guard.yaml")
    for where, resource_condition, document in role_policy_documents(template, "GuardRole"):
        for statement, granted in iter_allowed_actions([document]):
            if granted == "sts:AssumeRole":
                assert resource_condition == "HasAssumeRoleName", where
                assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${AssumeRoleName}"}


def test_member_role_trusts_only_the_guard_of_the_organization():
    template = load_template("member.yaml")
    trust = template["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]
    [statement] = statements(trust)
    assert statement["Principal"] == {"AWS": {"Ref": "GuardRoleArn"}}
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}


def test_function_configuration():
    template = load_template("guard.yaml")
    fn = template["Resources"]["Function"]["Properties"]
    assert fn["Runtime"] == "provided.al2023"
    assert fn["Architectures"] == ["arm64"]  # moto does not keep it: checked here
    assert fn["Handler"] == "bootstrap"
    assert fn["Timeout"] == 300
    assert fn["DeadLetterConfig"] == {"TargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    assert fn["LoggingConfig"] == {"LogFormat": "JSON", "LogGroup": {"Ref": "LogGroup"}}
    # `aws cloudformation package` resolves Code relative to the template: it must be
    # where `cargo lambda build --output-format zip` puts the zip.
    assert (CFN_DIR / fn["Code"]).resolve() == ROOT / "target" / "lambda" / "cmkguard-lambda" / "bootstrap.zip"
    log_group = template["Resources"]["LogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert log_group["KmsKeyId"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]}


def test_environment_mirrors_the_contract_variables():
    contract = (ROOT.parent / "shared" / "CONTRACT.md") if (ROOT.parent / "shared" / "CONTRACT.md").exists() else None
    table = {
        "CMKGUARD_ACTIONS",
        "CMKGUARD_REMEDIATE_ACCOUNTS",
        "CMKGUARD_KEY_ALIAS",
        "CMKGUARD_ALLOWED_KEY_ARNS",
        "CMKGUARD_EXEMPT_TAG",
        "CMKGUARD_SNS_TOPIC_ARN",
        "CMKGUARD_DRY_RUN",
        "CMKGUARD_ASSUME_ROLE_NAME",
        "CMKGUARD_AWS_ATTEMPT_TIMEOUT_MS",
        "CMKGUARD_RETRY_BUDGET_MS",
        "CMKGUARD_SWEEP_ACCOUNTS",
    }
    # Described in sections of their own ("Finishing a move", "Key policy review"), with a
    # template parameter.
    sections = {"CMKGUARD_CHECK_VERSIONS", "CMKGUARD_KEY_POLICY"}
    if contract is not None:
        text = contract.read_text()
        # The rows of the contract's configuration table (tuning knobs mentioned in prose are not mirrored).
        assert set(re.findall(r"^\| `(CMKGUARD_[A-Z_]+)`", text, re.MULTILINE)) == table
        assert all(f"`{v}`" in text for v in sections), sections
    template = load_template("guard.yaml")
    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert set(variables) == table | sections


def test_check_versions_only_sets_the_variable_and_the_version_listing_is_always_granted():
    # CheckVersions sets CMKGUARD_CHECK_VERSIONS and nothing else: the guard reads the
    # versions' CreatedDate when a moved secret's AWSCURRENT is not the version it moved
    # (a new version finishes the move, an older one moved back does not), with any
    # CheckVersions, so both roles may always list the versions of their own account's
    # secrets (in every region), never another account's, never a value.
    template = load_template("guard.yaml")
    parameter = template["Parameters"]["CheckVersions"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("false", ["false", "true"])
    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["CMKGUARD_CHECK_VERSIONS"] == {"Ref": "CheckVersions"}
    assert "CheckVersions" not in load_template("member.yaml")["Parameters"]
    for template_name in ("guard.yaml", "member.yaml"):
        conditions = load_template(template_name)["Conditions"]
        assert not any("CheckVersions" in c for c in conditions), template_name
    for template_name, role, policy in (("guard.yaml", "GuardRole", "GuardPolicy"), ("member.yaml", "MemberRole", "MemberRole")):
        # Unconditional: in the role's base policy, which exists whenever the role does.
        resources = load_template(template_name)["Resources"]
        assert resources[policy].get("Condition") == resources[role].get("Condition"), (template_name, policy)
    for variant, allowed in role_variants():
        account = variant.account
        own = f"arn:aws:secretsmanager:{REGION}:{account}:secret:app-AbCdEf"
        other = ACCOUNT if account == MEMBER_ACCOUNT else MEMBER_ACCOUNT
        assert allowed("secretsmanager:ListSecretVersionIds", own), variant.label
        assert allowed("secretsmanager:ListSecretVersionIds", own.replace(REGION, "eu-west-1")), variant.label
        assert not allowed("secretsmanager:ListSecretVersionIds", own.replace(f":{account}:", f":{other}:")), variant.label
        assert not allowed("secretsmanager:GetSecretValue", own), variant.label


def role_variants():
    """Each condition variant of the guard's and the member's role that renders the role, with
    whether its identity policies allow an action on a resource; fails unless both templates
    gave at least one."""
    seen = set()
    for template_name, role in (("guard.yaml", "GuardRole"), ("member.yaml", "MemberRole")):
        for variant in variants(template_name, IAM_TYPES):
            if role not in variant.resources:
                continue
            documents = rendered_role_documents(variant.resources, role)

            def allowed(action: str, resource: str, documents=documents, account=variant.account) -> bool:
                return iam_allows(documents, Request(role_arn("cmkguard", account), action, resource))

            yield variant, allowed
            seen.add(template_name)
    assert seen == {"guard.yaml", "member.yaml"}


def test_key_policy_review_only_sets_the_variable_and_the_key_policy_reading_is_always_granted():
    # KeyPolicyReview sets CMKGUARD_KEY_POLICY (CONTRACT.md "Key policy review": off,
    # report or enforce, default report) and nothing else: both roles may always read a
    # key's policy and grants (iam.json ReadKeyPolicy, no `when`), and never change them.
    template = load_template("guard.yaml")
    parameter = template["Parameters"]["KeyPolicyReview"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("report", ["enforce", "off", "report"])
    contract = ROOT.parent / "shared" / "CONTRACT.md"
    if contract.exists():
        [line] = [t for t in contract.read_text().splitlines() if "`CMKGUARD_KEY_POLICY` (" in t]
        assert set(re.findall(r"`(off|report|enforce)`", line)) == set(parameter["AllowedValues"]), line
        assert "default `report`" in line, line
    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["CMKGUARD_KEY_POLICY"] == {"Ref": "KeyPolicyReview"}
    assert "KeyPolicyReview" not in load_template("member.yaml")["Parameters"]
    assert "KeyPolicyReview" in {
        p for g in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"] for p in g["Parameters"]
    }
    assert not any("KeyPolicyReview" in json.dumps(c) for c in template["Conditions"].values())
    for value in ("off", "report", "enforce"):
        assert parameter_violations(template, {"KeyPolicyReview": value}) == [], value
    for value in ("", "on", "Report", "true"):
        assert parameter_violations(template, {"KeyPolicyReview": value}) == ["KeyPolicyReview"], value
    for variant, allowed in role_variants():
        account = variant.account
        key = f"arn:aws:kms:{REGION}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        for action in ("kms:GetKeyPolicy", "kms:ListGrants"):
            assert allowed(action, key), (variant.label, action)
            # Any key a secret may use, as for DescribeKey (a shared key of another account).
            assert allowed(action, key.replace(f":{account}:", ":999999999999:")), (variant.label, action)
            # Keys only: not an alias.
            assert not allowed(action, f"arn:aws:kms:{REGION}:{account}:alias/cmkguard/secrets"), variant.label
        for action in (
            "kms:PutKeyPolicy",
            "kms:CreateGrant",
            "kms:RevokeGrant",
            "kms:RetireGrant",
            "kms:ListRetirableGrants",
            "kms:Decrypt",
        ):
            assert not allowed(action, key), (variant.label, action)


def test_alarms_watch_errors_and_the_dead_letter_queue():
    resources = load_template("guard.yaml")["Resources"]
    alarms = {r["Properties"]["MetricName"]: r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == {
        "Errors",
        "ApproximateNumberOfMessagesVisible",
        "decisions.error",
        "actions.remediate.failed",
        "actions.rotate.failed",
        "actions.securityhub.failed",
    }
    assert alarms["Errors"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "Function"}}]
    assert alarms["ApproximateNumberOfMessagesVisible"]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    # The guard's own EMF metrics (crates/cmkguard-lambda/src/metrics.rs), aggregated without dimensions.
    for name in ("decisions.error", "actions.remediate.failed", "actions.rotate.failed", "actions.securityhub.failed"):
        assert alarms[name]["Namespace"] == "cmkguard"
        assert "Dimensions" not in alarms[name]
    # Security Hub and rotation failures are watched where the action is on.
    conditional = {
        r["Properties"]["MetricName"]: r.get("Condition") for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert conditional["actions.securityhub.failed"] == "SecurityHubEnabled"
    assert conditional["actions.rotate.failed"] == "RotationEnabled"
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": "Topic"}]
        assert alarm["Threshold"] == 1


def test_trail_and_its_bucket():
    template = load_template("guard.yaml")
    resources = template["Resources"]
    trail = resources["Trail"]
    assert trail["Condition"] == "CreateTrailCondition"
    props = trail["Properties"]
    assert props["IsMultiRegionTrail"] is True and props["EnableLogFileValidation"] is True
    assert props["IsLogging"] is True and props["KMSKeyId"] == {"Fn::GetAtt": ["OperationsKey", "Arn"]}
    assert props["EventSelectors"] == [{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": True}]
    bucket = resources["TrailBucket"]["Properties"]
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    deny = [s for s in statements(resources["TrailBucketPolicy"]["Properties"]["PolicyDocument"]) if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_async_retries_end_in_the_dead_letter_queue():
    resources = load_template("guard.yaml")["Resources"]
    config = resources["FunctionInvokeConfig"]["Properties"]
    assert config["FunctionName"] == {"Ref": "Function"} and config["MaximumRetryAttempts"] == 2
    rules = [lid for lid, r in resources.items() if r["Type"] == "AWS::Events::Rule"]
    assert sorted(rules) == sorted([*CLOUDTRAIL_RULES["guard.yaml"], "SweepScheduleRule"])
    for rule in rules:
        [target] = resources[rule]["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": ["Function", "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}}
    # The CloudTrail rules retry alike.
    retries = [resources[rule]["Properties"]["Targets"][0]["RetryPolicy"] for rule in CLOUDTRAIL_RULES["guard.yaml"]]
    assert retries[0] == {"MaximumRetryAttempts": 20, "MaximumEventAgeInSeconds": 21600}
    assert all(r == retries[0] for r in retries), retries
    queue_policy = resources["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]
    [statement] = statements(queue_policy)
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        {"Fn::GetAtt": ["SecretsManagerEventsRule", "Arn"]},
        {"Fn::GetAtt": ["SecretsManagerServiceEventsRule", "Arn"]},
        {"Fn::GetAtt": ["KmsKeyEventsRule", "Arn"]},
        {"Fn::GetAtt": ["SweepScheduleRule", "Arn"]},
    ]


def test_every_rule_may_invoke_the_function_and_nothing_else_may():
    # One permission per rule, for that rule of this account only.
    resources = load_template("guard.yaml")["Resources"]
    rules = sorted(lid for lid, r in resources.items() if r["Type"] == "AWS::Events::Rule")
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert sorted(p["SourceArn"]["Fn::GetAtt"][0] for p in permissions) == rules
    for permission in permissions:
        assert permission["FunctionName"] == {"Ref": "Function"}
        assert (permission["Action"], permission["Principal"]) == ("lambda:InvokeFunction", "events.amazonaws.com")
        assert permission["SourceArn"]["Fn::GetAtt"][1] == "Arn"
        assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_bus_policy_admits_only_the_organization():
    resources = load_template("guard.yaml")["Resources"]
    policy = resources["OrganizationEventBusPolicy"]
    assert policy["Condition"] == "HasOrganizationId"
    statement = policy["Properties"]["Statement"]
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}


@pytest.mark.parametrize("template_name", sorted(CLOUDTRAIL_RULES))
def test_cloudtrail_rules_take_exactly_the_contract_calls(template_name):
    # CONTRACT.md "Inputs of the Lambda": the Secrets Manager calls, its RotationSucceeded
    # service event and the four key events, successful ones only, and nothing else
    # (test_event_pattern.py sends events).
    resources = load_template(template_name)["Resources"]
    patterns = {lid: r["Properties"]["EventPattern"] for lid, r in resources.items() if "EventPattern" in r.get("Properties", {})}
    assert set(patterns) == set(CLOUDTRAIL_RULES[template_name])
    for rule, (source, detail_type, event_source, names) in CLOUDTRAIL_RULES[template_name].items():
        assert patterns[rule] == {
            "source": [source],
            "detail-type": [detail_type],
            "detail": {"eventSource": [event_source], "eventName": list(names), "errorCode": [{"exists": False}]},
        }, rule
    names = [n for *_, rule_names in CLOUDTRAIL_RULES[template_name].values() for n in rule_names]
    assert sorted(names) == sorted(HANDLED_EVENT_NAMES + HANDLED_SERVICE_EVENT_NAMES + HANDLED_KMS_EVENT_NAMES)


def test_member_forwards_exactly_what_the_guard_handles():
    guard = load_template("guard.yaml")["Resources"]
    member = load_template("member.yaml")["Resources"]
    for guard_rule, member_rule in (
        ("SecretsManagerEventsRule", "ForwardSecretsManagerEventsRule"),
        ("SecretsManagerServiceEventsRule", "ForwardSecretsManagerServiceEventsRule"),
        ("KmsKeyEventsRule", "ForwardKmsKeyEventsRule"),
    ):
        assert member[member_rule]["Properties"]["EventPattern"] == guard[guard_rule]["Properties"]["EventPattern"]
        # Forwarded with the one forwarder role, to the guard's bus, and never to its own.
        assert member[member_rule]["Condition"] == "ForwardEventsCondition"
        [target] = member[member_rule]["Properties"]["Targets"]
        assert target["Arn"] == {"Ref": "GuardEventBusArn"}
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwarderRole", "Arn"]}
    assert guard["SecretsManagerEventsRule"]["Properties"]["EventPattern"]["detail"]["eventName"] == list(HANDLED_EVENT_NAMES)
    assert guard["KmsKeyEventsRule"]["Properties"]["EventPattern"]["detail"]["eventName"] == list(HANDLED_KMS_EVENT_NAMES)
    service_events = guard["SecretsManagerServiceEventsRule"]["Properties"]["EventPattern"]["detail"]["eventName"]
    assert service_events == list(HANDLED_SERVICE_EVENT_NAMES)


@pytest.mark.parametrize("template_name", TEMPLATES)
def test_every_suppression_is_justified(template_name):
    template = load_template(template_name)
    text = (CFN_DIR / template_name).read_text().splitlines()
    for logical_id, resource in template["Resources"].items():
        metadata = resource.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "").split()) >= 5, f"{logical_id}: checkov {skip['id']} without a reason"
        for check in metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", []):
            [line] = [i for i, t in enumerate(text) if t.strip() == f"- {check}"]
            assert text[line - 1].strip().startswith("#"), f"{logical_id}: cfn-lint {check} without a reason above it"
    assert "cfn-lint" not in template.get("Metadata", {}), "template-wide suppressions hide too much"


# ------------------------------------------------------------------ the sweep's accounts
# CONTRACT.md CMKGUARD_SWEEP_ACCOUNTS: empty (this account), a comma list of account ids, or
# organization. A sweep of several accounts keeps its place in one SSM parameter.
SWEEP_CURSOR = "arn:aws:ssm:{region}:{account}:parameter/cmkguard/sweep-cursor"
SWEEP_CURSOR_RESOURCE = {"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/cmkguard/sweep-cursor"}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("organization", True),
        ("111111111111", True),
        ("111111111111,222222222222", True),
        ("111111111111,222222222222,333333333333", True),
        ("Organization", False),
        ("organizations", False),
        ("org", False),
        ("*", False),
        ("all", False),
        ("organization,111111111111", False),
        ("11111111111", False),
        ("1111111111111", False),
        ("11111111111a", False),
        ("111111111111,", False),
        (",111111111111", False),
        ("111111111111,,222222222222", False),
        ("111111111111, 222222222222", False),
        ("111111111111;222222222222", False),
        (" 111111111111", False),
        ("111111111111\n", False),
    ],
)
def test_sweep_accounts_pattern(value, accepted):
    template = load_template("guard.yaml")
    assert template["Parameters"]["SweepAccounts"]["Default"] == ""
    violations = parameter_violations(template, {"SweepAccounts": value, "AssumeRoleName": "cmkguard-member"})
    assert ("SweepAccounts" not in violations) is accepted, violations


@pytest.mark.parametrize("value", ["organization", "111111111111", ACCOUNT, f"{ACCOUNT},{MEMBER_ACCOUNT}"])
def test_sweep_accounts_need_the_member_role(value):
    # A Rule cannot split the list: this account alone (ACCOUNT) needs AssumeRoleName too
    # (cloudformation/README.md says so).
    template = load_template("guard.yaml")
    [refused] = parameter_violations(template, {"SweepAccounts": value})
    assert "SweepAccounts" in refused and "AssumeRoleName" in refused, refused
    assert parameter_violations(template, {"SweepAccounts": value, "AssumeRoleName": "cmkguard-member"}) == []
    assert parameter_violations(template, {"SweepAccounts": value, "AssumeRoleName": ""}) == [refused]


def test_rules_pass_the_defaults_and_everything_on():
    for name in TEMPLATES:
        required = {k: v for k, v in FULL_PARAMETERS[name].items() if "Default" not in load_template(name)["Parameters"][k]}
        assert parameter_violations(load_template(name), required) == [], name
        assert parameter_violations(load_template(name), FULL_PARAMETERS[name]) == [], name
    # And the remediation rule still refuses what it did; rotate, like remediate, needs the accounts.
    [refused] = parameter_violations(load_template("guard.yaml"), {"EnableRemediation": "true"})
    assert "RemediateAccounts" in refused
    [refused] = parameter_violations(load_template("guard.yaml"), {"EnableRotation": "true"})
    assert "EnableRotation" in refused and "RemediateAccounts" in refused
    assert parameter_violations(load_template("guard.yaml"), {"EnableRotation": "true", "RemediateAccounts": "*"}) == []


def test_sweep_accounts_reach_the_function_only_when_set():
    template = load_template("guard.yaml")
    assert template["Conditions"]["HasSweepAccounts"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SweepAccounts"}, ""]}]}
    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["CMKGUARD_SWEEP_ACCOUNTS"] == {"Fn::If": ["HasSweepAccounts", {"Ref": "SweepAccounts"}, {"Ref": "AWS::NoValue"}]}
    seen = set()
    for variant in variants("guard.yaml", ("AWS::Lambda::Function",), ("HasSweepAccounts",)):
        rendered = variant.resources["Function"]["Properties"]["Environment"]["Variables"]
        assert ("CMKGUARD_SWEEP_ACCOUNTS" in rendered) is variant.conditions["HasSweepAccounts"], variant.label
        seen.add(variant.conditions["HasSweepAccounts"])
    assert seen == {True, False}
    # Next to the sweep schedule in the console.
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    [when] = [g["Parameters"] for g in groups if "SweepSchedule" in g["Parameters"]]
    assert when.index("SweepAccounts") == when.index("SweepSchedule") + 1


def test_sweep_grants_only_under_their_conditions():
    # From the template: where the SSM and Organizations grants are, and on what.
    template = load_template("guard.yaml")
    assert template["Conditions"]["SweepOrganization"] == {"Fn::Equals": [{"Ref": "SweepAccounts"}, "organization"]}
    found = set()
    for where, resource_condition, document in role_policy_documents(template, "GuardRole"):
        for statement in statements(document):
            actions = as_list(statement.get("Action"))
            if any(a.lower().startswith("ssm:") for a in actions):
                found.add("ssm")
                assert resource_condition == "HasSweepAccounts", where
                assert sorted(actions) == ["ssm:GetParameter", "ssm:PutParameter"], where
                assert statement["Resource"] == SWEEP_CURSOR_RESOURCE, where
                assert "Condition" not in statement and statement["Effect"] == "Allow", where
            if any(a.lower().startswith("organizations:") for a in actions):
                found.add("organizations")
                assert resource_condition == "SweepOrganization", where
                # ListAccounts has no resource-level permissions.
                assert (actions, statement["Resource"]) == (["organizations:ListAccounts"], "*"), where
    assert found == {"ssm", "organizations"}


def test_sweep_permissions_as_iam_decides_them_in_every_variant():
    checked = set()
    for variant in variants("guard.yaml", IAM_TYPES, ("HasSweepAccounts", "SweepOrganization")):
        sweep, organization = variant.conditions["HasSweepAccounts"], variant.conditions["SweepOrganization"]
        assert sweep or not organization, variant.label  # organization is a value of SweepAccounts
        documents = rendered_role_documents(variant.resources, "GuardRole")
        guard = role_arn(f"cmkguard-guard-{REGION}")

        def allowed(action: str, resource: str) -> bool:
            return iam_allows(documents, Request(guard, action, resource))

        cursor = SWEEP_CURSOR.format(region=REGION, account=ACCOUNT)
        assert allowed("organizations:ListAccounts", "*") is organization, variant.label
        for action in ("ssm:GetParameter", "ssm:PutParameter"):
            assert allowed(action, cursor) is sweep, (variant.label, action)
            for other in (
                f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cmkguard/other",
                f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cmkguard/sweep-cursor-2",
                f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/cmkguard/sweep-cursor/x",
                f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/app/database-password",
                SWEEP_CURSOR.format(region="eu-west-1", account=ACCOUNT),
                SWEEP_CURSOR.format(region=REGION, account=MEMBER_ACCOUNT),
                "*",
            ):
                assert not allowed(action, other), (variant.label, action, other)
        for action in (
            "ssm:GetParameters",
            "ssm:GetParametersByPath",
            "ssm:GetParameterHistory",
            "ssm:DeleteParameter",
            "ssm:AddTagsToResource",
            "ssm:LabelParameterVersion",
        ):
            assert not allowed(action, cursor), (variant.label, action)
        for action in (
            "organizations:DescribeOrganization",
            "organizations:DescribeAccount",
            "organizations:ListAccountsForParent",
            "organizations:ListRoots",
        ):
            assert not allowed(action, "*"), (variant.label, action)
        secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app-AbCdEf"
        assert not allowed("secretsmanager:GetSecretValue", secret), variant.label
        checked.add((sweep, organization))
    assert checked == {(False, False), (True, False), (True, True)}
