"""Secrets the hub generates once and keeps under SB_DATA_DIR."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hub.settings import Settings


def read_or_create(path: Path, *, nbytes: int = 32) -> str:
    """The secret stored at `path`, created (mode 0600) on first use."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


def hmac_key(settings: Settings) -> bytes:
    """The HMAC key for personal data: SB_SECRET, or one generated into SB_DATA_DIR."""
    if settings.secret is not None:
        return settings.secret.get_secret_value().encode()
    return read_or_create(settings.data_dir / "secret.key").encode()


def write_private(path: Path, text: str, *, owner: tuple[int, int] | None = None) -> None:
    """Write a file only its owner can read, replacing it in one rename. `owner` (uid, gid)
    hands it to another user, such as the broker's, before it takes the file's place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        if owner is not None:
            os.fchown(fh.fileno(), *owner)
        fh.write(text)
    os.replace(tmp, path)
