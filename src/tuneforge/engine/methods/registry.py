"""The registry of tuning methods: everything the rest of tuneforge needs to know of one.

Each method is a folder beside this file (PEFT's ``tuners/<method>/`` pattern): ``config.py``
holds its hyperparameters, ``trainer.py`` prepares its TRL trainer, and ``__init__.py`` is one
``register_method(...)`` call. Validation, the store, the service, both APIs and the CLI read
the registry; none of them lists the methods itself. Registering imports no torch: a method's
trainer module is imported only when a job trains with it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuneforge.data.records import Task
from tuneforge.errors import InvalidArgument

if TYPE_CHECKING:
    from tuneforge.engine.spec import Hyperparameters


@dataclass(frozen=True)
class TuningMethod:
    name: str  # tuneforge's name: the CLI's --method, the store's job.method
    task: Task  # the dataset task it trains on (data.validate checks files for it)
    hyperparameters: type[Hyperparameters]  # its own options, with their defaults and bounds
    trainer: str  # "module:function" that builds its PreparedRun (engine.training)
    description: str
    learning_rate_scale: float = 1.0  # times the mode's default learning rate
    epoch_scale: int = 1  # times the auto epochs
    needs_teacher: bool = False  # learns from another model (teacher_model is required)
    openai_type: str | None = None  # OpenAI's method.type; None: not offered on that API
    vertex_spec: str | None = None  # the key of its spec in a Vertex TuningJob
    vertex_stats: str | None = None  # the key of its dataset statistics there
    scores_only: bool = False  # its tuned models score conversations and generate nothing
    required: tuple[str, ...] = ()  # its own hyperparameters a job must give (no default)
    # Trains on several devices (engine/distributed.py): its trainer is checked to give the
    # single-process run's loss curve for the same global batch.
    multi_device: bool = False
    # The media its trainer reads in examples (data/media.py kinds); none: text only.
    media: frozenset[str] = frozenset()
    media_lora_only: bool = False  # with all weights (mode "full") it reads text only

    def own_hyperparameters(self) -> list[str]:
        """The hyperparameters this method adds to the ones every method shares."""
        return list(_own_fields(self.hyperparameters))

    def load_trainer(self) -> Callable:
        module, _, function = self.trainer.partition(":")
        return getattr(importlib.import_module(module), function)


@functools.cache
def _own_fields(hyperparameters: type[Hyperparameters]) -> tuple[str, ...]:
    """Read once per class: every job a list shows asks (pydantic's field lists are not free)."""
    from tuneforge.engine.spec import Hyperparameters

    shared = Hyperparameters.model_fields
    return tuple(f for f in hyperparameters.model_fields if f not in shared)


_METHODS: dict[str, TuningMethod] = {}


def register_method(method: TuningMethod) -> TuningMethod:
    if method.name in _METHODS:
        raise ValueError(f"tuning method {method.name!r} is registered twice")
    _METHODS[method.name] = method
    return method


def all_methods() -> list[TuningMethod]:
    return list(_METHODS.values())


def get_method(name: str, param: str = "method") -> TuningMethod:
    """The registered method called ``name``; a 400 naming ``param`` and the known ones if none."""
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(_METHODS)
        message = f"unknown tuning method {name!r}; expected one of {known}"
        raise InvalidArgument(message, param) from None
