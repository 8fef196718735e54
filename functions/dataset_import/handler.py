"""Lambda entry point of `dataset_import`: seed 002's download of a dataset from the caller's
S3 bucket or Azure container, and the launch of its training.

The API function records the job PENDING, leaves the storage credentials in Secrets Manager
(`<secrets_prefix>external/<job id>`) and invokes this function asynchronously with the plan:
{tenant_id, job_id, dataset_name, request, source} (the source without credentials).
`ExternalTrainingService.run_handed_over` takes the credentials (read, then deleted whatever
happens next) and runs the same import the local stack runs in a thread: DOWNLOADING → the
dataset through the upload readers → DOWNLOADED → launch on SageMaker or Batch; a failure ends
the job FAILED with a scrubbed message, and the job's status change events drive the webhook.

Lambda retries an async invocation that fails or times out: a job no longer PENDING is left
alone; one still PENDING whose credentials are gone is failed with that reason. The event is
not logged (it holds no credential, but nothing here needs it in the logs either).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainyard.container_services import ContainerServices

logger = Logger()
tracer = Tracer()

services = ContainerServices()  # built on the first event of this container


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(job_id=event.get("job_id"), tenant_id=event.get("tenant_id"))
    outcome = services().external_training.run_handed_over(event)
    logger.info("dataset import done", outcome=outcome)
    return {"job_id": event.get("job_id"), "outcome": outcome}
