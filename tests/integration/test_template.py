"""template.yaml passes cfn-lint and transforms with aws-sam-translator, offline, into the resources
the design names (docs/aws-design.md): functions, rules and their patterns, queues, table, buckets,
repositories and roles. The transform is what `sam deploy` runs in CloudFormation; like
`sam package`, it needs S3 URIs in place of local CodeUri paths and a region."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode.cfn_yaml import load as load_cfn_yaml
from samtranslator.translator.transform import transform

from tests.aws_fixtures import TEMPLATE_PATH
from trainyard.settings import Settings

# each function ships only its folder (CodeUri functions/<name>/), so its handler is top level
FUNCTIONS = {
    "ApiFunction": "handler.handler",
    "AuthorizerFunction": "handler.handler",
    "JobEventsFunction": "handler.handler",
    "WebhooksFunction": "handler.handler",
    "ReaperFunction": "handler.handler",
    "DatasetImportFunction": "handler.handler",
}
# environment variables the functions get that Settings does not read (yet)
NOT_SETTINGS = {"TRAINYARD_POSE_IMAGE_URI"}


class NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs only when a function names one by name;
    this template uses policy templates and statements, so offline there is nothing to load."""

    def load(self) -> dict[str, str]:
        return {}


def packaged_template() -> dict[str, Any]:
    """The template as `sam package` uploads it: local code paths replaced by S3 URIs."""
    template: dict[str, Any] = json.loads(json.dumps(load_cfn_yaml(str(TEMPLATE_PATH))))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://trainyard-deploy/code.zip"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            resource["Properties"]["ContentUri"] = "s3://trainyard-deploy/layer.zip"
    return template


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        transformed: dict[str, Any] = transform(packaged_template(), {}, NoManagedPolicies())
    return dict(transformed["Resources"])


def statements_of(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def test_cfn_lint_finds_nothing() -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_is_there_with_its_handler_and_both_layers(resources: dict[str, Any]) -> None:
    layers = sorted(name for name, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion")
    assert len(layers) == 2 and all(
        any(layer.startswith(prefix) for layer in layers)
        for prefix in ("TrainyardCoreLayer", "RuntimeDependenciesLayer")
    )
    for name, handler in FUNCTIONS.items():
        properties = resources[name]["Properties"]
        assert resources[name]["Type"] == "AWS::Lambda::Function"
        assert properties["Handler"] == handler and properties["Runtime"] == "python3.12"
        assert sorted(ref["Ref"] for ref in properties["Layers"]) == layers


def test_function_settings_are_the_ones_settings_reads(resources: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name in FUNCTIONS:
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert variables["TRAINYARD_BACKEND"] == "aws" and variables["TRAINYARD_HOME"] == "/tmp/trainyard"
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"} <= set(
            variables
        )
        trainyard = {key for key in variables if key.startswith("TRAINYARD_")} - NOT_SETTINGS
        unknown = {key for key in trainyard if key.removeprefix("TRAINYARD_").lower() not in fields}
        assert not unknown, f"{name} sets variables Settings does not read: {unknown}"
        for required in ("TABLE_NAME", "DATASETS_BUCKET", "ARTIFACTS_BUCKET", "EVENT_BUS_NAME", "LAUNCHER"):
            assert f"TRAINYARD_{required}" in variables


def test_the_http_api_authorizes_every_route_but_health_and_the_console_pages(
    resources: dict[str, Any],
) -> None:
    body = resources["HttpApi"]["Properties"]["Body"]
    authorizer = body["components"]["securitySchemes"]["ApiKeyAuthorizer"]["x-amazon-apigateway-authorizer"]
    assert authorizer["identitySource"] == ["$request.header.Authorization"]
    assert authorizer["enableSimpleResponses"] is True
    assert authorizer["authorizerPayloadFormatVersion"] == "2.0"
    assert body["paths"]["/{proxy+}"]["x-amazon-apigateway-any-method"]["security"] == [
        {"ApiKeyAuthorizer": []}
    ]
    assert body["paths"]["/v1/health"]["get"]["security"] == [{"NONE": []}]
    # the web console's files and seed 004's pages load before anyone signs in
    for page in ("/console", "/console/{proxy+}", "/", "/entrainer-le-modele", "/assistance", "/seeds/004/"):
        assert body["paths"][page]["get"]["security"] == [{"NONE": []}], page
    permission = resources["HttpApiApiKeyAuthorizerAuthorizerPermission"]["Properties"]
    assert permission["FunctionName"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}


def test_job_events_rules_route_progress_and_trainyard_runs_only(resources: dict[str, Any]) -> None:
    progress = resources["JobEventsFunctionContainerProgress"]["Properties"]
    assert progress["EventBusName"] == {"Ref": "EventBus"}
    assert progress["EventPattern"] == {"source": ["trainyard.container"], "detail-type": ["Job Progress"]}

    sagemaker = resources["JobEventsFunctionSageMakerStateChange"]["Properties"]
    assert "EventBusName" not in sagemaker  # native events arrive on the default bus
    assert sagemaker["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {"TrainingJobName": [{"prefix": "trainyard-"}]},
    }
    batch = resources["JobEventsFunctionBatchStateChange"]["Properties"]
    assert batch["EventPattern"] == {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"jobName": [{"prefix": "trainyard-"}]},
    }
    for rule in (progress, sagemaker, batch):
        assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["JobEventsFunction", "Arn"]}


def test_webhooks_rule_retries_for_a_day_then_dead_letters(resources: dict[str, Any]) -> None:
    rule = resources["WebhooksFunctionJobStatusChanged"]["Properties"]
    assert rule["EventBusName"] == {"Ref": "EventBus"}
    assert rule["EventPattern"] == {"source": ["trainyard.service"], "detail-type": ["Job Status Changed"]}
    [target] = rule["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["WebhooksDeadLetterQueue", "Arn"]}}

    queue = resources["WebhooksDeadLetterQueue"]
    assert queue["Type"] == "AWS::SQS::Queue" and queue["Properties"]["SqsManagedSseEnabled"] is True
    [statement] = resources["WebhooksDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["WebhooksFunctionJobStatusChanged", "Arn"]
    }
    # a handler error is retried by Lambda's async invocation, then lands in the same queue
    on_failure = resources["WebhooksFunctionEventInvokeConfig"]["Properties"]["DestinationConfig"][
        "OnFailure"
    ]
    assert on_failure["Destination"] == {"Fn::GetAtt": ["WebhooksDeadLetterQueue", "Arn"]}
    # and pending deliveries are swept with the service's own backoff
    sweep = resources["WebhooksFunctionRetryDueDeliveries"]["Properties"]
    assert sweep["ScheduleExpression"] == "rate(1 minute)"
    assert sweep["Targets"][0]["Arn"] == {"Fn::GetAtt": ["WebhooksFunction", "Arn"]}


def test_the_reaper_runs_every_five_minutes(resources: dict[str, Any]) -> None:
    rule = resources["ReaperFunctionEveryFiveMinutes"]["Properties"]
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["ReaperFunction", "Arn"]}


def test_the_job_table_keeps_the_schema_the_stores_use(resources: dict[str, Any]) -> None:
    table = resources["JobTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert [key["AttributeName"] for key in table["KeySchema"]] == ["pk", "sk"]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["gsi1", "gsi2"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize("bucket", ["DatasetsBucket", "ArtifactsBucket"])
def test_buckets_are_private_encrypted_and_expire_uploads(resources: dict[str, Any], bucket: str) -> None:
    properties = resources[bucket]["Properties"]
    [encryption] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(properties["PublicAccessBlockConfiguration"].values())
    rules = {rule["Id"]: rule for rule in properties["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-temporary-uploads"]["Prefix"] == "uploads/"
    assert rules["expire-temporary-uploads"]["ExpirationInDays"] == 1
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] >= 1


@pytest.mark.parametrize("repository", ["TrainerRepository", "PoseRepository", "PoseProbeRepository"])
def test_repositories_scan_on_push_and_keep_ten_images(resources: dict[str, Any], repository: str) -> None:
    properties = resources[repository]["Properties"]
    assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
    [rule] = json.loads(properties["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rule["selection"]["countType"] == "imageCountMoreThan" and rule["selection"]["countNumber"] == 10


def test_training_containers_reach_only_job_prefixes_and_the_bus(resources: dict[str, Any]) -> None:
    role = resources["SageMakerExecutionRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "sagemaker.amazonaws.com"
    }
    assert role["ManagedPolicyArns"] == [{"Ref": "TrainingContainerAccessPolicy"}]
    access = resources["TrainingContainerAccessPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    object_resources: list[dict[str, str]] = []
    for statement in access:
        if statement["Sid"] in {"ReadJobInputs", "WriteJobOutputs"}:
            resource = statement["Resource"]
            object_resources.extend(resource if isinstance(resource, list) else [resource])
    assert object_resources and all(r["Fn::Sub"].endswith("/jobs/*") for r in object_resources)
    assert {"events:PutEvents", "s3:GetObject", "s3:PutObject"} <= actions_of(access)
    assert {"ecr:BatchGetImage", "logs:PutLogEvents"} <= actions_of(
        statements_of(resources["SageMakerExecutionRole"])
    )


def test_the_api_may_pass_only_the_execution_role_and_only_to_sagemaker(resources: dict[str, Any]) -> None:
    statements = statements_of(resources["ApiFunctionRole"])
    [pass_role] = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert {
        "sagemaker:CreateTrainingJob",
        "sagemaker:StopTrainingJob",
        "batch:SubmitJob",
        "batch:TerminateJob",
        "secretsmanager:GetSecretValue",
        "events:PutEvents",
    } <= actions_of(statements)
    assert "dynamodb:PutItem" not in actions_of(statements_of(resources["AuthorizerFunctionRole"]))


def test_batch_resources_exist_only_for_the_batch_launcher(resources: dict[str, Any]) -> None:
    batch = {name: r for name, r in resources.items() if r["Type"].startswith("AWS::Batch::")}
    assert set(batch) == {
        "BatchComputeEnvironment",
        "BatchJobQueue",
        "BatchJobDefinition",
        "BatchPoseJobDefinition",
    }
    # the pose job definition exists only once a pose image is given
    assert resources["BatchPoseJobDefinition"].pop("Condition") == "UseBatchForPose"
    pose = resources["BatchPoseJobDefinition"]["Properties"]["ContainerProperties"]
    assert pose["Image"] == {"Ref": "PoseImageUri"}
    assert all(resource.get("Condition", "UseBatch") == "UseBatch" for resource in batch.values())
    for name in ("BatchInstanceRole", "BatchInstanceProfile", "BatchJobRole"):
        assert resources[name]["Condition"] == "UseBatch"
    compute = resources["BatchComputeEnvironment"]["Properties"]["ComputeResources"]
    assert compute["Type"] == {"Fn::If": ["UseSpotCapacity", "SPOT", "EC2"]} and compute["MinvCpus"] == 0
    assert compute["InstanceRole"] == {"Fn::GetAtt": ["BatchInstanceProfile", "Arn"]}
    container = resources["BatchJobDefinition"]["Properties"]["ContainerProperties"]
    assert {"Type": "GPU", "Value": "1"} in container["ResourceRequirements"]
    assert container["Image"] == {"Ref": "TrainerImageUri"}
    assert container["JobRoleArn"] == {"Fn::GetAtt": ["BatchJobRole", "Arn"]}


def test_pose_uploads_are_checked_by_the_probe_function_when_its_image_is_given(
    resources: dict[str, Any],
) -> None:
    probe = resources["PoseProbeFunction"]
    assert probe["Condition"] == "HasPoseProbeImage" and probe["Type"] == "AWS::Lambda::Function"
    assert probe["Properties"]["PackageType"] == "Image"
    assert probe["Properties"]["Code"] == {"ImageUri": {"Ref": "PoseProbeImageUri"}}
    api = resources["ApiFunction"]["Properties"]
    assert api["Environment"]["Variables"]["TRAINYARD_POSE_PROBE_FUNCTION"] == {
        "Fn::If": ["HasPoseProbeImage", {"Ref": "PoseProbeFunction"}, ""]
    }
    api_statements = statements_of(resources["ApiFunctionRole"])
    invoke = next(s for s in api_statements if s.get("Sid") == "CheckPoseUploads")
    assert invoke["Action"] == "lambda:InvokeFunction"
    # the probe reads only what the API put under probe/ of the datasets bucket
    reads = resources["PoseProbeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert reads[0]["Action"] == "s3:GetObject"
    assert reads[0]["Resource"] == {"Fn::Sub": "${DatasetsBucket.Arn}/probe/*"}


def test_seed002_imports_run_in_their_own_function_with_the_credentials_handed_over(
    resources: dict[str, Any],
) -> None:
    function_name = {"Fn::Sub": "${AWS::StackName}-dataset-import"}
    imports = resources["DatasetImportFunction"]["Properties"]
    assert imports["FunctionName"] == function_name
    # a dataset may take minutes to download and check, and is unpacked under /tmp
    assert imports["Timeout"] == 900 and imports["EphemeralStorage"] == {"Size": 10240}
    assert imports["MemorySize"] >= 2048
    assert imports["Environment"]["Variables"]["TRAINYARD_DATASET_IMPORT_FUNCTION"] == function_name
    retries = resources["DatasetImportFunctionEventInvokeConfig"]["Properties"]
    assert retries["MaximumRetryAttempts"] == 2

    api = resources["ApiFunction"]["Properties"]
    assert api["Environment"]["Variables"]["TRAINYARD_DATASET_IMPORT_FUNCTION"] == function_name
    api_statements = statements_of(resources["ApiFunctionRole"])
    invoke = next(s for s in api_statements if s.get("Sid") == "StartDatasetImports")
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"]["Fn::Sub"].endswith(":function:${AWS::StackName}-dataset-import")

    external = "secret:trainyard/external/*"
    hand_over = next(s for s in api_statements if s.get("Sid") == "HandOverExternalCredentials")
    assert hand_over["Resource"]["Fn::Sub"].endswith(external)
    assert {"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"} <= set(hand_over["Action"])

    import_statements = statements_of(resources["DatasetImportFunctionRole"])
    take = next(s for s in import_statements if s.get("Sid") == "TakeExternalCredentials")
    assert set(take["Action"]) == {"secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"}
    assert take["Resource"]["Fn::Sub"].endswith(external)
    # the import function reads no other secret (the webhook secrets are the webhooks function's)
    secret_resources = [
        s["Resource"]["Fn::Sub"]
        for s in import_statements
        if any(action.startswith("secretsmanager:") for action in actions_of([s]))
    ]
    assert secret_resources and all(r.endswith(external) for r in secret_resources)
    # it stores the dataset, records the job and launches as the API does
    assert {
        "dynamodb:UpdateItem",
        "s3:PutObject",
        "events:PutEvents",
        "sagemaker:CreateTrainingJob",
        "batch:SubmitJob",
        "iam:PassRole",
    } <= actions_of(import_statements)
    [pass_role] = [s for s in import_statements if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}
