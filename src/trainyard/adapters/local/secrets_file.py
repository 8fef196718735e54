"""SecretStore in a local file, encrypted at rest.

Each value is a Fernet token (AES-128-CBC with an HMAC-SHA256, from `cryptography`) in a JSON
file; the key is a separate file beside it. Both files are owner-only (mode 0600). A copy of
the secrets file alone — a backup, a bug report, a leaked disk image of the data folder
without the key — gives nothing away, and a token changed on disk is refused, not
misread. On AWS, Secrets Manager (KMS) plays this part.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from ...errors import Unavailable


def _write_owner_only(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


class FileSecretStore:
    def __init__(self, path: Path, key_path: Path | None = None) -> None:
        self._path = path
        self._key_path = key_path or path.with_suffix(".key")
        self._lock = threading.Lock()
        self._fernet: Any = None

    def _cipher(self) -> Any:
        """The Fernet cipher, its key made on first use. Imported here: only the local stack
        uses this store, and only when a secret is read or written."""
        if self._fernet is None:
            from cryptography.fernet import Fernet  # noqa: PLC0415

            if not self._key_path.exists():
                _write_owner_only(self._key_path, Fernet.generate_key().decode() + "\n")
            self._fernet = Fernet(self._key_path.read_text().strip().encode())
        return self._fernet

    def _read(self) -> dict[str, str]:
        if not self._path.exists():
            return {}
        data: dict[str, str] = json.loads(self._path.read_text())
        return data

    def _decrypt(self, name: str, token: str) -> str:
        from cryptography.fernet import InvalidToken  # noqa: PLC0415

        try:
            value: bytes = self._cipher().decrypt(token.encode())
        except InvalidToken:
            raise Unavailable(
                f"secret {name!r} cannot be decrypted with {self._key_path}: the key file was"
                " replaced or the secrets file was changed"
            ) from None
        return value.decode()

    def get(self, name: str) -> str | None:
        with self._lock:
            token = self._read().get(name)
            return None if token is None else self._decrypt(name, token)

    def put(self, name: str, value: str) -> None:
        with self._lock:
            data = self._read()
            data[name] = self._cipher().encrypt(value.encode()).decode()
            _write_owner_only(self._path, json.dumps(data))

    def delete(self, name: str) -> None:
        with self._lock:
            data = self._read()
            if data.pop(name, None) is not None:
                _write_owner_only(self._path, json.dumps(data))
