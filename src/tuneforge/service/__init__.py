"""The operations every surface shares, one module per resource: one place for rules and
authorization.

The Vertex router, the OpenAI router, the web UI and the CLI translate names and shapes and
call these; nothing here knows about HTTP. Every operation is scoped to a project: another
project's file, job or model raises NotFound exactly as a missing one does.
"""

from __future__ import annotations

from tuneforge.config import Settings
from tuneforge.service.files import FileService, UploadTooLarge
from tuneforge.service.generation import GenerationService
from tuneforge.service.graders import GraderService
from tuneforge.service.jobs import RESULTS_PURPOSE, JobRequest, JobService, JobView
from tuneforge.service.keys import DEFAULT_PROJECT, KeyService
from tuneforge.service.models import ModelInfo, ModelService
from tuneforge.store.db import Database


class Service:
    """Every resource's operations over one database and one set of settings."""

    def __init__(self, db: Database, settings: Settings, inference=None) -> None:
        self.db = db
        self.settings = settings
        self.keys = KeyService(db, settings)
        self.files = FileService(db, settings)
        self.models = ModelService(db, settings)
        self.jobs = JobService(db, settings, self.models)
        self.generation = GenerationService(settings, self.models, inference)
        self.graders = GraderService(settings, self.generation)


__all__ = [
    "DEFAULT_PROJECT",
    "RESULTS_PURPOSE",
    "JobRequest",
    "JobView",
    "ModelInfo",
    "Service",
    "UploadTooLarge",
]
