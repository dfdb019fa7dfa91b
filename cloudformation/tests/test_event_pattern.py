"""The CloudTrail rules deliver every testdata/events fixture the guard handles and none
of those it ignores.

moto 5.2.5 does not implement EventBridge's TestEventPattern, and its rules cannot
deliver to a Lambda target. So: the patterns are taken from the rules that moto's
CloudFormation created from guard.yaml, each put on a rule of a probe bus whose target is
an SQS queue of its own, and each fixture is sent with PutEvents; whatever reaches a
queue matched that rule. That is EventBridge's routing as moto implements it, for the
exact patterns deployed. The patterns only use what that implementation shares with AWS
(exact strings and "exists": false), and the expectation per fixture comes from
CONTRACT.md (cfntools.classify_event), not from the patterns.
"""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from cfntools import (
    ACCOUNT,
    CLOUDTRAIL_RULES,
    MEMBER_ACCOUNT,
    ORG_ID,
    REGION,
    ROOT,
    classify_event,
    event_fixtures,
    load_template,
    role_arn,
)
from motostacks import create_stack, moto_variant, package

# Real KMS calls that are none of the guard's business: key creation and configuration,
# aliases, reading the policy and grants (the guard's own review), and the cryptographic
# calls (by far the most frequent KMS events). PutKeyPolicy and the grant calls are the
# guard's (CONTRACT.md "Key policy review"): not here.
OTHER_KMS_EVENT_NAMES = (
    "CreateKey",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "GetKeyPolicy",
    "ListGrants",
    "ListRetirableGrants",
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "ReEncrypt",
    "CreateAlias",
    "DeleteAlias",
    "UpdateAlias",
    "TagResource",
)
# The key policy and grant events (CONTRACT.md "Key policy review"), one fixture each.
KEY_POLICY_EVENT_FIXTURES = (
    "PutKeyPolicy-key-arn.json",
    "CreateGrant-key-arn.json",
    "RevokeGrant-key-arn.json",
    "RetireGrant-key-arn.json",
)
# Real Secrets Manager calls that change no key and no current version: reading values
# (the most frequent by far), metadata, policies, rotation set-up and its cancellation.
OTHER_SECRETS_MANAGER_CALLS = (
    "GetSecretValue",
    "BatchGetSecretValue",
    "DescribeSecret",
    "ListSecretVersionIds",
    "GetRandomPassword",
    "PutResourcePolicy",
    "CancelRotateSecret",
)
# Real Secrets Manager service events other than a succeeded rotation: none moves AWSCURRENT.
OTHER_SECRETS_MANAGER_SERVICE_EVENTS = (
    "RotationStarted",
    "RotationFailed",
    "RotationAbandoned",
    "StartSecretVersionDelete",
    "CancelSecretVersionDelete",
    "EndSecretVersionDelete",
)
# Each made from a handled fixture by renaming it, so that only the name keeps it out:
# (fixture, the rule that delivers the fixture, the names it is renamed to).
OTHER_EVENTS = {
    "aws.kms": ("DisableKey-key-arn.json", "KmsKeyEventsRule", OTHER_KMS_EVENT_NAMES),
    "aws.secretsmanager": ("PutSecretValue-new-version.json", "SecretsManagerEventsRule", OTHER_SECRETS_MANAGER_CALLS),
    "aws.secretsmanager service events": (
        "RotationSucceeded-service-event.json",
        "SecretsManagerServiceEventsRule",
        OTHER_SECRETS_MANAGER_SERVICE_EVENTS,
    ),
}


def probe_queue(aws, name: str = "cmkguard-pattern-probe", account=None):
    sqs = aws("sqs", account)
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def drain(sqs, url) -> list[dict]:
    received = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return received
        for message in messages:
            received.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def put(events, event: dict, bus: str) -> None:
    entry = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event.get("resources", []),
        "EventBusName": bus,
    }
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def load_fixtures() -> dict[str, list]:
    by_kind: dict[str, list] = {"handled": [], "ignored": [], "scheduled": [], "not-event": []}
    for path in event_fixtures():
        try:
            event = json.loads(path.read_text())
        except json.JSONDecodeError:
            event = None  # unreadable input for the CLI: no bus carries it
        by_kind[classify_event(path, event)].append((path.name, event))
    return by_kind


def other_events(kind: str) -> list[tuple[str, dict]]:
    """Real-shaped events of other calls (or service events) of one service: a handled
    fixture under another name (OTHER_EVENTS). Made here, not fixture files (every file in
    testdata/events is an event the Rust case table runs)."""
    fixture, _, names = OTHER_EVENTS[kind]
    base = json.loads((ROOT / "testdata" / "events" / fixture).read_text())
    made = []
    for name in names:
        event = copy.deepcopy(base)
        event["id"] = str(uuid.uuid4())
        event["detail"]["eventName"] = name
        event["detail"]["eventID"] = str(uuid.uuid4())
        made.append((f"{name} ({fixture} renamed)", event))
    return made


def pattern_rules(template: dict) -> list[str]:
    """The template's rules with an event pattern (the CloudTrail rules), by logical id."""
    return sorted(
        lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule" and "EventPattern" in r["Properties"]
    )


def guard_probe(aws):
    """The guard's stack in moto, and a probe rule (with a queue of its own) per CloudTrail
    rule, with the pattern as moto's CloudFormation created it. Returns (events client,
    {rule: (sqs, url)})."""
    template = load_template("guard.yaml")
    rules = pattern_rules(template)
    assert rules == sorted(CLOUDTRAIL_RULES["guard.yaml"]), rules
    resources = create_stack(aws("cloudformation"), "cmkguard-guard", moto_variant(template, code=package(aws("s3")))[0], {})
    events = aws("events")
    events.create_event_bus(Name="cmkguard-probe")
    probes = {}
    for rule in rules:
        pattern = events.describe_rule(Name=resources[rule]["PhysicalResourceId"])["EventPattern"]
        sqs, url, queue_arn = probe_queue(aws, f"probe-{rule}")
        events.put_rule(Name=rule, EventBusName="cmkguard-probe", EventPattern=pattern)
        events.put_targets(Rule=rule, EventBusName="cmkguard-probe", Targets=[{"Id": "probe", "Arn": queue_arn}])
        probes[rule] = (sqs, url)
    return events, probes


def delivered_by(events, probes, event: dict) -> list[str]:
    """The guard's rules that deliver the event (each delivery checked to be the event)."""
    put(events, event, "cmkguard-probe")
    rules = []
    for rule, (sqs, url) in probes.items():
        for delivered in drain(sqs, url):
            assert delivered["detail"] == event["detail"], rule
            rules.append(rule)
    return rules


def test_kms_fixtures_are_classified_by_the_contract():
    # The key events of CONTRACT.md (key state, key policy and grants) are handled; a
    # failed call and a cryptographic call are ignored.
    kinds = {name: kind for kind, fixtures in load_fixtures().items() for name, _ in fixtures}
    for name in (
        "DisableKey-key-arn.json",
        "DisableKey-key-id-only.json",
        "EnableKey-key-arn.json",
        "ScheduleKeyDeletion-key-arn.json",
        "CancelKeyDeletion-key-arn.json",
        *KEY_POLICY_EVENT_FIXTURES,
    ):
        assert kinds[name] == "handled", name
    assert kinds["DisableKey-failed.json"] == "ignored"
    # Not in testdata/events (every file there runs through the Rust case table).
    assert kinds["Decrypt-not-handled.json"] == "ignored"
    for name, event in other_events("aws.kms"):
        assert classify_event(ROOT / "testdata" / "events" / "x.json", event) == "ignored", name


def test_secrets_manager_fixtures_are_classified_by_the_contract():
    # The calls that give a secret a new version or move its labels, and the succeeded
    # rotation (a service event), are handled like the key-changing calls.
    kinds = {name: kind for kind, fixtures in load_fixtures().items() for name, _ in fixtures}
    for name in (
        "CreateSecret-key-arn.json",
        "UpdateSecret-value-only.json",
        "PutSecretValue-new-version.json",
        "RotateSecret-immediately.json",
        "UpdateSecretVersionStage-move-current.json",
        "RotationSucceeded-service-event.json",
    ):
        assert kinds[name] == "handled", name
    for name in ("CreateSecret-failed.json", "DeleteSecret-not-handled.json"):
        assert kinds[name] == "ignored", name
    for kind in ("aws.secretsmanager", "aws.secretsmanager service events"):
        for name, event in other_events(kind):
            assert classify_event(ROOT / "testdata" / "events" / "x.json", event) == "ignored", name
    # A call's name delivered as a service event (and the other way round) is not the contract's.
    [(_, rotation)] = [(n, e) for n, e in load_fixtures()["handled"] if n == "RotationSucceeded-service-event.json"]
    as_call = copy.deepcopy(rotation)
    as_call["detail-type"] = "AWS API Call via CloudTrail"
    assert classify_event(ROOT / "testdata" / "events" / "x.json", as_call) == "ignored"


def test_rules_deliver_handled_events_once_and_no_other(aws):
    fixtures = load_fixtures()
    # Without both kinds, and without both services, the test would prove nothing.
    assert fixtures["handled"] and fixtures["ignored"]
    assert {(e["source"], e["detail-type"]) for _, e in fixtures["handled"]} == {
        ("aws.secretsmanager", "AWS API Call via CloudTrail"),
        ("aws.secretsmanager", "AWS Service Event via CloudTrail"),
        ("aws.kms", "AWS API Call via CloudTrail"),
    }
    # "not-event" fixtures (if any) are CLI input that no event bus can carry: not sent.
    # "scheduled" ones come through the schedule rule, which has no pattern; the
    # CloudTrail rules must not take them as well (the function would sweep twice).
    events, probes = guard_probe(aws)
    wrong = []
    for kind in ("handled", "ignored", "scheduled"):
        for name, event in fixtures[kind]:
            rules = delivered_by(events, probes, event)
            # A handled event exactly once: two rules taking it would invoke the guard twice.
            if len(rules) != (kind == "handled"):
                wrong.append(f"{name} ({kind}) delivered by {rules or 'no rule'}")
    assert not wrong, wrong


def test_key_policy_and_grant_events_take_the_key_events_path(aws):
    # PutKeyPolicy, CreateGrant, RevokeGrant, RetireGrant go where DisableKey goes (the KMS
    # key events rule, once); a Decrypt on the same key, and each of them failed, go nowhere.
    events, probes = guard_probe(aws)
    fixtures = {n: e for kind in ("handled", "ignored") for n, e in load_fixtures()[kind]}
    wrong = []
    for name in ("DisableKey-key-arn.json", *KEY_POLICY_EVENT_FIXTURES):
        rules = delivered_by(events, probes, fixtures[name])
        if rules != ["KmsKeyEventsRule"]:
            wrong.append(f"{name} delivered by {rules or 'no rule'}")
        failed = copy.deepcopy(fixtures[name])
        failed["detail"]["errorCode"] = "AccessDeniedException"
        failed["detail"]["errorMessage"] = "User is not authorized to perform this operation"
        failed["detail"]["responseElements"] = None
        assert classify_event(ROOT / "testdata" / "events" / "x.json", failed) == "ignored"
        rules = delivered_by(events, probes, failed)
        if rules:
            wrong.append(f"{name} failed delivered by {rules}")
    rules = delivered_by(events, probes, fixtures["Decrypt-not-handled.json"])
    if rules:
        wrong.append(f"Decrypt-not-handled.json delivered by {rules}")
    assert not wrong, wrong


@pytest.mark.parametrize("kind", sorted(OTHER_EVENTS))
def test_rules_deliver_no_other_call_or_service_event(aws, kind):
    events, probes = guard_probe(aws)
    # The renamed event is otherwise the one its rule delivers: only the name keeps it out.
    fixture, rule, _ = OTHER_EVENTS[kind]
    [(_, base)] = [(n, e) for n, e in load_fixtures()["handled"] if n == fixture]
    assert delivered_by(events, probes, base) == [rule]
    wrong = []
    for name, event in other_events(kind):
        rules = delivered_by(events, probes, event)
        if rules:
            wrong.append(f"{name} delivered by {rules}")
    assert not wrong, wrong


def test_rules_keep_calls_and_service_events_apart(aws):
    # A handled name under the other detail-type is no event of the contract (and none AWS
    # sends): neither rule takes it.
    events, probes = guard_probe(aws)
    handled = dict(load_fixtures()["handled"])
    wrong = []
    for fixture, detail_type in (
        ("RotationSucceeded-service-event.json", "AWS API Call via CloudTrail"),
        ("PutSecretValue-new-version.json", "AWS Service Event via CloudTrail"),
    ):
        event = copy.deepcopy(handled[fixture])
        event["detail-type"] = detail_type
        assert classify_event(ROOT / "testdata" / "events" / "x.json", event) == "ignored", fixture
        rules = delivered_by(events, probes, event)
        if rules:
            wrong.append(f"{fixture} as {detail_type} delivered by {rules}")
    assert not wrong, wrong


def member_forwarding(aws):
    """member.yaml in a member account forwarding to the guard's default bus, where a probe
    rule takes every event that arrives (moto delivers event-bus targets across accounts;
    it re-puts them in the guard's account, so the probe matches on the sources sent).
    Returns (member events client, probe (sqs, url), sources the probe takes)."""
    guard_bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    parameters = {
        "GuardRoleArn": role_arn(f"cmkguard-guard-{REGION}"),
        "GuardEventBusArn": guard_bus,
        "OrganizationId": ORG_ID,
    }
    template = load_template("member.yaml")
    assert pattern_rules(template) == sorted(CLOUDTRAIL_RULES["member.yaml"])
    create_stack(aws("cloudformation", MEMBER_ACCOUNT), "cmkguard-member", template, parameters, MEMBER_ACCOUNT)

    fixtures = load_fixtures()
    sources = sorted({e["source"] for kind in ("handled", "ignored", "scheduled") for _, e in fixtures[kind]})
    sqs, url, queue_arn = probe_queue(aws)
    events = aws("events")
    events.put_rule(Name="cmkguard-probe", EventPattern=json.dumps({"source": sources}))
    events.put_targets(Rule="cmkguard-probe", Targets=[{"Id": "probe", "Arn": queue_arn}])
    return aws("events", MEMBER_ACCOUNT), (sqs, url), sources


def test_member_accounts_forward_what_the_guard_handles(aws):
    """Exactly the events the guard handles leave a member account, each once; whatever
    arrives on the guard's bus is then routed by the guard's rules (the test above)."""
    member_events, (sqs, url), _ = member_forwarding(aws)
    fixtures = load_fixtures()
    wrong = []
    for kind in ("handled", "ignored", "scheduled"):
        for name, event in fixtures[kind]:
            put(member_events, event, "default")
            forwarded = drain(sqs, url)
            if len(forwarded) != (kind == "handled"):
                wrong.append(f"{name} ({kind}) forwarded {len(forwarded)} times")
    assert not wrong, wrong


@pytest.mark.parametrize("kind", sorted(OTHER_EVENTS))
def test_member_accounts_forward_no_other_call_or_service_event(aws, kind):
    member_events, (sqs, url), sources = member_forwarding(aws)
    assert kind.split()[0] in sources
    wrong = []
    for name, event in other_events(kind):
        put(member_events, event, "default")
        if drain(sqs, url):
            wrong.append(name)
    assert not wrong, wrong
