"""The key policies of the templates' own keys, rendered for the engine's key policy review.

testdata/key-policies/templates/<template>-<resource>-<variant>.json holds the KeyPolicy of
every KMS key the templates create, as cfnrender renders it (cfntools.REGION, the template's
account of cfnrender.TEMPLATE_ACCOUNT), for two variants:

- "defaults": every parameter at its default, the required ones from
  cfntools.FULL_PARAMETERS (key.yaml's KeyAdministratorArns);
- "everything-on": cfntools.FULL_PARAMETERS (every optional statement present, plausible
  distinct role ARNs of the same account), but for key.yaml's ExternalAccountIds, left
  empty: a key shared with another account is the finding key-policy-other-account by
  definition (CONTRACT.md "Key policy review"), the operator's choice, not a defect.

A Rust test reads every file under testdata/key-policies/ and asserts that "words" is the
engine's review of "policy" and "grants": the project's own keys pass with no finding
(CONTRACT.md: "the project's own keys pass the review with no finding"), so "words" is []
(and test_rendered_policies_have_none_of_the_contract_findings below reads the policies by
the contract's rules, so that a template change that would give a finding fails here first).

The files are generated: this test fails when one differs from the rendering, is missing or
is left over. Regenerate them with

    UPDATE_RENDERED=1 ./cloudformation/check

(or only this test: UPDATE_RENDERED=1 .venv-cfn/bin/python -m pytest
cloudformation/tests/test_rendered_key_policies.py), then review and commit the diff.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from cfnrender import TEMPLATE_ACCOUNT, render
from cfntools import (
    FULL_PARAMETERS,
    KEY_ADMIN_ACTIONS,
    REGION,
    ROOT,
    TEMPLATES,
    action_covers,
    as_list,
    load_template,
    parameter_violations,
    statements,
)
from policyeval import principals

OUT_DIR = ROOT / "testdata" / "key-policies" / "templates"
UPDATE = os.environ.get("UPDATE_RENDERED") == "1"
REGENERATE = "UPDATE_RENDERED=1 ./cloudformation/check"
THIS = "cloudformation/tests/test_rendered_key_policies.py"

# Left out of "everything-on": see the module's docstring.
NOT_IN_EVERYTHING_ON = {"key.yaml": ("ExternalAccountIds",)}
VARIANTS = ("everything-on", "defaults")


def parameters(template: str, variant: str) -> dict[str, str]:
    spec = load_template(template)["Parameters"]
    full = FULL_PARAMETERS[template]
    if variant == "defaults":
        return {k: v for k, v in full.items() if "Default" not in spec[k]}
    return {k: v for k, v in full.items() if k not in NOT_IN_EVERYTHING_ON.get(template, ())}


def keys_of(template: str) -> list[str]:
    return sorted(lid for lid, r in load_template(template)["Resources"].items() if r["Type"] == "AWS::KMS::Key")


def rendered_files() -> dict[Path, dict[str, Any]]:
    """Every file this test owns, as it should read."""
    files = {}
    for template in TEMPLATES:
        for variant in VARIANTS:
            given = parameters(template, variant)
            assert parameter_violations(load_template(template), given) == [], (template, variant)
            rendered = render(template, given, ("AWS::KMS::Key",))
            for key in keys_of(template):
                # Every key of the template exists in both variants (none has a Condition).
                assert key in rendered.resources, (template, key, variant)
                stem = template.removesuffix(".yaml")
                key_id = uuid.uuid5(uuid.NAMESPACE_URL, f"https://cmkguard/{stem}/{key}/{variant}")
                left = [p for p in NOT_IN_EVERYTHING_ON.get(template, ()) if variant == "everything-on"]
                about = f"rendered from cloudformation/{template} {key} ({variant}) by {THIS}"
                if left:
                    about += f"; {', '.join(left)} left empty: a key shared with another account is key-policy-other-account"
                files[OUT_DIR / f"{stem}-{key}-{variant}.json"] = {
                    "about": about,
                    "key_arn": f"arn:aws:kms:{REGION}:{TEMPLATE_ACCOUNT[template]}:key/{key_id}",
                    "policy": rendered.resources[key]["Properties"]["KeyPolicy"],
                    "grants": [],
                    "words": [],
                    "probes": [],
                }
    return files


def text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def test_rendered_key_policies_are_up_to_date():
    want = rendered_files()
    assert want, "no KMS key in the templates?"
    have = set(OUT_DIR.glob("*.json")) if OUT_DIR.is_dir() else set()
    if UPDATE:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for path in have - set(want):
            path.unlink()
        for path, document in want.items():
            if not path.exists() or path.read_text() != text(document):
                path.write_text(text(document))
        return
    wrong = []
    for path, document in want.items():
        name = path.relative_to(ROOT)
        if not path.exists():
            wrong.append(f"{name} is missing")
        elif json.loads(path.read_text()) != document:
            wrong.append(f"{name} differs from the rendering")
        elif path.read_text() != text(document):
            wrong.append(f"{name} is not formatted as generated")
    wrong += [f"{p.relative_to(ROOT)} is no rendered key policy (left over?)" for p in sorted(have - set(want))]
    assert not wrong, f"{wrong}: regenerate with `{REGENERATE}`, review the diff and commit it"


# ------------------------------------------------------------------ the contract's findings, read
# CONTRACT.md "Key policy review": what decrypts (kms:CreateGrant unless bound by
# kms:GrantIsForAWSResource), and what manages a key.
DECRYPTING = ("kms:Decrypt", "kms:ReEncryptFrom", "kms:CreateGrant")
MANAGING = (
    *KEY_ADMIN_ACTIONS,
    "kms:ImportKeyMaterial",
    "kms:DeleteImportedKeyMaterial",
    "kms:ReplicateKey",
    "kms:UpdatePrimaryRegion",
    "kms:RevokeGrant",
)


def _covers(statement: dict, action: str) -> bool:
    return any(action_covers(a, action) for a in as_list(statement.get("Action")))


def _condition_keys(statement: dict) -> set[str]:
    return {k.lower() for tests in (statement.get("Condition") or {}).values() for k in tests}


def _decrypting(statement: dict) -> list[str]:
    found = [a for a in DECRYPTING if _covers(statement, a)]
    if "kms:CreateGrant" in found and "kms:grantisforawsresource" in _condition_keys(statement):
        found.remove("kms:CreateGrant")
    return found


def contract_findings(policy: dict, account: str) -> list[str]:
    """The contract's key policy findings this policy would give, read conservatively: an
    Allow's conditions are taken as met, and only an unconditional Deny takes anything away.
    Service principals (CloudWatch Logs, CloudTrail, ...) are no account's principals: the
    template tests (test_key_policies.py) bind them to this account's resources."""
    root = f"arn:aws:iam::{account}:root"
    findings = []
    allowed: dict[str, set[str]] = {}
    denied: dict[str, set[str]] = {}
    for statement in statements(policy):
        sid = statement.get("Sid", "(no Sid)")
        if "NotPrincipal" in statement and statement["Effect"] == "Allow":
            findings.append(f"key-policy-public: {sid} allows through NotPrincipal")
            continue
        aws, _services = principals(statement)
        if statement["Effect"] == "Deny":
            if not statement.get("Condition"):
                for principal in aws:
                    denied.setdefault(principal, set()).update(
                        a for a in (*DECRYPTING, *MANAGING) if _covers(statement, a)
                    )
            continue
        decrypting = _decrypting(statement)
        for principal in aws:
            if principal == "*":
                if decrypting:
                    findings.append(f"key-policy-public or -account-wide: {sid} lets * {decrypting}")
                continue
            if principal.split(":")[4] != account:
                if decrypting:
                    findings.append(f"key-policy-other-account: {sid} lets {principal} {decrypting}")
                continue
            if principal == root:
                if decrypting and "kms:viaservice" not in _condition_keys(statement):
                    findings.append(f"key-policy-delegated-to-iam: {sid} lets the account {decrypting} unbound")
                continue
            allowed.setdefault(principal, set()).update(decrypting)
            allowed[principal].update(a for a in MANAGING if _covers(statement, a))
    for principal, actions in sorted(allowed.items()):
        actions = actions - denied.get(principal, set()) - denied.get("*", set())
        uses, manages = actions & set(DECRYPTING), actions & set(MANAGING)
        if uses and manages:
            findings.append(f"key-policy-admin-can-decrypt: {principal} {sorted(manages)} and {sorted(uses)}")
    return findings


@pytest.mark.parametrize("path", sorted(rendered_files()), ids=lambda p: p.name)
def test_rendered_policies_have_none_of_the_contract_findings(path: Path):
    document = rendered_files()[path]
    assert document["words"] == []
    account = document["key_arn"].split(":")[4]
    assert contract_findings(document["policy"], account) == [], path.name


def test_sharing_the_key_with_another_account_is_the_finding_left_out():
    # Why everything-on leaves ExternalAccountIds empty: with it, the designated key lets
    # another account decrypt (through Secrets Manager, with that account's consent), which
    # is the contract's key-policy-other-account, however bound.
    for template, left in NOT_IN_EVERYTHING_ON.items():
        rendered = render(template, FULL_PARAMETERS[template], ("AWS::KMS::Key",))
        for key in keys_of(template):
            found = contract_findings(rendered.resources[key]["Properties"]["KeyPolicy"], rendered.account)
            assert found and all(f.startswith("key-policy-other-account:") for f in found), (template, key, left, found)


def test_the_reading_catches_the_findings():
    # The reading above must not pass for want of seeing anything.
    account, other = "123456789012", "111122223333"
    role = f"arn:aws:iam::{account}:role/admin"

    def allow(principal: Any, actions: list[str], condition: dict | None = None) -> dict:
        statement = {"Effect": "Allow", "Principal": principal, "Action": actions, "Resource": "*"}
        return {**statement, "Condition": condition} if condition else statement

    def findings(*statement: dict) -> list[str]:
        return contract_findings({"Version": "2012-10-17", "Statement": list(statement)}, account)

    assert findings(allow("*", ["kms:Decrypt"]))
    assert findings(allow({"AWS": "*"}, ["kms:*"], {"StringEquals": {"kms:CallerAccount": account}}))
    assert findings(allow({"AWS": other}, ["kms:Decrypt"], {"StringEquals": {"kms:ViaService": "x"}}))
    assert findings(allow({"AWS": f"arn:aws:iam::{account}:root"}, ["kms:*"]))
    assert findings(allow({"AWS": role}, ["kms:Put*", "kms:ReEncrypt*"]))
    assert findings(allow({"AWS": role}, ["kms:ScheduleKeyDeletion", "kms:Create*"]))
    assert findings({"Effect": "Allow", "NotPrincipal": {"AWS": role}, "Action": "kms:Decrypt", "Resource": "*"})
    # What the templates do.
    via = {"StringEquals": {"kms:ViaService": f"secretsmanager.{REGION}.amazonaws.com", "kms:CallerAccount": account}}
    assert findings(allow({"AWS": f"arn:aws:iam::{account}:root"}, ["kms:Decrypt"], via)) == []
    deny = {"Effect": "Deny", "Principal": {"AWS": role}, "Action": ["kms:Decrypt", "kms:CreateGrant"], "Resource": "*"}
    assert findings(allow({"AWS": role}, ["kms:Put*", "kms:Decrypt"]), deny) == []
    grant = {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert findings(allow({"AWS": role}, ["kms:PutKeyPolicy"]), allow({"AWS": role}, ["kms:CreateGrant"], grant)) == []
