"""`conveyor models card`: the model card of a version, from what the stores know."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from conveyor.cli import common


def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name/VERSION, name@alias or name (latest).")],
    html: Annotated[bool, typer.Option("--html", help="HTML instead of Markdown.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of Markdown.")] = False,
    output: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option("--output", "-o", help="Write to this file (atomically) instead of stdout."),
    ] = None,
) -> None:
    """Intended use, training data, signature, evaluation, gate, libraries and lineage."""
    from conveyor.registry.card import build_card
    from conveyor.registry.registry import Registry

    if html and as_json:
        common.fail("Choose one of --html and --json (Markdown is the default).")
    if output is not None and not output.parent.resolve().is_dir():
        common.fail(f"The folder of {output} does not exist. Create it first.")
    with common.errors_to_exit():
        registry = Registry(common.metadata_store(ctx), common.artifact_store(ctx))
        built = build_card(registry, ref)
    text = built.to_html() if html else built.to_json() if as_json else built.to_markdown()
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    from conveyor._internal.files import write_atomic

    write_atomic(output, text.encode())
    common.console().print(f"Wrote the model card of {built.model['ref']} to {output}.")


def register(models_app: typer.Typer) -> None:
    models_app.command("card")(card)
