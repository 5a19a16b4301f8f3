"""`conveyor init`: copy the project template."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_RENAMES = {"gitignore": ".gitignore"}


def scaffold(target: Path, *, force: bool = False) -> list[Path]:
    """Copy the example project into `target`; returns the files written.

    Raises:
        FileExistsError: `target` exists, is not empty, and `force` is false.
    """
    if target.exists() and any(target.iterdir()) and not force:
        raise FileExistsError(
            f"{target} is not empty. Choose a new folder, or pass --force to write into it."
        )
    template = resources.files("conveyor") / "templates" / "project"
    written: list[Path] = []

    def copy(node: resources.abc.Traversable, dest: Path) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__":
                continue
            out = dest / _RENAMES.get(child.name, child.name)
            if child.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                copy(child, out)
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(child.read_bytes())
                written.append(out)

    target.mkdir(parents=True, exist_ok=True)
    copy(template, target)
    return written
