"""The pose probe on AWS: the API side puts the files under probe/<id>/ of the datasets
bucket, invokes the probe function, maps its answer, and removes the files whatever the
outcome. moto stands in for S3; the Lambda invoke is stubbed (moto runs Lambda only in
Docker). The function's own side (pose/probe_lambda.py) is tested in containers/pose."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from tests.aws_fixtures import TEST_REGION, use_fake_credentials
from trainyard.adapters.aws.pose_probe import LambdaPoseProbe
from trainyard.adapters.aws.s3_blobs import S3BlobStore
from trainyard.errors import InvalidInput, Unavailable

BUCKET = "datasets"
FUNCTION = "stack-pose-probe"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_credentials(monkeypatch)
    with mock_aws():
        client = boto3.client("s3", region_name=TEST_REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def answer(payload: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    response: dict[str, Any] = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))}
    if error:
        response["FunctionError"] = error
    return response


def probe_with(
    s3: Any, tmp_path: Path, response: dict[str, Any], seen: list[list[str]]
) -> tuple[LambdaPoseProbe, Stubber]:
    lambda_client = boto3.client("lambda", region_name=TEST_REGION)
    stubber = Stubber(lambda_client)
    blobs = S3BlobStore(BUCKET, s3, cache_dir=tmp_path / "cache")

    def record_invoke(**_: Any) -> None:  # what the function would find in the bucket
        seen.append(sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])))

    lambda_client.meta.events.register("provide-client-params.lambda.Invoke", record_invoke)
    stubber.add_response("invoke", response, {"FunctionName": FUNCTION, "Payload": ANY})
    stubber.activate()
    return LambdaPoseProbe(FUNCTION, BUCKET, blobs, lambda_client), stubber


def upload_dir(tmp_path: Path) -> Path:
    root = tmp_path / "upload"
    (root / "archive-0").mkdir(parents=True)
    (root / "archive-0" / "labels.slp").write_bytes(b"slp")
    (root / "archive-0" / "clip.mp4").write_bytes(b"mp4")
    return root


def test_a_dataset_is_checked_from_the_bucket_and_the_files_removed(s3: Any, tmp_path: Path) -> None:
    summary = {"ok": True, "labels": "archive-0/labels.slp", "video_files": ["archive-0/clip.mp4"]}
    seen: list[list[str]] = []
    probe, stubber = probe_with(s3, tmp_path, answer(summary), seen)

    assert probe.probe_dataset(upload_dir(tmp_path), 2) == summary

    stubber.assert_no_pending_responses()
    [keys] = seen
    prefix = keys[0].rsplit("archive-0/", 1)[0]
    assert prefix.startswith("probe/") and keys == [
        f"{prefix}archive-0/clip.mp4",
        f"{prefix}archive-0/labels.slp",
    ]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_a_refusal_is_a_422_with_the_functions_reason(s3: Any, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not a video")
    probe, _ = probe_with(
        s3, tmp_path, answer({"ok": False, "error": "video clip.mp4 cannot be decoded"}), []
    )
    with pytest.raises(InvalidInput, match="video clip.mp4 cannot be decoded"):
        probe.probe_video(video, "clip.mp4")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_a_crashed_function_is_unavailable_not_bad_input(s3: Any, tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    crashed = answer({"errorMessage": "Task timed out"}, error="Unhandled")
    probe, _ = probe_with(s3, tmp_path, crashed, [])
    with pytest.raises(Unavailable, match="Task timed out"):
        probe.probe_video(video, "clip.mp4")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
