"""A job's files in the artifacts bucket, shared by the SageMaker and Batch launchers.

    jobs/<job id>/input/<channel>/      the input snapshot the container reads (written at launch)
    jobs/<job id>/output/               SageMaker's OutputDataConfig (model.tar.gz lands below it)
    jobs/<job id>/checkpoints/          SageMaker's spot checkpoints
    jobs/<job id>/model/                the model dir a Batch container uploads itself

Persisting a model copies the platform's upload to the model's own prefix
(`tenants/<tid>/models/<model id>/`). A model.tar.gz is written by the training container,
which runs user-chosen code paths, so it is extracted as untrusted input: regular files only,
relative names inside the prefix, bounded member count and size.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

from ...domain import platform_job_name
from ...ports import BlobStore, LaunchSpec

# SageMaker training job names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
DEFAULT_MAX_MODEL_BYTES = 5 * 1024**3
DEFAULT_MAX_MODEL_MEMBERS = 10_000
# Copies are server-side and independent; a few in parallel keep a large dataset's snapshot
# within the API's request time.
SNAPSHOT_COPY_WORKERS = 16


class ModelArtifactsError(Exception):
    """The platform's model upload is missing or cannot be trusted."""


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def input_prefix(job_id: str, channel: str) -> str:
    return f"{job_prefix(job_id)}input/{channel}/"


def sagemaker_output_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}output/"


def checkpoint_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}checkpoints/"


def batch_model_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}model/"


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def sagemaker_model_archive_key(job_id: str) -> str:
    """Where SageMaker puts the model dir: <OutputDataConfig>/<job name>/output/model.tar.gz."""
    return f"{sagemaker_output_prefix(job_id)}{platform_job_name(job_id)}/output/model.tar.gz"


# --- launching ---------------------------------------------------------------------------


def write_input_snapshot(
    s3_client: Any, blobs: BlobStore, artifacts_bucket: str, datasets_bucket: str, spec: LaunchSpec
) -> dict[str, str]:
    """Copy each channel's files (and documents such as manifest.jsonl) under the job's input
    prefix, so the run reads the dataset as it was at launch even if it is edited or deleted
    later. `blobs` is the artifacts bucket's store. Returns channel → S3 URI of its prefix."""
    copies: list[tuple[str, str]] = []
    uris: dict[str, str] = {}
    for channel, files in spec.channels.items():
        prefix = input_prefix(spec.job_id, channel)
        uris[channel] = s3_uri(artifacts_bucket, prefix)
        copies.extend((item.blob_key, prefix + _safe_relative(item.relative_path)) for item in files)
        for name, text in spec.channel_documents.get(channel, {}).items():
            blobs.put_bytes(prefix + _safe_relative(name), text.encode())

    def copy(pair: tuple[str, str]) -> None:
        source_key, target_key = pair
        s3_client.copy_object(
            Bucket=artifacts_bucket,
            Key=target_key,
            CopySource={"Bucket": datasets_bucket, "Key": source_key},
        )

    with ThreadPoolExecutor(max_workers=SNAPSHOT_COPY_WORKERS) as pool:
        list(pool.map(copy, copies))  # list(): re-raise the first failed copy here
    return uris


def _safe_relative(path: str) -> str:
    relative = _normalised_member_name(path)
    if relative is None:
        raise ValueError(f"{path!r} is not a relative path inside the channel")
    return relative


# --- persisting ----------------------------------------------------------------------------


def _normalised_member_name(name: str) -> str | None:
    """The name as a clean relative POSIX path, or None when it would leave the prefix."""
    if not name or "\\" in name or name.startswith("/"):
        return None
    parts = [part for part in PurePosixPath(name).parts if part != "."]
    if not parts or any(part == ".." for part in parts):
        return None
    return "/".join(parts)


def _checked_members(
    archive: tarfile.TarFile, max_bytes: int, max_members: int
) -> Iterator[tuple[tarfile.TarInfo, str]]:
    """Each regular file with its safe name. Checked while reading, so a bomb is refused
    after at most `max_bytes` of decompression, not after all of it."""
    total_bytes = 0
    for count, member in enumerate(archive, start=1):
        if count > max_members:
            raise ModelArtifactsError(f"model archive has more than {max_members} entries")
        if member.isdir():
            continue
        if not member.isfile():
            raise ModelArtifactsError(f"model archive entry {member.name!r} is not a regular file")
        name = _normalised_member_name(member.name)
        if name is None:
            raise ModelArtifactsError(f"model archive entry {member.name!r} leaves the model dir")
        total_bytes += member.size
        if total_bytes > max_bytes:
            raise ModelArtifactsError(f"model archive holds more than {max_bytes} bytes")
        yield member, name


def persist_sagemaker_model(
    s3_client: Any,
    artifacts_bucket: str,
    job_id: str,
    model_prefix: str,
    max_bytes: int = DEFAULT_MAX_MODEL_BYTES,
    max_members: int = DEFAULT_MAX_MODEL_MEMBERS,
) -> list[str]:
    """Extract SageMaker's model.tar.gz under `model_prefix`; returns the keys written.
    Every entry is checked before the first upload, so a refused archive writes nothing."""
    archive_key = sagemaker_model_archive_key(job_id)
    with tempfile.TemporaryFile() as archive_file:
        try:
            s3_client.download_fileobj(artifacts_bucket, archive_key, archive_file)
        except Exception as exc:
            raise ModelArtifactsError(
                f"model archive {s3_uri(artifacts_bucket, archive_key)} cannot be read: {exc}"
            ) from exc
        archive_file.seek(0)
        try:
            with tarfile.open(fileobj=archive_file, mode="r:gz") as archive:
                names = [name for _, name in _checked_members(archive, max_bytes, max_members)]
            archive_file.seek(0)
            written: list[str] = []
            with tarfile.open(fileobj=archive_file, mode="r:gz") as archive:
                for member, name in _checked_members(archive, max_bytes, max_members):
                    data = archive.extractfile(member)
                    if data is None:  # isfile() members always have data; kept for the type
                        raise ModelArtifactsError(f"model archive entry {member.name!r} has no data")
                    key = model_prefix + name
                    s3_client.upload_fileobj(data, artifacts_bucket, key)
                    written.append(key)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ModelArtifactsError(f"model archive {archive_key} is not a valid tar.gz: {exc}") from exc
    if not names:
        raise ModelArtifactsError(f"model archive {archive_key} holds no files")
    return written


def persist_batch_model(s3_client: Any, artifacts_bucket: str, job_id: str, model_prefix: str) -> list[str]:
    """Copy the model dir a Batch container uploaded under `model_prefix`; returns the keys."""
    source_prefix = batch_model_prefix(job_id)
    written: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=artifacts_bucket, Prefix=source_prefix):
        for item in page.get("Contents", []):
            relative = _normalised_member_name(item["Key"][len(source_prefix) :])
            if relative is None:
                raise ModelArtifactsError(f"uploaded model file {item['Key']!r} leaves the model dir")
            s3_client.copy_object(
                Bucket=artifacts_bucket,
                Key=model_prefix + relative,
                CopySource={"Bucket": artifacts_bucket, "Key": item["Key"]},
            )
            written.append(model_prefix + relative)
    if not written:
        raise ModelArtifactsError(
            f"the job uploaded no model files to {s3_uri(artifacts_bucket, source_prefix)}"
        )
    return written
