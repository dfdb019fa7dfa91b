"""key.yaml in moto's CloudFormation: the key, its alias, and a key policy under which
no principal can both administer and use the key, and whatever IAM grants works only
through Secrets Manager (the policy as KMS holds it; test_key_policies.py checks every
variant of the template)."""

from __future__ import annotations

import json

from cfntools import ACCOUNT, EXTERNAL_ACCOUNT, FULL_PARAMETERS, KEY_ADMIN_ACTIONS as ADMIN_ACTIONS, REGION, as_list, action_covers, load_template, role_arn, statements
from motostacks import create_stack, outputs
from policyeval import Request, kms_allows

# Calls that change the key or its policy (administration: cfntools.KEY_ADMIN_ACTIONS) and
# calls that use it or hand its use to someone else (a grant). Read-only calls (Describe*, List*, Get*) are
# neither: a user may describe the key it uses, an administrator the key it manages.
# (ImportKeyMaterial does not apply: the key's material is made by KMS.)
USE_ACTIONS = [
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:CreateGrant",
]
ROOT_ARN = f"arn:aws:iam::{ACCOUNT}:root"


def principals_of(statement: dict) -> list[str]:
    principal = statement.get("Principal", {})
    values = [principal] if principal == "*" else as_list(principal.get("AWS"))
    # A bare account id in a key policy means that account's root.
    return [f"arn:aws:iam::{v}:root" if isinstance(v, str) and v.isdigit() else v for v in values]


def account_of(arn: str) -> str:
    return arn.split(":")[4]


def allowed(policy: dict, principal: str, action: str, via_iam: bool = True) -> bool:
    """Could `principal` be allowed `action` under this key policy? Conservative towards
    "yes": conditions of Allow statements are taken as met, and (via_iam) the account
    statements (the account's root) count as if IAM granted the principal anything. Only
    an unconditional explicit Deny rules an action out, as it does in AWS whatever IAM
    says. via_iam=False: what the key policy grants by itself."""
    root = f"arn:aws:iam::{account_of(principal)}:root"
    allow = deny = False
    for statement in statements(policy):
        names = principals_of(statement)
        if not any(action_covers(a, action) for a in as_list(statement.get("Action"))):
            continue
        if statement["Effect"] == "Deny" and not statement.get("Condition") and ("*" in names or principal in names):
            deny = True
        if statement["Effect"] == "Allow" and (principal in names or (via_iam and root in names)):
            allow = True
    return allow and not deny


def named_principals(policy: dict) -> set[str]:
    """Every principal the policy names, but the account itself (the IAM delegation that
    the EnableIAMPolicies* statements make, which allowed() models) and "*"."""
    return {p for s in statements(policy) for p in principals_of(s) if p not in ("*", ROOT_ARN)}


def key_policy(aws, key_id: str) -> dict:
    policy = aws("kms").get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    return json.loads(policy) if isinstance(policy, str) else policy


def create_key_stack(aws, parameters: dict[str, str]) -> tuple[str, dict]:
    resources = create_stack(aws("cloudformation"), "cmkguard-key", load_template("key.yaml"), parameters)
    key_id = resources["SecretsKey"]["PhysicalResourceId"]
    return key_id, key_policy(aws, key_id)


def assert_separation_of_duties(policy: dict) -> None:
    for principal in named_principals(policy):
        administers = [a for a in ADMIN_ACTIONS if allowed(policy, principal, a)]
        uses = [a for a in USE_ACTIONS if allowed(policy, principal, a)]
        assert not (administers and uses), f"{principal} can administer ({administers}) and use ({uses}) the key"


def test_key_alias_and_policy(aws):
    parameters = FULL_PARAMETERS["key.yaml"]
    key_id, policy = create_key_stack(aws, parameters)
    kms = aws("kms")

    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    [alias] = [a for a in kms.list_aliases()["Aliases"] if a["AliasName"] == "alias/cmkguard/secrets"]
    assert alias["TargetKeyId"] == key_id
    assert outputs(aws("cloudformation"), "cmkguard-key")["KeyAlias"] == "alias/cmkguard/secrets"

    # moto 5.2.5 keeps a template's KeyPolicy as an object and its DescribeKey then
    # fails to parse it; writing the same policy back as JSON text repairs that. After
    # it, the alias resolves as the guard resolves it (CMKGUARD_KEY_ALIAS).
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps({**policy, "Statement": statements(policy)}))
    metadata = kms.describe_key(KeyId="alias/cmkguard/secrets")["KeyMetadata"]
    assert metadata["KeyId"] == key_id
    assert (metadata["KeyState"], metadata["KeyManager"], metadata["KeySpec"]) == ("Enabled", "CUSTOMER", "SYMMETRIC_DEFAULT")

    by_sid = {s["Sid"]: s for s in statements(policy)}
    assert set(by_sid) == {
        "EnableIAMPoliciesForKeyAdministration",
        "EnableIAMPoliciesForUseThroughSecretsManager",
        "AllowKeyAdministration",
        "DenyKeyUseByAdministrators",
        "AllowSecretReadersThroughSecretsManager",
        "DenyKeyAdministrationBySecretReaders",
        "AllowRotationFunctionsThroughSecretsManager",
        "DenyKeyAdministrationByRotationFunctions",
        "AllowGuardToReEncryptThroughSecretsManager",
        "AllowGuardToReadTheKeyPolicyAndGrants",
        "DenyKeyAdministrationByGuard",
        "AllowExternalAccountsThroughSecretsManager",
        "DenyGrantsNotForAWSResources",
    }
    admin, reader_a, guard = parameters["KeyAdministratorArns"], role_arn("app-a"), role_arn(parameters["GuardRoleName"])
    rotation = role_arn("rotation-app-db")
    assert principals_of(by_sid["EnableIAMPoliciesForKeyAdministration"]) == [ROOT_ARN]
    assert principals_of(by_sid["EnableIAMPoliciesForUseThroughSecretsManager"]) == [ROOT_ARN]
    assert "Condition" not in by_sid["EnableIAMPoliciesForKeyAdministration"]
    assert principals_of(by_sid["AllowKeyAdministration"]) == [admin]
    assert principals_of(by_sid["AllowGuardToReEncryptThroughSecretsManager"]) == [guard]
    # The key policy review: the guard reads the key, its policy and grants, directly.
    assert principals_of(by_sid["AllowGuardToReadTheKeyPolicyAndGrants"]) == [guard]
    assert set(by_sid["AllowGuardToReadTheKeyPolicyAndGrants"]["Action"]) == {
        "kms:DescribeKey",
        "kms:GetKeyPolicy",
        "kms:ListGrants",
    }
    assert reader_a in principals_of(by_sid["AllowSecretReadersThroughSecretsManager"])
    rotation_functions = parameters["RotationFunctionRoleArns"].split(",")
    assert principals_of(by_sid["AllowRotationFunctionsThroughSecretsManager"]) == rotation_functions
    assert principals_of(by_sid["DenyKeyAdministrationByRotationFunctions"]) == rotation_functions

    # Every use of the key by the account (through IAM), a reader, the guard or another
    # account goes through Secrets Manager in this region; no grant but for AWS resources.
    via = {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com"}
    for sid in (
        "EnableIAMPoliciesForUseThroughSecretsManager",
        "AllowSecretReadersThroughSecretsManager",
        "AllowRotationFunctionsThroughSecretsManager",
        "AllowGuardToReEncryptThroughSecretsManager",
    ):
        assert by_sid[sid]["Condition"]["StringEquals"] == {**via, "kms:CallerAccount": ACCOUNT}
    assert by_sid["AllowExternalAccountsThroughSecretsManager"]["Condition"]["StringEquals"] == {
        **via,
        "kms:CallerAccount": [EXTERNAL_ACCOUNT],
    }
    assert set(by_sid["AllowSecretReadersThroughSecretsManager"]["Action"]) == {"kms:Decrypt", "kms:DescribeKey"}
    assert set(by_sid["AllowRotationFunctionsThroughSecretsManager"]["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert by_sid["DenyGrantsNotForAWSResources"]["Condition"] == {"BoolIfExists": {"kms:GrantIsForAWSResource": "false"}}

    # What the key policy itself grants each, what not even IAM can give them, and that
    # nobody may do both.
    assert all(allowed(policy, admin, a, via_iam=False) for a in ADMIN_ACTIONS)
    assert not any(allowed(policy, admin, a) for a in USE_ACTIONS)
    assert allowed(policy, guard, "kms:GenerateDataKey", via_iam=False) and allowed(policy, guard, "kms:Decrypt", via_iam=False)
    assert allowed(policy, reader_a, "kms:Decrypt", via_iam=False)
    assert not allowed(policy, reader_a, "kms:Encrypt", via_iam=False)
    assert not allowed(policy, guard, "kms:CreateGrant", via_iam=False)
    assert allowed(policy, guard, "kms:GetKeyPolicy", via_iam=False) and allowed(policy, guard, "kms:ListGrants", via_iam=False)
    assert allowed(policy, rotation, "kms:Decrypt", via_iam=False)
    assert allowed(policy, rotation, "kms:GenerateDataKey", via_iam=False)
    assert not allowed(policy, rotation, "kms:Encrypt", via_iam=False)
    assert not allowed(policy, rotation, "kms:CreateGrant", via_iam=False)
    for user in (guard, reader_a, rotation):
        assert not any(allowed(policy, user, a) for a in ADMIN_ACTIONS), user
    assert_separation_of_duties(policy)

    # As KMS decides: kms:Decrypt granted in IAM decrypts only through Secrets Manager;
    # the account keeps the administration.
    key_arn = metadata["Arn"]
    app, iam = role_arn("some-app"), [{"Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}]
    through = {"kms:CallerAccount": ACCOUNT, **via}
    assert kms_allows(policy, Request(app, "kms:Decrypt", key_arn, through), iam)
    assert not kms_allows(policy, Request(app, "kms:Decrypt", key_arn, {"kms:CallerAccount": ACCOUNT}), iam)
    s3 = {"kms:CallerAccount": ACCOUNT, "kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    assert not kms_allows(policy, Request(app, "kms:Decrypt", key_arn, s3), iam)
    assert kms_allows(policy, Request(ROOT_ARN, "kms:PutKeyPolicy", key_arn, {"kms:CallerAccount": ACCOUNT}))


def test_no_principal_gets_both_duties_even_when_listed_for_both(aws):
    # A mistake in the parameters: the same role as administrator, reader, rotation
    # function and guard.
    both = role_arn("ops")
    parameters = {
        "KeyAdministratorArns": f"{role_arn('key-admin')},{both}",
        "SecretReaderArns": both,
        "RotationFunctionRoleArns": both,
        "GuardRoleName": "ops",
    }
    _key_id, policy = create_key_stack(aws, parameters)
    assert both in named_principals(policy)
    assert_separation_of_duties(policy)


def test_optional_statements_are_absent_without_readers_or_external_accounts(aws):
    _key_id, policy = create_key_stack(aws, {"KeyAdministratorArns": role_arn("key-admin")})
    sids = {s["Sid"] for s in statements(policy)}
    assert sids == {
        "EnableIAMPoliciesForKeyAdministration",
        "EnableIAMPoliciesForUseThroughSecretsManager",
        "AllowKeyAdministration",
        "DenyKeyUseByAdministrators",
        "AllowGuardToReEncryptThroughSecretsManager",
        "AllowGuardToReadTheKeyPolicyAndGrants",
        "DenyKeyAdministrationByGuard",
        "DenyGrantsNotForAWSResources",
    }
    guard = [s for s in statements(policy) if s["Sid"] == "AllowGuardToReEncryptThroughSecretsManager"][0]
    assert principals_of(guard) == [role_arn("cmkguard-member")]  # the default: a member account
    assert_separation_of_duties(policy)
