"""PoseProbe on AWS: the files go to the datasets bucket under probe/<id>/ and the pose probe
function (a Lambda container image built from containers/pose/Dockerfile.probe, with
sleap-io) reads them there and answers what `python -m pose.probe` prints. The API function
itself never loads sleap-io or a video decoder."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from ...errors import InvalidInput, Unavailable
from ...ports import BlobStore

PROBE_PREFIX = "probe/"


class LambdaPoseProbe:
    def __init__(self, function_name: str, bucket: str, blobs: BlobStore, client: Any | None = None) -> None:
        """`blobs` is the store of `bucket` (the datasets bucket)."""
        self._function = function_name
        self._bucket = bucket
        self._blobs = blobs
        if client is None:
            import boto3  # noqa: PLC0415 - only the AWS backend needs it

            client = boto3.client("lambda")
        self._client = client

    def _invoke(self, command: str, files: list[tuple[Path, str]], **arguments: Any) -> dict[str, Any]:
        prefix = f"{PROBE_PREFIX}{secrets.token_hex(8)}/"
        try:
            for path, relative in files:
                self._blobs.put_file(prefix + relative, path)
            response = self._client.invoke(
                FunctionName=self._function,
                Payload=json.dumps(
                    {"command": command, "bucket": self._bucket, "prefix": prefix, **arguments}
                ).encode(),
            )
            payload = response["Payload"].read()
        finally:
            self._blobs.delete_prefix(prefix)
        if response.get("FunctionError"):
            raise Unavailable(f"the pose checker failed: {payload[:500].decode(errors='replace')}")
        result = json.loads(payload)
        if not result.get("ok"):
            raise InvalidInput(str(result.get("error") or "the upload could not be read"))
        return dict(result)

    def probe_dataset(self, root: Path, min_frames: int) -> dict[str, Any]:
        files = [(p, p.relative_to(root).as_posix()) for p in sorted(root.rglob("*")) if p.is_file()]
        return self._invoke("dataset", files, min_frames=min_frames)

    def probe_video(self, path: Path, filename: str) -> dict[str, Any]:
        return self._invoke("video", [(path, Path(filename).name)])
