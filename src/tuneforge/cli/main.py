"""The ``tuneforge`` command."""

from __future__ import annotations

import typer

from tuneforge.cli import serve

app = typer.Typer(
    name="tuneforge",
    help="Self-hosted model tuning: datasets, tuning jobs, tuned models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve.serve)
app.command("worker")(serve.worker)


def _register_optional() -> None:
    """Command groups that land one by one."""
    import importlib

    for module_name, attach in (
        ("tuneforge.cli.datasets", lambda m: app.add_typer(m.app, name="datasets")),
        ("tuneforge.cli.keys", lambda m: app.add_typer(m.app, name="keys")),
        ("tuneforge.cli.jobs", lambda m: app.add_typer(m.app, name="jobs")),
        ("tuneforge.cli.models", lambda m: app.add_typer(m.app, name="models")),
        ("tuneforge.cli.tune", lambda m: app.command("tune")(m.tune)),
        ("tuneforge.cli.use", lambda m: (app.command("generate")(m.generate),
                                         app.command("evaluate")(m.evaluate))),
    ):  # fmt: skip
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        attach(module)


_register_optional()

if __name__ == "__main__":
    app()
