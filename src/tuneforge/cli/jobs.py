"""``tuneforge jobs``: list, inspect, follow and steer tuning jobs."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from tuneforge.cli.client import connect
from tuneforge.cli.common import JSON_OPTION, console, friendly_errors, print_json
from tuneforge.cli.help import App
from tuneforge.cli.tune import follow, print_summary
from tuneforge.config import get_settings
from tuneforge.sizes import byte_size

app = App(help="List, inspect and steer tuning jobs.", no_args_is_help=True)
SERVER = typer.Option(None, "--server", envvar="TUNEFORGE_SERVER", help="A tuneforge server.")


def _short(job: dict) -> str:
    return job["name"].rsplit("/", 1)[-1]


@app.command("list")
@friendly_errors
def list_jobs(
    state: str | None = typer.Option(
        None, help="Only jobs in this state (e.g. JOB_STATE_RUNNING)."
    ),
    limit: int = typer.Option(50),
    as_json: bool = JSON_OPTION,
    server: str | None = SERVER,
) -> None:
    """The project's jobs, newest first."""
    with connect(server) as client:
        jobs = client.list_jobs(limit, state)
    if as_json:
        print_json(jobs)
        return
    table = Table("job", "name", "state", "base model", "epochs", "steps", "created", "tuned model")
    for job in jobs:
        meta = job.get("tuningJobMetadata") or {}
        table.add_row(
            _short(job),
            job.get("tunedModelDisplayName") or "",
            job["state"].removeprefix("JOB_STATE_"),
            job["baseModel"],
            str(meta.get("completedEpochCount", "")),
            str(meta.get("completedStepCount", "")),
            job.get("createTime", "")[:19],
            (job.get("tunedModel") or {}).get("endpoint", "").rsplit("/", 1)[-1],
        )
    console.print(table)


@app.command()
@friendly_errors
def get(
    job_id: str,
    watch: bool = typer.Option(False, help="Follow it until it ends."),
    as_json: bool = JSON_OPTION,
    server: str | None = SERVER,
) -> None:
    """One job: its state, model and hyperparameters (--json: as the API shows it)."""
    with connect(server) as client:
        if watch:
            print_summary(client, follow(client, job_id))
        elif as_json:
            print_json(client.get_job(job_id))
        else:
            console.print(_job_table(client.get_job(job_id)))


def _job_table(job: dict) -> Table:
    table = Table(title=f"tuning job {_short(job)}", show_header=False)
    meta = job.get("tuningJobMetadata") or {}
    rows = {
        "name": job.get("tunedModelDisplayName"),
        "state": job["state"].removeprefix("JOB_STATE_"),
        "base model": job.get("baseModel"),
        "created": (job.get("createTime") or "")[:19],
        "ended": (job.get("endTime") or "")[:19],
        "epochs run": meta.get("completedEpochCount"),
        "steps run": meta.get("completedStepCount"),
        "disk": byte_size(meta["diskBytes"]) if meta.get("diskBytes") else None,
        "tuned model": (job.get("tunedModel") or {}).get("model", "").rsplit("/", 1)[-1],
        "error": (job.get("error") or {}).get("message"),
    }
    for spec_key, spec in job.items():
        if spec_key.endswith("Spec") and isinstance(spec, dict):
            for name, value in (spec.get("hyperParameters") or {}).items():
                rows[name] = value
    for label, value in rows.items():
        if value not in (None, ""):
            table.add_row(label, str(value))
    return table


@app.command()
@friendly_errors
def events(
    job_id: str,
    metrics: bool = typer.Option(False, help="Include per-step metrics."),
    as_json: bool = JSON_OPTION,
    server: str | None = SERVER,
) -> None:
    """The job's events, oldest first."""
    with connect(server) as client:
        rows = client.events(job_id)
    if not metrics:
        rows = [event for event in rows if event.get("type") != "metrics"]
    if as_json:
        print_json(rows)
        return
    table = Table("time", "level", "message")
    for event in rows:
        table.add_row(
            event.get("createTime", "")[11:19], event.get("level", ""), event.get("message", "")
        )
    console.print(table)


def _action(verb: str):
    @friendly_errors
    def command(job_id: str, server: str | None = SERVER) -> None:
        with connect(server) as client:
            job = client.action(job_id, verb)
        console.print(f"{job_id}: {job.get('state', verb + ' requested')}")

    command.__doc__ = {
        "cancel": "Cancel the job (completed checkpoints stay usable).",
        "pause": "Pause the job at the next step (it keeps its state).",
    }[verb]
    return command


for _verb in ("cancel", "pause"):
    app.command(_verb)(_action(_verb))


@app.command()
@friendly_errors
def resume(job_id: str, server: str | None = SERVER) -> None:
    """Resume a paused job from where it stopped. With --server, that server's workers run it;
    without, it runs here, as `tune` does, until it ends (Ctrl-C pauses it again)."""
    server = server or get_settings().server
    if server:
        with connect(server) as client:
            job = client.action(job_id, "resume")
        console.print(f"{job_id}: {job.get('state', 'resume requested')}")
        return
    # Queued on the local data dir, nothing would run the job: run it, as `tune` runs its job.
    with connect(run_jobs=True) as client:
        client.action(job_id, "resume")
        console.print(f"tuning job [bold]{job_id}[/] resumed")
        job = follow(client, job_id, on_interrupt="pause")
        print_summary(client, job)
    if job["state"] != "JOB_STATE_SUCCEEDED":
        raise typer.Exit(1)


@app.command()
@friendly_errors
def plot(
    job_id: str,
    out: Path = typer.Option(None, help="PNG path (default: JOB.png)."),
    server: str | None = SERVER,
) -> None:
    """Draw the job's loss curve (per-step training loss, per-epoch validation loss)."""
    from tuneforge.engine.plot import plot_loss_curve

    with connect(server) as client:
        series = client.metrics(job_id)
    path = plot_loss_curve(
        [(row["step"], row["loss"]) for row in series.get("steps", [])],
        [(row["step"], row.get("valid_loss")) for row in series.get("epochs", [])],
        out or Path(f"{job_id}.png"),
        title=job_id,
    )
    console.print(f"loss curve: {path}")
