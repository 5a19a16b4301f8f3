"""`conveyor data` (profile, infer-schema, validate) and `conveyor datasets` (register,
list, show).

pandas, pyarrow and the data package are imported inside the commands, so
`conveyor --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import common

if TYPE_CHECKING:
    from conveyor.data.datasets import DatasetVersion
    from conveyor.data.profile import Profile
    from conveyor.stores.metadata import MetadataStore

data_app = typer.Typer(help="Profile, infer schemas for and validate tables.", no_args_is_help=True)
datasets_app = typer.Typer(help="Named, versioned datasets.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]
Source = Annotated[str, typer.Argument(help="CSV or Parquet file, Parquet folder or Delta table.")]
Delimiter = Annotated[str, typer.Option("--delimiter", help="CSV field delimiter.")]
Encoding = Annotated[
    str, typer.Option("--encoding", help="CSV text encoding, e.g. latin-1 or cp1252.")
]
Format = Annotated[
    str | None, typer.Option("--format", help="csv, parquet or delta (default: from the path).")
]


def _profile_source(
    source: str, fmt: str | None, delimiter: str, encoding: str = "utf-8"
) -> Profile:
    from conveyor.data.ingest import iter_batches
    from conveyor.data.profile import Profile

    return Profile.from_batches(
        iter_batches(source, format=fmt, delimiter=delimiter, encoding=encoding)
    )


@data_app.command("profile")
def profile_command(
    source: Source,
    as_json: JsonFlag = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML page to this path.")
    ] = None,
    fmt: Format = None,
    delimiter: Delimiter = ",",
    encoding: Encoding = "utf-8",
) -> None:
    """Per-column statistics of a table, computed chunk by chunk."""
    with common.errors_to_exit():
        profile = _profile_source(source, fmt, delimiter, encoding)
        if html is not None:
            common.write_output(html, profile.to_html(title=source))
        if as_json:
            common.print_json(profile.to_dict())
            return
        from conveyor.data.report import profile_table

        common.console().print(profile_table(profile))


@data_app.command("infer-schema")
def infer_schema_command(
    source: Source,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the YAML here (else stdout).")
    ] = None,
    fmt: Format = None,
    delimiter: Delimiter = ",",
    encoding: Encoding = "utf-8",
) -> None:
    """Infer an editable schema YAML from a table."""
    with common.errors_to_exit():
        from conveyor.data.schema import Schema

        schema = Schema.infer(_profile_source(source, fmt, delimiter, encoding))
        text = schema.to_yaml()
        if output is None:
            typer.echo(text, nl=False)
        else:
            common.write_output(output, text)
            common.err_console().print(f"Wrote {len(schema.columns)} columns to {output}")


@data_app.command("validate")
def validate_command(
    ctx: typer.Context,
    source: Source,
    schema: Annotated[Path | None, typer.Option("--schema", help="Schema YAML.")] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            help="Dataset NAME[@VERSION] whose stored profile is the reference, or a file.",
        ),
    ] = None,
    as_json: JsonFlag = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the HTML report here.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Drift threshold for every column.")
    ] = None,
    fmt: Format = None,
    delimiter: Delimiter = ",",
    encoding: Encoding = "utf-8",
) -> None:
    """Validate a table; exit 1 when there are anomalies of severity error."""
    if schema is None and reference is None:
        common.fail("Pass --schema, --reference or both.")
    with common.errors_to_exit():
        from conveyor.data.schema import Schema
        from conveyor.data.validate import validate_frame

        loaded = Schema.from_yaml(schema) if schema is not None else None
        ref_profile = None
        if reference is not None:
            if Path(reference).exists():
                ref_profile = _profile_source(reference, None, delimiter, encoding)
            else:
                from conveyor.data.datasets import get_dataset

                found = get_dataset(reference, metadata_store=common.metadata_store(ctx))
                ref_profile = found.load_profile(common.artifact_store(ctx))
        profile = _profile_source(source, fmt, delimiter, encoding)
        report = validate_frame(profile, schema=loaded, reference=ref_profile, thresholds=threshold)
    if html is not None:
        common.write_output(html, report.to_html())
    if as_json:
        common.print_json(report.to_dict())
    else:
        common.console().print(report)
    if not report.ok:
        raise typer.Exit(1)


@datasets_app.command("register")
def register_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    source: Source,
    delta_version: Annotated[
        int | None, typer.Option("--delta-version", help="Pin this Delta table version.")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    fmt: Format = None,
    delimiter: Delimiter = ",",
    encoding: Encoding = "utf-8",
    as_json: JsonFlag = False,
) -> None:
    """Register a file or table as the next version of a dataset (same data: same version)."""
    with common.errors_to_exit():
        from conveyor.data.datasets import register_dataset

        store = common.metadata_store(ctx)
        before = {v.version for v in _versions_or_empty(name, store)}
        version = register_dataset(
            name,
            source,
            metadata_store=store,
            artifact_store=common.artifact_store(ctx),
            format=fmt,
            delimiter=delimiter,
            encoding=encoding,
            delta_version=delta_version,
            description=description,
        )
    if as_json:
        common.print_json(version.to_dict())
        return
    if version.version in before:
        common.console().print(f"{version.ref}: unchanged data, no new version.")
    else:
        common.console().print(
            f"{version.ref}: {version.row_count} rows, {len(version.columns)} columns."
        )


def _versions_or_empty(name: str, store: MetadataStore) -> list[DatasetVersion]:
    from conveyor.data.datasets import list_versions
    from conveyor.exceptions import NotFoundError

    try:
        return list_versions(name, metadata_store=store)
    except NotFoundError:
        return []


@datasets_app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Datasets with their number of versions."""
    with common.errors_to_exit():
        from conveyor.data.datasets import list_datasets

        rows = list_datasets(metadata_store=common.metadata_store(ctx))
    if as_json:
        common.print_json(rows)
        return
    from rich.table import Table

    table = Table(title="Datasets", title_justify="left")
    for column in ("name", "latest", "versions", "created", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['name']}@{row['latest']}" if row["latest"] else "-",
            str(row["versions"]),
            common.format_time(row["created_at"]),
            row["description"] or "",
        )
    common.console().print(table)


@datasets_app.command("show")
def show_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME (all versions) or NAME@VERSION.")],
    as_json: JsonFlag = False,
) -> None:
    """A dataset's versions, or one version with its profile."""
    with common.errors_to_exit():
        from conveyor.data.datasets import get_dataset, list_versions, parse_ref

        store = common.metadata_store(ctx)
        name, number = parse_ref(ref)
        if number is None:
            versions = list_versions(name, metadata_store=store)
            if as_json:
                common.print_json([v.to_dict() for v in versions])
                return
            from rich.table import Table

            table = Table(title=f"Dataset {name}", title_justify="left")
            for column in ("version", "rows", "columns", "source", "pinned", "created"):
                table.add_column(column)
            for v in versions:
                table.add_row(
                    v.ref,
                    str(v.row_count),
                    str(len(v.columns)),
                    v.source,
                    v.external_version or "-",
                    common.format_time(v.created_at),
                )
            common.console().print(table)
            return
        version = get_dataset(name, number, metadata_store=store)
        profile = version.load_profile(common.artifact_store(ctx))
    if as_json:
        out = version.to_dict()
        out["profile"] = profile.to_dict()
        common.print_json(out)
        return
    from conveyor.data.report import profile_table

    common.console().print(
        f"[bold]{version.ref}[/]  {version.row_count} rows  source {version.source}"
        + (f"  (pinned version {version.external_version})" if version.external_version else "")
        + f"  created {common.format_time(version.created_at)}"
    )
    from conveyor.cli.predictions import origin_lines

    for line in origin_lines(version.origin):
        common.console().print(line, highlight=False)
    common.console().print(profile_table(profile))


def register(app: typer.Typer) -> None:
    """Add this component's commands and sub-apps to the root app."""
    app.add_typer(data_app, name="data")
    app.add_typer(datasets_app, name="datasets")
