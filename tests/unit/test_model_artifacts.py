"""Extracting SageMaker's model.tar.gz: only regular files, inside the model prefix, bounded."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from trainyard.adapters.aws.model_artifacts import (
    ModelArtifactsError,
    persist_batch_model,
    persist_sagemaker_model,
    sagemaker_model_archive_key,
)
from trainyard.domain import job_id_from_platform_name, platform_job_name

BUCKET = "test-artifacts"
JOB_ID = "job_0123456789abcdef"
PREFIX = "tenants/t1/models/mdl1/"


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


def file_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link_entry(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def directory_entry(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def upload_archive(s3: Any, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in entries:
            archive.addfile(info, None if data is None else io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key=sagemaker_model_archive_key(JOB_ID), Body=buffer.getvalue())


def stored_keys(s3: Any, prefix: str = PREFIX) -> list[str]:
    return sorted(
        item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    )


def test_archive_key_is_where_sagemaker_writes_it() -> None:
    assert sagemaker_model_archive_key(JOB_ID) == (
        "jobs/job_0123456789abcdef/output/trainyard-job-0123456789abcdef/output/model.tar.gz"
    )
    assert job_id_from_platform_name(platform_job_name(JOB_ID)) == JOB_ID
    assert job_id_from_platform_name("someone-else") is None


def test_a_good_archive_lands_under_the_model_prefix(s3: Any) -> None:
    upload_archive(
        s3,
        [
            directory_entry("./"),
            file_entry("./model.onnx", b"onnx-bytes"),
            file_entry("trainyard_model.json", b"{}"),
            directory_entry("assets"),
            file_entry("assets/labels.txt", b"a\nb\n"),
        ],
    )

    written = persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024)

    assert (
        sorted(written)
        == stored_keys(s3)
        == [
            f"{PREFIX}assets/labels.txt",
            f"{PREFIX}model.onnx",
            f"{PREFIX}trainyard_model.json",
        ]
    )
    assert s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}model.onnx")["Body"].read() == b"onnx-bytes"


@pytest.mark.parametrize(
    ("bad_entry", "message"),
    [
        (link_entry("model.onnx", "/etc/passwd"), "not a regular file"),
        (link_entry("model.onnx", "trainyard_model.json", tarfile.LNKTYPE), "not a regular file"),
        (file_entry("../escape.txt", b"x"), "leaves the model dir"),
        (file_entry("assets/../../escape.txt", b"x"), "leaves the model dir"),
        (file_entry("/etc/cron.d/evil", b"x"), "leaves the model dir"),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(
    s3: Any, bad_entry: tuple[tarfile.TarInfo, bytes | None], message: str
) -> None:
    upload_archive(s3, [file_entry("trainyard_model.json", b"{}"), bad_entry])

    with pytest.raises(ModelArtifactsError, match=message):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024)
    assert stored_keys(s3) == []


def test_a_device_entry_is_refused(s3: Any) -> None:
    device = tarfile.TarInfo("model.onnx")
    device.type = tarfile.CHRTYPE
    upload_archive(s3, [(device, None)])

    with pytest.raises(ModelArtifactsError, match="not a regular file"):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024)


def test_an_oversize_archive_is_refused(s3: Any) -> None:
    upload_archive(s3, [file_entry("a.bin", b"x" * 600), file_entry("b.bin", b"x" * 600)])

    with pytest.raises(ModelArtifactsError, match="more than 1000 bytes"):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1000)
    assert stored_keys(s3) == []


def test_too_many_entries_are_refused(s3: Any) -> None:
    upload_archive(s3, [file_entry(f"f{index}.txt", b"x") for index in range(4)])

    with pytest.raises(ModelArtifactsError, match="more than 3 entries"):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024, max_members=3)


def test_a_missing_or_corrupt_archive_is_an_error(s3: Any) -> None:
    with pytest.raises(ModelArtifactsError, match="cannot be read"):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024)
    s3.put_object(Bucket=BUCKET, Key=sagemaker_model_archive_key(JOB_ID), Body=b"not a tar.gz")
    with pytest.raises(ModelArtifactsError, match="not a valid tar.gz"):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024)


def test_an_empty_archive_is_an_error(s3: Any) -> None:
    upload_archive(s3, [directory_entry("./")])
    with pytest.raises(ModelArtifactsError, match="holds no files"):
        persist_sagemaker_model(s3, BUCKET, JOB_ID, PREFIX, max_bytes=1024)


def test_batch_model_is_copied_and_a_missing_one_is_an_error(s3: Any) -> None:
    with pytest.raises(ModelArtifactsError, match="uploaded no model files"):
        persist_batch_model(s3, BUCKET, JOB_ID, PREFIX)
    s3.put_object(Bucket=BUCKET, Key=f"jobs/{JOB_ID}/model/model.onnx", Body=b"onnx")
    s3.put_object(Bucket=BUCKET, Key=f"jobs/{JOB_ID}/model/assets/labels.txt", Body=b"a")

    assert (
        persist_batch_model(s3, BUCKET, JOB_ID, PREFIX)
        == stored_keys(s3)
        == [
            f"{PREFIX}assets/labels.txt",
            f"{PREFIX}model.onnx",
        ]
    )
