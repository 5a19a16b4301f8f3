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

from conveyor._internal.urls import redact_text, redact_url
from conveyor.exceptions import ConfigError, did_you_mean

CONFIG_FILE = "conveyor.toml"
EXECUTORS = ("inline", "threads", "processes")

_KEYS = {
    "db_url": str,
    "artifact_url": str,
    "executor": str,
    "max_workers": int,
    "cache": bool,
    "project_packages": list,
    "cache_packages": bool,
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
        project_packages: Top-level packages whose code is hashed into cache keys even
            when installed under site-packages (besides those under the root).
        cache_packages: Add the versions of every third-party distribution a step's
            modules import to its cache key.
        extra: Tables of conveyor.toml other than ``[conveyor]``, for other components.
    """

    root: Path
    db_url: str
    artifact_url: str
    executor: str = "threads"
    max_workers: int = 4
    cache: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)
    project_packages: tuple[str, ...] = ()
    cache_packages: bool = False

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: never with the database password.
        return (
            f"Settings(root={str(self.root)!r}, db_url={redact_url(self.db_url)!r}, "
            f"artifact_url={redact_url(self.artifact_url)!r}, executor={self.executor!r}, "
            f"max_workers={self.max_workers!r}, cache={self.cache!r})"
        )

    def table(self, name: str) -> Mapping[str, Any]:
        """The ``[name]`` table of conveyor.toml (empty when absent).

        Raises:
            ConfigError: ``name`` is set to something other than a table.
        """
        value = self.extra.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"The {name!r} key of {CONFIG_FILE} must be a table: a [{name}] line with "
                f"key = value lines below it. Got {_describe(value)} instead."
            )
        return value

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None fields replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _describe(value: Any) -> str:
    """A short, password-free rendering of a configuration value for a message."""
    text = redact_text(repr(value))
    return f"{text[:77]}..." if len(text) > 80 else text


def _checked(key: str, value: Any, where: str) -> Any:
    """`value` when it has the type setting `key` needs (a bool is not an int here)."""
    expected = _KEYS[key]
    if expected is list:
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value):
            return tuple(value)
        raise ConfigError(
            f"The {key!r} key {where} must be a list of package names, e.g. "
            f'{key} = ["mypackage"]. Got {_describe(value)} instead.'
        )
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    article = "an" if expected is int else "a"
    raise ConfigError(
        f"The {key!r} key {where} must be {article} {expected.__name__}. Got "
        f"{_describe(value)} ({type(value).__name__}) instead."
    )


def _read_document(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8, as TOML requires."
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


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
        document = _read_document(path)
        section = document.get("conveyor", {})
        if not isinstance(section, dict):
            raise ConfigError(
                f"The 'conveyor' key of {path} must be a table: a [conveyor] line with "
                f"key = value lines below it. Got {_describe(section)} instead."
            )
        for key, value in section.items():
            if key not in _KEYS:
                raise ConfigError(
                    f"Unknown key {key!r} in [conveyor] of {path}."
                    + did_you_mean(key, list(_KEYS))
                    + " Known keys: "
                    + ", ".join(_KEYS)
                    + "."
                )
            values[key] = _checked(key, value, f"in {path}")
        extra = {k: v for k, v in document.items() if k != "conveyor"}
    for key in ("db_url", "artifact_url", "executor"):
        env_value = env.get(f"CONVEYOR_{key.upper()}")
        if env_value:
            values[key] = env_value
    for key, value in overrides.items():
        if value is not None:
            values[key] = _checked(key, value, "given to load_settings") if key in _KEYS else value
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
