"""How ``--help`` shows the commands' parameters. Typer writes a type after every option, flags
included (``--json <bool>``, as if the flag took a value), and the usage line's required
arguments in braces (``tune [OPTIONS] {train_file}``). Here a flag shows no type, and the usage
line names arguments as Click does (``TRAIN_FILE``, an optional one as ``[OUT]``), as the
commands' own help text names them. ``App`` is the ``typer.Typer`` every ``tuneforge`` command
and group is registered on."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


def _without_flag_types(params: list[Any]) -> None:
    """A flag (``--json``, ``--packing/--no-packing``) takes no value: nothing after it."""
    for param in params:
        flag = isinstance(param, TyperOption) and (param.is_flag or param.count)
        if flag and param.metavar is None:
            param.metavar = ""


def _usage_name(argument: TyperArgument) -> str:
    name = argument.metavar or (argument.name or "").upper()
    if not argument.required:
        name = f"[{name}]"
    return name if argument.nargs == 1 else f"{name}..."


class _PlainHelp:
    """What ``HelpCommand`` and ``HelpGroup`` share."""

    options_metavar: str | None

    def get_params(self, ctx: typer.Context) -> list[Any]:
        # Here, not in __init__: Typer adds --install-completion and --show-completion to the
        # group, and Click the --help option, after the command is built.
        params = super().get_params(ctx)  # type: ignore[misc]
        _without_flag_types(params)
        return params

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):  # type: ignore[attr-defined]
            if isinstance(param, TyperArgument):
                pieces.append(_usage_name(param))
        return pieces


class HelpCommand(_PlainHelp, TyperCommand):
    pass


class HelpGroup(_PlainHelp, TyperGroup):
    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), self.subcommand_metavar]


class App(typer.Typer):
    """``typer.Typer`` whose groups and commands show their parameters as above."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=HelpGroup, **kwargs)

    def command(self, name: str | None = None, **kwargs: Any):  # type: ignore[override]
        return super().command(name, cls=kwargs.pop("cls", HelpCommand), **kwargs)
