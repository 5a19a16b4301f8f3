"""Every error conveyor raises on purpose derives from :class:`ConveyorError`.

The tree::

    ConveyorError
    ├── ConfigError                 bad conveyor.toml, environment or flag
    ├── PipelineDefinitionError     the DAG cannot be built
    │   ├── CycleError              an `after=` ordering closes a loop (names it)
    │   ├── TypeMismatchError       an output's type does not fit the input it feeds
    │   └── UnknownParameterError   a parameter name that does not exist (suggests one)
    ├── StepFailedError             user code raised inside a step (original chained)
    │   └── StepTimeoutError        the step exceeded its timeout
    ├── RunFailedError              a run ended with failed steps
    ├── StoreError                  metadata or artifact store problems
    │   ├── NotFoundError           an id or name that is not in the store
    │   ├── ArtifactCorruptError    the bytes do not match the recorded hash, or are gone
    │   └── SchemaVersionError      the database needs `conveyor db upgrade`
    ├── MaterializerError           no way to turn a value into bytes, or back
    ├── DataError                   ingestion, profiling, schema and validation problems
    │   ├── SchemaFileError         a schema YAML that does not parse or has unknown keys
    │   └── ValidationFailedError   validation found anomalies of severity "error"
    ├── ModelError                  model flavors, registry, gates
    └── ServingError                serving and streaming
"""

from __future__ import annotations

from difflib import get_close_matches


class ConveyorError(Exception):
    """Root of every error conveyor raises on purpose."""


class ConfigError(ConveyorError):
    """Configuration could not be read or is invalid."""


class PipelineDefinitionError(ConveyorError):
    """The pipeline's DAG could not be built."""


class CycleError(PipelineDefinitionError):
    """Step ordering closes a loop."""

    def __init__(self, loop: list[str]) -> None:
        self.loop = loop
        super().__init__(
            "The pipeline's steps form a cycle: "
            + " -> ".join(loop)
            + ". Remove one of the `after=` constraints that close this loop."
        )


class TypeMismatchError(PipelineDefinitionError):
    """An output annotation is not compatible with the input annotation it is wired to."""


class UnknownParameterError(PipelineDefinitionError):
    """A parameter name that the step or pipeline does not declare."""

    def __init__(self, name: str, owner: str, known: list[str]) -> None:
        self.name = name
        self.owner = owner
        self.known = known
        message = f"Unknown parameter {name!r} for {owner}."
        close = get_close_matches(name, known, n=1)
        if close:
            message += f" Did you mean {close[0]!r}?"
        if known:
            message += " Known parameters: " + ", ".join(sorted(known)) + "."
        else:
            message += " It takes no parameters."
        super().__init__(message)


class StepFailedError(ConveyorError):
    """User code raised inside a step; the original exception is chained or described."""

    def __init__(
        self,
        step: str,
        run_id: str | None,
        message: str,
        *,
        error_type: str = "",
        traceback_text: str = "",
    ) -> None:
        self.step = step
        self.run_id = run_id
        self.error_type = error_type
        self.traceback_text = traceback_text
        where = f"Step {step!r}" + (f" of run {run_id}" if run_id else "")
        super().__init__(f"{where} failed: {message}")


class StepTimeoutError(StepFailedError):
    """The step ran longer than its `timeout`."""


class RunFailedError(ConveyorError):
    """A run ended with failed steps. `run` holds the Run for inspection."""

    def __init__(self, message: str, run: object = None) -> None:
        self.run = run
        super().__init__(message)


class StoreError(ConveyorError):
    """A metadata or artifact store problem."""


class NotFoundError(StoreError, LookupError):
    """Something looked up by id or name is not in the store."""


class ArtifactCorruptError(StoreError):
    """An artifact's bytes are missing or do not match their recorded content hash."""


class SchemaVersionError(StoreError):
    """The metadata database is at another schema revision than this conveyor."""


class MaterializerError(ConveyorError):
    """A value could not be turned into bytes, or bytes back into a value."""


class DataError(ConveyorError):
    """Ingestion, profiling, schema or validation problem."""


class SchemaFileError(DataError):
    """A schema file that does not parse or has an unknown key."""


class ValidationFailedError(DataError):
    """Validation found anomalies of severity 'error'. `report` holds them."""

    def __init__(self, message: str, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class ModelError(ConveyorError):
    """Model flavor, registry or gate problem."""


class ServingError(ConveyorError):
    """Serving or streaming problem."""


def did_you_mean(name: str, known: list[str]) -> str:
    """Return ' Did you mean X?' for the closest known name, or an empty string."""
    close = get_close_matches(name, known, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
