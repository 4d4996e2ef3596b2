"""A tuned model against its base model, zero-shot and with training examples in the prompt
(and a distilled model against its teacher), on held-out examples: what ``tuneforge
evaluate`` and the dashboard's job page both run, through ``inference/evaluate.py``.

Examples with media (images, PDF documents, audio) keep them: a test prompt's, and each
few-shot example's, which go into the few-shot prompt with their turns. The evaluation asks the
backend directly, so what the serving surfaces do for a request is done here first: every file
part is read by the project's rules and checked against the settings' limits, and a part a
candidate cannot read is refused by test example before anything runs. A few-shot prompt whose
examples' media make it longer than the model reads is an error saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tuneforge.data.records import Conversation, Example
from tuneforge.errors import InvalidArgument

if TYPE_CHECKING:
    from tuneforge.inference.evaluate import Candidate, EvaluationReport
    from tuneforge.inference.types import GenerationParams, InferenceBackend
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
    from tuneforge.inference.evaluate import Candidate, standard_candidates
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
    test, candidates = _with_media(service, project_id, test, candidates)
    params = None
    if max_output_tokens is not None:
        params = GenerationParams(temperature=0.0, max_output_tokens=max_output_tokens)
    return _evaluate(candidates, test, service.generation.backend, params)


def _with_media(
    service: Service, project_id: str, test: Sequence[Conversation], candidates: list[Candidate]
) -> tuple[list[Conversation], list[Candidate]]:
    """The test examples and the candidates' shots with their media's bytes read and checked,
    each media part refused for a candidate that cannot read its kind, or audio longer than it
    hears (a 400 naming the example and the part's field, before any model loads)."""
    from tuneforge.data.media import media_limits
    from tuneforge.jobs.media_files import (
        MediaReader,
        refuse_unheard,
        refuse_unreadable,
        resolved,
        target_media_kinds,
    )

    reader = MediaReader(service.models.db, service.settings, project_id)
    limits = media_limits(service.settings)

    def read(conversations: Sequence[Conversation], what: str) -> list[Conversation]:
        out = []
        for number, conversation in enumerate(conversations, 1):
            try:
                out.append(resolved(conversation, reader, limits, holder=f"a {what}"))
            except InvalidArgument as err:
                raise InvalidArgument(f"{what} {number}: {err}", err.param) from None
        return out

    def refuse(conversations: Sequence[Conversation], what: str, candidate: Candidate) -> None:
        if not any(conversation.media for conversation in conversations):
            return  # a text evaluation does not read the model's config
        kinds = target_media_kinds(candidate.target)
        for number, conversation in enumerate(conversations, 1):
            try:
                refuse_unreadable(conversation, candidate.target.name, kinds)
                refuse_unheard(conversation, candidate.target)
            except InvalidArgument as err:
                raise InvalidArgument(f"{what} {number}: {err}", err.param) from None

    test = read(test, "test example")
    checked = []
    for candidate in candidates:
        shots = read(candidate.shots, "few-shot example")
        refuse(test, "test example", candidate)
        refuse(shots, "few-shot example", candidate)
        checked.append(replace(candidate, shots=shots))
    return test, checked


def _evaluate(
    candidates: list[Candidate],
    test: Sequence[Conversation],
    backend: InferenceBackend,
    params: GenerationParams | None,
) -> EvaluationReport:
    """``evaluate_candidates``, with the candidates whose shots carry media run first and on
    their own: their prompts are the ones that may outgrow the model's context, and that is
    then said in those words, before the others have spent their time."""
    from tuneforge.inference.evaluate import EvaluationReport, evaluate_candidates

    heavy, light = [], []
    for candidate in candidates:
        (heavy if any(shot.media for shot in candidate.shots) else light).append(candidate)
    if not heavy:
        return evaluate_candidates(candidates, test, backend, params)
    try:
        first = evaluate_candidates(heavy, test, backend, params)
    except InvalidArgument as err:
        if "the model reads at most" not in str(err):  # the backends' words for a long prompt
            raise
        shots = len(heavy[0].shots)
        raise InvalidArgument(
            f"{heavy[0].label}: {err}. Every few-shot prompt holds its {shots} examples' media, "
            "and they do not fit the model's context: evaluate with fewer few-shot examples, "
            "or none",
            "few_shot",
        ) from None
    if not light:
        return first
    rest = evaluate_candidates(light, test, backend, params)
    reports = {r.label: r for r in (*first.candidates, *rest.candidates)}
    return EvaluationReport(
        candidates=[reports[c.label] for c in candidates],
        examples=first.examples,
        max_output_tokens={**rest.max_output_tokens, **first.max_output_tokens},
    )
