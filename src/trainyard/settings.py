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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore")

    backend: Literal["local", "aws"] = "local"
    home: Path = Path(".trainyard")
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None  # the default tenant's key; generated and stored when unset

    # the trainer container: run as a subprocess in its own virtualenv by the local launcher
    trainer_dir: Path = REPO_ROOT / "containers" / "trainer"
    trainer_python: Path | None = None  # default: <trainer_dir>/.venv/bin/python
    weights_dir: Path | None = None  # Keras cache layout; ImageNet weights are never downloaded

    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1024)
    max_archive_files: int = Field(50_000, ge=1)
    max_archive_uncompressed_bytes: int = Field(2 * 1024**3, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=1)
    min_images_per_class: int = Field(1, ge=1)

    predict_cache_size: int = Field(8, ge=1)
    webhook_max_attempts: int = Field(6, ge=1)
    webhook_backoff_seconds: float = Field(2.0, ge=0)
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    cancel_grace_seconds: float = Field(10.0, ge=0)

    @property
    def resolved_trainer_python(self) -> Path:
        return self.trainer_python or self.trainer_dir / ".venv" / "bin" / "python"

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
