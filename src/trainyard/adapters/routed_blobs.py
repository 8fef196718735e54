"""A BlobStore over two stores, chosen by key: uploads and datasets live in one bucket,
models and job artifacts in another (different lifecycles and access policies on AWS).
The services see one store and one key space."""

from __future__ import annotations

from pathlib import Path

from ..ports import BlobStore


def is_dataset_key(key: str) -> bool:
    parts = key.split("/")
    return parts[0] == "uploads" or (len(parts) > 2 and parts[0] == "tenants" and parts[2] == "datasets")


class RoutedBlobStore:
    def __init__(self, datasets: BlobStore, artifacts: BlobStore) -> None:
        self._datasets = datasets
        self._artifacts = artifacts

    def store_for(self, key: str) -> BlobStore:
        return self._datasets if is_dataset_key(key) else self._artifacts

    def put_bytes(self, key: str, data: bytes) -> None:
        self.store_for(key).put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self.store_for(key).put_file(key, path)

    def get_bytes(self, key: str) -> bytes:
        return self.store_for(key).get_bytes(key)

    def exists(self, key: str) -> bool:
        return self.store_for(key).exists(key)

    def delete_prefix(self, prefix: str) -> None:
        self.store_for(prefix).delete_prefix(prefix)

    def list_keys(self, prefix: str) -> list[str]:
        return self.store_for(prefix).list_keys(prefix)

    def local_path(self, key: str) -> Path:
        return self.store_for(key).local_path(key)

    def presigned_get_url(self, key: str, expires_seconds: int, filename: str | None = None) -> str | None:
        return self.store_for(key).presigned_get_url(key, expires_seconds, filename)
