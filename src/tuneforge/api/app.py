"""The FastAPI application: the routers of each surface, the scheduler, one service."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from tuneforge import __version__
from tuneforge.api import files, gemini, graders, openai, openai_responses, score, ui, vertex
from tuneforge.api.errors import install_error_handlers
from tuneforge.config import Settings
from tuneforge.jobs.scheduler import Scheduler
from tuneforge.service import Service
from tuneforge.storage import storage_for
from tuneforge.store.db import open_database


def create_app(settings: Settings, *, run_scheduler: bool = True, inference=None) -> FastAPI:
    """The app for ``settings``. With ``run_scheduler``, it also runs queued jobs (as
    ``tuneforge serve`` does); without, a ``tuneforge worker`` must."""
    storage_for(settings).prepare()
    db = open_database(settings.resolved_database_url)
    service = Service(db, settings, inference=inference)
    scheduler = None
    if run_scheduler:
        # Its runners and this process's inference share the CPU's cores (jobs/cpu_share.py),
        # and a model in training counts against the inference's memory (memory_share.py).
        scheduler = Scheduler(
            db,
            settings,
            serving=service.generation.serves_on_cpu,
            training_memory=service.generation.reserve_for_training,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.files.recover()  # what a stopped server left: files to validate, orphans
        if scheduler:
            scheduler.start()
        try:
            yield
        finally:
            if scheduler:
                scheduler.stop()
            db.dispose()

    app = FastAPI(title="tuneforge", version=__version__, lifespan=lifespan)
    app.state.service = service
    app.state.scheduler = scheduler
    install_error_handlers(app)
    # Starlette tries the routes in order, about 10 µs each: the OpenAI and files routes,
    # the busiest, come first. No two routers share a path.
    app.include_router(files.router)
    app.include_router(openai.router)
    app.include_router(vertex.router)
    app.include_router(gemini.router)
    app.include_router(openai_responses.router)
    app.include_router(score.router)
    app.include_router(graders.router)
    app.mount(ui.STATIC_URL, ui.StaticAssets(), name="ui-static")
    app.include_router(ui.router)

    @app.get("/healthz", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
