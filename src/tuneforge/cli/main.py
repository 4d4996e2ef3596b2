"""The ``tuneforge`` command."""

from __future__ import annotations

import gc

import typer

from tuneforge import __version__
from tuneforge.cli import datasets, jobs, keys, models, samples, serve, tune, use
from tuneforge.cli.help import App

app = App(
    name="tuneforge",
    help="Self-hosted model tuning: datasets, tuning jobs, tuned models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"tuneforge {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(
        False, "--version", callback=show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Self-hosted model tuning: datasets, tuning jobs, tuned models."""


app.command("serve")(serve.serve)
app.command("worker")(serve.worker)
app.command("tune")(tune.tune)
app.command("generate")(use.generate)
app.command("evaluate")(use.evaluate)
app.command("score")(use.score)
app.command("samples")(samples.samples)
app.add_typer(datasets.app, name="datasets")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")


def main() -> None:
    """The console script. On the way out the heap is frozen, so the interpreter's last garbage
    collection does not walk every object that SQLAlchemy, pydantic and FastAPI made: that walk
    was a quarter of a second of ``tuneforge jobs list`` (benchmarks/cli_startup.py)."""
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
