"""``tuneforge serve`` and ``tuneforge worker``."""

from __future__ import annotations

import gc
import logging
import signal

import typer
from rich.console import Console

from tuneforge.cli.common import friendly_errors
from tuneforge.config import Settings, get_settings
from tuneforge.storage import storage_for

console = Console(stderr=True)

# Python's default is a young-generation collection every 700 net allocations of containers.
YOUNG_GC_THRESHOLD = 20_000


def quiet_garbage_collector() -> None:
    """A request makes thousands of short-lived objects, which reference counting frees; at
    Python's default threshold the cycle collector still ran every few requests and walked the
    libraries' objects in its full passes: about half a millisecond of a read request's CPU
    under load (benchmarks/README.md). What start-up built is frozen (never walked again) and
    young collections come less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


EXECUTOR_HELP = "What runs each job: subprocess (here) or ray (a Ray cluster); default: settings."
RAY_ADDRESS_HELP = "The Ray cluster for --executor ray (HOST:PORT, ray://HOST:10001, or local)."


def settings_with(executor: str | None, ray_address: str | None) -> Settings:
    """The settings, with the executor options given on the command line."""
    settings = get_settings()
    update: dict = {}
    if executor is not None:
        if executor not in ("subprocess", "ray"):
            raise typer.BadParameter("choose subprocess or ray", param_hint="--executor")
        update["executor"] = executor
    if ray_address is not None:
        update["ray_address"] = ray_address
    return settings.model_copy(update=update) if update else settings


@friendly_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    scheduler: bool = typer.Option(True, help="Also run queued jobs (else start workers)."),
    executor: str | None = typer.Option(None, help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, help=RAY_ADDRESS_HELP),
) -> None:
    """Serve the REST API and the dashboard, and run queued jobs."""
    import uvicorn

    from tuneforge.api.app import create_app

    settings = settings_with(executor, ray_address)
    storage = storage_for(settings)
    app = create_app(settings, run_scheduler=scheduler)
    key, created = app.state.service.keys.ensure_local()
    if created:
        console.print(f"API key for project [bold]default[/] (shown once): [bold green]{key}[/]")
        console.print(f"It is also stored in {storage.local_key_path} for the local CLI.")
    else:
        console.print(f"API key for project [bold]default[/]: in {storage.local_key_path}")
    console.print(f"tuneforge on http://{host}:{port}  (data: {storage.location})")
    if scheduler and settings.executor == "ray":
        console.print(f"jobs run on Ray ({settings.ray_address or 'local'})")
    quiet_garbage_collector()
    # uvicorn's access log: a line per request, as any web server writes.
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)


@friendly_errors
def worker(
    interval: float = typer.Option(0.5, help="Seconds between scheduling rounds."),
    executor: str | None = typer.Option(None, help=EXECUTOR_HELP),
    ray_address: str | None = typer.Option(None, help=RAY_ADDRESS_HELP),
) -> None:
    """Run queued jobs from the shared database, without serving HTTP."""
    from tuneforge.jobs.scheduler import Scheduler
    from tuneforge.store.db import open_database

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_with(executor, ray_address)
    db = open_database(settings.resolved_database_url)
    scheduler = Scheduler(db, settings)
    console.print(f"tuneforge worker {scheduler.worker_id}: {scheduler.capacity} slot(s)")
    # SIGTERM stops the worker as Ctrl-C does: its jobs save a resume point and are requeued.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        scheduler.run_forever(interval)
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
