"""The DynamoDB table of template.yaml, built under moto: tests run against the deployed schema,
not a hand-copied one, so a key or index the template lacks fails here first."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from trainyard.bootstrap import Services

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "template.yaml"
JOB_TABLE_RESOURCE = "JobTable"
TEST_TABLE_NAME = "trainyard-test"
TEST_REGION = "us-east-1"
# The parts of AWS::DynamoDB::Table that describe the schema; create_table takes them as is.
SCHEMA_PROPERTIES = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """template.yaml as plain data. CloudFormation short tags (!Ref, !Sub, !GetAtt, …) load as
    their plain arguments: the tests need the table's literal properties, not the intrinsics'
    results. yaml is imported here so that the SQLite runs of the suites never need it."""
    import yaml

    class TemplateLoader(yaml.SafeLoader):
        pass

    def construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return loader.construct_scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        assert isinstance(node, yaml.MappingNode)
        return loader.construct_mapping(node, deep=True)

    TemplateLoader.add_multi_constructor("!", construct_intrinsic)
    with path.open() as template:
        loaded: dict[str, Any] = yaml.load(template, Loader=TemplateLoader)
    return loaded


def job_table_properties(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    resource = load_template(path)["Resources"][JOB_TABLE_RESOURCE]
    assert resource["Type"] == "AWS::DynamoDB::Table"
    properties: dict[str, Any] = resource["Properties"]
    return properties


def create_job_table(client: Any, table_name: str = TEST_TABLE_NAME) -> None:
    """Create the template's JobTable (schema, billing mode and TTL) with a boto3 client."""
    properties = job_table_properties()
    client.create_table(
        TableName=table_name, **{name: properties[name] for name in SCHEMA_PROPERTIES if name in properties}
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)


class SerializedClient:
    """A boto3 client whose API calls run one at a time.

    DynamoDB applies each request atomically: a conditional write's check and write cannot
    interleave with another request on the item. moto does not: it checks and writes without a
    lock, so two threads can both pass the same condition (and its item dicts can even change
    size mid-iteration). Measured on moto 5.2.5: 12 threads racing terminal transitions gave more
    than one winner in about 1 run in 6. Serialising the calls restores the atomicity the store
    relies on, so the concurrency tests exercise the store's conditions and retries rather than
    moto's races; the store's own code runs unchanged and its threads still interleave between
    requests (read, decide, conditional write)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):  # `exceptions`, `meta`
            return attribute

        def serialized(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return serialized


FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": TEST_REGION,
}


def use_fake_credentials(monkeypatch: Any) -> None:
    """Nothing in a test may reach a real account: fake keys, a fixed region, no profile."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def create_batch_environment(queue: str, definition: str, image: str = "trainyard-trainer:1") -> Any:
    """A managed compute environment, a job queue and the trainer's job definition on moto
    (run under mock_aws(config={"batch": {"use_docker": False}}): there is no Docker here)."""
    import boto3

    iam = boto3.client("iam", region_name=TEST_REGION)
    ec2 = boto3.client("ec2", region_name=TEST_REGION)
    client = boto3.client("batch", region_name=TEST_REGION)
    service_role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    instance_profile = iam.create_instance_profile(InstanceProfileName="batch-instance")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    environment = client.create_compute_environment(
        computeEnvironmentName="trainyard-compute",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 4,
            "desiredvCpus": 0,
            "instanceTypes": ["optimal"],
            "subnets": [subnet],
            "securityGroupIds": [group],
            "instanceRole": instance_profile["InstanceProfile"]["Arn"],
        },
        serviceRole=service_role,
    )["computeEnvironmentArn"]
    client.create_job_queue(
        jobQueueName=queue,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
    )
    client.register_job_definition(
        jobDefinitionName=definition,
        type="container",
        containerProperties={"image": image, "vcpus": 1, "memory": 512,
                             "command": ["python", "-m", "trainer", "train"]},
    )  # fmt: skip
    return client


class BucketBlobs:
    """The part of the S3 BlobStore a launcher uses (writes into one bucket), over a given
    client, for launcher tests that drive one bucket directly."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put_bytes(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data)


AWS_TRAINER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainyard-trainer:1"
AWS_BATCH_QUEUE, AWS_BATCH_DEFINITION, AWS_EVENT_BUS = "trainyard-gpu", "trainyard-trainer", "trainyard"


@contextmanager
def aws_backend_on_moto(
    monkeypatch: Any,
    *,
    home: Path,
    launcher: str,
    datasets_bucket: str,
    artifacts_bucket: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[None]:
    """The service's AWS backend under moto, as template.yaml deploys it: the settings every
    function gets (plus `extra_env`), the job table, both buckets, the SageMaker role, the Batch
    queue when `launcher` is batch, and the event bus. bootstrap(Settings()) inside it builds
    the AWS adapters."""
    import boto3
    from moto import mock_aws

    use_fake_credentials(monkeypatch)
    settings_env = {
        "TRAINYARD_BACKEND": "aws", "TRAINYARD_HOME": str(home),
        "TRAINYARD_AWS_REGION": TEST_REGION, "TRAINYARD_TABLE_NAME": TEST_TABLE_NAME,
        "TRAINYARD_DATASETS_BUCKET": datasets_bucket, "TRAINYARD_ARTIFACTS_BUCKET": artifacts_bucket,
        "TRAINYARD_EVENT_BUS_NAME": AWS_EVENT_BUS, "TRAINYARD_LAUNCHER": launcher,
        "TRAINYARD_TRAINER_IMAGE_URI": AWS_TRAINER_IMAGE,
        "TRAINYARD_BATCH_JOB_QUEUE": AWS_BATCH_QUEUE, "TRAINYARD_BATCH_JOB_DEFINITION": AWS_BATCH_DEFINITION,
        # the emulators and the webhook receivers listen on loopback, which AWS refuses by default
        "TRAINYARD_ALLOW_LOOPBACK_URLS": "true",
        "POWERTOOLS_SERVICE_NAME": "trainyard", "POWERTOOLS_TRACE_DISABLED": "true",
        **(extra_env or {}),
    }  # fmt: skip
    for name, value in settings_env.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"batch": {"use_docker": False}}):
        create_job_table(boto3.client("dynamodb", region_name=TEST_REGION))
        s3 = boto3.client("s3", region_name=TEST_REGION)
        for bucket in (datasets_bucket, artifacts_bucket):
            s3.create_bucket(Bucket=bucket)
        role = boto3.client("iam", region_name=TEST_REGION).create_role(
            RoleName="trainyard-sagemaker", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        monkeypatch.setenv("TRAINYARD_SAGEMAKER_ROLE_ARN", role)
        if launcher == "batch":
            create_batch_environment(AWS_BATCH_QUEUE, AWS_BATCH_DEFINITION, AWS_TRAINER_IMAGE)
        boto3.client("events", region_name=TEST_REGION).create_event_bus(Name=AWS_EVENT_BUS)
        yield


def eventbridge_envelope(source: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """An event as EventBridge hands it to a Lambda target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": detail_type, "source": source,
            "account": "123456789012", "time": "2026-11-22T23:00:00Z", "region": TEST_REGION,
            "resources": [], "detail": detail}  # fmt: skip


def scheduled_event() -> dict[str, Any]:
    """What an EventBridge Schedule (template.yaml's `Type: Schedule` events) sends."""
    return eventbridge_envelope("aws.events", "Scheduled Event", {})


@dataclass
class AwsStack:
    """The AWS path under moto: the API app as the API function builds it, the function
    modules to invoke as Lambda would, and the queue a rule on the bus fills with the
    "Job Status Changed" events that EventBridge would hand to the webhooks function."""

    launcher: str
    services: Services
    api: TestClient
    status_queue_url: str

    def invoke(self, function: ModuleType, event: dict[str, Any]) -> Any:
        from tests.helpers import LambdaContext

        return function.handler(event, LambdaContext(aws_request_id=str(uuid.uuid4())))

    def status_changes(self) -> list[dict[str, Any]]:
        """What EventBridge delivered to the webhooks function's rule since the last call."""
        import boto3

        sqs = boto3.client("sqs", region_name=TEST_REGION)
        messages = sqs.receive_message(QueueUrl=self.status_queue_url, MaxNumberOfMessages=10)
        received = messages.get("Messages", [])
        for message in received:
            sqs.delete_message(QueueUrl=self.status_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in received]


@contextmanager
def aws_stack_on_moto(
    monkeypatch: Any,
    *,
    home: Path,
    launcher: str,
    datasets_bucket: str,
    artifacts_bucket: str,
    api_key: str,
    functions: Sequence[ModuleType],
    extra_env: dict[str, str] | None = None,
) -> Iterator[AwsStack]:
    """aws_backend_on_moto plus what an end-to-end run drives: the status-change rule's queue,
    fresh containers for `functions` (each builds its own services on its first event, as a
    Lambda container does) and the API app, answering to `api_key` for the default tenant."""
    import boto3
    from fastapi.testclient import TestClient

    from trainyard.api.app import create_app
    from trainyard.bootstrap import bootstrap
    from trainyard.settings import Settings

    with aws_backend_on_moto(
        monkeypatch,
        home=home,
        launcher=launcher,
        datasets_bucket=datasets_bucket,
        artifacts_bucket=artifacts_bucket,
        extra_env=extra_env,
    ):
        events = boto3.client("events", region_name=TEST_REGION)
        sqs = boto3.client("sqs", region_name=TEST_REGION)
        queue_url = sqs.create_queue(QueueName="status-changes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        events.put_rule(Name="status-changes", EventBusName=AWS_EVENT_BUS,
                        EventPattern=json.dumps({"source": ["trainyard.service"],
                                                 "detail-type": ["Job Status Changed"]}))  # fmt: skip
        events.put_targets(
            Rule="status-changes", EventBusName=AWS_EVENT_BUS, Targets=[{"Id": "q", "Arn": queue_arn}]
        )

        for function in functions:
            function.services.forget()
            monkeypatch.setattr(function, "_apply_once", None, raising=False)
        services = bootstrap(Settings())
        services.tenants.ensure_default_key(api_key, services.settings.home / "api_key")
        with TestClient(create_app(services)) as api:
            api.headers["Authorization"] = f"Bearer {api_key}"
            yield AwsStack(launcher, services, api, queue_url)
