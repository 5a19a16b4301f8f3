"""Settings: built once from conveyor.toml, the environment and flags, then passed down.

Precedence (highest first): explicit arguments (CLI flags), ``CONVEYOR_*`` environment
variables, ``conveyor.toml`` at the project root, defaults. The project root is the nearest
folder at or above the working directory holding ``conveyor.toml``; without one, the working
directory. Nothing here runs at import time.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conveyor.exceptions import ConfigError, did_you_mean

CONFIG_FILE = "conveyor.toml"
EXECUTORS = ("inline", "threads", "processes")

_KEYS = {
    "db_url": str,
    "artifact_url": str,
    "executor": str,
    "max_workers": int,
    "cache": bool,
}


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one process.

    Attributes:
        root: The project root folder.
        db_url: SQLAlchemy URL of the metadata store.
        artifact_url: Folder path or fsspec URL of the artifact store.
        executor: Default executor spec (``threads``, ``inline``, ``processes``,
            ``dask://host:port``, ``dask-local:N``).
        max_workers: Default parallelism of the threads/processes executors.
        cache: Whether step caching is on by default.
        extra: Tables of conveyor.toml other than ``[conveyor]``, for other components.
    """

    root: Path
    db_url: str
    artifact_url: str
    executor: str = "threads"
    max_workers: int = 4
    cache: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None fields replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` with a conveyor.toml, else `start` itself."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def load_settings(
    root: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build Settings from conveyor.toml, the environment and explicit overrides.

    Raises:
        ConfigError: conveyor.toml does not parse, or has an unknown key or a wrong type.
    """
    env = os.environ if env is None else env
    root = find_root(root)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    path = root / CONFIG_FILE
    if path.is_file():
        try:
            document = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
        section = document.get("conveyor", {})
        for key, value in section.items():
            if key not in _KEYS:
                raise ConfigError(
                    f"Unknown key {key!r} in [conveyor] of {path}."
                    + did_you_mean(key, list(_KEYS))
                    + " Known keys: "
                    + ", ".join(_KEYS)
                    + "."
                )
            if not isinstance(value, _KEYS[key]):
                raise ConfigError(
                    f"The {key!r} key in {path} must be "
                    f"{'an' if _KEYS[key] is int else 'a'} {_KEYS[key].__name__}. "
                    f"Got {value!r} instead."
                )
            values[key] = value
        extra = {k: v for k, v in document.items() if k != "conveyor"}
    for key in ("db_url", "artifact_url", "executor"):
        env_value = env.get(f"CONVEYOR_{key.upper()}")
        if env_value:
            values[key] = env_value
    values.update({k: v for k, v in overrides.items() if v is not None})
    state = root / ".conveyor"
    db_url = values.pop("db_url", None) or f"sqlite:///{state / 'conveyor.db'}"
    artifact_url = values.pop("artifact_url", None) or str(state / "artifacts")
    if "://" not in artifact_url and not Path(artifact_url).is_absolute():
        artifact_url = str(root / artifact_url)
    settings = Settings(root=root, db_url=db_url, artifact_url=artifact_url, extra=extra, **values)
    if settings.max_workers < 1:
        raise ConfigError(
            f"The 'max_workers' setting must be an int >= 1. Got {settings.max_workers} instead."
        )
    return settings
