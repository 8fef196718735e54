"""EventBridgeBus: an event published on the bus reaches a rule's target with the detail
intact (moto: rule → SQS queue), and an entry EventBridge rejects raises."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from trainyard.adapters.aws.eventbridge import EventBridgeBus, EventPublishError

REGION = "us-east-1"
BUS = "trainyard-test"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")  # credentials that could never reach a real account
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def queue_for_rule(detail_type: str) -> str:
    """A queue receiving every event of `detail_type` on the bus, as template.yaml's rules
    route them to functions."""
    events, sqs = boto3.client("events", region_name=REGION), boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name=BUS)
    queue_url = sqs.create_queue(QueueName="received")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="status-changed",
        EventBusName=BUS,
        EventPattern=json.dumps({"source": ["trainyard.service"], "detail-type": [detail_type]}),
    )
    events.put_targets(Rule="status-changed", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    return str(queue_url)


def received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_published_event_reaches_the_rules_target(aws: None) -> None:
    queue_url = queue_for_rule("Job Status Changed")
    bus = EventBridgeBus(BUS, region_name=REGION)
    bus.publish("Job Status Changed", {"job_id": "job_1", "status": "SUCCEEDED"})
    bus.publish("Job Progress", {"job_id": "job_1"})  # no rule matches: delivered nowhere
    [event] = received(queue_url)
    assert event["source"] == "trainyard.service"
    assert event["detail-type"] == "Job Status Changed"
    assert event["detail"] == {"job_id": "job_1", "status": "SUCCEEDED"}


def test_subscribe_registers_nothing_in_process(aws: None) -> None:
    queue_url = queue_for_rule("Job Status Changed")
    calls: list[dict[str, Any]] = []
    bus = EventBridgeBus(BUS, region_name=REGION)
    bus.subscribe("Job Status Changed", calls.append)
    bus.publish("Job Status Changed", {"job_id": "job_2", "status": "FAILED"})
    assert calls == []  # delivery is EventBridge's, through the rule
    assert [e["detail"]["job_id"] for e in received(queue_url)] == ["job_2"]


def test_a_rejected_entry_raises() -> None:
    # PutEvents reports a rejected entry in its response, not as an error; moto never
    # rejects one, so botocore's Stubber plays EventBridge here.
    client = boto3.client(
        "events", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    stubber.add_response(
        "put_events",
        {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
        },
        {
            "Entries": [
                {
                    "EventBusName": BUS,
                    "Source": "trainyard.service",
                    "DetailType": "Job Status Changed",
                    "Detail": '{"job_id":"job_3","status":"RUNNING"}',
                }
            ]
        },
    )
    with stubber, pytest.raises(EventPublishError, match="InternalFailure: try again"):
        EventBridgeBus(BUS, client=client).publish(
            "Job Status Changed", {"job_id": "job_3", "status": "RUNNING"}
        )
    stubber.assert_no_pending_responses()
