"""The OpenAPI document the hub serves at /openapi.json, written without a running hub.

The console's TypeScript types (web/src/api/schema.d.ts) are generated from it by `make
console`, and a test regenerates them to catch drift, so the same code must always give the
same bytes: keys sorted, a fixed layout, and the settings' defaults rather than the caller's
environment (no SB_* variable or .env file can change the document or stop it being written).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from hub.settings import Settings
from shaobing.components import hub_app

# The app is built, never started: its lifespan (which opens the pool) does not run.
_NO_DATABASE = "postgresql://unused@127.0.0.1/unused"


class _Defaults(Settings):
    """The settings as the code defines them: only what is passed in, no environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def document() -> dict[str, Any]:
    return hub_app(_Defaults(database_url=_NO_DATABASE)).openapi()


def document_text() -> str:
    return json.dumps(document(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
