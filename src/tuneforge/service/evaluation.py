"""A tuned model against its base model, zero-shot and with training examples in the prompt
(and a distilled model against its teacher), on held-out examples: what ``tuneforge
evaluate`` and the dashboard's job page both run, through ``inference/evaluate.py``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tuneforge.data.records import Conversation, Example

if TYPE_CHECKING:
    from tuneforge.inference.evaluate import EvaluationReport
    from tuneforge.service import Service
    from tuneforge.store.models import TuningJob


def training_examples(service: Service, project_id: str, job: TuningJob) -> list[Example]:
    """The examples of the job's training file, read for the job's task (the few-shot pool)."""
    from tuneforge.data.validate import load_examples
    from tuneforge.engine.methods import get_method

    path = service.files.dataset_path(project_id, job.training_file, "training_file")
    return load_examples(path, task=get_method(job.method).task, min_examples=1)


def compare_with_base(
    service: Service,
    project_id: str,
    model: str,
    test: Sequence[Conversation],
    few_shot: int,
    train: Sequence[Example] | None = None,
    max_output_tokens: int | None = None,
) -> EvaluationReport:
    """``model`` and its base zero-shot and with ``few_shot`` examples of ``train`` (by default
    the job's training file) in the prompt, plus the teacher of a distilled model; a base
    model alone is compared with itself few-shot. Decoding is greedy, each answer cut at
    ``max_output_tokens``, by default a little past the longest reference answer."""
    from tuneforge.inference.evaluate import Candidate, evaluate_candidates, standard_candidates
    from tuneforge.inference.types import GenerationParams
    from tuneforge.models.names import TunedRef, parse_model_name

    tuned, extra = None, []
    if isinstance(parse_model_name(model), TunedRef):
        job = service.models.tuned_job(project_id, model)
        tuned = service.models.generation_target(project_id, model)
        base = service.models.generation_target(project_id, job.base_model)
        if train is None:
            train = training_examples(service, project_id, job)
        if job.teacher_model:
            teacher = service.models.generation_target(project_id, job.teacher_model)
            extra.append(Candidate("teacher", teacher))
    else:
        base = service.models.generation_target(project_id, model)
    candidates = standard_candidates(tuned, base, train or [], few_shot, extra)
    params = None
    if max_output_tokens is not None:
        params = GenerationParams(temperature=0.0, max_output_tokens=max_output_tokens)
    return evaluate_candidates(candidates, test, service.generation.backend, params)
