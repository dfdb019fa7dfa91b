"""The policy evaluator the key policy tests rely on (policyeval.py), on the IAM and KMS
rules it claims to model."""

from __future__ import annotations

import pytest

from policyeval import Request, conditions_hold, iam_allows, kms_allows

KEY = "arn:aws:kms:us-east-1:111111111111:key/k"
APP = "arn:aws:iam::111111111111:role/app"
OTHER = "arn:aws:iam::222222222222:role/app"
ROOT = {"AWS": "arn:aws:iam::111111111111:root"}


def policy(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Resource": "*", **s} for s in statements]}


ALLOW_ALL = policy({"Effect": "Allow", "Action": "kms:*"})


@pytest.mark.parametrize(
    ("condition", "context", "holds"),
    [
        ({"StringEquals": {"kms:ViaService": ["a", "b"]}}, {"kms:ViaService": "b"}, True),
        ({"StringEquals": {"kms:ViaService": "a"}}, {}, False),  # a missing key matches nothing
        ({"StringNotEquals": {"kms:ViaService": "a"}}, {}, True),  # ... so a negated test holds
        ({"StringEqualsIfExists": {"kms:ViaService": "a"}}, {}, True),
        ({"StringLike": {"k": "arn:aws:kms:*:1:key/*"}}, {"K": "arn:aws:kms:eu-west-1:1:key/x"}, True),  # keys: any case
        ({"StringLike": {"k": "arn:aws:kms:*:1:key/*"}}, {"k": "arn:aws:kms:eu-west-1:2:key/x"}, False),
        ({"Null": {"k": "false"}}, {}, False),
        ({"Null": {"k": "true"}}, {}, True),
        ({"Bool": {"k": "true"}}, {"k": True}, True),
        ({"BoolIfExists": {"k": "false"}}, {}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a"]}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b"]}}, {"aws:TagKeys": ["a", "c"]}, False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {}, True),  # vacuously: hence the Null tests
        ({"StringEquals": {"a": "1"}, "Null": {"b": "false"}}, {"a": "1"}, False),  # every block must hold
    ],
)
def test_conditions(condition, context, holds):
    assert conditions_hold(condition, context) is holds


def test_an_operator_it_does_not_know_is_not_guessed():
    with pytest.raises(NotImplementedError):
        conditions_hold({"NumericLessThan": {"k": "1"}}, {"k": 0})


def test_kms_key_policy_and_iam():
    delegate = policy({"Effect": "Allow", "Principal": ROOT, "Action": "kms:Decrypt"})
    decrypt = Request(APP, "kms:Decrypt", KEY)
    assert kms_allows(delegate, decrypt, [ALLOW_ALL])
    assert not kms_allows(delegate, decrypt)  # the account statement alone is no permission
    assert not kms_allows(delegate, Request(APP, "kms:Encrypt", KEY), [ALLOW_ALL])
    # Named directly: no IAM needed in the key's account; another account's IAM must agree.
    direct = policy({"Effect": "Allow", "Principal": {"AWS": [APP, OTHER]}, "Action": "kms:Decrypt"})
    assert kms_allows(direct, decrypt)
    assert not kms_allows(direct, Request(OTHER, "kms:Decrypt", KEY))
    assert kms_allows(direct, Request(OTHER, "kms:Decrypt", KEY), [ALLOW_ALL])
    # An explicit Deny wins, in the key policy (also naming the account) or in IAM.
    for deny in ({"AWS": "*"}, {"AWS": APP}, ROOT):
        denied = policy(*direct["Statement"], {"Effect": "Deny", "Principal": deny, "Action": "kms:Decrypt"})
        assert not kms_allows(denied, decrypt, [ALLOW_ALL])
    assert not kms_allows(direct, decrypt, [policy({"Effect": "Deny", "Action": "kms:*"})])
    # Services match by name; the account root user needs no IAM policy.
    logs = policy({"Effect": "Allow", "Principal": {"Service": "logs.us-east-1.amazonaws.com"}, "Action": "kms:Decrypt"})
    assert kms_allows(logs, Request("logs.us-east-1.amazonaws.com", "kms:Decrypt", KEY))
    assert not kms_allows(logs, decrypt, [ALLOW_ALL])
    assert kms_allows(delegate, Request("arn:aws:iam::111111111111:root", "kms:Decrypt", KEY))


def test_identity_policies():
    update = policy({"Effect": "Allow", "Action": "secretsmanager:UpdateSecret", "Resource": "arn:aws:secretsmanager:*:1:secret:*"})
    assert iam_allows([update], Request(APP, "secretsmanager:updatesecret", "arn:aws:secretsmanager:eu-west-1:1:secret:s"))
    assert not iam_allows([update], Request(APP, "secretsmanager:UpdateSecret", "arn:aws:secretsmanager:eu-west-1:2:secret:s"))
    assert not iam_allows([update], Request(APP, "secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:1:secret:s"))
