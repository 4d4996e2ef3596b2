"""The first pass over a dataset: count its lines and vote its format, holding no line.

A file's format is the one most of its lines are in (the first such line's, on a tie), so one
odd line is reported as the odd one, whichever line it is. Which formats a line can count for
depends on the task: ``{"contents": ...}`` in a preference file is a Vertex preference line that
lacks its completions, not a supervised one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tuneforge.data.formats import IDENTIFYING_KEYS, detect_format, fits_format
from tuneforge.data.reader import Source, read_jsonl
from tuneforge.data.records import PREFERENCE_FORMATS, DatasetFormat, Problem, Task

# In DatasetFormat's order, which is also the order they are listed in messages.
SUPERVISED_FORMATS = tuple(f for f in DatasetFormat if f not in PREFERENCE_FORMATS)
TASK_FORMATS: dict[str, tuple[DatasetFormat, ...]] = {
    "supervised": SUPERVISED_FORMATS,
    "distillation": SUPERVISED_FORMATS,
    "preference": tuple(f for f in DatasetFormat if f in PREFERENCE_FORMATS),
}


def line_format(
    obj: dict, candidates: tuple[DatasetFormat, ...], detected: DatasetFormat | None = None
) -> DatasetFormat | None:
    """The line's format, read in the light of ``candidates`` (the file's format, or the task's
    formats) when its keys allow more than one. ``detected``: ``detect_format(obj)``, if known."""
    detected = detected or detect_format(obj)
    if detected is None or detected in candidates:
        return detected
    return next((f for f in candidates if fits_format(obj, f)), detected)


@dataclass(slots=True)
class FormatVote:
    """How many lines are in each format, read with one task's candidate formats."""

    candidates: tuple[DatasetFormat, ...]
    counts: Counter[DatasetFormat] = field(default_factory=Counter)

    @property
    def winner(self) -> tuple[DatasetFormat | None, int]:
        """The file's format and how many lines are in it; (None, 0) when no line has one."""
        if not self.counts:
            return None, 0
        # Counter keeps first-seen order and most_common sorts stably: ties go to the format
        # whose first line comes first.
        return self.counts.most_common(1)[0]


@dataclass(slots=True)
class FileScan:
    line_count: int  # non-blank lines, readable or not: each is meant to be one example
    votes: dict[tuple[DatasetFormat, ...], FormatVote]
    # The first line that reads as each format in a file of that format: where a file in the
    # wrong format for its task is reported.
    first_lines: dict[DatasetFormat, int]

    def vote(self, task: Task) -> FormatVote:
        return self.votes[TASK_FORMATS[task]]


def scan_formats(source: Source, tasks: Iterable[Task]) -> FileScan:
    """Read the file once, counting its lines and voting its format for each of ``tasks``."""
    votes = {TASK_FORMATS[task]: FormatVote(TASK_FORMATS[task]) for task in tasks}
    first_lines: dict[DatasetFormat, int] = {}
    # A line's readings depend only on which identifying keys it has, and most lines of a file
    # have the same ones: each key set is read once.
    readings: dict[frozenset[str], tuple[list[DatasetFormat | None], list[DatasetFormat]]] = {}
    line_count = 0
    for item in read_jsonl(source):
        if isinstance(item, Problem):
            line_count += item.line > 0  # line 0: the file could not be read
            continue
        line_count += 1
        line, obj = item
        keys = frozenset(obj.keys() & IDENTIFYING_KEYS)
        if keys not in readings:
            readings[keys] = _readings(obj, votes)
        in_votes, fitting = readings[keys]
        for vote, fmt in zip(votes.values(), in_votes, strict=True):
            if fmt is not None:
                vote.counts[fmt] += 1
        for fmt in fitting:
            first_lines.setdefault(fmt, line)
    return FileScan(line_count, votes, first_lines)


def _readings(
    obj: dict, votes: dict[tuple[DatasetFormat, ...], FormatVote]
) -> tuple[list[DatasetFormat | None], list[DatasetFormat]]:
    """The format ``obj`` counts for in each vote, and the formats it reads as in a file of
    that format."""
    detected = detect_format(obj)
    if detected is None:
        return [None] * len(votes), []
    in_votes = [line_format(obj, candidates, detected) for candidates in votes]
    fitting = [fmt for fmt in DatasetFormat if line_format(obj, (fmt,), detected) == fmt]
    return in_votes, fitting
