"""SecretStore on AWS Secrets Manager: one secret per name, `<prefix><name>`, holding the
value as its SecretString. The IAM policy can then grant the service exactly `<prefix>*`."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class SecretsManagerStore:
    def __init__(self, prefix: str, client: Any | None = None, *, region_name: str | None = None) -> None:
        self._prefix = prefix
        self._client = client
        self._region_name = region_name
        self._client_lock = threading.Lock()

    @property
    def _secrets(self) -> Any:
        if self._client is None:
            with self._client_lock:  # boto3's default session is not safe to share while building
                if self._client is None:
                    import boto3  # noqa: PLC0415 - only the AWS backend needs it

                    self._client = boto3.client("secretsmanager", region_name=self._region_name)
        return self._client

    def secret_id(self, name: str) -> str:
        if not name:
            raise ValueError("a secret name must not be empty")
        return f"{self._prefix}{name}"

    def get(self, name: str) -> str | None:
        try:
            response = self._secrets.get_secret_value(SecretId=self.secret_id(name))
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                return None
            raise
        value: str | None = response.get("SecretString")
        return value

    def put(self, name: str, value: str) -> None:
        secret_id = self.secret_id(name)
        # Overwriting is the common case (rotation), so try that first; a new name is
        # created, and a concurrent creator winning the race turns into an overwrite.
        try:
            self._secrets.put_secret_value(SecretId=secret_id, SecretString=value)
            return
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
        try:
            self._secrets.create_secret(Name=secret_id, SecretString=value)
        except ClientError as exc:
            if _error_code(exc) != "ResourceExistsException":
                raise
            self._secrets.put_secret_value(SecretId=secret_id, SecretString=value)

    def delete(self, name: str) -> None:
        # No recovery window: the secrets deleted are one-use hand-overs (seed 002's storage
        # credentials), which must not linger for the default 30 days.
        try:
            self._secrets.delete_secret(SecretId=self.secret_id(name), ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if _error_code(exc) != "ResourceNotFoundException":
                raise
