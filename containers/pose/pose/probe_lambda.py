"""The pose probe as an AWS Lambda function (Dockerfile.probe): the API function puts the
files under s3://<bucket>/<prefix> and invokes it with
`{"command": "dataset" | "video", "bucket", "prefix", "min_frames"}`; the answer is what
`python -m pose.probe` prints: the summary, or `{"ok": false, "error": reason}`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from jobkit.batch import download_inputs
from jobkit.errors import DataError

from .probe import probe_dataset, probe_video


def probe_prefix(event: dict[str, Any], s3: Any) -> dict[str, Any]:
    command, bucket, prefix = event.get("command"), event.get("bucket"), event.get("prefix")
    if (
        command not in ("dataset", "video")
        or not isinstance(bucket, str)
        or not isinstance(prefix, str)
    ):
        return {"ok": False, "error": "the probe needs command (dataset|video), bucket and prefix"}
    with tempfile.TemporaryDirectory(prefix="probe-") as scratch:
        root = Path(scratch)
        try:
            download_inputs(f"s3://{bucket}/{prefix}", root, s3)
            if command == "dataset":
                return probe_dataset(root, int(event.get("min_frames", 2)))
            videos = sorted(p for p in root.rglob("*") if p.is_file())
            return probe_video(videos[0])
        except DataError as exc:
            return {"ok": False, "error": str(exc)}


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    import boto3  # noqa: PLC0415 - in the Lambda image only

    return probe_prefix(event, boto3.client("s3"))
