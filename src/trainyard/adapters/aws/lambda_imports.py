"""ImportRunner on AWS: the API function answers within API Gateway's 29 s and stops, so the
download runs in its own function (functions/dataset_import), invoked asynchronously.

The credentials cannot travel in the invocation: Lambda keeps async events in its queue and
may show them in retries and failure destinations. They go to the Secrets port instead, one
secret per job (`<secrets_prefix>external/<job id>`), which the import function reads and
deletes before it downloads anything. The invocation carries the plan only (which holds no
credential)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ...errors import Unavailable
from ...ports import SecretStore

log = logging.getLogger(__name__)


def credentials_secret(job_id: str) -> str:
    """The job's hand-over secret, under the store's prefix (IAM grants `trainyard/external/*`)."""
    return f"external/{job_id}"


class LambdaImports:
    def __init__(
        self,
        function_name: str,
        secrets: SecretStore,
        client: Any | None = None,
        *,
        region_name: str | None = None,
    ) -> None:
        self._function = function_name
        self._secrets = secrets
        self._client = client
        self._region_name = region_name
        self._client_lock = threading.Lock()

    @property
    def _lambda(self) -> Any:
        if self._client is None:
            with self._client_lock:  # boto3's default session is not safe to share while building
                if self._client is None:
                    import boto3  # noqa: PLC0415 - only the AWS backend needs it

                    self._client = boto3.client("lambda", region_name=self._region_name)
        return self._client

    def submit(
        self, job_id: str, plan: dict[str, Any], credentials: dict[str, str], run_here: Callable[[], None]
    ) -> None:
        name = credentials_secret(job_id)
        try:
            self._secrets.put(name, json.dumps(credentials))
            response = self._lambda.invoke(
                FunctionName=self._function,
                InvocationType="Event",  # queued: the answer does not wait for the download
                Payload=json.dumps(plan).encode(),
            )
            accepted = response.get("StatusCode") == 202
            reason = f"status {response.get('StatusCode')}"
        except (ClientError, BotoCoreError) as exc:
            # only the error's code: an SDK message may quote what it was sent
            accepted, reason = False, _error_code(exc)
        if not accepted:
            self._discard(name)
            raise Unavailable(f"the dataset import could not be started ({reason})")

    def take_credentials(self, job_id: str) -> dict[str, str] | None:
        name = credentials_secret(job_id)
        try:
            stored = self._secrets.get(name)
        finally:
            self._discard(name)  # one use, whatever happens next
        if stored is None:
            return None
        credentials: dict[str, str] = json.loads(stored)
        return credentials

    def _discard(self, name: str) -> None:
        try:
            self._secrets.delete(name)
        except (ClientError, BotoCoreError) as exc:
            # the import goes on (or has failed already); an operator must remove the secret
            log.warning("could not delete the hand-over secret %s (%s)", name, _error_code(exc))


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or exc.__class__.__name__
    return exc.__class__.__name__
