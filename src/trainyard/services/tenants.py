"""Tenants and their API keys. Keys are random 256-bit secrets; only their SHA-256 is
stored (a slow hash buys nothing for secrets this long and would slow every request)."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from ..domain import ApiKey, Tenant, new_id
from ..errors import NotFound, Unauthorized
from ..ports import JobStore

DEFAULT_TENANT = "default"
KEY_PREFIX = "ty_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_from_authorization(header: str | None) -> str | None:
    """The API key in an Authorization header: `Bearer <key>`, or the key alone (seed 002's
    clients send it bare). None when there is none."""
    value = (header or "").strip()
    scheme, _, rest = value.partition(" ")
    key = rest.strip() if scheme.lower() == "bearer" else value
    return key or None


class TenantService:
    def __init__(self, store: JobStore) -> None:
        self._store = store

    def add_key(self, tenant_id: str, key: str | None = None) -> tuple[ApiKey, str]:
        key = key or generate_key()
        record = ApiKey(id=new_id("key"), tenant_id=tenant_id, key_hash=hash_key(key), prefix=key[:7])
        self._store.put_api_key(record)
        return record, key

    def create_tenant(self, name: str) -> tuple[Tenant, ApiKey, str]:
        tenant = Tenant(id=new_id("tnt"), name=name)
        self._store.put_tenant(tenant)
        record, key = self.add_key(tenant.id)
        return tenant, record, key

    def authenticate(self, key: str) -> str:
        record = self._store.find_api_key(hash_key(key)) if key else None
        if record is None or record.revoked_at is not None:
            raise Unauthorized("invalid or revoked API key")
        return record.tenant_id

    def list_keys(self) -> list[ApiKey]:
        return self._store.list_api_keys()

    def revoke(self, key_id: str) -> None:
        if not self._store.revoke_api_key(key_id):
            raise NotFound(f"key {key_id} not found or already revoked")

    def ensure_default_tenant(self) -> str:
        """The local stack's own tenant, created on first use."""
        if self._store.get_tenant(DEFAULT_TENANT) is None:
            self._store.put_tenant(Tenant(id=DEFAULT_TENANT, name="default"))
        return DEFAULT_TENANT

    def ensure_default_key(self, configured: str | None, key_file: Path) -> str:
        """The local stack's key: TRAINYARD_API_KEY when set, else the one stored in
        key_file, else a new one written there (mode 0600)."""
        self.ensure_default_tenant()
        key = configured or (key_file.read_text().strip() if key_file.exists() else None)
        if not key:
            key = generate_key()
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
        existing = self._store.find_api_key(hash_key(key))
        if existing is None:
            self.add_key(DEFAULT_TENANT, key)
        elif existing.revoked_at is not None:
            raise Unauthorized(
                f"the local API key ({key[:7]}…) was revoked; set TRAINYARD_API_KEY to another"
                f" key or delete {key_file}"
            )
        return key
