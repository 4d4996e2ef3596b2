"""Every command's ``--help`` as a user reads it: flags without a type after them (a flag takes
no value), options with one, and a usage line naming the arguments as the help text does
(``TRAIN_FILE``, ``[OUT]``), without Typer's ``{braces}``."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from tuneforge.cli.main import app

ROOT = typer.main.get_command(app)


def command_paths(command=ROOT, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*path, name))
    return paths


def command_at(path: tuple[str, ...]):
    command = ROOT
    for name in path:
        command = command.commands[name]
    return command


def option_row(output: str, option) -> list[str]:
    """The words of the option's row in the help, after its names (``--x  -x  --no-x``)."""
    names = {*option.opts, *option.secondary_opts, "*", "│"}
    line = next(x for x in output.splitlines() if option.opts[0] in x.split())
    return [word for word in line.split() if word not in names]


def test_the_walk_finds_every_command():
    paths = {" ".join(path) for path in command_paths()}
    assert {"", "tune", "samples", "jobs", "jobs list", "models export", "keys revoke"} <= paths
    assert len(paths) > 20


@pytest.mark.parametrize("path", command_paths(), ids=lambda path: " ".join(path) or "tuneforge")
def test_help_shows_no_type_after_a_flag_and_no_braces_in_usage(path):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}, prog_name="tf")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line).strip()
    assert "{" not in usage and "}" not in usage, usage
    command = command_at(path)
    for param in command.params:
        if param.param_type_name == "argument":
            name = param.name.upper()
            assert re.search(rf"(^|[\s\[]){name}\b", usage), f"{name} not in {usage!r}"
        elif param.param_type_name == "option" and not param.hidden:
            row = option_row(result.output, param)
            # A flag is followed by its help text; an option by its type.
            assert row[0].startswith("<") != bool(param.is_flag), row


def test_usage_names_required_and_optional_arguments_as_the_help_text_does():
    result = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "200"}, prog_name="tf")
    assert "Usage: tf tune [OPTIONS] TRAIN_FILE" in result.output
    assert "Tune BASE_MODEL on TRAIN_FILE" in result.output
    result = CliRunner().invoke(app, ["tune"], env={"COLUMNS": "200"}, prog_name="tf")
    assert result.exit_code == 2 and "Usage: tf tune [OPTIONS] TRAIN_FILE" in result.output
