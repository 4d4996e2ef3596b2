"""``tuneforge keys``: API keys of a project, on the local database."""

from __future__ import annotations

import typer
from rich.table import Table

from tuneforge.cli.common import JSON_OPTION, console, friendly_errors, local_service, print_json
from tuneforge.cli.help import App

app = App(help="Create, list and revoke API keys.", no_args_is_help=True)


@app.command()
@friendly_errors
def create(
    project: str = typer.Option("default", help="The project the key belongs to."),
    name: str | None = typer.Option(None, help="A name to recognise the key by."),
) -> None:
    """Create a key; it is shown once."""
    row, key = local_service().keys.create(project, name)
    console.print(f"key {row.id} for project [bold]{project}[/] (shown once):")
    console.print(key, style="bold green", soft_wrap=True)


@app.command("list")
@friendly_errors
def list_keys(project: str = typer.Option("default"), as_json: bool = JSON_OPTION) -> None:
    """The project's keys (their first characters only)."""
    rows = local_service().keys.list(project)
    if as_json:
        print_json(
            [
                {
                    "id": row.id,
                    "prefix": row.prefix,
                    "name": row.name,
                    "created": row.created_at,
                    "last_used": row.last_used_at,
                    "revoked": row.revoked_at,
                }
                for row in rows
            ]
        )
        return
    table = Table("id", "prefix", "name", "created", "last used", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.prefix + "…",
            row.name or "",
            str(row.created_at)[:19],
            str(row.last_used_at or "")[:19],
            str(row.revoked_at or "")[:19],
        )
    console.print(table)


@app.command()
@friendly_errors
def revoke(key_id: str, project: str = typer.Option("default")) -> None:
    """Revoke a key: requests with it are refused from now on."""
    local_service().keys.revoke(project, key_id)
    console.print(f"revoked {key_id}")
