"""Configuration: one typed model read once from TRAINYARD_* environment variables.

Only the composition root (bootstrap.py) and the entry points read settings; nothing else
touches os.environ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]

# Standard Webhooks' retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), continued every
# 10 h: 11 retries spread over 67.6 h, about three days after the first attempt.
STANDARD_WEBHOOK_RETRY_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, *(36000,) * 6)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore")

    backend: Literal["local", "aws"] = "local"
    home: Path = Path(".trainyard")
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # the default tenant's key; generated and stored when unset

    # the containers: each run as a subprocess in its own virtualenv by the local launcher,
    # with jobkit (the job-contract library they share) on PYTHONPATH
    trainer_dir: Path = REPO_ROOT / "containers" / "trainer"
    trainer_python: Path | None = None  # default: <trainer_dir>/.venv/bin/python
    pose_dir: Path = REPO_ROOT / "containers" / "pose"
    pose_python: Path | None = None  # default: <pose_dir>/.venv/bin/python
    jobkit_dir: Path = REPO_ROOT / "containers" / "jobkit"
    weights_dir: Path | None = None  # Keras cache layout; ImageNet weights are never downloaded

    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1024)  # largest dataset or upload
    # largest request body the API takes inline; larger files go through POST /v1/uploads.
    # Unset: max_upload_bytes. On Lambda (6 MB payload cap) template.yaml sets 5 MiB.
    max_inline_bytes: int | None = Field(None, ge=1024)
    max_archive_files: int = Field(50_000, ge=1)
    max_archive_uncompressed_bytes: int = Field(2 * 1024**3, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1)
    min_images_per_class: int = Field(1, ge=1)
    min_pose_frames: int = Field(2, ge=1)  # labelled frames a pose dataset needs
    max_video_frames: int = Field(100_000, ge=1)  # longest video a pose model runs on
    # longest video (frames / its frame rate) a pose model runs on or a pose dataset holds
    max_video_seconds: float = Field(3600.0, gt=0)

    # --- the seed APIs (api/seeds/): the five services Trainyard replaces ------------------
    # the bare POST /predict is both seed 003's (tags) and seed 004's (digits); this one gets it
    root_predict: Literal["003", "004"] = "004"
    # Seeds 000, 001, 003 and 004 had no authentication: their clients send no key. When on,
    # such a call acts for the default tenant (the key `make run` prints); a call that sends a
    # key acts for that key's tenant. Unset: on for the local backend, off on AWS.
    seed_anonymous_access: bool | None = None
    # seed 002's external datasets: S3 sources go to this endpoint (a test's moto server);
    # unset, to AWS's own endpoints
    external_s3_endpoint: str | None = None
    # seed 002: where its webhook goes when a request names none (the seed's "default URL in
    # dev/qualif settings"); unset, such a job sends no webhook
    seed002_default_webhook_url: str | None = None
    # seed 002 documents batch_size ≤ 36 (its VM's memory); raise it on a bigger machine
    seed002_max_batch_size: int = Field(36, ge=1, le=512)
    # seed 004's GET /model forwards questions to an OpenAI-compatible chat completions API
    chat_api_url: str | None = None  # e.g. https://api.openai.com/v1
    chat_api_key: str | None = None
    chat_model: str = "gpt-4o-mini"
    chat_timeout_seconds: float = Field(30.0, gt=0)
    # seed 004's POST /training waits this long for its job before answering that it still
    # runs. Unset: 30 minutes locally; 20 s on AWS, inside API Gateway's 29 s request limit.
    digits_training_wait_seconds: float | None = Field(None, ge=0)

    # seed 003 (custom tags): how long a request waits for the tenant's embedder job (the
    # first one builds it) before answering base_model_not_ready; a state tar's size cap
    tags_embedder_wait_seconds: float = Field(300.0, ge=0)
    tags_max_state_bytes: int = Field(200 * 1024 * 1024, ge=1024)

    predict_cache_size: int = Field(8, ge=1)
    # Webhook retries: the delays between attempts (each jittered ±20%). Unset: Standard
    # Webhooks' schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h) continued every 10 h for about
    # three days in all (12 attempts, like Stripe's 3 days). JSON in the environment:
    # TRAINYARD_WEBHOOK_RETRY_SCHEDULE_SECONDS='[0.1, 0.2]'.
    webhook_retry_schedule_seconds: list[float] | None = None
    # Older form, kept for existing configurations and tests: exponential backoff from this
    # base (base, 2×base, 4×base…) instead of the schedule; webhook_max_attempts caps either.
    webhook_backoff_seconds: float | None = Field(None, ge=0)
    webhook_max_attempts: int | None = Field(None, ge=1)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    # after a per-endpoint secret is rotated, messages are signed with the old one too for
    # this long, so receivers can switch without dropping a message
    webhook_secret_grace_seconds: float = Field(24 * 3600, ge=0)
    cancel_grace_seconds: float = Field(10.0, ge=0)
    # outbound URLs (webhooks, seed 002's storage endpoints, the chat API) must be public https;
    # this allows loopback ones too (and plain http to them), never private or metadata ones.
    # Unset: on for the local backend (receivers on localhost in development), off on AWS.
    allow_loopback_urls: bool | None = None

    # --- AWS backend (template.yaml sets these on every function) ---------------------------
    aws_region: str | None = None  # default: the SDK's (AWS_REGION on Lambda)
    table_name: str = "trainyard"
    datasets_bucket: str = "trainyard-datasets"
    artifacts_bucket: str = "trainyard-artifacts"
    event_bus_name: str = "trainyard"
    launcher: Literal["sagemaker", "batch"] = "sagemaker"
    trainer_image_uri: str = ""
    pose_image_uri: str = ""
    sagemaker_role_arn: str = ""
    instance_type: str = "ml.g5.xlarge"
    use_spot: bool = False
    max_runtime_seconds: int = Field(24 * 3600, ge=60)
    max_wait_seconds: int = Field(48 * 3600, ge=60)  # spot only; >= max_runtime_seconds
    batch_job_queue: str = ""
    batch_job_definition: str = ""
    batch_pose_job_definition: str = ""
    pose_probe_function: str = ""  # the Lambda that checks pose uploads; empty: no pose here
    # seed 002's external dataset imports run in this Lambda; empty: /starttraining/ answers 503
    dataset_import_function: str = ""
    secrets_prefix: str = "trainyard/"
    presign_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600)
    reaper_stale_seconds: int = Field(15 * 60, ge=0)  # no event for this long: ask the platform
    reaper_interval_seconds: float = Field(60.0, gt=0)  # the local stack's reaper timer

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """The pause before attempt 2, 3, …; its length + 1 is the number of attempts."""
        if self.webhook_retry_schedule_seconds is not None:
            delays = tuple(self.webhook_retry_schedule_seconds)
        elif self.webhook_backoff_seconds is not None:
            retries = (self.webhook_max_attempts or 6) - 1
            delays = tuple(self.webhook_backoff_seconds * 2**n for n in range(retries))
        else:
            delays = STANDARD_WEBHOOK_RETRY_SCHEDULE
        if self.webhook_max_attempts is not None:
            delays = delays[: self.webhook_max_attempts - 1]
        return delays

    @property
    def inline_limit(self) -> int:
        return min(self.max_upload_bytes, self.max_inline_bytes or self.max_upload_bytes)

    @property
    def allows_anonymous_seed_calls(self) -> bool:
        if self.seed_anonymous_access is None:
            return self.backend == "local"
        return self.seed_anonymous_access

    @property
    def allows_loopback_urls(self) -> bool:
        if self.allow_loopback_urls is None:
            return self.backend == "local"
        return self.allow_loopback_urls

    @property
    def digits_training_wait(self) -> float:
        if self.digits_training_wait_seconds is None:
            return 1800.0 if self.backend == "local" else 20.0
        return self.digits_training_wait_seconds

    @property
    def resolved_trainer_python(self) -> Path:
        return self.trainer_python or self.trainer_dir / ".venv" / "bin" / "python"

    @property
    def resolved_pose_python(self) -> Path:
        return self.pose_python or self.pose_dir / ".venv" / "bin" / "python"

    @property
    def database_path(self) -> Path:
        return self.home / "trainyard.db"

    @property
    def blob_root(self) -> Path:
        return self.home / "blobs"

    @property
    def jobs_root(self) -> Path:
        return self.home / "jobs"

    @property
    def tmp_root(self) -> Path:
        return self.home / "tmp"
