"""The CloudTrail rule delivers every testdata/events fixture the guard handles and none
of those it ignores.

moto 5.2.5 does not implement EventBridge's TestEventPattern, and its rules cannot
deliver to a Lambda target. So: the pattern is taken from the rule that moto's
CloudFormation created from guard.yaml, put on a rule of a probe bus whose target is an
SQS queue, and each fixture is sent with PutEvents; whatever reaches the queue matched.
That is EventBridge's routing as moto implements it, for the exact pattern deployed.
The pattern only uses what that implementation shares with AWS (exact strings and
"exists": false), and the expectation per fixture comes from CONTRACT.md (cfntools.classify_event),
not from the pattern.
"""

from __future__ import annotations

import json

from cfntools import ACCOUNT, MEMBER_ACCOUNT, ORG_ID, REGION, classify_event, event_fixtures, load_template, role_arn
from motostacks import create_stack, moto_variant, package


def probe_queue(aws, account=None):
    sqs = aws("sqs", account)
    url = sqs.create_queue(QueueName="cmkguard-pattern-probe")["QueueUrl"]
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


def test_rule_delivers_handled_events_and_no_other(aws):
    fixtures = load_fixtures()
    # Without both kinds the test would prove nothing.
    assert fixtures["handled"] and fixtures["ignored"]
    # "not-event" fixtures (if any) are CLI input that no event bus can carry: not sent.
    # "scheduled" ones come through the schedule rule, which has no pattern; the
    # CloudTrail rule must not take them as well (the function would sweep twice).

    resources = create_stack(
        aws("cloudformation"), "cmkguard-guard", moto_variant(load_template("guard.yaml"), code=package(aws("s3")))[0], {}
    )
    events = aws("events")
    pattern = events.describe_rule(Name=resources["SecretsManagerEventsRule"]["PhysicalResourceId"])["EventPattern"]

    sqs, url, queue_arn = probe_queue(aws)
    events.create_event_bus(Name="cmkguard-probe")
    events.put_rule(Name="cmkguard-probe", EventBusName="cmkguard-probe", EventPattern=pattern)
    events.put_targets(Rule="cmkguard-probe", EventBusName="cmkguard-probe", Targets=[{"Id": "probe", "Arn": queue_arn}])

    wrong = []
    for kind in ("handled", "ignored", "scheduled"):
        for name, event in fixtures[kind]:
            put(events, event, "cmkguard-probe")
            delivered = drain(sqs, url)
            if delivered:
                assert delivered[0]["detail"] == event["detail"]
            if bool(delivered) != (kind == "handled"):
                wrong.append(f"{name} ({kind}) {'delivered' if delivered else 'not delivered'}")
    assert not wrong, wrong


def test_member_accounts_forward_what_the_guard_handles(aws):
    """member.yaml in a member account forwards to the guard's bus exactly the events
    the guard's rule takes (moto delivers event-bus targets across accounts)."""
    fixtures = load_fixtures()
    guard_bus = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    parameters = {
        "GuardRoleArn": role_arn(f"cmkguard-guard-{REGION}"),
        "GuardEventBusArn": guard_bus,
        "OrganizationId": ORG_ID,
    }
    create_stack(aws("cloudformation", MEMBER_ACCOUNT), "cmkguard-member", load_template("member.yaml"), parameters, MEMBER_ACCOUNT)

    # The guard's side: a probe rule with the guard's pattern on its default bus.
    pattern = json.dumps(load_template("guard.yaml")["Resources"]["SecretsManagerEventsRule"]["Properties"]["EventPattern"])
    sqs, url, queue_arn = probe_queue(aws)
    events = aws("events")
    events.put_rule(Name="cmkguard-probe", EventPattern=pattern)
    events.put_targets(Rule="cmkguard-probe", Targets=[{"Id": "probe", "Arn": queue_arn}])

    member_events = aws("events", MEMBER_ACCOUNT)
    wrong = []
    for kind in ("handled", "ignored"):
        for name, event in fixtures[kind]:
            put(member_events, event, "default")
            delivered = drain(sqs, url)
            if bool(delivered) != (kind == "handled"):
                wrong.append(f"{name} ({kind}) {'forwarded' if delivered else 'not forwarded'}")
    assert not wrong, wrong
