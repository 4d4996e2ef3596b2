"""The job page's "Evaluate": the tuned model against its base zero-shot and few-shot, on an
uploaded test file, with the metrics of ``tuneforge evaluate``.

It runs synchronously in the form's POST: the result is the response, so nothing is kept on
the server, nothing is lost when it restarts, and with several server processes no poll can
land on one that never ran it. ``MAX_EXAMPLES`` bounds the wait (three candidates, greedy
decoding with an output budget a little above the longest reference, batched together).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.data.validate import load_examples
from tuneforge.errors import InvalidArgument, TuneforgeError
from tuneforge.inference.evaluate import EvaluationReport
from tuneforge.service import JobView, Service
from tuneforge.service.evaluation import compare_with_base, training_examples

MAX_EXAMPLES = 100
MAX_FEW_SHOT = 8
DEFAULT_FEW_SHOT = 3


@dataclass
class EvaluationForm:
    test_file: str = ""
    examples: int = MAX_EXAMPLES
    few_shot: int = DEFAULT_FEW_SHOT

    def check(self) -> None:
        if not self.test_file:
            raise InvalidArgument("choose a test file (upload one first)", "test_file")
        if not 1 <= self.examples <= MAX_EXAMPLES:
            raise InvalidArgument(f"examples must be 1 to {MAX_EXAMPLES}", "examples")
        if not 0 <= self.few_shot <= MAX_FEW_SHOT:
            raise InvalidArgument(f"few-shot examples must be 0 to {MAX_FEW_SHOT}", "few_shot")


@dataclass(frozen=True)
class Evaluation:
    report: EvaluationReport
    test_file: str
    note: str | None  # why a row is missing, if one is


def evaluate_job(
    service: Service, project_id: str, view: JobView, form: EvaluationForm
) -> Evaluation:
    """The job's tuned model, its base and its base few-shot on the first ``form.examples``
    of the test file; InvalidArgument / NotFound / DatasetValidationError name bad input."""
    form.check()
    if view.tuned_model is None:  # the job page offers no form then: its error page says so
        raise InvalidArgument("only a succeeded job's tuned model can be evaluated", "job")
    row = service.files.get(project_id, form.test_file)  # NotFound for another project's
    test = load_examples(service.files.local_path(row), task="supervised", min_examples=1)
    note = None
    try:
        train = training_examples(service, project_id, view.job) if form.few_shot else []
    except TuneforgeError as err:  # the training file was deleted since, or no longer reads
        train, note = [], f"no few-shot row: the job's training data cannot be read ({err})"
    report = compare_with_base(
        service, project_id, view.tuned_model.id, test[: form.examples], form.few_shot, train
    )
    return Evaluation(report, row.id, note)
