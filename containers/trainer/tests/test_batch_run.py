"""A trainer run as AWS Batch starts it: hyperparameters from the environment, inputs
downloaded from S3, the model dir uploaded to S3 (moto stands in for S3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import encode_hyperparameters
from moto import mock_aws

from trainer.__main__ import main
from trainer.synthetic import write_shapes_dataset

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


def test_a_batch_style_run_uses_s3_for_inputs_and_model(s3: Any, tmp_path: Path) -> None:
    # As AWS Batch starts it: nothing under the base dir but what the environment names.
    source = tmp_path / "dataset"
    write_shapes_dataset(source, per_class=12, size=32, num_classes=2, seed=0)
    upload_tree(s3, source, INPUT_PREFIX)
    hyperparameters = encode_hyperparameters(
        {"job_id": "job_batch", "backbone": "small_cnn", "epochs": 1, "image_size": 32,
         "batch_size": 8, "seed": 1, "exports": ["onnx"]}
    )  # fmt: skip
    base = tmp_path / "opt-ml"
    environment = {
        "SAGEMAKER_BASE_DIR": str(base),
        "SM_CHANNEL_TRAINING": str(base / "input" / "data" / "training"),
        "SM_MODEL_DIR": str(base / "model"),
        "TRAINYARD_EVENTS_FILE": str(tmp_path / "events.jsonl"),
        "TRAINYARD_HYPERPARAMETERS_JSON": json.dumps(hyperparameters),
        "TRAINYARD_INPUT_S3_URIS": json.dumps({"training": f"s3://{BUCKET}/{INPUT_PREFIX}"}),
        "TRAINYARD_MODEL_S3_URI": f"s3://{BUCKET}/{MODEL_PREFIX}",
    }

    assert main(["train"], environment) == 0, (base / "output" / "failure").read_text()

    assert stored_keys(s3, MODEL_PREFIX) == [
        f"{MODEL_PREFIX}model.onnx",
        f"{MODEL_PREFIX}trainyard_model.json",
    ]
    manifest = s3.get_object(Bucket=BUCKET, Key=f"{MODEL_PREFIX}trainyard_model.json")["Body"]
    assert json.loads(manifest.read())["classes"] == ["green square", "red circle"]


def test_a_failed_download_fails_the_job_with_a_reason(s3: Any, tmp_path: Path) -> None:
    base = tmp_path / "opt-ml"
    environment = {
        "SAGEMAKER_BASE_DIR": str(base),
        "TRAINYARD_EVENTS_FILE": str(tmp_path / "events.jsonl"),
        "TRAINYARD_HYPERPARAMETERS_JSON": json.dumps({"job_id": '"job_batch"'}),
        "TRAINYARD_INPUT_S3_URIS": json.dumps({"training": f"s3://{BUCKET}/{INPUT_PREFIX}"}),
        "TRAINYARD_MODEL_S3_URI": f"s3://{BUCKET}/{MODEL_PREFIX}",
    }

    assert main(["train"], environment) == 1

    reason = (base / "output" / "failure").read_text()
    assert reason.startswith(f"the input s3://{BUCKET}/{INPUT_PREFIX} holds no files")
    assert stored_keys(s3, MODEL_PREFIX) == []
