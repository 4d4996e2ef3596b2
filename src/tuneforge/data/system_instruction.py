"""The system instruction a dataset teaches with: that of its first example that has one.

The dashboard's "Try it" form starts from it, since a model tuned with a system instruction
answers best with the same one. Only the first ``SCANNED_LINES`` lines are read: a file
without any system instruction must not cost a read of all of it on every page view.
"""

from __future__ import annotations

from itertools import islice

from tuneforge.data.formats import detect_format, parse_example
from tuneforge.data.reader import Source, read_jsonl
from tuneforge.data.records import PreferenceExample, Problem

SCANNED_LINES = 1000


def first_system_instruction(source: Source, scanned_lines: int = SCANNED_LINES) -> str | None:
    """The system instruction of the first example (in ``scanned_lines`` lines) that has one;
    None when none does. Lines that do not parse are skipped."""
    for item in islice(read_jsonl(source), scanned_lines):
        if isinstance(item, Problem):
            continue
        number, obj = item
        fmt = detect_format(obj)
        if fmt is None:
            continue
        example, _ = parse_example(obj, fmt, line=number, allow_prompt_only=True)
        conversation = example.prompt if isinstance(example, PreferenceExample) else example
        if conversation is not None and conversation.system:
            return conversation.system
    return None
