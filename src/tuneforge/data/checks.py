"""Collecting the problems of one dataset line, and describing found values in their messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tuneforge.data.reader import json_type_name
from tuneforge.data.records import Problem


def describe(value: object, limit: int = 40) -> str:
    """A short rendering of a found value for a message: '"assistant"', '42', 'an object'."""
    if isinstance(value, dict | list) and value:
        return json_type_name(value)
    text = json.dumps(value, ensure_ascii=False)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates
    return text if len(text) <= limit else text[: limit - 1] + "…"


def found(value: object) -> str:
    """What was found, for "expected ...; found ...": 'a number (42)', 'null', 'an object'."""
    if value is None or (isinstance(value, dict | list) and value):
        return json_type_name(value)
    if isinstance(value, dict | list):
        return f"an empty {'object' if isinstance(value, dict) else 'array'}"
    return f"{json_type_name(value)} ({describe(value)})"


def name_of(value: object) -> str:
    """A found name (a key, a part type) as itself when it is short and printable."""
    if isinstance(value, str) and len(value) <= 40 and value.isprintable():
        return value
    return describe(value)


def join_keys(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(describe(key) for key in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def path_at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


@dataclass
class LineIssues:
    """The problems found in one line."""

    line: int
    problems: list[Problem] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.line, path, message))

    def warning(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.line, path, message, "warning"))

    @property
    def first_error(self) -> Problem | None:
        return next((p for p in self.problems if p.severity == "error"), None)

    @property
    def has_errors(self) -> bool:
        return self.first_error is not None

    def missing(self, obj: dict, key: str, path: str, expected: str) -> bool:
        """Report ``key`` missing from ``obj``; True when it is there."""
        if key in obj:
            return True
        self.error(path_at(path, key), f'missing "{key}"; expected {expected}')
        return False

    def list_of(self, value: object, path: str, expected: str) -> list | None:
        """``value`` when it is a non-empty list, else None (with the problem reported)."""
        if not isinstance(value, list):
            self.error(path, f"expected {expected}; found {found(value)}")
            return None
        if not value:
            self.error(path, f"the list is empty; expected {expected}")
            return None
        return value

    def object_of(self, value: object, path: str, expected: str) -> dict | None:
        if isinstance(value, dict):
            return value
        self.error(path, f"expected {expected}; found {found(value)}")
        return None

    def string_of(self, value: object, path: str) -> str | None:
        if isinstance(value, str):
            return value
        self.error(path, f"expected text (a string); found {found(value)}")
        return None

    def non_empty(self, text: str | None, path: str) -> str | None:
        """``text`` when it has something besides whitespace and encodes as UTF-8."""
        if text is None:
            return None
        if not text.strip():
            self.error(path, "the text is empty or only whitespace; expected some text")
            return None
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                self.error(path, "the text contains an invalid \\u escape (a lone surrogate)")
                return None
        return text
