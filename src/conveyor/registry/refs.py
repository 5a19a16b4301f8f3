"""Registry values: model references, versions and audit events, and name rules."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from conveyor._internal import names as _names
from conveyor.exceptions import ModelError

# Matched whole (fullmatch): "production\n" is not "production".
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
ALIAS_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


# ---------------------------------------------------------------------------- values
@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model (a copy of its row)."""

    name: str
    version: int
    content_hash: str
    uri: str
    size: int
    flavor: str
    estimator: str
    signature: dict[str, Any]
    metrics: dict[str, float]
    library_versions: dict[str, str]
    report: dict[str, Any] | None
    gate: dict[str, Any] | None
    description: str | None
    tags: dict[str, str]
    run_id: str | None
    step_run_id: str | None
    created_by: str | None
    created_at: float
    aliases: tuple[str, ...] = ()
    # Code names the bytes may use beyond the allow-list, recorded at registration.
    trusted_types: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "aliases": list(self.aliases),
            "content_hash": self.content_hash,
            "uri": self.uri,
            "size": self.size,
            "flavor": self.flavor,
            "estimator": self.estimator,
            "signature": self.signature,
            "metrics": self.metrics,
            "library_versions": self.library_versions,
            "report": self.report,
            "gate": self.gate,
            "description": self.description,
            "tags": self.tags,
            "run_id": self.run_id,
            "step_run_id": self.step_run_id,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "trusted_types": list(self.trusted_types),
        }


@dataclass(frozen=True)
class RegistryEvent:
    """One entry of the audit log: who moved which alias, when, why, from where to where."""

    id: int
    name: str
    action: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: str | None
    reason: str | None
    run_id: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "action": self.action,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "actor": self.actor,
            "reason": self.reason,
            "run_id": self.run_id,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: exactly one of `alias` and `version` is set, or neither (latest)."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        """Parse ``name@alias``, ``name/3`` or ``name``.

        Raises:
            ModelError: the reference is malformed (says which forms are accepted).
        """
        if not isinstance(ref, str) or (problem := _names.name_problem(ref)) is not None:
            problem = "it is not a string" if not isinstance(ref, str) else problem
            raise ModelError(
                f"{ref!r} is not a model reference: {problem}. Use name@alias, "
                "name/VERSION or name."
            )
        text = ref
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(check_name(name), alias=check_alias(alias))
        if "/" in text:
            name, _, number = text.partition("/")
            if not number.isdigit() or int(number) < 1:
                raise ModelError(
                    f"{ref!r} is not a model reference: the part after '/' must be a version "
                    "number >= 1. Use name@alias, name/VERSION or name."
                )
            return cls(check_name(name), version=int(number))
        return cls(check_name(text))

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        if self.version:
            return f"{self.name}/{self.version}"
        return self.name


def check_name(name: str) -> str:
    """Raises: ModelError: the model name has characters outside [A-Za-z0-9_.-]."""
    return _names.check_name(
        name,
        NAME_RE,
        "model name",
        "A model name is 1-200 characters of letters, digits, '_', '.' and '-', starting "
        "with a letter or digit (e.g. 'churn').",
        ModelError,
    )


def check_alias(alias: str) -> str:
    """Raises: ModelError: the alias has illegal characters (the rule is in the message)."""
    return _names.check_name(
        alias,
        ALIAS_RE,
        "alias",
        "An alias is 1-64 characters of lowercase letters, digits, '_' and '-', starting "
        "with a letter (e.g. 'production', 'challenger').",
        ModelError,
    )
