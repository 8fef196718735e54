"""What SageMaker does around a training run, done by the container itself where the platform
does not (AWS Batch). Each step is switched on by its environment variable, so SageMaker and
local runs, which set none of them, are unaffected:

- TRAINYARD_HYPERPARAMETERS_JSON: the hyperparameters, written to the contract's
  hyperparameters.json before it is read.
- TRAINYARD_INPUT_S3_URIS: a JSON object {channel: S3 prefix}; each prefix is downloaded into
  its channel dir (SM_CHANNEL_<NAME>, as SageMaker would have filled it).
- TRAINYARD_MODEL_S3_URI: an S3 prefix the model dir is uploaded to after a successful run.

boto3 is imported only when an S3 variable is set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import JobError
from .paths import JobPaths

HYPERPARAMETERS_VARIABLE = "TRAINYARD_HYPERPARAMETERS_JSON"
INPUTS_VARIABLE = "TRAINYARD_INPUT_S3_URIS"
MODEL_VARIABLE = "TRAINYARD_MODEL_S3_URI"
# Written last by a job: their presence says the outputs are complete.
MANIFEST_NAMES = ("trainyard_model.json", "trainyard_results.json")


def _s3_client() -> Any:
    import boto3  # noqa: PLC0415 - optional dependency, only needed on AWS

    return boto3.client("s3")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` → ("bucket", "some/prefix/"); the prefix ends in `/`."""
    if not uri.startswith("s3://"):
        raise JobError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise JobError(f"{uri!r} names no bucket")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


def write_hyperparameters(environ: Mapping[str, str], hyperparameters_file: Path) -> bool:
    """Write TRAINYARD_HYPERPARAMETERS_JSON where SageMaker would have put the file."""
    text = environ.get(HYPERPARAMETERS_VARIABLE)
    if text is None:
        return False
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise JobError(f"{HYPERPARAMETERS_VARIABLE} is not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise JobError(f"{HYPERPARAMETERS_VARIABLE} must hold a JSON object")
    hyperparameters_file.parent.mkdir(parents=True, exist_ok=True)
    hyperparameters_file.write_text(json.dumps(values))
    return True


def _relative_key(key: str, prefix: str) -> PurePosixPath | None:
    """The key below the prefix as a path that stays inside the channel, or None to skip it
    (the prefix's own "directory" marker)."""
    relative = key[len(prefix) :]
    if not relative or relative.endswith("/"):
        return None
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts:
        raise JobError(f"input object {key!r} would be written outside the channel dir")
    return path


def download_inputs(uri: str, channel_dir: Path, client: Any | None = None) -> int:
    """Download every object under `uri` into `channel_dir`, keeping the relative paths.
    Returns how many files were downloaded."""
    bucket, prefix = parse_s3_uri(uri)
    s3 = client if client is not None else _s3_client()
    count = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = _relative_key(item["Key"], prefix)
                if relative is None:
                    continue
                target = channel_dir.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(target))
                count += 1
    except JobError:
        raise
    except Exception as exc:
        raise JobError(f"the input {uri} could not be downloaded: {exc}") from exc
    if count == 0:
        raise JobError(f"the input {uri} holds no files")
    return count


def upload_model(uri: str, model_dir: Path, client: Any | None = None) -> list[str]:
    """Upload every file of `model_dir` under `uri`; returns the keys written. The manifest
    (trainyard_model.json or trainyard_results.json) goes last, so a partly uploaded model dir
    has none."""
    bucket, prefix = parse_s3_uri(uri)
    s3 = client if client is not None else _s3_client()
    files = sorted(
        (path for path in model_dir.rglob("*") if path.is_file()),
        key=lambda path: (path.name in MANIFEST_NAMES, path.as_posix()),
    )
    if not files:
        raise JobError(f"model dir {model_dir} is empty: nothing to upload")
    keys: list[str] = []
    try:
        for path in files:
            key = prefix + path.relative_to(model_dir).as_posix()
            s3.upload_file(str(path), bucket, key)
            keys.append(key)
    except Exception as exc:
        raise JobError(f"the model could not be uploaded to {uri}: {exc}") from exc
    return keys


def download_channels_from_environment(environ: Mapping[str, str], paths: JobPaths) -> int:
    """Fill each channel dir named in TRAINYARD_INPUT_S3_URIS; returns the files downloaded."""
    text = environ.get(INPUTS_VARIABLE)
    if not text:
        return 0
    try:
        uris = json.loads(text)
    except ValueError as exc:
        raise JobError(f"{INPUTS_VARIABLE} is not valid JSON: {exc}") from None
    if not isinstance(uris, dict) or not all(isinstance(u, str) for u in uris.values()):
        raise JobError(f"{INPUTS_VARIABLE} must map channel names to s3:// URIs")
    return sum(download_inputs(uri, paths.channel(name)) for name, uri in sorted(uris.items()))


def upload_model_from_environment(environ: Mapping[str, str], model_dir: Path) -> list[str]:
    uri = environ.get(MODEL_VARIABLE)
    return [] if not uri else upload_model(uri, model_dir)
