"""Training on a dataset kept in the caller's own cloud storage (seed 002's AI trainer): an
S3 bucket or an Azure Blob container, given with the credentials to read it.

The request is answered at once: the job and its model are recorded PENDING
(JobService.record_awaiting_dataset) and the ImportRunner port then runs the import: pull the
dataset (DOWNLOADING), store it through DatasetService, the same readers and checks as an
upload (DOWNLOADED), and launch the training. Any failure moves the job to FAILED with a
message saying what went wrong, so the normal webhook machinery reports it. There is one
import (`ExternalTrainingService.run`); the runners differ only in where it runs:

- local stack: a daemon thread of the service (adapters/local/import_thread.py), the
  credentials in the thread's closure, in this process's memory only;
- AWS: the dataset_import function (adapters/aws/lambda_imports.py), invoked asynchronously
  with the plan (`ExternalTraining.plan`, no credential); the credentials go through the
  Secrets port and `run_handed_over` takes (reads and deletes) them before the download.

The credentials are never recorded in the job, logged, or returned, and every message that
leaves the import has them scrubbed out (a storage error may echo what it was sent).

SSRF: the storage endpoint is checked when the training starts and again just before the
download, and the download itself runs inside `outbound.pinned_connections`, so each connection
the SDK opens goes to an address checked at that moment (never to a fresh answer of a
rebinding name); a refused one ends the job FAILED naming the host and why.

Source layout: `folder` is a prefix in the container holding the dataset's files
(<class>/<image> or train|val/<class>/<image>; detection: COCO or YOLO), or with `zipped` the
zip file itself (its key, or `<folder>.zip`, or the only .zip under `<folder>/`).
"""

from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol
from urllib.parse import urlsplit

from ..domain import Job, JobStatus, Task
from ..errors import InvalidInput, NotFound, TrainyardError, Unavailable
from ..ports import ImportRunner
from .archives import CHUNK, safe_member_path
from .datasets import DatasetService
from .jobs import DetectionTrainJobRequest, JobService, TrainJobRequest
from .outbound import ConnectPolicy, UnsafeURL, azure_blob_endpoint, check_public_url, pinned_connections

log = logging.getLogger(__name__)

StorageType = Literal["aws", "azure"]
CREDENTIAL_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "azure_connection_string")


@dataclass(frozen=True)
class FetchLimits:
    max_files: int  # a folder's files
    max_total_bytes: int  # a folder's bytes
    max_archive_bytes: int  # a zipped dataset's size


@dataclass(frozen=True)
class ExternalSource:
    """Where a dataset is and how to read it. repr=False on the credentials keeps them out of
    any log line or traceback that prints the source."""

    storage_type: StorageType
    container: str
    folder: str
    zipped: bool
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    azure_connection_string: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.storage_type == "aws" and not (self.aws_access_key_id and self.aws_secret_access_key):
            raise InvalidInput(
                "aws_access_key_id and aws_secret_access_key are required for storage_type aws"
            )
        if self.storage_type == "azure" and not self.azure_connection_string:
            raise InvalidInput("azure_connection_string is required for storage_type azure")

    @property
    def description(self) -> str:
        """The source as a client may see it: no credentials."""
        return f"{self.container}/{self.folder}"

    def credentials(self) -> dict[str, str]:
        """The credential fields that are set, to hand to a runner in another process."""
        values = {name: getattr(self, name) for name in CREDENTIAL_FIELDS}
        return {name: value for name, value in values.items() if value}

    def secrets(self) -> list[str]:
        """Every credential value, and each part of a connection string that is secret."""
        values = [self.aws_access_key_id, self.aws_secret_access_key, self.azure_connection_string]
        for part in (self.azure_connection_string or "").split(";"):
            name, _, value = part.partition("=")
            if name.strip().lower() in ("accountkey", "sharedaccesssignature"):
                values.append(value)
        return [v for v in values if v and len(v) >= 4]


def scrub(message: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ObjectSource(Protocol):
    """One bucket or container, read-only."""

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object whose key starts with `prefix`."""
        ...

    def open(self, key: str) -> Readable: ...


class S3Objects:
    endpoint: str  # the URL the SDK calls (AWS's own S3 endpoint unless overridden)

    def __init__(self, source: ExternalSource, endpoint_url: str | None, region: str | None) -> None:
        import boto3  # noqa: PLC0415 - only S3 sources need it
        from botocore.config import Config  # noqa: PLC0415

        self._bucket = source.container
        self._client = boto3.client(
            "s3",
            aws_access_key_id=source.aws_access_key_id,
            aws_secret_access_key=source.aws_secret_access_key,
            endpoint_url=endpoint_url,
            region_name=region or "us-east-1",
            config=Config(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=60),
        )
        self.endpoint = str(self._client.meta.endpoint_url)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for page in self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                yield str(item["Key"]), int(item["Size"])

    def open(self, key: str) -> IO[bytes]:
        body: IO[bytes] = self._client.get_object(Bucket=self._bucket, Key=key)["Body"]
        return body


class AzureObjects:
    def __init__(self, source: ExternalSource) -> None:
        from azure.storage.blob import BlobServiceClient  # noqa: PLC0415 - only Azure sources need it

        try:
            service = BlobServiceClient.from_connection_string(
                source.azure_connection_string or "", retry_total=2, connection_timeout=10, read_timeout=60
            )
        except ValueError as exc:
            raise InvalidInput(f"azure_connection_string is not usable: {exc}") from None
        self.endpoint: str = service.url  # the blob endpoint the SDK will call
        self._container = service.get_container_client(source.container)

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        for blob in self._container.list_blobs(name_starts_with=prefix or None):
            yield str(blob.name), int(blob.size or 0)

    def open(self, key: str) -> Readable:
        return _StreamReader(self._container.download_blob(key).chunks())


class _StreamReader:
    """A file-like reader over the Azure SDK's chunk iterator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def storage_place(source: ExternalSource) -> str:
    """The container as messages name it: "S3 bucket 'x'" or "Azure container 'x'"."""
    return f"{'S3 bucket' if source.storage_type == 'aws' else 'Azure container'} {source.container!r}"


def describe_storage_error(exc: Exception, source: ExternalSource) -> str:
    """A storage SDK's error as a sentence naming the container and what the storage said."""
    where = storage_place(source)
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        code = str(response.get("Error", {}).get("Code", ""))
    code = code or str(getattr(exc, "error_code", "") or "")
    if code in ("NoSuchBucket", "ContainerNotFound"):
        return f"{where} does not exist"
    if (
        code
        in (
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "AuthorizationFailure",
            "AuthenticationFailed",
            "InvalidClientTokenId",
        )
        or "AUTHORIZATION" in code.upper()
    ):
        return f"{where}: the storage refused the credentials ({code.split('.')[-1]})"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return f"{where}: could not read the dataset: {first_line}"


def _copy_capped(stream: Readable, target: Path, cap: int, what: str) -> int:
    written = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while chunk := stream.read(CHUNK):
            written += len(chunk)
            if written > cap:
                raise InvalidInput(f"{what} is larger than {cap} bytes")
            out.write(chunk)
    return written


def _folder_prefix(folder: str) -> str:
    folder = folder.strip("/")
    return f"{folder}/" if folder else ""


def fetch_dataset(objects: ObjectSource, source: ExternalSource, workdir: Path, limits: FetchLimits) -> Path:
    """Download the dataset into `workdir` and return an archive of it for DatasetService:
    the zip itself, or a plain tar of the folder's files (extracted and checked there as any
    upload is)."""
    if source.zipped:
        return _fetch_zip(objects, source, workdir, limits)
    prefix = _folder_prefix(source.folder)
    files: list[tuple[str, int]] = []
    total = 0
    for key, size in objects.list(prefix):
        if key.endswith("/"):  # a "directory" marker some tools create
            continue
        files.append((key, size))
        total += size
        if len(files) > limits.max_files:
            raise InvalidInput(f"folder {source.folder!r} holds more than {limits.max_files} files")
        if total > limits.max_total_bytes:
            raise InvalidInput(f"folder {source.folder!r} holds more than {limits.max_total_bytes} bytes")
    if not files:
        raise InvalidInput(
            f"folder {source.folder!r} in container {source.container!r} is empty or does not exist"
        )
    root = workdir / "folder"
    budget = limits.max_total_bytes
    for key, _ in files:
        relative = safe_member_path(key[len(prefix) :])
        budget -= _copy_capped(
            objects.open(key), root.joinpath(*relative.parts), budget, f"folder {source.folder!r}"
        )
    archive = workdir / "dataset.tar"
    with tarfile.open(archive, "w") as tar:
        for key, _ in files:
            name = key[len(prefix) :]
            tar.add(root / name, arcname=name)
    shutil.rmtree(root, ignore_errors=True)
    return archive


def _fetch_zip(objects: ObjectSource, source: ExternalSource, workdir: Path, limits: FetchLimits) -> Path:
    folder = source.folder.strip("/")
    found = {key: size for key, size in objects.list(folder) if not key.endswith("/")}
    inside = [key for key in found if key.startswith(f"{folder}/") and key.lower().endswith(".zip")]
    if folder in found:
        key = folder
    elif f"{folder}.zip" in found:
        key = f"{folder}.zip"
    elif len(inside) == 1:
        key = inside[0]
    else:
        raise InvalidInput(
            f"zipped: no zip file at {folder!r} in container {source.container!r}"
            + (f" (several under {folder}/: {', '.join(sorted(inside)[:5])})" if inside else "")
            + "; name the .zip itself in folder"
        )
    if found[key] > limits.max_archive_bytes:
        raise InvalidInput(f"{key} is larger than {limits.max_archive_bytes} bytes")
    archive = workdir / "dataset.zip"
    _copy_capped(objects.open(key), archive, limits.max_archive_bytes, key)
    return archive


@dataclass(frozen=True)
class ExternalTraining:
    """What to train once the dataset is in: the request's dataset_id is filled in then."""

    tenant_id: str
    job_id: str
    dataset_name: str
    request: TrainJobRequest | DetectionTrainJobRequest
    source: ExternalSource

    def plan(self) -> dict[str, Any]:
        """Everything a runner in another process needs but the credentials (JSON)."""
        return {
            "tenant_id": self.tenant_id,
            "job_id": self.job_id,
            "dataset_name": self.dataset_name,
            "request": self.request.model_dump(mode="json"),
            "source": plain_summary(self.source),
        }

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any], credentials: Mapping[str, str]) -> ExternalTraining:
        """`plan()`'s output with the credentials handed over beside it."""
        request = dict(plan["request"])
        parsed: TrainJobRequest | DetectionTrainJobRequest = (
            DetectionTrainJobRequest.model_validate(request)
            if request.get("task") == "detection"
            else TrainJobRequest.model_validate(request)
        )
        source = dict(plan["source"])
        return cls(
            tenant_id=str(plan["tenant_id"]),
            job_id=str(plan["job_id"]),
            dataset_name=str(plan["dataset_name"]),
            request=parsed,
            source=ExternalSource(
                storage_type=source["storage_type"],
                container=str(source["container"]),
                folder=str(source["folder"]),
                zipped=bool(source["zipped"]),
                **{name: credentials.get(name) for name in CREDENTIAL_FIELDS},
            ),
        )


class ExternalTrainingService:
    def __init__(
        self,
        jobs: JobService,
        datasets: DatasetService,
        tmp_root: Path,
        limits: FetchLimits,
        runner: ImportRunner | None,
        s3_endpoint: str | None = None,
        aws_region: str | None = None,
        *,
        allow_loopback_urls: bool = False,
    ) -> None:
        self._allow_loopback_urls = allow_loopback_urls
        self._jobs = jobs
        self._datasets = datasets
        self._tmp_root = tmp_root
        self._limits = limits
        self._runner = runner
        self._s3_endpoint = s3_endpoint
        self._aws_region = aws_region

    def check_available(self) -> None:
        if self._runner is None:
            raise Unavailable(
                "training on datasets in external storage is not set up here"
                " (on AWS, TRAINYARD_DATASET_IMPORT_FUNCTION names the import function)"
            )

    def check_endpoints(self, source: ExternalSource, sdk_endpoint: str | None = None) -> None:
        """SSRF: the storage endpoint a source makes us call must be public https
        (services/outbound.py). Azure: the endpoint its connection string names (the caller's
        input; Azurite in tests is loopback, allowed by TRAINYARD_ALLOW_LOOPBACK_URLS), and the
        SDK client's own URL once built (`sdk_endpoint`). S3: the endpoint override setting.
        Checked at registration and again just before the download; the download's own
        connections are then pinned (`_download`)."""
        if source.storage_type == "azure":
            for endpoint in (azure_blob_endpoint(source.azure_connection_string or ""), sdk_endpoint):
                if endpoint:
                    try:
                        check_public_url(endpoint, self._allow_loopback_urls)
                    except UnsafeURL as exc:
                        raise UnsafeURL(f"azure_connection_string: its blob endpoint {exc.message}") from None
        elif self._s3_endpoint:
            try:
                check_public_url(self._s3_endpoint, self._allow_loopback_urls)
            except UnsafeURL as exc:  # the operator's setting, not the caller's input
                raise Unavailable(f"TRAINYARD_EXTERNAL_S3_ENDPOINT is refused: {exc.message}") from None

    def start(self, training: ExternalTraining) -> Job:
        """Record the job (PENDING) and start its import; returns the recorded job. When the
        runner cannot start it (Unavailable), the job is failed with that reason and the error
        raised."""
        self.check_available()
        self.check_endpoints(training.source)
        assert self._runner is not None
        job = self._jobs.record_awaiting_dataset(training.tenant_id, training.job_id, training.request)
        try:
            self._runner.submit(
                training.job_id, training.plan(), training.source.credentials(), lambda: self.run(training)
            )
        except TrainyardError as exc:
            self._fail(
                training.job_id, f"dataset {training.source.description}: {exc.message}", training.source
            )
            raise
        return job

    def run_handed_over(self, plan: Mapping[str, Any]) -> str:
        """The import of a job `start` handed to another process (AWS: the dataset_import
        function), from its plan; says what it did. The credentials are taken (read and
        deleted) first, whatever happens next. Safe to run again for the same plan (async
        invocations are retried): a job that is no longer PENDING is left alone, and a job
        still PENDING whose credentials are gone is failed, since nothing can download it."""
        tenant_id, job_id = str(plan["tenant_id"]), str(plan["job_id"])
        assert self._runner is not None, "a handed-over import needs the runner that handed it over"
        credentials = self._runner.take_credentials(job_id)
        try:
            job = self._jobs.get(tenant_id, job_id)
        except NotFound:
            return "skipped: the job does not exist"
        if job.status is not JobStatus.PENDING:
            return f"skipped: the job is {job.status.value}"
        description = f"{plan['source']['container']}/{plan['source']['folder']}"
        if credentials is None:
            self._jobs.transition(
                job_id,
                JobStatus.FAILED,
                error=f"dataset {description}: the storage credentials were no longer available"
                " (the import was already attempted); start the training again",
            )
            return "failed: no credentials"
        try:
            training = ExternalTraining.from_plan(plan, credentials)
        except (InvalidInput, ValueError, KeyError) as exc:  # a plan this version cannot read
            secrets = [value for value in credentials.values() if len(value) >= 4]
            reason = scrub(str(exc.message if isinstance(exc, InvalidInput) else exc), secrets)
            self._jobs.transition(job_id, JobStatus.FAILED, error=f"dataset {description}: {reason}")
            return "failed: unreadable plan"
        self.run(training)
        return f"ran: the job is {self._jobs.get(tenant_id, job_id).status.value}"

    def _objects(self, source: ExternalSource) -> S3Objects | AzureObjects:
        # again, just before the download, so a refusal names the setting or field at fault;
        # the client built here connects nowhere until `_fetch_pinned`
        self.check_endpoints(source)
        if source.storage_type == "aws":
            return S3Objects(source, self._s3_endpoint, self._aws_region)
        objects = AzureObjects(source)
        self.check_endpoints(source, objects.endpoint)
        return objects

    def run(self, training: ExternalTraining) -> None:
        """The download and launch; every failure ends the job FAILED with a scrubbed message."""
        source, job_id = training.source, training.job_id
        try:
            if self._jobs.transition(job_id, JobStatus.DOWNLOADING) is None:
                return  # cancelled before the download began
            task = Task(training.request.task)
            self._tmp_root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="external-", dir=self._tmp_root) as scratch:
                archive = self._download(source, Path(scratch))
                dataset = self._datasets.create_from_archive(
                    training.tenant_id, training.dataset_name, archive, task, archive.name
                )
            if self._jobs.transition(job_id, JobStatus.DOWNLOADED) is None:
                return
            request = training.request.model_copy(update={"dataset_id": dataset.id})
            self._jobs.launch_with_dataset(training.tenant_id, job_id, request)
        except TrainyardError as exc:
            self._fail(job_id, f"dataset {source.description}: {exc.message}", source)
        except Exception as exc:  # a bug: logged (scrubbed), and the job still ends
            log.error("external dataset job %s failed: %s", job_id, scrub(repr(exc), source.secrets()))
            self._fail(
                job_id, f"dataset {source.description}: internal error ({exc.__class__.__name__})", source
            )

    def _download(self, source: ExternalSource, workdir: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        storage_errors: tuple[type[Exception], ...] = (ClientError, BotoCoreError)
        if source.storage_type == "azure":
            from azure.core.exceptions import AzureError  # noqa: PLC0415

            storage_errors = (AzureError,)
        try:
            return self._fetch_pinned(self._objects(source), source, workdir)
        except storage_errors as exc:
            raise InvalidInput(describe_storage_error(exc, source)) from None

    def _fetch_pinned(self, objects: S3Objects | AzureObjects, source: ExternalSource, workdir: Path) -> Path:
        """fetch_dataset with every connection the SDK opens pinned to a checked address (plain
        http, which the endpoint checks allow to loopback alone, to loopback addresses only)."""
        policy = ConnectPolicy(
            allow_loopback=self._allow_loopback_urls,
            loopback_only=urlsplit(objects.endpoint).scheme.lower() == "http",
        )
        try:
            with pinned_connections(policy):
                return fetch_dataset(objects, source, workdir, self._limits)
        except UnsafeURL as exc:  # the name now resolves to an address the checks refuse
            raise InvalidInput(f"{storage_place(source)}: not connected: {exc.message}") from None

    def _fail(self, job_id: str, message: str, source: ExternalSource) -> None:
        message = scrub(message, source.secrets())
        log.info("external dataset job %s failed: %s", job_id, message)
        self._jobs.transition(job_id, JobStatus.FAILED, error=message)


def plain_summary(source: ExternalSource) -> dict[str, Any]:
    """The source's fields that may be stored or shown: everything but the credentials."""
    return {
        "storage_type": source.storage_type,
        "container": source.container,
        "folder": source.folder,
        "zipped": source.zipped,
    }
