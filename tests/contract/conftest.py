from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.aws_fixtures import TEST_REGION, SerializedClient, create_job_table


@pytest.fixture
def dynamodb_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client on moto, with the template's JobTable created. Fake credentials and a
    fixed region in the environment make sure nothing can reach a real AWS account. Calls are
    serialised because moto's conditional writes are not atomic across threads (see
    SerializedClient); DynamoDB's are."""
    # Imported here, not skipped when missing: they are dev requirements, and a missing one
    # must fail the run rather than quietly drop the DynamoDB half of the contract suite.
    import boto3
    import moto

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_DEFAULT_REGION": TEST_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with moto.mock_aws():
        client = boto3.client("dynamodb", region_name=TEST_REGION)
        create_job_table(client)
        yield SerializedClient(client)
