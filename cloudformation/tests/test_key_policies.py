"""No back door, read from the templates in every condition variant (cfnrender):

- every KMS key the templates create: no wildcard action for the account without a
  condition; the account keeps the administrative actions; every cryptographic use granted
  to an account (through IAM) or to a named principal is bound to the services whose data the
  key protects (kms:ViaService, in the stack's region) and to the caller's account
  (kms:CallerAccount); the explicit Deny statements are still there;
- every grant of secretsmanager:UpdateSecret: only with a key named in the request, and
  only a key of the secret's own account (secretsmanager:KmsKeyArn).

The checkers return findings rather than assert, so that the tests at the end can show
that they catch the policies this replaced (kms:* for the account, an unbound UpdateSecret).
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

import pytest

from cfnrender import TEMPLATE_ACCOUNT, Variant, variants
from cfntools import (
    ACCOUNT,
    EXTERNAL_ACCOUNT,
    FULL_PARAMETERS,
    MEMBER_ACCOUNT,
    REGION,
    TEMPLATES,
    action_covers,
    as_list,
    load_template,
    role_arn,
    statements,
)
from policyeval import Request, account_of, iam_allows, kms_allows, principals

# The services whose data each key encrypts: the only ones through which the key may be
# used on behalf of a principal. A new key in a template must be added here.
KEY_SERVICES = {
    ("key.yaml", "SecretsKey"): ("secretsmanager",),
    # The topic (sns), the dead-letter queue (sqs), the trail's bucket (s3). The log group
    # and the trail have service principal statements of their own.
    ("guard.yaml", "OperationsKey"): ("sns", "sqs", "s3"),
}
# Deny statements each key's policy must keep, and the condition they depend on (None: always).
KEY_DENIES = {
    ("key.yaml", "SecretsKey"): {
        "DenyKeyUseByAdministrators": None,
        "DenyKeyAdministrationBySecretReaders": "HasSecretReaders",
        "DenyKeyAdministrationByRotationFunctions": "HasRotationFunctionRoles",
        "DenyKeyAdministrationByGuard": None,
        "DenyGrantsNotForAWSResources": None,
    },
    ("guard.yaml", "OperationsKey"): {},
}
# What uses a symmetric key or hands its use to someone else (a grant).
CRYPTO_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateMac",
    "kms:VerifyMac",
    "kms:CreateGrant",
)
# The key administrators' actions the account must keep, so that the key never becomes
# unmanageable (a key policy nobody may change cannot be repaired).
ROOT_ADMIN_ACTIONS = (
    "kms:PutKeyPolicy",
    "kms:GetKeyPolicy",
    "kms:DescribeKey",
    "kms:ListResourceTags",
    "kms:ListGrants",
    "kms:RevokeGrant",
    "kms:CreateAlias",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:GetKeyRotationStatus",
    "kms:RotateKeyOnDemand",
    "kms:UpdateKeyDescription",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
)
# What the guard and readers are denied, whatever IAM says: the administration that changes the key.
ADMIN_WRITE_ACTIONS = tuple(
    a for a in ROOT_ADMIN_ACTIONS if not a.startswith(("kms:Get", "kms:Describe", "kms:List")) and a != "kms:RevokeGrant"
)
SOME_SERVICES = ("secretsmanager", "sns", "sqs", "s3", "ec2", "rds", "lambda", "ssm", "dynamodb", "logs")
STRANGER = "999999999999"  # an account no parameter names
ALLOW_ALL_KMS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
SCOPING_KEYS = ("aws:sourceaccount", "aws:sourcearn", "kms:encryptioncontext:", "kms:viaservice", "kms:calleraccount")


def via(service: str, region: str = REGION) -> str:
    return f"{service}.{region}.amazonaws.com"


def key_arn(variant: Variant, key: str) -> str:
    return f"arn:aws:kms:{REGION}:{variant.account}:key/{key}"


def all_variants(types: tuple[str, ...]) -> list[Variant]:
    return [v for name in TEMPLATES for v in variants(name, types)]


KEY_VARIANTS = [(v, key) for v in all_variants(("AWS::KMS::Key",)) for key in v.resources]


def _equals(condition: dict, key: str) -> set[str]:
    """The values of a StringEquals test (exactly that operator: not Like, not IfExists)."""
    for name, values in condition.get("StringEquals", {}).items():
        if name.lower() == key:
            return {str(v) for v in as_list(values)}
    return set()


# ------------------------------------------------------------------ point 4: key policies
def key_policy_findings(template: str, key: str, policy: dict, account: str) -> list[str]:
    short_names = KEY_SERVICES[(template, key)]
    services = {via(s) for s in short_names}
    arn = f"arn:aws:kms:{REGION}:{account}:key/{key}"
    findings = []
    for statement in statements(policy):
        sid = statement.get("Sid", "(no Sid)")
        if statement["Effect"] != "Allow":
            continue
        for word in ("NotAction", "NotPrincipal", "NotResource"):
            if word in statement:
                findings.append(f"{sid}: an Allow with {word} allows whatever it does not name")
        aws, service_principals = principals(statement)
        actions = as_list(statement.get("Action"))
        condition = statement.get("Condition") or {}
        if aws and not condition and any(a.lower() in ("*", "kms:*") for a in actions):
            findings.append(f"{sid}: {actions} for {aws} without a condition")
        crypto = [c for c in CRYPTO_ACTIONS if any(action_covers(a, c) for a in actions)]
        if aws and crypto:
            bound_to = _equals(condition, "kms:viaservice")
            if not bound_to or not bound_to <= services:
                findings.append(f"{sid}: {crypto} for {aws} through {sorted(bound_to) or 'any way'}, not only {sorted(services)}")
            accounts = {account if p == "*" else account_of(p) for p in aws}
            callers = _equals(condition, "kms:calleraccount")
            if not callers or not callers <= accounts:
                findings.append(f"{sid}: {crypto} for {aws} not bound to kms:CallerAccount {sorted(accounts)}")
        if service_principals:
            keys = [k.lower() for tests in condition.values() for k in tests]
            if not any(k.startswith(s) for k in keys for s in SCOPING_KEYS):
                findings.append(f"{sid}: {service_principals} for any account's resources (no source or context condition)")

    # The same, as KMS decides: a role of the account that IAM allows kms:* ...
    app = role_arn("some-app", account)
    for action in CRYPTO_ACTIONS:
        for service in [None, *SOME_SERVICES]:
            context = {"kms:CallerAccount": account, **({"kms:ViaService": via(service)} if service else {})}
            if service in short_names:
                continue
            if kms_allows(policy, Request(app, action, arn, context), [ALLOW_ALL_KMS]):
                findings.append(f"a role granted kms:* in IAM may {action} " + (f"through {service}" if service else "directly"))
        for service in short_names:
            elsewhere = {"kms:CallerAccount": account, "kms:ViaService": via(service, "eu-west-3")}
            if kms_allows(policy, Request(app, action, arn, elsewhere), [ALLOW_ALL_KMS]):
                findings.append(f"a role granted kms:* in IAM may {action} through {service} of another region")
            stranger = {"kms:CallerAccount": STRANGER, "kms:ViaService": via(service)}
            if kms_allows(policy, Request(role_arn("some-app", STRANGER), action, arn, stranger), [ALLOW_ALL_KMS]):
                findings.append(f"a role of another account may {action} through {service}")
    # ... and the account keeps the administration (its root user, and whom IAM allows).
    for action in ROOT_ADMIN_ACTIONS:
        for caller, iam in ((f"arn:aws:iam::{account}:root", []), (role_arn("kms-operator", account), [ALLOW_ALL_KMS])):
            if not kms_allows(policy, Request(caller, action, arn, {"kms:CallerAccount": account}), iam):
                findings.append(f"{caller} may not {action}: the key could become unmanageable")
    return findings


def test_every_key_of_every_template_is_checked():
    keys = {
        (name, lid) for name in TEMPLATES for lid, r in load_template(name)["Resources"].items() if r["Type"] == "AWS::KMS::Key"
    }
    assert keys == set(KEY_SERVICES) == set(KEY_DENIES)
    # Every key, in every variant (4 of key.yaml, 8 of guard.yaml's trail and more).
    assert {(v.template, key) for v, key in KEY_VARIANTS} == keys


@pytest.mark.parametrize(("variant", "key"), KEY_VARIANTS, ids=lambda x: x.label if isinstance(x, Variant) else x)
def test_key_policy_has_no_back_door(variant: Variant, key: str):
    policy = variant.resources[key]["Properties"]["KeyPolicy"]
    assert key_policy_findings(variant.template, key, policy, variant.account) == []


@pytest.mark.parametrize(("variant", "key"), KEY_VARIANTS, ids=lambda x: x.label if isinstance(x, Variant) else x)
def test_key_policy_keeps_its_explicit_denies(variant: Variant, key: str):
    policy = variant.resources[key]["Properties"]["KeyPolicy"]
    denies = {s.get("Sid"): s for s in statements(policy) if s["Effect"] == "Deny"}
    for sid, condition in KEY_DENIES[(variant.template, key)].items():
        assert (sid in denies) == (condition is None or variant.conditions[condition]), sid
    if (variant.template, key) != ("key.yaml", "SecretsKey"):
        return
    # What they are for, whatever IAM grants: administrators never use the key, the guard,
    # readers and rotation functions never manage it, and nobody gets a grant but for an AWS
    # resource.
    arn, through_sm = key_arn(variant, key), {"kms:ViaService": via("secretsmanager"), "kms:CallerAccount": ACCOUNT}
    params = FULL_PARAMETERS["key.yaml"]
    for admin in params["KeyAdministratorArns"].split(","):
        for action in CRYPTO_ACTIONS:
            assert not kms_allows(policy, Request(admin, action, arn, through_sm), [ALLOW_ALL_KMS]), (admin, action)
    users = [role_arn(params["GuardRoleName"])]
    if variant.conditions["HasSecretReaders"]:
        users += params["SecretReaderArns"].split(",")
    if variant.conditions["HasRotationFunctionRoles"]:
        users += params["RotationFunctionRoleArns"].split(",")
    for user in users:
        for action in ADMIN_WRITE_ACTIONS:
            request = Request(user, action, arn, {"kms:CallerAccount": ACCOUNT})
            assert not kms_allows(policy, request, [ALLOW_ALL_KMS]), (user, action)
    assert denies["DenyGrantsNotForAWSResources"] == {
        "Sid": "DenyGrantsNotForAWSResources",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "kms:CreateGrant",
        "Resource": "*",
        "Condition": {"BoolIfExists": {"kms:GrantIsForAWSResource": "false"}},
    }


def designated_key_policy(**conditions: bool) -> tuple[dict, str]:
    [variant] = [v for v in variants("key.yaml", ("AWS::KMS::Key",)) if all(v.conditions[c] == b for c, b in conditions.items())]
    return variant.resources["SecretsKey"]["Properties"]["KeyPolicy"], key_arn(variant, "SecretsKey")


@pytest.mark.parametrize(("readers", "rotation"), [(True, True), (True, False), (False, True), (False, False)])
def test_decrypt_granted_in_iam_works_only_through_secrets_manager(readers: bool, rotation: bool):
    policy, arn = designated_key_policy(HasSecretReaders=readers, HasRotationFunctionRoles=rotation, HasExternalAccounts=True)
    app = role_arn("some-app")
    iam = [{"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}]
    through_sm = {"kms:ViaService": via("secretsmanager"), "kms:CallerAccount": ACCOUNT}

    def decrypt(context: dict, principal: str = app, policies: list = iam) -> bool:
        return kms_allows(policy, Request(principal, "kms:Decrypt", arn, context), policies)

    assert decrypt(through_sm)  # GetSecretValue: Secrets Manager decrypts for the app
    assert not decrypt(through_sm, policies=[])  # the key policy alone names no such app
    assert not decrypt({"kms:CallerAccount": ACCOUNT})  # kms:Decrypt called directly
    assert not decrypt({"kms:ViaService": via("s3"), "kms:CallerAccount": ACCOUNT})
    assert not decrypt({"kms:ViaService": via("secretsmanager", "eu-west-3"), "kms:CallerAccount": ACCOUNT})
    # Not even the account's root user decrypts directly; it keeps the administration.
    root = f"arn:aws:iam::{ACCOUNT}:root"
    assert not decrypt({"kms:CallerAccount": ACCOUNT}, principal=root, policies=[])
    for action in ("kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:EnableKeyRotation", "kms:DescribeKey"):
        assert kms_allows(policy, Request(root, action, arn, {"kms:CallerAccount": ACCOUNT}))
    # No grant either, which would hand the use of the key to whomever it names.
    grant = Request(app, "kms:CreateGrant", arn, {"kms:CallerAccount": ACCOUNT, "kms:GrantIsForAWSResource": False})
    assert not kms_allows(policy, grant, [ALLOW_ALL_KMS])
    assert not kms_allows(policy, Request(app, "kms:CreateGrant", arn, through_sm), [ALLOW_ALL_KMS])

    # The guard, the readers and the rotation functions the key policy names: only through
    # Secrets Manager, no IAM needed.
    params = FULL_PARAMETERS["key.yaml"]
    named = [role_arn(params["GuardRoleName"])] + (params["SecretReaderArns"].split(",") if readers else [])
    named += params["RotationFunctionRoleArns"].split(",") if rotation else []
    for user in named:
        assert decrypt(through_sm, principal=user, policies=[])
        assert not decrypt({"kms:CallerAccount": ACCOUNT}, principal=user, policies=[ALLOW_ALL_KMS])
    # Another account's principals: through Secrets Manager, with their own IAM's consent.
    external = role_arn("reader", EXTERNAL_ACCOUNT)
    shared = {"kms:ViaService": via("secretsmanager"), "kms:CallerAccount": EXTERNAL_ACCOUNT}
    assert decrypt(shared, principal=external)
    assert not decrypt(shared, principal=external, policies=[])
    assert not decrypt({"kms:CallerAccount": EXTERNAL_ACCOUNT}, principal=external, policies=[ALLOW_ALL_KMS])


@pytest.mark.parametrize("readers", [True, False])
def test_rotation_functions_use_the_key_only_through_secrets_manager(readers: bool):
    # A rotation function's role (RotationFunctionRoleArns): the key policy alone lets it
    # read the current value and write the new one (Decrypt, GenerateDataKey) through
    # Secrets Manager in this region; nothing else from the key policy, never directly,
    # never the key's administration, whatever IAM grants. Administrators still never use it.
    policy, arn = designated_key_policy(HasSecretReaders=readers, HasRotationFunctionRoles=True, HasExternalAccounts=True)
    params = FULL_PARAMETERS["key.yaml"]
    through_sm = {"kms:ViaService": via("secretsmanager"), "kms:CallerAccount": ACCOUNT}
    elsewhere = (
        {"kms:CallerAccount": ACCOUNT},
        {"kms:ViaService": via("s3"), "kms:CallerAccount": ACCOUNT},
        {"kms:ViaService": via("lambda"), "kms:CallerAccount": ACCOUNT},
        {"kms:ViaService": via("secretsmanager", "eu-west-3"), "kms:CallerAccount": ACCOUNT},
    )
    functions = params["RotationFunctionRoleArns"].split(",")
    assert len(functions) == 2
    for function in functions:
        for action in ("kms:Decrypt", "kms:GenerateDataKey"):
            assert kms_allows(policy, Request(function, action, arn, through_sm)), (function, action)
            for context in elsewhere:
                request = Request(function, action, arn, context)
                assert not kms_allows(policy, request, [ALLOW_ALL_KMS]), (function, action, context)
        for action in CRYPTO_ACTIONS:
            if action not in ("kms:Decrypt", "kms:GenerateDataKey"):
                assert not kms_allows(policy, Request(function, action, arn, through_sm)), (function, action)
        grant = {"kms:CallerAccount": ACCOUNT, "kms:GrantIsForAWSResource": False}
        assert not kms_allows(policy, Request(function, "kms:CreateGrant", arn, grant), [ALLOW_ALL_KMS])
        for action in ADMIN_WRITE_ACTIONS:
            request = Request(function, action, arn, {"kms:CallerAccount": ACCOUNT})
            assert not kms_allows(policy, request, [ALLOW_ALL_KMS]), (function, action)
    for admin in params["KeyAdministratorArns"].split(","):
        for action in CRYPTO_ACTIONS:
            assert not kms_allows(policy, Request(admin, action, arn, through_sm), [ALLOW_ALL_KMS]), (admin, action)
    # Without the parameter the key policy names no rotation function: IAM decides, and what
    # it grants works through Secrets Manager only (the account's statement).
    without, arn = designated_key_policy(HasSecretReaders=readers, HasRotationFunctionRoles=False, HasExternalAccounts=True)
    decrypt = [{"Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}]
    assert not kms_allows(without, Request(functions[0], "kms:Decrypt", arn, through_sm))
    assert kms_allows(without, Request(functions[0], "kms:Decrypt", arn, through_sm), decrypt)
    assert not kms_allows(without, Request(functions[0], "kms:Decrypt", arn, {"kms:CallerAccount": ACCOUNT}), decrypt)


def test_operations_key_is_used_only_by_the_services_it_encrypts_for():
    for variant in variants("guard.yaml", ("AWS::KMS::Key",)):
        policy, arn = variant.resources["OperationsKey"]["Properties"]["KeyPolicy"], key_arn(variant, "OperationsKey")
        app, guard = role_arn("some-app"), role_arn(f"cmkguard-guard-{REGION}")
        iam = [{"Statement": [{"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}]

        def allowed(principal: str, action: str, context: dict, policies: list = iam) -> bool:
            return kms_allows(policy, Request(principal, action, arn, {"kms:CallerAccount": ACCOUNT, **context}), policies)

        # Reading the dead-letter queue, publishing to the topic: through SQS and SNS only.
        assert allowed(app, "kms:Decrypt", {"kms:ViaService": via("sqs")})
        assert allowed(app, "kms:GenerateDataKey", {"kms:ViaService": via("sns")})
        assert not allowed(app, "kms:Decrypt", {})
        assert not allowed(app, "kms:Decrypt", {"kms:ViaService": via("secretsmanager")})
        # The trail's files, read through S3, only when there is a trail.
        assert allowed(app, "kms:Decrypt", {"kms:ViaService": via("s3")}) == variant.conditions["CreateTrailCondition"]
        assert not allowed(app, "kms:GenerateDataKey", {"kms:ViaService": via("s3")})
        # The guard's role: named by the key policy, through SNS and SQS, needs no IAM.
        assert allowed(guard, "kms:GenerateDataKey", {"kms:ViaService": via("sqs")}, [])
        assert not allowed(guard, "kms:Decrypt", {}, [ALLOW_ALL_KMS])
        # CloudWatch Logs, for the stack's log group only.
        logs = via("logs")
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/cmkguard/cmkguard-test"
        assert kms_allows(policy, Request(logs, "kms:Decrypt", arn, {"kms:EncryptionContext:aws:logs:arn": group}))
        assert not kms_allows(policy, Request(logs, "kms:Decrypt", arn, {"kms:EncryptionContext:aws:logs:arn": group + "-other"}))


# The role that reads each key for the key policy review (CONTRACT.md "Key policy review"),
# as the key policy names it: key.yaml's GuardRoleName (the guard's role in its own account,
# the member role elsewhere), the guard's role for its operations key.
KEY_READERS = {
    ("key.yaml", "SecretsKey"): role_arn(FULL_PARAMETERS["key.yaml"]["GuardRoleName"]),
    ("guard.yaml", "OperationsKey"): role_arn(f"cmkguard-guard-{REGION}"),
}
KEY_POLICY_READS = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:ListGrants")


@pytest.mark.parametrize(("variant", "key"), KEY_VARIANTS, ids=lambda x: x.label if isinstance(x, Variant) else x)
def test_the_guard_reads_every_key_policy_and_changes_none(variant: Variant, key: str):
    # The guard's reads are allowed by the key policy itself (a statement naming the role,
    # no IAM needed), directly: the guard calls KMS itself, not through a service. It gets
    # no administration and no grant from the key policy; on the designated key not even
    # when IAM allows it kms:* (DenyKeyAdministrationByGuard), and no grant but for an
    # AWS resource (DenyGrantsNotForAWSResources).
    assert set(KEY_READERS) == set(KEY_SERVICES)
    policy, arn = variant.resources[key]["Properties"]["KeyPolicy"], key_arn(variant, key)
    guard = KEY_READERS[(variant.template, key)]
    direct = {"kms:CallerAccount": variant.account}
    for action in KEY_POLICY_READS:
        assert kms_allows(policy, Request(guard, action, arn, direct), []), (variant.label, action)
        # Not another account's role of the same name.
        stranger = guard.replace(f":{variant.account}:", f":{STRANGER}:")
        assert not kms_allows(policy, Request(stranger, action, arn, {"kms:CallerAccount": STRANGER}), [ALLOW_ALL_KMS])
    changes = (*ADMIN_WRITE_ACTIONS, "kms:RevokeGrant", "kms:RetireGrant", "kms:CreateGrant")
    for action in changes:
        assert not kms_allows(policy, Request(guard, action, arn, direct), []), (variant.label, action)
    assert not kms_allows(policy, Request(guard, "kms:Decrypt", arn, direct), []), variant.label
    if (variant.template, key) == ("key.yaml", "SecretsKey"):
        for action in ADMIN_WRITE_ACTIONS:
            assert not kms_allows(policy, Request(guard, action, arn, direct), [ALLOW_ALL_KMS]), (variant.label, action)
        grant = {**direct, "kms:GrantIsForAWSResource": False}
        assert not kms_allows(policy, Request(guard, "kms:CreateGrant", arn, grant), [ALLOW_ALL_KMS]), variant.label
    # Read only: the statements that name the guard allow nothing that changes the key.
    for statement in statements(policy):
        aws, _ = principals(statement)
        if statement["Effect"] != "Allow" or guard not in aws:
            continue
        for action in as_list(statement["Action"]):
            assert not any(action_covers(action, a) for a in changes), (variant.label, statement.get("Sid"), action)


# ------------------------------------------------------------------ point 5: UpdateSecret
IAM_TYPES = (
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
    "AWS::IAM::User",
    "AWS::IAM::Group",
)
IAM_VARIANTS = [v for name in ("guard.yaml", "member.yaml") for v in variants(name, IAM_TYPES)]


def identity_documents(resources: dict[str, dict]) -> Iterator[tuple[str, dict]]:
    """Every identity policy document (not trust policies) of the rendered resources."""
    for lid, resource in resources.items():
        props = resource.get("Properties", {})
        if "PolicyDocument" in props:
            yield lid, props["PolicyDocument"]
        for policy in props.get("Policies", []):
            yield f"{lid}.{policy['PolicyName']}", policy["PolicyDocument"]


def _own_account_key(value: str, account: str) -> bool:
    parts = value.split(":")
    return (
        len(parts) == 6
        and parts[:3] == ["arn", "aws", "kms"]
        and parts[4] == account  # exactly: no wildcard for the account
        and parts[5].startswith("key/")
    )


def update_secret_findings(where: str, document: dict, account: str) -> list[str]:
    findings = []
    named_keys: list[str] = []
    for statement in statements(document):
        if statement["Effect"] != "Allow":
            continue
        if "NotAction" in statement:
            findings.append(f"{where}: an Allow with NotAction allows whatever it does not name")
        if not any(action_covers(a, "secretsmanager:UpdateSecret") for a in as_list(statement.get("Action"))):
            continue
        condition = {
            op: {k.lower(): as_list(v) for k, v in tests.items()} for op, tests in (statement.get("Condition") or {}).items()
        }
        keys = [
            v
            for op in ("StringLike", "StringEquals", "ArnLike", "ArnEquals")
            for v in condition.get(op, {}).get("secretsmanager:kmskeyarn", [])
        ]
        if not keys:
            findings.append(f"{where}: UpdateSecret without a secretsmanager:KmsKeyArn condition")
        findings += [
            f"{where}: UpdateSecret onto {k}, not only this account's keys"
            for k in keys
            if not _own_account_key(k, account)
        ]
        named_keys += keys or [f"arn:aws:kms:*:{account}:key/*"]
        if condition.get("Null", {}).get("secretsmanager:kmskeyarn") != ["false"]:
            findings.append(f"{where}: UpdateSecret without a key named in the request (Null secretsmanager:KmsKeyArn false)")
    if named_keys:
        # The same, as IAM decides (the guard names the key by its ARN).
        secret = f"arn:aws:secretsmanager:{REGION}:{account}:secret:app-AbCdEf"
        role = role_arn("cmkguard", account)

        def update(context: dict) -> bool:
            return iam_allows([document], Request(role, "secretsmanager:UpdateSecret", secret, context))

        # A key the grant names (a pattern's wildcards filled in) must be allowed: the grant is no dead letter.
        own = named_keys[0].replace(":kms:*:", f":kms:{REGION}:").replace("key/*", "key/1234abcd-12ab-34cd-56ef-1234567890ab")
        if not update({"secretsmanager:KmsKeyArn": own}):
            findings.append(f"{where}: grants UpdateSecret but not even onto {own}")
        foreign_key = f"arn:aws:kms:{REGION}:{STRANGER}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        for other in (foreign_key, f"arn:aws:kms:{REGION}:{account}:alias/x"):
            if update({"secretsmanager:KmsKeyArn": other}):
                findings.append(f"{where}: UpdateSecret onto {other}")
        if update({}):
            findings.append(f"{where}: UpdateSecret without a key named in the request")
    return findings


@pytest.mark.parametrize("variant", IAM_VARIANTS, ids=lambda v: v.label)
def test_update_secret_only_onto_a_key_of_the_own_account(variant: Variant):
    for where, document in identity_documents(variant.resources):
        assert update_secret_findings(where, document, variant.account) == []


def test_update_secret_is_checked_where_it_is_granted():
    # The checker above must not pass for want of anything to check.
    for variant in IAM_VARIANTS:
        granting = [
            where
            for where, document in identity_documents(variant.resources)
            for s in statements(document)
            if s["Effect"] == "Allow" and "secretsmanager:UpdateSecret" in as_list(s.get("Action"))
        ]
        assert bool(granting) == variant.conditions["RemediationEnabled"], variant.label


# ------------------------------------------------------------------ the checkers catch what this replaced
def _full(template: str, types: tuple[str, ...]) -> Variant:
    return max(variants(template, types), key=lambda v: sum(v.conditions.values()))


@pytest.mark.parametrize(("template", "key"), sorted(KEY_SERVICES))
def test_the_key_checker_catches_a_back_door(template: str, key: str):
    variant = _full(template, ("AWS::KMS::Key",))
    good = variant.resources[key]["Properties"]["KeyPolicy"]
    root = f"arn:aws:iam::{variant.account}:root"

    def with_statements(*extra: dict, drop: str | None = None) -> dict:
        policy = copy.deepcopy(good)
        policy["Statement"] = [s for s in statements(policy) if s.get("Sid") != drop] + list(extra)
        return policy

    def findings(policy: dict) -> list[str]:
        return key_policy_findings(template, key, policy, variant.account)

    def allow(action: Any, condition: dict | None = None, principal: str = root) -> dict:
        statement = {"Sid": "Injected", "Effect": "Allow", "Principal": {"AWS": principal}, "Action": action, "Resource": "*"}
        return {**statement, "Condition": condition} if condition else statement

    service = via(KEY_SERVICES[(template, key)][0])
    bound = {"StringEquals": {"kms:ViaService": service, "kms:CallerAccount": variant.account}}
    assert findings(with_statements()) == []
    # The classic default statement: any IAM policy of the account may then decrypt directly.
    assert findings(with_statements(allow("kms:*")))
    # Crypto use bound to the service but not to the account, or to another service.
    assert findings(with_statements(allow(["kms:Decrypt"], {"StringEquals": {"kms:ViaService": service}})))
    ec2 = {"StringEquals": {"kms:ViaService": via("ec2"), "kms:CallerAccount": variant.account}}
    assert findings(with_statements(allow(["kms:Decrypt"], ec2)))
    anything = {"StringLike": {"kms:ViaService": "*", "kms:CallerAccount": variant.account}}
    assert findings(with_statements(allow(["kms:Decrypt"], anything)))
    # kms:Create* includes CreateGrant; a named role used directly.
    assert findings(with_statements(allow(["kms:Create*"])))
    assert findings(with_statements(allow(["kms:Decrypt"], principal=role_arn("some-app", variant.account))))
    # The account locked out of the administration.
    assert findings(with_statements(drop="EnableIAMPoliciesForKeyAdministration"))
    # A service principal for any account's resources.
    sns = {"Sid": "Svc", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"}}
    assert findings(with_statements({**sns, "Action": "kms:Decrypt", "Resource": "*"}))
    # Allowed with the right conditions (the checker accepts what the templates do).
    assert findings(with_statements(allow(["kms:Decrypt"], bound))) == []


@pytest.mark.parametrize("template", ["guard.yaml", "member.yaml"])
def test_the_update_secret_checker_catches_an_unbound_grant(template: str):
    account = TEMPLATE_ACCOUNT[template]
    secrets = f"arn:aws:secretsmanager:*:{account}:secret:*"
    base = {"Effect": "Allow", "Action": "secretsmanager:UpdateSecret", "Resource": secrets}
    null = {"Null": {"secretsmanager:KmsKeyArn": "false"}}

    def findings(statement: dict) -> list[str]:
        return update_secret_findings("injected", {"Statement": [statement]}, account)

    assert findings(base)  # what the templates had
    assert findings({**base, "Condition": {"StringLike": {"secretsmanager:KmsKeyArn": "arn:aws:kms:*:*:key/*"}, **null}})
    stranger = f"arn:aws:kms:*:{STRANGER}:key/*"
    assert findings({**base, "Condition": {"StringLike": {"secretsmanager:KmsKeyArn": stranger}, **null}})
    assert findings({**base, "Condition": {"StringLike": {"secretsmanager:KmsKeyArn": f"arn:aws:kms:*:{account}:key/*"}}})
    assert findings({**base, "Action": "secretsmanager:Update*"})
    assert findings({"Effect": "Allow", "NotAction": "secretsmanager:GetSecretValue", "Resource": "*"})
    ok = {**base, "Condition": {"StringLike": {"secretsmanager:KmsKeyArn": f"arn:aws:kms:*:{account}:key/*"}, **null}}
    assert findings(ok) == []
    # The known designated key's ARN is fine too.
    designated = f"arn:aws:kms:{REGION}:{account}:key/k"
    assert findings({**ok, "Condition": {"ArnEquals": {"secretsmanager:KmsKeyArn": designated}, **null}}) == []


def test_the_accounts_the_templates_are_rendered_for():
    # The member role's keys are the member account's: rendered there, as moto deploys it.
    assert {v.template: v.account for v in IAM_VARIANTS} == {"guard.yaml": ACCOUNT, "member.yaml": MEMBER_ACCOUNT}
