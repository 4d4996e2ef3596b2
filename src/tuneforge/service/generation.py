"""Answers from base and tuned models, through the configured inference backend."""

from __future__ import annotations

from tuneforge.config import Settings
from tuneforge.data.records import Conversation
from tuneforge.service.models import ModelService


class GenerationService:
    def __init__(self, settings: Settings, models: ModelService, backend=None) -> None:
        self.settings = settings
        self.models = models
        self._backend = backend

    @property
    def backend(self):
        """The inference backend, made on first use: serving loads torch, listing jobs does not."""
        if self._backend is None:
            from tuneforge.inference import make_backend

            self._backend = make_backend(self.settings)
        return self._backend

    def generate(self, project_id: str, model: str, prompt: Conversation, params):
        return self.backend.generate(self.models.target(project_id, model), prompt, params)

    def stream(self, project_id: str, model: str, prompt: Conversation, params):
        return self.backend.stream(self.models.target(project_id, model), prompt, params)
