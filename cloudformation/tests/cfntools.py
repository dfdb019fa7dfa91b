"""Helpers shared by the template tests, cloudformation/check and render_variants.py.

Templates are read with cfn-lint's own loader, which understands the short tags
(!Ref, !Sub, !GetAtt, ...) and returns the long form ({"Ref": ...}, {"Fn::Sub": ...}),
as CloudFormation itself sees the template.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
CFN_DIR = ROOT / "cloudformation"
TEMPLATES = ("key.yaml", "guard.yaml", "member.yaml")

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account: the guard's account in the tests
MEMBER_ACCOUNT = "222233334444"
EXTERNAL_ACCOUNT = "111122223333"
ORG_ID = "o-cmkguardtest"

# CONTRACT.md "Inputs of the Lambda": the events the engine handles, read from its one list of
# each (crates/cmkguard-core/src/event.rs), so that a new event is expected in the templates
# without being listed twice.
EVENT_RS = ROOT / "crates" / "cmkguard-core" / "src" / "event.rs"


def _engine_list(name: str) -> tuple[str, ...]:
    """The string array `pub const NAME: [&str; N] = [...]` of event.rs."""
    text = EVENT_RS.read_text(encoding="utf-8")
    found = re.search(rf"pub const {name}: \[&str; (\d+)\] = \[(.*?)\];", text, re.S)
    if found is None:
        raise AssertionError(f"no `{name}` in {EVENT_RS}")
    names = tuple(re.findall(r'"([^"]+)"', found.group(2)))
    if len(names) != int(found.group(1)):
        raise AssertionError(f"`{name}` in {EVENT_RS}: {len(names)} names for {found.group(1)}")
    return names


# The Secrets Manager calls that set or change a secret's key, then those that give it a new
# version or move its labels.
HANDLED_EVENT_NAMES = _engine_list("HANDLED_EVENTS")
# The Secrets Manager service events (no API call): a rotation that succeeded.
HANDLED_SERVICE_EVENT_NAMES = _engine_list("SERVICE_EVENTS")
# The key events (aws.kms, kms.amazonaws.com): the key state changes, then the changes of
# who may use the key, its policy and grants (CONTRACT.md "Key policy review").
HANDLED_KMS_EVENT_NAMES = _engine_list("KEY_EVENTS")
API_CALL = "AWS API Call via CloudTrail"
SERVICE_EVENT = "AWS Service Event via CloudTrail"
# The CloudTrail rules of each template, by what they take: (source, detail-type,
# eventSource, eventName list); test_templates.py checks the patterns against these.
_SECRETS_MANAGER = ("aws.secretsmanager", API_CALL, "secretsmanager.amazonaws.com", HANDLED_EVENT_NAMES)
_SECRETS_MANAGER_SERVICE = ("aws.secretsmanager", SERVICE_EVENT, "secretsmanager.amazonaws.com", HANDLED_SERVICE_EVENT_NAMES)
_KMS = ("aws.kms", API_CALL, "kms.amazonaws.com", HANDLED_KMS_EVENT_NAMES)
CLOUDTRAIL_RULES = {
    "guard.yaml": {
        "SecretsManagerEventsRule": _SECRETS_MANAGER,
        "SecretsManagerServiceEventsRule": _SECRETS_MANAGER_SERVICE,
        "KmsKeyEventsRule": _KMS,
    },
    "member.yaml": {
        "ForwardSecretsManagerEventsRule": _SECRETS_MANAGER,
        "ForwardSecretsManagerServiceEventsRule": _SECRETS_MANAGER_SERVICE,
        "ForwardKmsKeyEventsRule": _KMS,
    },
}


def role_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


# Parameters that turn every optional part of each template on. The moto tests create
# the stacks with them, and render_variants.py makes them the defaults of the copies that
# checkov scans (checkov only looks at resources whose Condition holds for the defaults).
FULL_PARAMETERS: dict[str, dict[str, str]] = {
    "key.yaml": {
        "KeyAdministratorArns": role_arn("key-admin"),
        "SecretReaderArns": f"{role_arn('app-a')},{role_arn('app-b')}",
        "RotationFunctionRoleArns": f"{role_arn('rotation-app-db')},{role_arn('rotation-app-api')}",
        "GuardRoleName": f"cmkguard-guard-{REGION}",
        "ExternalAccountIds": EXTERNAL_ACCOUNT,
    },
    "guard.yaml": {
        "Actions": "tag,notify",
        "EnableRemediation": "true",
        "EnableRotation": "true",
        "RemediateAccounts": MEMBER_ACCOUNT,
        "EnableSecurityHub": "true",
        "CheckVersions": "true",
        "KeyPolicyReview": "enforce",
        "AllowedKeyArns": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555",
        "DryRun": "true",
        "AssumeRoleName": "cmkguard-member",
        "OrganizationId": ORG_ID,
        "SweepAccounts": "organization",
        "CreateTrail": "true",
        "NotificationEmail": "security@example.com",
    },
    "member.yaml": {
        "GuardRoleArn": role_arn(f"cmkguard-guard-{REGION}"),
        "GuardEventBusArn": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
        "OrganizationId": ORG_ID,
        "MemberRoleRegion": REGION,
        "EnableRemediation": "true",
        "EnableRotation": "true",
        "EnableSecurityHub": "true",
        "ForwardEvents": "true",
    },
}


def security_hub_product_arn(account: str, region: str = "*", product_account: str | None = None, product: str = "default") -> str:
    """A Security Hub product ARN; by default the account's own default product (the one
    BatchImportFindings takes for findings the account makes itself), in any region."""
    return f"arn:aws:securityhub:{region}:{account}:product/{product_account or account}/{product}"


def load_template(name: str) -> dict[str, Any]:
    """The template as plain JSON data (long-form intrinsic functions)."""
    return json.loads(json.dumps(cfn_yaml.load(str(CFN_DIR / name))))


def _rule_value(node: Any, parameters: dict[str, str]) -> Any:
    if not isinstance(node, dict):
        return node
    [(function, argument)] = node.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Fn::Equals":
        a, b = (_rule_value(x, parameters) for x in argument)
        return str(a) == str(b)
    if function == "Fn::Not":
        return not _rule_value(argument[0], parameters)
    if function == "Fn::And":
        return all(_rule_value(x, parameters) for x in argument)
    if function == "Fn::Or":
        return any(_rule_value(x, parameters) for x in argument)
    if function == "Fn::Contains":
        values, value = (_rule_value(x, parameters) for x in argument)
        return value in values
    raise NotImplementedError(function)


def parameter_violations(template: dict[str, Any], given: dict[str, str]) -> list[str]:
    """What CloudFormation refuses before it creates anything, for these parameter values:
    an AllowedPattern or AllowedValues not met (parameter name), and each failed assertion
    of the Rules section (its AssertDescription). cfn-lint checks neither against given
    values, and moto checks neither at all."""
    parameters = {k: str(given.get(k, spec.get("Default", ""))) for k, spec in template.get("Parameters", {}).items()}
    violations = []
    for key, spec in template.get("Parameters", {}).items():
        pattern = spec.get("AllowedPattern")
        # CloudFormation matches the whole value (Java regex); the templates' patterns use
        # only what Python's re reads the same way.
        values = parameters[key].split(",") if spec["Type"] == "CommaDelimitedList" else [parameters[key]]
        if pattern is not None and any(re.fullmatch(pattern, v) is None for v in values):
            violations.append(key)
        elif "AllowedValues" in spec and parameters[key] not in [str(v) for v in spec["AllowedValues"]]:
            violations.append(key)
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], parameters):
            continue
        for assertion in rule["Assertions"]:
            if not _rule_value(assertion["Assert"], parameters):
                violations.append(assertion["AssertDescription"])
    return violations


def policy_document(value: Any) -> dict[str, Any]:
    """A policy document as an IAM API returns it. moto 5.2.5 returns the inline policies
    that its CloudFormation created as the Python text of a dict (single quotes), not JSON."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return ast.literal_eval(value)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    # moto keeps a conditional statement that resolved to AWS::NoValue as null in the
    # list; CloudFormation drops it. Either way it is no statement.
    return [s for s in as_list(document.get("Statement")) if s is not None]


def action_covers(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern (wildcards allowed) covers an action; IAM matches
    action names case-insensitively."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def role_policy_documents(template: dict[str, Any], role: str) -> Iterator[tuple[str, str | None, dict]]:
    """Every policy document a template gives the role with logical id `role`:
    (where, resource condition or None, document). Managed policies attached by ARN
    are reported with an empty document so that a test can refuse them."""
    resources = template["Resources"]
    props = resources[role].get("Properties", {})
    for policy in props.get("Policies", []):
        yield f"{role}.Policies.{policy['PolicyName']}", resources[role].get("Condition"), policy["PolicyDocument"]
    for arn in props.get("ManagedPolicyArns", []):
        yield f"{role}.ManagedPolicyArns {arn}", None, {}
    for logical_id, resource in resources.items():
        if resource["Type"] not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            continue
        rprops = resource.get("Properties", {})
        attached = rprops.get("Roles", []) + ([rprops["RoleName"]] if "RoleName" in rprops else [])
        if {"Ref": role} in attached:
            yield logical_id, resource.get("Condition"), rprops["PolicyDocument"]


def iter_allowed_actions(documents: Iterable[dict[str, Any]]) -> Iterator[tuple[dict, str]]:
    for document in documents:
        for statement in statements(document):
            if statement.get("Effect") == "Allow":
                for action in as_list(statement.get("Action")):
                    yield statement, action


# ------------------------------------------------------------------ event fixtures
EVENT_FIXTURE_DIRS = (ROOT / "testdata" / "events", CFN_DIR / "tests" / "fixtures")


def event_fixtures() -> list[Path]:
    return sorted(p for d in EVENT_FIXTURE_DIRS for p in d.glob("*.json"))


def classify_event(path: Path, event: Any) -> str:
    """What the guard makes of a fixture, by CONTRACT.md:
    "handled"   a successful CreateSecret/UpdateSecret/ReplicateSecretToRegions/RestoreSecret/
                PutSecretValue/RotateSecret/UpdateSecretVersionStage CloudTrail call from
                aws.secretsmanager, the RotationSucceeded service event of aws.secretsmanager,
                or a successful DisableKey/EnableKey/ScheduleKeyDeletion/CancelKeyDeletion/
                PutKeyPolicy/CreateGrant/RevokeGrant/RetireGrant call from aws.kms: one of
                the CloudTrail rules must deliver it;
    "ignored"   any other event (failed call with errorCode, other service, other call or
                service event, a call's name as a service event): no rule may deliver it;
    "scheduled" the sweep's Scheduled Event (files ScheduledEvent-*), delivered by the
                schedule rule, which has no pattern;
    "not-event" not an EventBridge event at all (input for the CLI's error handling): no
                bus ever carries it."""
    if path.name.startswith("ScheduledEvent"):
        return "scheduled"
    if not (
        isinstance(event, dict)
        and isinstance(event.get("source"), str)
        and isinstance(event.get("detail-type"), str)
        and isinstance(event.get("detail"), dict)
    ):
        return "not-event"
    detail = event["detail"]
    handled_events = {
        ("aws.secretsmanager", API_CALL, "secretsmanager.amazonaws.com"): HANDLED_EVENT_NAMES,
        ("aws.secretsmanager", SERVICE_EVENT, "secretsmanager.amazonaws.com"): HANDLED_SERVICE_EVENT_NAMES,
        ("aws.kms", API_CALL, "kms.amazonaws.com"): HANDLED_KMS_EVENT_NAMES,
    }
    event_source = detail.get("eventSource")
    handled = (
        isinstance(event_source, str)
        and detail.get("eventName") in handled_events.get((event["source"], event["detail-type"], event_source), ())
        and "errorCode" not in detail
    )
    return "handled" if handled else "ignored"


# KMS calls that change a key or its policy (administration), for the key policy tests.
KEY_ADMIN_ACTIONS = (
    "kms:PutKeyPolicy",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:DisableKey",
    "kms:EnableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKeyRotation",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:UpdateKeyDescription",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:RotateKeyOnDemand",
)
