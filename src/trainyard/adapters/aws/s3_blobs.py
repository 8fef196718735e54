"""BlobStore on one S3 bucket (docs/aws-design.md, "S3").

Keys are validated exactly as the disk store validates them, so a key that works locally
works here and a key that could escape the disk store's root is refused on both. Prefix
operations follow the disk store's folder semantics: "t/a" and "t/a/" both mean the folder
t/a (never "t/ab"), and the key "t/a" itself when it is a blob.

The boto3 client is created on first use, not in the constructor, so building the store
(and importing this module) costs nothing on a cold start that never touches S3.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from ...errors import NotFound

# DeleteObjects accepts at most this many keys per request.
DELETE_BATCH_SIZE = 1000
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


def checked_key(key: str) -> str:
    relative = PurePosixPath(key)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"invalid blob key {key!r}")
    return relative.as_posix()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def content_disposition(filename: str) -> str:
    """An attachment header that survives any filename: a plain-ASCII fallback for old
    clients and the exact UTF-8 name in `filename*` (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@dataclass(frozen=True)
class PresignedPost:
    """A browser-style form upload straight to S3: POST `url` as multipart/form-data with
    `fields` first and the file last (field name "file")."""

    url: str
    fields: dict[str, str]


class S3BlobStore:
    def __init__(
        self,
        bucket: str,
        client: Any | None = None,
        *,
        cache_dir: Path,
        region_name: str | None = None,
    ) -> None:
        self._bucket = bucket
        self._client = client
        self._region_name = region_name
        self._client_lock = threading.Lock()
        self._cache_dir = cache_dir
        # A cached copy and its ETag file are two writes; one download at a time keeps them
        # from two different versions of the blob (Lambda serves one request at a time anyway).
        self._cache_lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def _s3(self) -> Any:
        if self._client is None:
            with self._client_lock:  # boto3's default session is not safe to share while building
                if self._client is None:
                    import boto3  # noqa: PLC0415 - only the AWS backend needs it
                    from botocore.config import Config  # noqa: PLC0415

                    # SigV4 for presigned URLs and POSTs: botocore may otherwise presign with
                    # SigV2, which S3 refuses in newer regions and is deprecated everywhere.
                    self._client = boto3.client(
                        "s3", region_name=self._region_name, config=Config(signature_version="s3v4")
                    )
        return self._client

    # --- writing ----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=checked_key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        # upload_file switches to a multipart upload for large files and retries parts.
        self._s3.upload_file(str(path), self._bucket, checked_key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list_keys(prefix)
        for start in range(0, len(keys), DELETE_BATCH_SIZE):
            batch = keys[start : start + DELETE_BATCH_SIZE]
            response = self._s3.delete_objects(
                Bucket=self._bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise RuntimeError(
                    f"S3 could not delete {len(errors)} object(s) under {prefix!r}:"
                    f" {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
        for key in keys:  # a deleted blob's cached copy must not outlive it (Lambda /tmp is small)
            self._discard_cached(key)

    # --- reading ----------------------------------------------------------------------------

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=checked_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise NotFound(f"blob {key} not found") from exc
            raise
        data: bytes = response["Body"].read()
        return data

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=checked_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> list[str]:
        folder = checked_key(prefix.rstrip("/"))
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=folder):
            keys.extend(
                item["Key"]
                for item in page.get("Contents", [])
                if item["Key"] == folder or item["Key"].startswith(folder + "/")
            )
        return sorted(keys)

    def local_path(self, key: str) -> Path:
        """Download into the cache once; later calls send a conditional GET (If-None-Match
        with the cached ETag), so an overwritten blob is fetched again and an unchanged one
        costs one request and no transfer."""
        key = checked_key(key)
        with self._cache_lock:
            return self._refresh_cached(key)

    def _refresh_cached(self, key: str) -> Path:
        target, etag_file = self._cache_paths(key)
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if target.is_file() and etag_file.is_file():
            request["IfNoneMatch"] = etag_file.read_text()
        try:
            response = self._s3.get_object(**request)
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("304", "NotModified"):
                return target
            if code in _MISSING_CODES:
                self._discard_cached(key)
                raise NotFound(f"blob {key} not found") from exc
            raise
        target.parent.mkdir(parents=True, exist_ok=True)
        etag_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                shutil.copyfileobj(response["Body"], handle, 1024 * 1024)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        etag_file.write_text(response["ETag"])
        return target

    def _cache_paths(self, key: str) -> tuple[Path, Path]:
        # Data and ETags live in separate trees so no blob's name can collide with an ETag's.
        parts = PurePosixPath(key).parts
        return self._cache_dir.joinpath("data", *parts), self._cache_dir.joinpath("etags", *parts)

    def _discard_cached(self, key: str) -> None:
        for path in self._cache_paths(key):
            path.unlink(missing_ok=True)

    # --- direct client access -----------------------------------------------------------------

    def presigned_get_url(self, key: str, expires_seconds: int, filename: str | None = None) -> str | None:
        params: dict[str, str] = {"Bucket": self._bucket, "Key": checked_key(key)}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        url: str = self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_seconds)
        return url

    def presigned_post(self, key: str, expires_seconds: int, max_bytes: int) -> PresignedPost:
        """A presigned POST rather than a presigned PUT: its policy carries a
        content-length-range condition, so S3 itself refuses a body over `max_bytes` (a
        presigned PUT cannot bound the size). The policy also pins the exact key."""
        post = self._s3.generate_presigned_post(
            Bucket=self._bucket,
            Key=checked_key(key),
            Conditions=[["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_seconds,
        )
        return PresignedPost(url=str(post["url"]), fields={k: str(v) for k, v in post["fields"].items()})
