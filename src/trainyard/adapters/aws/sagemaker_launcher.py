"""JobLauncher on SageMaker training jobs (docs/aws-design.md, "Launchers").

The training job's name is derived from the job id, so the name is the idempotency key:
launching the same job again gets ResourceInUse, which means "already launched". SageMaker
lays out /opt/ml as the job contract expects and uploads the model dir as model.tar.gz; its
native state-change event ends the job (services/platform_events.py), which calls
`persist_model` to extract that archive under the model's prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ...domain import platform_job_name
from ...ports import BlobStore, LaunchSpec, LaunchState, LaunchStatus
from .model_artifacts import (
    DEFAULT_MAX_MODEL_BYTES,
    checkpoint_prefix,
    persist_sagemaker_model,
    s3_uri,
    sagemaker_output_prefix,
    write_input_snapshot,
)

log = logging.getLogger(__name__)

JOB_ID_TAG = "trainyard:job-id"
VOLUME_SIZE_GB = 50
_STATES = {
    "InProgress": LaunchState.RUNNING,
    "Stopping": LaunchState.RUNNING,
    "Completed": LaunchState.SUCCEEDED,
    "Failed": LaunchState.FAILED,
    "Stopped": LaunchState.FAILED,
}


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _error_message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _is_not_found(error: ClientError) -> bool:
    # SageMaker answers a missing training job with ValidationException "Requested resource
    # not found" (moto: "Could not find training job"); other ValidationExceptions are real
    # errors.
    code, message = _error_code(error), _error_message(error).lower()
    return code == "ResourceNotFound" or (
        code == "ValidationException" and ("not found" in message or "could not find" in message)
    )


class SageMakerLauncher:
    def __init__(
        self,
        blobs: BlobStore,
        *,
        image_uris: Mapping[str, str],
        role_arn: str,
        instance_type: str,
        use_spot: bool,
        max_runtime_seconds: int,
        max_wait_seconds: int,
        artifacts_bucket: str,
        datasets_bucket: str,
        event_bus_name: str,
        client: Any | None = None,
        s3_client: Any | None = None,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
    ) -> None:
        """`blobs` is the artifacts bucket's store (it receives the snapshot's documents);
        the clients default to boto3's for the current region."""
        if use_spot and max_wait_seconds < max_runtime_seconds:
            raise ValueError("max_wait_seconds must be at least max_runtime_seconds with spot training")
        self._blobs = blobs
        self._image_uris = dict(image_uris)  # container name ("trainer", "pose") → image
        self._role_arn = role_arn
        self._instance_type = instance_type
        self._use_spot = use_spot
        self._max_runtime_seconds = max_runtime_seconds
        self._max_wait_seconds = max_wait_seconds
        self._artifacts_bucket = artifacts_bucket
        self._datasets_bucket = datasets_bucket
        self._event_bus_name = event_bus_name
        self._max_model_bytes = max_model_bytes
        if client is None or s3_client is None:
            import boto3  # noqa: PLC0415 - only the AWS backend needs it

            client = client or boto3.client("sagemaker")
            s3_client = s3_client or boto3.client("s3")
        self._client = client
        self._s3 = s3_client

    def launch(self, spec: LaunchSpec) -> str:
        name = platform_job_name(spec.job_id)
        channel_uris = write_input_snapshot(
            self._s3, self._blobs, self._artifacts_bucket, self._datasets_bucket, spec
        )
        try:
            self._client.create_training_job(**self.training_job_request(spec, channel_uris))
        except ClientError as error:
            if _error_code(error) != "ResourceInUse":
                raise
            log.info("training job %s exists already: job %s was launched before", name, spec.job_id)
        return name

    def training_job_request(self, spec: LaunchSpec, channel_uris: dict[str, str]) -> dict[str, Any]:
        """The CreateTrainingJob parameters for one job."""
        image = self._image_uris.get(spec.container)
        if not image:
            raise ValueError(
                f"no image is configured for the {spec.container} container"
                f" (TRAINYARD_{spec.container.upper()}_IMAGE_URI)"
            )
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": self._max_runtime_seconds}
        request: dict[str, Any] = {
            "TrainingJobName": platform_job_name(spec.job_id),
            "AlgorithmSpecification": {"TrainingImage": image, "TrainingInputMode": "File"},
            "RoleArn": self._role_arn,
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
                for channel, uri in channel_uris.items()
            ],
            "OutputDataConfig": {
                "S3OutputPath": s3_uri(self._artifacts_bucket, sagemaker_output_prefix(spec.job_id))
            },
            "ResourceConfig": {
                "InstanceType": self._instance_type,
                "InstanceCount": 1,
                "VolumeSizeInGB": VOLUME_SIZE_GB,
            },
            "StoppingCondition": stopping,
            "HyperParameters": dict(spec.hyperparameters),
            "Environment": {"TRAINYARD_EVENT_BUS_NAME": self._event_bus_name},
            "Tags": [{"Key": JOB_ID_TAG, "Value": spec.job_id}],
        }
        if self._use_spot:
            stopping["MaxWaitTimeInSeconds"] = self._max_wait_seconds
            request["EnableManagedSpotTraining"] = True
            # A reclaimed spot instance resumes from here instead of from the first epoch.
            request["CheckpointConfig"] = {
                "S3Uri": s3_uri(self._artifacts_bucket, checkpoint_prefix(spec.job_id))
            }
        return request

    def stop(self, job_id: str, launch_ref: str | None) -> None:
        try:
            self._client.stop_training_job(TrainingJobName=platform_job_name(job_id))
        except ClientError as error:
            # Stopping a job that already ended (or never started) leaves nothing to stop.
            if _error_code(error) not in ("ValidationException", "ResourceNotFound"):
                raise
            log.info("training job of %s not stopped: %s", job_id, _error_message(error))

    def describe(self, job_id: str, launch_ref: str | None) -> LaunchStatus:
        try:
            job = self._client.describe_training_job(TrainingJobName=platform_job_name(job_id))
        except ClientError as error:
            if _is_not_found(error):
                return LaunchStatus(LaunchState.UNKNOWN, "SageMaker has no training job for this job")
            raise
        status = str(job.get("TrainingJobStatus"))
        state = _STATES.get(status, LaunchState.UNKNOWN)
        if status == "Failed":
            return LaunchStatus(state, str(job.get("FailureReason") or "training job failed"))
        if status == "Stopped":
            return LaunchStatus(state, "stopped")
        return LaunchStatus(state)

    def persist_model(self, job_id: str, model_prefix: str) -> None:
        persist_sagemaker_model(self._s3, self._artifacts_bucket, job_id, model_prefix, self._max_model_bytes)
