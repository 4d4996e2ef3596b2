"""Validate a whole dataset: every line's problems plus the dataset-level ones.

:func:`validate_dataset` never raises for anything in the file: it reports. :func:`load_examples`
is what training calls: the examples, or :class:`DatasetValidationError` carrying the report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tuneforge.data.checks import describe, join_keys
from tuneforge.data.first_lines import FirstLines
from tuneforge.data.format_vote import (
    TASK_FORMATS,
    FileScan,
    line_format,
    scan_formats,
)
from tuneforge.data.formats import (
    FORMAT_KEYS,
    FORMAT_NAMES,
    IDENTIFYING_KEYS,
    parse_example,
)
from tuneforge.data.media_check import MediaCheck, example_media, without_field
from tuneforge.data.reader import Source, read_jsonl
from tuneforge.data.records import (
    PREFERENCE_FORMATS,
    Conversation,
    DatasetFormat,
    Example,
    Problem,
    Task,
    ValidationReport,
)
from tuneforge.data.tokenize import count_tokens, counted_conversation
from tuneforge.errors import InvalidArgument, TuneforgeError

MIN_EXAMPLES = 10
RECOMMENDED_EXAMPLES = 100  # the cloud services recommend 100-500

SHOWN_IN_ERROR = 3  # problems named in DatasetValidationError's message
SHOWN_LINES = 10  # line numbers named in a warning about several lines


class DatasetValidationError(TuneforgeError):
    """A dataset has errors; ``report`` holds all of them, the message names the first few."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report
        count = report.error_count
        message = f"the dataset has {count} error{'s' * (count != 1)}"
        if report.problems:
            message += ": " + first_errors(report.problems, count)
        super().__init__(message)


def first_errors(problems: Iterable[Problem], error_count: int, limit: int = SHOWN_IN_ERROR) -> str:
    """The first ``limit`` errors by line and field, and how many more there are:
    ``line 3, messages[1].content: ...; line 9: ... (and 4 more)``."""
    shown = [p for p in problems if p.severity == "error"][:limit]
    more = error_count - len(shown)
    return "; ".join(map(str, shown)) + (f" (and {more} more)" if more > 0 else "")


def formats_list(formats: tuple[DatasetFormat, ...]) -> str:
    """'Vertex/Gemini SFT: "contents" ...; OpenAI chat: "messages"; ...'."""
    return "; ".join(f"{FORMAT_NAMES[f]}: {FORMAT_KEYS[f]}" for f in formats)


def unknown_format_message(obj: dict) -> str:
    found = f"found keys {join_keys(list(obj))}" if obj else "found an empty object"
    known = {key.lower(): key for key in IDENTIFYING_KEYS}
    misspelled = [
        f'{describe(key)} should be "{known[key.lower()]}"'
        for key in obj
        if key.lower() in known and key not in IDENTIFYING_KEYS
    ]
    hint = f" ({'; '.join(misspelled[:3])})" if misspelled else ""
    return (
        f"unknown format: {found}{hint}; expected the keys of one of these formats: "
        f"{formats_list(tuple(DatasetFormat))}"
    )


def task_mismatch_message(fmt: DatasetFormat, task: str) -> str:
    kind = "preference" if fmt.is_preference else "supervised"
    advice = {
        "preference": "use the preference method for preference data",
        "supervised": "use the supervised or distillation method for this data",
    }[kind]
    return (
        f"the file is in {FORMAT_NAMES[fmt]} format, a {kind} format, but the {task} method needs"
        f" one of: {formats_list(TASK_FORMATS[task])}; {advice}"
    )


@dataclass(slots=True)
class PromptTally:
    """How many examples are prompts without a response, and which lines have one."""

    prompt_only: int = 0
    answered: int = 0
    answered_lines: list[int] = field(default_factory=list)  # the first SHOWN_LINES of them

    def add(self, line: int, example: Example) -> None:
        if _is_prompt_only(example):
            self.prompt_only += 1
            return
        self.answered += 1
        if len(self.answered_lines) < SHOWN_LINES:
            self.answered_lines.append(line)


class _Validator:
    """Accumulates one file's report as its lines come in, in the format the scan voted for.

    With ``keep_examples=False`` nothing per example is held but a digest for duplicate
    detection (and token counts, when a tokenizer is given). ``distillation`` tallies what
    the lines would be as distillation prompts, for :func:`validate_any_task`.
    """

    def __init__(
        self,
        task: Task,
        tokenizer,
        max_length: int | None,
        scan: FileScan,
        *,
        keep_examples: bool,
        distillation: PromptTally | None = None,
        media: MediaCheck | None = None,
    ) -> None:
        self.task = task
        self.media = media or MediaCheck()
        self.tokenizer = tokenizer if max_length is not None else None
        self.max_length = max_length
        self.keep_examples = keep_examples
        self.report = ValidationReport(format=None)
        self.line_count = scan.line_count
        self.first_lines = FirstLines()
        self.distillation = distillation
        fmt, self.format_lines = scan.vote(task).winner
        self.report.format = fmt
        if fmt is not None and fmt not in TASK_FORMATS[task]:
            first = scan.first_lines[fmt]
            self.report.add(Problem(first, "", task_mismatch_message(fmt, task)))

    def add_line(self, line: int, obj: dict) -> None:
        candidates = (self.report.format,) if self.report.format else TASK_FORMATS[self.task]
        fmt = line_format(obj, candidates)
        if fmt is None:
            self.report.add(Problem(line, "", unknown_format_message(obj)))
            return
        if fmt != self.report.format:
            assert self.report.format is not None  # the scan saw this line's format
            message = (
                f"this line is in {FORMAT_NAMES[fmt]} format, but the file is in"
                f" {FORMAT_NAMES[self.report.format]} format ({self.format_lines} of its"
                f" {self.line_count} lines are); every line of a file must use the same format"
            )
            self.report.add(Problem(line, "", message))
            return
        allow_prompt_only = self.task == "distillation"
        example, problems = parse_example(obj, fmt, line=line, allow_prompt_only=allow_prompt_only)
        for problem in problems:
            self.report.add(problem)
        if self.distillation is not None:
            # A supervised example is a distillation example as it is; only a line that fails
            # as supervised can differ (a prompt without a response).
            prompt = example
            if prompt is None and not allow_prompt_only:
                prompt, _ = parse_example(obj, fmt, line=line, allow_prompt_only=True)
            if prompt is not None:
                self.distillation.add(line, prompt)
        if example is not None:
            self.add_example(line, example)

    def add_example(self, line: int, example: Example) -> None:
        if not self.media_fit(line, example):
            return
        first = self.first_lines.first_line(example, line)
        if first != line:
            message = (
                f"lines {first} and {line} are the same example; a duplicate weighs that example"
                " more than the others in training"
            )
            self.report.add(Problem(line, "", message, "warning"))
        self.report.example_count += 1
        self.report.prompt_only_count += _is_prompt_only(example)
        if self.keep_examples:
            self.report.examples.append(example)
            self.report.lines.append(line)
        if self.tokenizer is not None:
            self.check_length(line, example)

    def media_fit(self, line: int, example: Example) -> bool:
        """Count the example's media and report each part that cannot be used; False when
        one cannot (the example is not kept)."""
        media = example_media(example)
        if not media:
            return True
        for part in media:
            counts = self.report.media_counts
            counts[part.kind] = counts.get(part.kind, 0) + 1
        problems = self.media.problems(line, example)
        for problem in problems:
            self.report.add(problem)
        return not problems

    def check_length(self, line: int, example: Example) -> None:
        assert self.max_length is not None
        try:
            if self.media.counts(example):
                counted = counted_conversation(example)
                input_tokens, output_tokens, media_tokens = self.media.count_tokens(counted)
                self.report.media_tokens += media_tokens
            else:
                input_tokens, output_tokens = count_tokens(example, self.tokenizer)
        except InvalidArgument as err:  # the template cannot show it (its tools, its media)
            field = err.param or ""
            self.report.add(Problem(line, field, without_field(str(err), field)))
            return
        except Exception as err:  # the model's tokenizer or chat template is not ours to trust
            message = f"the model's tokenizer failed on this example: {type(err).__name__}: {err}"
            self.report.add(Problem(line, "", message))
            return
        self.report.token_counts.append((input_tokens, output_tokens))
        total = input_tokens + output_tokens
        if total > self.max_length:
            message = (
                f"the example has {total} tokens, more than the maximum length"
                f" {self.max_length}; it will be truncated to {self.max_length} tokens"
            )
            self.report.add(Problem(line, "", message, "warning"))
            self.report.truncated.append(self.report.example_count - 1)

    def finish(self, min_examples: int, recommended_examples: int) -> ValidationReport:
        count = self.line_count
        file_errors = any(p.line == 0 and p.severity == "error" for p in self.report.problems)
        if count == 0 and file_errors:
            pass  # a file-wide error (CSV, unreadable) says it all
        elif count == 0:
            self.report.add(
                Problem(0, "", "the file has no examples: expected one JSON object per line")
            )
        elif count < min_examples:
            message = (
                f"the file has {count} line{'s' if count != 1 else ''}; at least {min_examples}"
                " examples are needed (the cloud services recommend 100-500)"
            )
            self.report.add(Problem(0, "", message))
        elif count < recommended_examples:
            message = (
                f"the file has {count} lines; the cloud services recommend 100-500 examples for"
                " good results"
            )
            self.report.add(Problem(0, "", message, "warning"))
        return self.report


def _check_task(task: str) -> None:
    if task not in TASK_FORMATS:
        raise InvalidArgument(
            f"unknown task {task!r}; expected one of {', '.join(TASK_FORMATS)}", param="task"
        )


def _validate(
    source: Source,
    scan: FileScan,
    task: Task,
    *,
    tokenizer=None,
    max_length: int | None = None,
    min_examples: int = MIN_EXAMPLES,
    recommended_examples: int = RECOMMENDED_EXAMPLES,
    keep_examples: bool = True,
    distillation: PromptTally | None = None,
    media: MediaCheck | None = None,
) -> ValidationReport:
    """The second pass: every line checked in the format ``scan`` voted for."""
    validator = _Validator(
        task,
        tokenizer,
        max_length,
        scan,
        keep_examples=keep_examples,
        distillation=distillation,
        media=media,
    )
    for item in read_jsonl(source):
        if isinstance(item, Problem):
            validator.report.add(item)
        else:
            validator.add_line(*item)
    return validator.finish(min_examples, recommended_examples)


def validate_dataset(
    source: Source,
    *,
    task: Task = "supervised",
    tokenizer=None,
    max_length: int | None = None,
    min_examples: int = MIN_EXAMPLES,
    recommended_examples: int = RECOMMENDED_EXAMPLES,
    keep_examples: bool = True,
    media: MediaCheck | None = None,
) -> ValidationReport:
    """Read and check a JSONL dataset (a path or its bytes), collecting every problem.

    The file's format is the one most of its lines are in; every line must share it, and it
    must suit ``task``. With ``tokenizer`` and ``max_length``, examples longer than
    ``max_length`` tokens get a warning and their indices go to ``report.truncated``.
    Fewer than ``min_examples`` examples is an error, fewer than ``recommended_examples`` a
    warning. Raises nothing for the file's content (only for an unknown ``task``).

    The file is read twice (its format first, then its lines), a line at a time. With
    ``keep_examples=False`` the report has no ``examples`` or ``lines`` (``example_count``
    still counts them) and memory stays small whatever the file's size.

    Media parts are checked by ``media`` (data/media_check.py): by default every inline part
    is decoded within the default limits, whatever the model.
    """
    _check_task(task)
    return _validate(
        source,
        scan_formats(source, [task]),
        task,
        tokenizer=tokenizer,
        max_length=max_length,
        min_examples=min_examples,
        recommended_examples=recommended_examples,
        keep_examples=keep_examples,
        media=media,
    )


def load_examples(
    source: Source,
    *,
    task: Task = "supervised",
    tokenizer=None,
    max_length: int | None = None,
    min_examples: int = MIN_EXAMPLES,
) -> list[Example]:
    """The dataset's examples; raises DatasetValidationError when it has any error."""
    report = validate_dataset(
        source, task=task, tokenizer=tokenizer, max_length=max_length, min_examples=min_examples
    )
    if not report.ok:
        raise DatasetValidationError(report)
    return report.examples


def line_list(lines: list[int], total: int | None = None, limit: int = SHOWN_LINES) -> str:
    """``line 4``, ``lines 4, 9, 12`` or ``lines 4, 9, ... (and 20 more)``: the first
    ``limit`` of ``lines``, of ``total`` lines in all (``len(lines)`` unless given)."""
    total = len(lines) if total is None else total
    shown = ", ".join(map(str, lines[:limit]))
    more = f" (and {total - limit} more)" if total > limit else ""
    return f"line{'s' * (total != 1)} {shown}{more}"


def validate_any_task(source: Source, *, keep_examples: bool = True) -> ValidationReport:
    """Validate a file for the task its format implies: preference formats for preference
    tuning, every other one for supervised tuning, or for distillation when most examples are
    prompts without a response (the teacher writes those). A supervised file with a few
    prompt-only lines is reported as supervised: each of those lines is an error, by line and
    field, as the cloud services report them.

    One pass votes the format (for both kinds of task at once), one validates; only a file that
    turns out to be mostly prompts is read a third time, as distillation data."""
    scan = scan_formats(source, ["supervised", "preference"])
    if scan.vote("supervised").winner[0] in PREFERENCE_FORMATS:
        return _validate(source, scan, "preference", keep_examples=keep_examples)
    as_prompts = PromptTally()
    report = _validate(
        source, scan, "supervised", keep_examples=keep_examples, distillation=as_prompts
    )
    if report.ok or as_prompts.prompt_only <= as_prompts.answered:
        return report
    tally = PromptTally()
    prompts = _validate(
        source, scan, "distillation", keep_examples=keep_examples, distillation=tally
    )
    if tally.prompt_only <= tally.answered:
        return report
    message = (
        f"{tally.prompt_only} of the {prompts.example_count} examples are prompts without a "
        "response: the file can be used for distillation (the teacher writes the responses), "
        "not for supervised tuning"
    )
    if tally.answered:
        message += (
            f"; {line_list(tally.answered_lines, tally.answered)} have a response,"
            " trained on as given"
        )
    prompts.add(Problem(0, "", message, "warning"))
    return prompts


def implied_task(report: ValidationReport) -> Task:
    """The task a report of :func:`validate_any_task` found the file fit for."""
    if report.format is not None and report.format.is_preference:
        return "preference"
    return "distillation" if report.prompt_only_count else "supervised"


def _is_prompt_only(example: Example) -> bool:
    return isinstance(example, Conversation) and example.is_prompt_only
