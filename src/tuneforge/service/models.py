"""The model catalog: base models (built-in, under the model roots) and the project's tuned
models, and what inference loads for a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneforge.config import Settings
from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.inference.types import ModelTarget
from tuneforge.jobs.targets import model_target, tuned_checkpoint, tuned_model
from tuneforge.models.names import TunedRef, parse_model_name
from tuneforge.models.resolve import BUILTIN_MODELS, local_base_models, resolve_base_model
from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.models import TunedModel, TuningJob


@dataclass(frozen=True)
class ModelInfo:
    id: str  # the name requests use
    kind: str  # "base" or "tuned"
    base_model: str
    created_at: Any = None
    tuned_model: TunedModel | None = None
    job: TuningJob | None = None  # the job that made a tuned model


class ModelService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def check(self, project_id: str, name: str, param: str) -> None:
        """A base model that resolves, or a tuned model of this project; else a 400 naming
        ``param``."""
        reference = parse_model_name(name)
        try:
            if isinstance(reference, TunedRef):
                self.generation_target(project_id, name, param)
            else:
                resolve_base_model(reference, self.settings)
        except NotFound as err:
            raise InvalidArgument(f"{param}: {err}", param) from None

    def tuned_job(self, project_id: str, name: str) -> TuningJob:
        """The job that produced the tuned model (or checkpoint) called ``name``."""
        with self.db.session() as s:
            job, _ = tuned_checkpoint(s, project_id, name)
            return job

    def delete(self, project_id: str, name: str) -> None:
        """Delete this project's tuned model called ``name`` (any of its names): it no longer
        lists or answers. Its job stays, with its checkpoints and their files. NotFound for a
        missing model and another project's alike; InvalidArgument for a base model's or a
        checkpoint's name."""
        reference = parse_model_name(name)
        if not isinstance(reference, TunedRef):
            raise InvalidArgument(
                f"model {name!r} is not a tuned model; only tuned models can be deleted", "model"
            )
        if reference.checkpoint_id or reference.epoch is not None or reference.step is not None:
            raise InvalidArgument(
                f"model {name!r} names a checkpoint; delete the tuned model it belongs to",
                "model",
            )
        with self.db.session() as s:
            repo.delete_tuned_model(s, project_id, tuned_model(s, project_id, name).id)

    def list(self, project_id: str) -> list[ModelInfo]:
        models = [ModelInfo(id=name, kind="base", base_model=name) for name in BUILTIN_MODELS]
        models += [
            ModelInfo(id=name, kind="base", base_model=name)
            for name in local_base_models(self.settings)
            if f"tuneforge/{name}" not in BUILTIN_MODELS
        ]
        with self.db.session() as s:
            page = repo.list_tuned_models(s, project_id, limit=1000)
            for tuned in page.items:
                models.append(
                    ModelInfo(
                        id=tuned.id,
                        kind="tuned",
                        base_model=tuned.base_model,
                        created_at=tuned.created_at,
                        tuned_model=tuned,
                        job=s.get(TuningJob, tuned.job_id),
                    )
                )
        return models

    def target(self, project_id: str, name: str) -> ModelTarget:
        """What inference loads for a model name: a base model, or a tuned model's checkpoint."""
        with self.db.session() as s:
            return model_target(s, self.settings, project_id, name)

    def generation_target(self, project_id: str, name: str, param: str = "model") -> ModelTarget:
        """A model that generates: a 400 for a reward model, which only scores."""
        target = self.target(project_id, name)
        if target.scores_only:
            raise InvalidArgument(
                f"{param}: {name!r} is a reward model: it scores conversations (POST /v1/score, "
                "tuneforge score) and does not generate",
                param,
            )
        return target

    def scoring_target(self, project_id: str, name: str, param: str = "model") -> ModelTarget:
        """A reward model; a 400 for any other, which generates rather than scores."""
        target = self.target(project_id, name)
        if not target.scores_only:
            raise InvalidArgument(
                f"{param}: {name!r} is not a reward model; tune one with the reward method "
                "(tuneforge tune --method reward) on preference data",
                param,
            )
        return target
