"""Large uploads: the client asks for an upload, sends the bytes where it is told, and then
names the upload (instead of sending the file) when it creates a dataset.

Where the bytes go is a small strategy, an `UploadTransport`:

- on AWS, `PresignedPostTransport`: straight to S3 with a presigned POST whose policy caps
  the size and pins the key, so large files never pass through Lambda or API Gateway (whose
  request bodies are limited to a few MB);
- locally, `ApiUploadTransport`: to the API itself, `PUT /v1/uploads/{upload_id}` with the
  same bearer key (api/routes_uploads.py, the only backend that route serves).

Either way the bytes end as the blob `uploads/<tenant>/<upload id>`. The upload's record is
a small JSON blob beside it, `uploads/<tenant>/<upload id>.json`, so uploads need no JobStore
change and expire with the same S3 lifecycle rule. A tenant's uploads live under its own
prefix: another tenant's upload id reads as absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from ..domain import Dataset, Task, new_id, utcnow
from ..errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from ..ports import BlobStore
from .datasets import DatasetService

UPLOAD_PREFIX = "uploads"
UPLOAD_ID_PREFIX = "up"
PURPOSES = ("dataset", "video")  # what the upload is for: a dataset archive, a video to run a model on
MAX_FILENAME_LENGTH = 255
# new_id's shape; anything else cannot be an upload and must not reach a blob key.
UPLOAD_ID_PATTERN = re.compile(rf"^{UPLOAD_ID_PREFIX}_[0-9a-f]{{16}}$")


@dataclass(frozen=True)
class UploadTarget:
    """How to send the bytes: `method` to `url`; a POST is multipart/form-data with
    `fields` first and the file last, a PUT is the raw bytes as the body. A relative `url`
    is relative to the API's own base URL."""

    method: str
    url: str
    fields: dict[str, str]


class UploadTransport(Protocol):
    @property
    def receives_through_api(self) -> bool:
        """Whether the bytes come through PUT /v1/uploads/{upload_id}."""
        ...

    def target(self, upload_id: str, key: str, expires_seconds: int, max_bytes: int) -> UploadTarget: ...


class ApiUploadTransport:
    """The local backend has no object store a client could reach, so the API takes the
    bytes itself (api/routes_uploads.py streams them to disk under the size cap)."""

    receives_through_api = True

    def target(self, upload_id: str, key: str, expires_seconds: int, max_bytes: int) -> UploadTarget:
        return UploadTarget(method="PUT", url=f"/v1/uploads/{upload_id}", fields={})


class PresignedPostLike(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def fields(self) -> dict[str, str]: ...


class PostPresigner(Protocol):
    """What S3BlobStore (adapters/aws/s3_blobs.py) offers beyond the BlobStore port."""

    def presigned_post(self, key: str, expires_seconds: int, max_bytes: int) -> PresignedPostLike: ...


class PresignedPostTransport:
    """Clients send the bytes straight to the datasets bucket. S3 enforces the size cap and
    the key from the POST policy, so the API never sees the bytes."""

    receives_through_api = False

    def __init__(self, presigner: PostPresigner) -> None:
        self._presigner = presigner

    def target(self, upload_id: str, key: str, expires_seconds: int, max_bytes: int) -> UploadTarget:
        post = self._presigner.presigned_post(key, expires_seconds, max_bytes)
        return UploadTarget(method="POST", url=post.url, fields=dict(post.fields))


class Upload(BaseModel):
    id: str
    tenant_id: str
    key: str
    filename: str
    purpose: str
    max_bytes: int
    created_at: datetime
    expires_at: datetime  # the last moment the bytes may be sent


def upload_key(tenant_id: str, upload_id: str) -> str:
    return f"{UPLOAD_PREFIX}/{tenant_id}/{upload_id}"


def record_key(tenant_id: str, upload_id: str) -> str:
    return f"{upload_key(tenant_id, upload_id)}.json"


class UploadService:
    def __init__(
        self,
        blobs: BlobStore,
        transport: UploadTransport,
        datasets: DatasetService,
        *,
        max_upload_bytes: int,
        expires_seconds: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._blobs = blobs
        self._transport = transport
        self._datasets = datasets
        self._max_upload_bytes = max_upload_bytes
        self._expires_seconds = expires_seconds
        self._clock = clock

    @property
    def receives_through_api(self) -> bool:
        return self._transport.receives_through_api

    def create(
        self, tenant_id: str, filename: str, size_bytes: int, purpose: str = "dataset"
    ) -> dict[str, Any]:
        """Record a new upload and say how to send it. The size cap is the declared size:
        the client knows its file's size, and a tight cap means a presigned POST cannot be
        reused to store more than was asked for."""
        if purpose not in PURPOSES:
            raise InvalidInput(f"purpose: must be one of {', '.join(PURPOSES)}")
        # measured as sent: trimming first would let a name of 300 characters and trailing
        # spaces through, which the API's own schema refuses
        if len(filename) > MAX_FILENAME_LENGTH or not (filename := filename.strip()):
            raise InvalidInput(f"filename: must be 1 to {MAX_FILENAME_LENGTH} characters")
        if size_bytes < 1:
            raise InvalidInput("size_bytes: must be at least 1")
        if size_bytes > self._max_upload_bytes:
            raise PayloadTooLarge(f"size_bytes: {size_bytes} is over the {self._max_upload_bytes}-byte limit")
        upload_id = new_id(UPLOAD_ID_PREFIX)
        now = self._clock()
        upload = Upload(
            id=upload_id,
            tenant_id=tenant_id,
            key=upload_key(tenant_id, upload_id),
            filename=filename,
            purpose=purpose,
            max_bytes=size_bytes,
            created_at=now,
            expires_at=now + timedelta(seconds=self._expires_seconds),
        )
        self._blobs.put_bytes(record_key(tenant_id, upload_id), upload.model_dump_json().encode())
        target = self._transport.target(upload_id, upload.key, self._expires_seconds, upload.max_bytes)
        return {
            "upload_id": upload_id,
            "method": target.method,
            "url": target.url,
            "fields": target.fields,
            "expires_at": upload.expires_at.isoformat(),
            "max_bytes": upload.max_bytes,
        }

    def get(self, tenant_id: str, upload_id: str) -> Upload:
        if not UPLOAD_ID_PATTERN.match(upload_id):
            raise NotFound(f"upload {upload_id} not found")
        try:
            raw = self._blobs.get_bytes(record_key(tenant_id, upload_id))
        except NotFound:
            raise NotFound(f"upload {upload_id} not found") from None
        return Upload.model_validate_json(raw)

    # --- the API transport (local backend) ----------------------------------------------------

    def accept_api_upload(self, tenant_id: str, upload_id: str) -> Upload:
        """The upload the API may receive bytes for now; checked before reading the body so
        a wrong id or an expired upload costs the client no transfer."""
        if not self.receives_through_api:
            raise NotFound("this backend takes upload bytes at the URL POST /v1/uploads returned")
        upload = self.get(tenant_id, upload_id)
        if self._clock() > upload.expires_at:
            raise NotFound(f"upload {upload_id} expired at {upload.expires_at.isoformat()}; create another")
        return upload

    def store_api_upload(self, tenant_id: str, upload_id: str, path: Path) -> None:
        upload = self.accept_api_upload(tenant_id, upload_id)
        size = path.stat().st_size
        if size > upload.max_bytes:
            raise PayloadTooLarge(f"upload {upload_id} is {size} bytes; its limit is {upload.max_bytes}")
        if size == 0:
            raise InvalidInput("the upload body is empty")
        self._blobs.put_file(upload.key, path)

    # --- using an upload ----------------------------------------------------------------------

    def open_upload(self, tenant_id: str, upload_id: str) -> tuple[Path, str]:
        """A local path holding the upload's bytes (a cache copy on S3), and the file name the
        client gave it."""
        upload = self.get(tenant_id, upload_id)
        try:
            return self._blobs.local_path(upload.key), upload.filename
        except NotFound:
            raise Conflict(f"upload {upload_id} has no data yet: send the file first") from None

    def discard(self, tenant_id: str, upload_id: str) -> None:
        self._blobs.delete_prefix(upload_key(tenant_id, upload_id))
        self._blobs.delete_prefix(record_key(tenant_id, upload_id))

    def create_dataset(
        self, tenant_id: str, name: str, upload_id: str, task: Task = Task.CLASSIFICATION
    ) -> Dataset:
        """POST /v1/datasets with {"name", "upload_id"}: the same ingestion as a multipart
        upload. A dataset consumes its upload; after a failure the upload is kept, so the
        request can be retried (with a corrected name, say) without sending the file again."""
        archive, filename = self.open_upload(tenant_id, upload_id)
        dataset = self._datasets.create_from_archive(tenant_id, name, archive, task, filename)
        self.discard(tenant_id, upload_id)
        return dataset
