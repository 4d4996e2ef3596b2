"""Canonical examples: every dataset format is turned into these before anything else sees it.

A supervised example is a :class:`Conversation`: an optional system instruction, the functions
it may call (``tools``) and turns of ``user`` and ``model`` text. A model turn may call functions
(``tool_calls``); each call is answered by a ``tool`` turn that names it, before the model speaks
again. Loss is computed on the model turns whose weight is 1: their text and their calls.
A user turn may show the model images, PDF documents and audio (``media``, data/media.py).
A preference example is a prompt conversation (ending with a user turn) and two responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from tuneforge.data.media import Media

Role = Literal["user", "model", "tool"]


@dataclass(frozen=True, slots=True)
class Function:
    """A function the model may call: OpenAI's ``tools[].function``, Vertex's
    ``functionDeclarations[]``."""

    name: str
    description: str = ""
    parameters: str = '{"type":"object","properties":{}}'  # its JSON schema, as compact JSON


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a function by the model. JSON text keeps the examples hashable."""

    name: str
    arguments: str  # a JSON object, as compact JSON
    id: str = ""  # OpenAI's tool_call_id; Vertex names the call by its function alone


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    text: str  # a tool turn's text is the function's result (JSON for Vertex's responses)
    weight: int = 1  # 0: the turn is context only and carries no loss (OpenAI's `weight: 0`)
    tool_calls: tuple[ToolCall, ...] = ()  # a model turn's calls, after its text
    call: ToolCall | None = None  # the call a tool turn answers
    media: tuple[Media, ...] = ()  # a user turn's images, documents and audio, before its text


@dataclass(frozen=True, slots=True)
class Conversation:
    turns: tuple[Turn, ...]
    system: str | None = None
    tools: tuple[Function, ...] = ()
    # A prompt's line's other fields as a JSON object (OpenAI's reinforcement format: reference
    # answers that graders read as {{ item.answer }}); None when it has none.
    item_json: str | None = None

    @property
    def media(self) -> tuple[Media, ...]:
        """Every media part of the conversation, in order."""
        return tuple(media for turn in self.turns for media in turn.media)

    @property
    def is_prompt_only(self) -> bool:
        """True when the model speaks next: the conversation ends with a user turn (a prompt
        awaiting a response) or with the results of the model's calls."""
        return bool(self.turns) and self.turns[-1].role in ("user", "tool")

    def text_bytes(self) -> int:
        """The UTF-8 size of everything the model is shown: the system instruction, the turns,
        their calls and the declared functions."""
        texts = [self.system or ""]
        texts += [t.text for t in self.turns]
        texts += [c.arguments for t in self.turns for c in t.tool_calls]
        texts += [f.description + f.parameters for f in self.tools]
        return sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)


@dataclass(frozen=True, slots=True)
class PreferenceExample:
    prompt: Conversation  # ends with a user turn
    chosen: str
    rejected: str


Example = Conversation | PreferenceExample


class DatasetFormat(StrEnum):
    """The dataset formats tuneforge reads (DESIGN.md, "Datasets")."""

    VERTEX_SFT = "vertex_sft"  # {"systemInstruction": ..., "contents": [...]}
    OPENAI_CHAT = "openai_chat"  # {"messages": [...]}
    PROMPT_COMPLETION = "prompt_completion"  # {"prompt", "completion"} and its other spellings
    OPENAI_PREFERENCE = "openai_preference"  # {"input", "preferred_output", "non_preferred_output"}
    VERTEX_PREFERENCE = "vertex_preference"  # {"contents", "completions": [{score, completion}]}
    PROMPT_CHOSEN_REJECTED = "prompt_chosen_rejected"  # {"prompt", "chosen", "rejected"}

    @property
    def is_preference(self) -> bool:
        return self in PREFERENCE_FORMATS


PREFERENCE_FORMATS = frozenset(
    {
        DatasetFormat.OPENAI_PREFERENCE,
        DatasetFormat.VERTEX_PREFERENCE,
        DatasetFormat.PROMPT_CHOSEN_REJECTED,
    }
)

# What a dataset is for. It decides which formats are accepted and whether an example may end
# with a user turn (distillation prompts do: the teacher writes the responses).
Task = Literal["supervised", "preference", "distillation"]


Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a dataset. ``line`` is 1-based; 0 means the file as a whole."""

    line: int
    field: str  # JSON path inside the line, e.g. "contents[2].parts[0].text"; "" for the line
    message: str  # what was found and what was expected, in words a user can act on
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "dataset"
        if self.field:
            where += f", {self.field}"
        return f"{where}: {self.message}"


MAX_REPORTED_PROBLEMS = 1000


@dataclass(slots=True)
class ValidationReport:
    """The result of reading and validating one dataset file.

    ``problems`` keeps the first MAX_REPORTED_PROBLEMS; the counts include every one found.
    ``examples`` and ``lines`` stay empty when validated with ``keep_examples=False``;
    ``example_count`` counts the valid examples either way.
    """

    format: DatasetFormat | None
    examples: list[Example] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line number of each example
    example_count: int = 0
    prompt_only_count: int = 0  # examples that end with a user turn (distillation prompts)
    problems: list[Problem] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    truncated: list[int] = field(default_factory=list)  # indices of examples over max length
    # (input, output) tokens of each example, when validated with a model's tokenizer
    token_counts: list[tuple[int, int]] = field(default_factory=list)
    media_counts: dict[str, int] = field(default_factory=dict)  # parts per kind (data/media.py)
    media_tokens: int = 0  # what the media cost, when counted with the model's processor

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    @property
    def omitted_problems(self) -> int:
        return self.error_count + self.warning_count - len(self.problems)

    def add(self, problem: Problem) -> None:
        if problem.severity == "error":
            self.error_count += 1
        else:
            self.warning_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)
