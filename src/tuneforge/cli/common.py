"""What the CLI commands share: consoles, settings, the local service, error handling."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from tuneforge.config import Settings, get_settings
from tuneforge.errors import TuneforgeError
from tuneforge.storage import storage_for

console = Console()
errors = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    errors.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)  # "[ray]" is text
    raise typer.Exit(code)


def friendly_errors(command: Callable) -> Callable:
    """Our own errors end the command with their message, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return command(*args, **kwargs)
        except TuneforgeError as err:
            fail(str(err))

    return wrapper


def local_service(settings: Settings | None = None):
    """The service on the local data dir (the same one ``tuneforge serve`` uses)."""
    from tuneforge.service import Service
    from tuneforge.store.db import open_database

    settings = settings or get_settings()
    storage_for(settings).prepare()
    return Service(open_database(settings.resolved_database_url), settings)


def print_json(data: Any) -> None:
    """``data`` as JSON on stdout and nothing else, for scripts (``jq``) to read."""
    typer.echo(json.dumps(data, indent=2, default=str))


JSON_OPTION = typer.Option(False, "--json", help="Print the data as JSON, nothing else.")
