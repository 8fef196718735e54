"""JobLauncher on AWS Batch (docs/aws-design.md, "Launchers").

Batch has no client token, so idempotency is by name: the job is named `trainyard-<job id>`,
and before submitting the launcher looks for a job of that name in the queue. The caller's
`intent_recorder` stores `batch-pending:<job id>` as the launch ref before SubmitJob, so a
crash between submitting and recording the real job id still leaves a ref that `describe`
and `stop` can resolve by name.

Batch provides none of SageMaker's /opt/ml plumbing; the container does it itself from the
environment (containers/trainer/trainer/model_upload.py): it writes the hyperparameters from
TRAINYARD_HYPERPARAMETERS_JSON, downloads TRAINYARD_INPUT_S3_URIS into its channel dirs and
uploads its model dir to TRAINYARD_MODEL_S3_URI before exiting 0.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ...domain import platform_job_name
from ...ports import BlobStore, LaunchSpec, LaunchState, LaunchStatus
from .model_artifacts import (
    batch_model_prefix,
    persist_batch_model,
    s3_uri,
    write_input_snapshot,
)

log = logging.getLogger(__name__)

PENDING_REF_PREFIX = "batch-pending:"
JOB_ID_TAG = "trainyard:job-id"
CONTAINER_BASE_DIR = "/opt/ml"
ATTEMPTS = 3
# Retry when the host went away (spot reclaim, instance retirement: "Host EC2 (instance …)
# terminated."); the application's own failures exit at once, retrying them would only fail
# again. Batch patterns may only end in `*`, so "Host EC2*" is the form it accepts.
RETRY_ON_EXIT = [
    {"onStatusReason": "Host EC2*", "action": "RETRY"},
    {"onReason": "*", "action": "EXIT"},
]
_STATES = {
    "SUBMITTED": LaunchState.RUNNING,
    "PENDING": LaunchState.RUNNING,
    "RUNNABLE": LaunchState.RUNNING,
    "STARTING": LaunchState.RUNNING,
    "RUNNING": LaunchState.RUNNING,
    "SUCCEEDED": LaunchState.SUCCEEDED,
    "FAILED": LaunchState.FAILED,
}


def pending_ref(job_id: str) -> str:
    return f"{PENDING_REF_PREFIX}{job_id}"


class BatchLauncher:
    def __init__(
        self,
        *,
        job_queue: str,
        job_definitions: Mapping[str, str],
        artifacts_bucket: str,
        datasets_bucket: str,
        event_bus_name: str,
        max_runtime_seconds: int,
        blobs: BlobStore,
        client: Any | None = None,
        s3_client: Any | None = None,
        intent_recorder: Callable[[str, str], None] | None = None,
    ) -> None:
        """`blobs` is the artifacts bucket's store; `intent_recorder(job_id, launch_ref)`
        persists the pending ref before submitting (the JobStore's set_launch_ref)."""
        self._job_queue = job_queue
        self._job_definitions = dict(job_definitions)  # container name → job definition
        self._artifacts_bucket = artifacts_bucket
        self._datasets_bucket = datasets_bucket
        self._event_bus_name = event_bus_name
        self._max_runtime_seconds = max_runtime_seconds
        self._blobs = blobs
        self._intent_recorder = intent_recorder
        if client is None or s3_client is None:
            import boto3  # noqa: PLC0415 - only the AWS backend needs it

            client = client or boto3.client("batch")
            s3_client = s3_client or boto3.client("s3")
        self._client = client
        self._s3 = s3_client

    def launch(self, spec: LaunchSpec) -> str:
        existing = self._find_job_id(spec.job_id)
        if existing is not None:
            log.info("batch job %s exists already: job %s was launched before", existing, spec.job_id)
            return existing
        if self._intent_recorder is not None:
            self._intent_recorder(spec.job_id, pending_ref(spec.job_id))
        channel_uris = write_input_snapshot(
            self._s3, self._blobs, self._artifacts_bucket, self._datasets_bucket, spec
        )
        response = self._client.submit_job(**self.submit_job_request(spec, channel_uris))
        return str(response["jobId"])

    def submit_job_request(self, spec: LaunchSpec, channel_uris: dict[str, str]) -> dict[str, Any]:
        """The SubmitJob parameters for one job."""
        definition = self._job_definitions.get(spec.container)
        if not definition:
            raise ValueError(f"no Batch job definition is configured for the {spec.container} container")
        environment = {
            "SAGEMAKER_BASE_DIR": CONTAINER_BASE_DIR,
            **{
                f"SM_CHANNEL_{channel.upper()}": f"{CONTAINER_BASE_DIR}/input/data/{channel}"
                for channel in sorted(channel_uris)
            },
            "SM_MODEL_DIR": f"{CONTAINER_BASE_DIR}/model",
            "TRAINYARD_EVENT_BUS_NAME": self._event_bus_name,
            "TRAINYARD_INPUT_S3_URIS": json.dumps(channel_uris, sort_keys=True),
            "TRAINYARD_MODEL_S3_URI": s3_uri(self._artifacts_bucket, batch_model_prefix(spec.job_id)),
            "TRAINYARD_HYPERPARAMETERS_JSON": json.dumps(spec.hyperparameters),
        }
        return {
            "jobName": platform_job_name(spec.job_id),
            "jobQueue": self._job_queue,
            "jobDefinition": definition,
            "containerOverrides": {
                "environment": [{"name": name, "value": value} for name, value in environment.items()]
            },
            "retryStrategy": {"attempts": ATTEMPTS, "evaluateOnExit": RETRY_ON_EXIT},
            "timeout": {"attemptDurationSeconds": self._max_runtime_seconds},
            "tags": {JOB_ID_TAG: spec.job_id},
            "propagateTags": True,
        }

    def _find_job_id(self, job_id: str) -> str | None:
        """The Batch job id of this job's run, if one was submitted. With a JOB_NAME filter
        ListJobs searches every status, finished jobs included."""
        paginator = self._client.get_paginator("list_jobs")
        pages = paginator.paginate(
            jobQueue=self._job_queue,
            filters=[{"name": "JOB_NAME", "values": [platform_job_name(job_id)]}],
        )
        for page in pages:
            for summary in page.get("jobSummaryList", []):
                if summary.get("jobName") == platform_job_name(job_id):
                    return str(summary["jobId"])
        return None

    def _resolve(self, job_id: str, launch_ref: str | None) -> str | None:
        if launch_ref and not launch_ref.startswith(PENDING_REF_PREFIX):
            return launch_ref
        # Intent was recorded but the job id was not (or never came): look it up by name.
        return self._find_job_id(job_id)

    def stop(self, job_id: str, launch_ref: str | None) -> None:
        batch_id = self._resolve(job_id, launch_ref)
        if batch_id is None:
            log.info("no batch job to stop for job %s", job_id)
            return
        self._client.terminate_job(jobId=batch_id, reason="cancelled by user")

    def describe(self, job_id: str, launch_ref: str | None) -> LaunchStatus:
        batch_id = self._resolve(job_id, launch_ref)
        jobs = [] if batch_id is None else self._client.describe_jobs(jobs=[batch_id]).get("jobs", [])
        if not jobs:
            return LaunchStatus(LaunchState.UNKNOWN, "AWS Batch has no job for this job")
        status = str(jobs[0].get("status"))
        state = _STATES.get(status, LaunchState.UNKNOWN)
        if state is LaunchState.FAILED:
            return LaunchStatus(state, str(jobs[0].get("statusReason") or "batch job failed"))
        return LaunchStatus(state)

    def persist_model(self, job_id: str, model_prefix: str) -> None:
        persist_batch_model(self._s3, self._artifacts_bucket, job_id, model_prefix)
