"""The AWS Batch hooks: hyperparameters from the environment, inputs downloaded from S3, the
model dir uploaded to S3 (moto stands in for S3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from jobkit.batch import (
    download_channels_from_environment,
    download_inputs,
    parse_s3_uri,
    upload_model,
    write_hyperparameters,
)
from jobkit.errors import JobError
from jobkit.paths import JobPaths

BUCKET = "test-artifacts"
INPUT_PREFIX = "jobs/job_batch/input/training/"
MODEL_PREFIX = "jobs/job_batch/model/"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def upload_tree(s3: Any, root: Path, prefix: str) -> None:
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        s3.upload_file(str(path), BUCKET, prefix + path.relative_to(root).as_posix())


def stored_keys(s3: Any, prefix: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b/")
    assert parse_s3_uri("s3://bucket/a/b") == ("bucket", "a/b/")
    with pytest.raises(JobError, match="not an s3"):
        parse_s3_uri("https://bucket/a")


def test_write_hyperparameters_only_when_the_variable_is_set(tmp_path: Path) -> None:
    target = tmp_path / "input" / "config" / "hyperparameters.json"
    assert not write_hyperparameters({}, target)
    assert not target.exists()

    values = {"job_id": '"job_1"', "epochs": "2"}
    assert write_hyperparameters({"TRAINYARD_HYPERPARAMETERS_JSON": json.dumps(values)}, target)
    assert json.loads(target.read_text()) == values

    with pytest.raises(JobError, match="JSON object"):
        write_hyperparameters({"TRAINYARD_HYPERPARAMETERS_JSON": "[1]"}, target)


def test_download_inputs_keeps_relative_paths(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{INPUT_PREFIX}manifest.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=BUCKET, Key=f"{INPUT_PREFIX}images/a.png", Body=b"png")

    count = download_inputs(f"s3://{BUCKET}/{INPUT_PREFIX}", tmp_path / "channel", s3)

    assert count == 2
    assert (tmp_path / "channel" / "manifest.jsonl").read_bytes() == b"{}\n"
    assert (tmp_path / "channel" / "images" / "a.png").read_bytes() == b"png"


def test_download_inputs_refuses_keys_leaving_the_channel(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"{INPUT_PREFIX}../escape.txt", Body=b"x")
    with pytest.raises(JobError, match="outside the channel dir"):
        download_inputs(f"s3://{BUCKET}/{INPUT_PREFIX}", tmp_path / "channel", s3)
    assert not (tmp_path / "escape.txt").exists()


def test_download_of_an_empty_or_missing_input_is_an_error(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(JobError, match="holds no files"):
        download_inputs(f"s3://{BUCKET}/{INPUT_PREFIX}", tmp_path, s3)
    with pytest.raises(JobError, match="could not be downloaded"):
        download_inputs(f"s3://no-such-bucket/{INPUT_PREFIX}", tmp_path, s3)


def test_upload_model_writes_the_manifest_last(s3: Any, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "assets").mkdir(parents=True)
    for name in ("trainyard_model.json", "model.onnx", "assets/labels.txt"):
        (model_dir / name).write_text(name)

    keys = upload_model(f"s3://{BUCKET}/{MODEL_PREFIX}", model_dir, s3)

    assert keys == [
        f"{MODEL_PREFIX}assets/labels.txt",
        f"{MODEL_PREFIX}model.onnx",
        f"{MODEL_PREFIX}trainyard_model.json",
    ]
    assert stored_keys(s3, MODEL_PREFIX) == sorted(keys)


def test_upload_of_an_empty_model_dir_is_an_error(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(JobError, match="nothing to upload"):
        upload_model(f"s3://{BUCKET}/{MODEL_PREFIX}", tmp_path, s3)


def test_each_channel_named_in_the_environment_is_downloaded_into_its_dir(
    s3: Any, tmp_path: Path
) -> None:
    s3.put_object(Bucket=BUCKET, Key="jobs/j/input/model/trainyard_model.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="jobs/j/input/video/clip.mp4", Body=b"mp4")
    environ = {
        "SAGEMAKER_BASE_DIR": str(tmp_path),
        "SM_CHANNEL_VIDEO": str(tmp_path / "elsewhere"),
        "TRAINYARD_INPUT_S3_URIS": json.dumps(
            {"model": f"s3://{BUCKET}/jobs/j/input/model/", "video": f"s3://{BUCKET}/jobs/j/input/video/"}
        ),
    }

    count = download_channels_from_environment(environ, JobPaths.from_environment(environ))

    assert count == 2
    assert (tmp_path / "input" / "data" / "model" / "trainyard_model.json").read_bytes() == b"{}"
    assert (tmp_path / "elsewhere" / "clip.mp4").read_bytes() == b"mp4"
    assert download_channels_from_environment({}, JobPaths.from_environment({})) == 0
    with pytest.raises(JobError, match="must map channel names"):
        download_channels_from_environment(
            {"TRAINYARD_INPUT_S3_URIS": "[1]"}, JobPaths.from_environment({})
        )


def test_upload_writes_a_results_manifest_last_too(s3: Any, tmp_path: Path) -> None:
    for name in ("trainyard_results.json", "predictions.slp", "preview.png"):
        (tmp_path / name).write_text(name)

    keys = upload_model(f"s3://{BUCKET}/{MODEL_PREFIX}", tmp_path, s3)

    assert keys[-1] == f"{MODEL_PREFIX}trainyard_results.json"
