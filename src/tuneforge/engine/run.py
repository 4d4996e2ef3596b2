"""The engine's one entry point: a spec and datasets in, checkpoints and a result out."""

from __future__ import annotations

from pathlib import Path

from tuneforge.config import Settings
from tuneforge.data.records import Conversation, Example, PreferenceExample
from tuneforge.engine.distributed import RankObserver, world_size
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods import get_method
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.result import TuningResult
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import run_trainer


def run_tuning(
    spec: TuningSpec,
    train: list[Example],
    validation: list[Example],
    output_dir: Path,
    settings: Settings,
    observer: TuningObserver | None = None,
    *,
    resume: bool = True,
) -> TuningResult:
    """Tune ``spec.base_model`` into ``output_dir``; with ``resume``, go on from the latest
    checkpoint found there (a crashed or paused run) instead of starting over."""
    observer = observer or TuningObserver()
    if world_size() > 1:
        observer = RankObserver(observer)
    output_dir.mkdir(parents=True, exist_ok=True)
    prepare = get_method(spec.method).load_trainer()
    _check_examples(spec, [*train, *validation])
    run = prepare(spec, train, validation, output_dir, observer, settings)
    return run_trainer(run, spec, observer, settings, resume=resume)


def _check_examples(spec: TuningSpec, examples: list[Example]) -> None:
    preference = get_method(spec.method).task == "preference"
    wanted = PreferenceExample if preference else Conversation
    if any(not isinstance(e, wanted) for e in examples):
        kind = "preference pairs" if wanted is PreferenceExample else "conversations"
        raise TuningError(
            f"the {spec.method} method trains on {kind}; the dataset holds other examples",
            code="invalid_training_file",
        )
