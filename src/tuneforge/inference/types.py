"""What every inference backend takes and returns, so the CLI and both API surfaces share one call.

A request names a :class:`ModelTarget` (a base model, a base plus a LoRA adapter, or the weights
of a full fine-tune), a prompt :class:`~tuneforge.data.records.Conversation` ending with a user
turn, and :class:`GenerationParams`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from tuneforge.data.records import Conversation, ToolCall
from tuneforge.errors import InvalidArgument

FinishReason = Literal["stop", "length", "tool_calls"]
# What a request lets the model do with the prompt's tools: call them or answer ("auto"), or
# call at least one ("required", held to calls by a grammar). "none" never reaches a backend:
# the surfaces leave the tools out of the prompt.
ToolChoice = Literal["auto", "required"]


@dataclass(frozen=True)
class ModelTarget:
    name: str  # the model name to report back (modelVersion / model)
    base_source: str  # folder or hub id of the base model
    adapter_path: Path | None = None  # LoRA adapter folder (a tuned model or one checkpoint)
    weights_path: Path | None = None  # full fine-tune folder: loads as a model of its own
    scores_only: bool = False  # a reward model: it scores conversations, it does not generate

    def __post_init__(self) -> None:
        for name in ("adapter_path", "weights_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.adapter_path is not None and self.weights_path is not None:
            raise InvalidArgument(
                f"model {self.name!r}: a target has either an adapter or full weights, not both"
            )

    @property
    def tokenizer_source(self) -> str:
        """Where the target's tokenizer loads from: a full fine-tune's own folder when it saved
        one, else the base model (an adapter keeps its base's tokenizer)."""
        folder = self.weights_path
        if folder is not None and (folder / "tokenizer_config.json").is_file():
            return str(folder)
        return self.base_source


MAX_TOP_LOGPROBS = 20  # OpenAI's and Vertex's limit


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.0  # 0 -> greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 -> off
    max_output_tokens: int = 256
    stop: tuple[str, ...] = ()  # stop sequences: output is cut before the first one
    seed: int | None = None  # same seed + params -> same sampled output
    n: int = 1  # candidates
    # None: no log probabilities; k: each output token's, with the k likeliest alternatives
    logprobs: int | None = None
    # A JSON schema (canonical text: inference.structured.schema_text) the output must match
    json_schema: str | None = None
    tool_choice: ToolChoice = "auto"
    tool_names: tuple[str, ...] = ()  # with "required": the functions it may call (all: empty)
    parallel_tool_calls: bool = True  # whether one turn may make several calls

    def __post_init__(self) -> None:
        # A list from JSON would make the params unhashable (the batcher groups by them), and
        # OpenAI's `stop` may be a single string.
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        object.__setattr__(self, "stop", tuple(s for s in stop if s))
        checks = [
            ("temperature", self.temperature >= 0, "must be 0 or more"),
            ("top_p", 0 < self.top_p <= 1, "must be in (0, 1]"),
            ("top_k", self.top_k >= 0, "must be 0 (off) or more"),
            ("max_output_tokens", self.max_output_tokens >= 1, "must be at least 1"),
            ("n", self.n >= 1, "must be at least 1"),
            (
                "logprobs",
                self.logprobs is None or 0 <= self.logprobs <= MAX_TOP_LOGPROBS,
                f"must be 0 to {MAX_TOP_LOGPROBS}",
            ),
            # torch's and vLLM's generators take a 64-bit seed; a larger one was a 500
            ("seed", self.seed is None or -(2**63) <= self.seed < 2**63, "must fit in 64 bits"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InvalidArgument(f"{name} {expected}, got {getattr(self, name)!r}", name)
        if (self.json_schema is not None or self.tool_choice == "required") and self.stop:
            raise InvalidArgument(
                "stop sequences would cut a structured answer short of its closing brace; "
                "leave them out with a JSON schema or required tool calls",
                "stop",
            )
        if self.json_schema is not None and self.tool_choice == "required":
            raise InvalidArgument(
                "an answer is either calls or a JSON document: ask for one of the two",
                "json_schema",
            )

    @property
    def sampling(self) -> bool:
        return self.temperature > 0


@dataclass(frozen=True)
class TokenChoice:
    token_id: int
    text: str  # decoded alone: part of a multibyte character reads U+FFFD
    logprob: float  # natural log of its probability, before sampling's temperature and top-p
    raw: bytes = b""  # the token's own bytes (data.tokenize.token_bytes)


@dataclass(frozen=True)
class TokenLogprob:
    """One output token's log probability and, when asked, the likeliest alternatives there."""

    chosen: TokenChoice
    top: list[TokenChoice]


@dataclass(frozen=True)
class Completion:
    text: str  # with tool calls: the text the model wrote before them
    finish_reason: FinishReason  # "stop": EOS or a stop sequence; "tool_calls": it called
    output_tokens: int
    logprobs: list[TokenLogprob] | None = None  # one per output token, when asked
    tool_calls: tuple[ToolCall, ...] = ()  # each with an id of its own (call_...)


@dataclass(frozen=True)
class GenerationResult:
    completions: list[Completion]
    prompt_tokens: int

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.completions)


@dataclass(frozen=True)
class Request:
    """One caller's request: what a mixed batch is made of."""

    target: ModelTarget
    prompt: Conversation
    params: GenerationParams


def refuse_streamed_logprobs(params: GenerationParams) -> None:
    """A stream's text deltas do not fall on token boundaries, so they cannot carry them."""
    if params.logprobs is not None:
        raise InvalidArgument("logprobs are not supported on a streamed answer", "logprobs")


# What a backend's ``generate_many`` gives each request: its result, or the error that is its own.
Outcome = GenerationResult | Exception


class TextStream(Iterator[str]):
    """Text deltas of one completion. Once they are all read, ``finish_reason`` and
    ``output_tokens`` say how it ended (None / 0 before then, or if the reader stops early).

    ``deltas`` returns whether it cut the text at a stop sequence; ``finish`` turns that into
    the finish reason and the completion's token count."""

    def __init__(
        self,
        deltas: Generator[str, None, bool],
        prompt_tokens: int,
        finish: Callable[[bool], tuple[FinishReason, int]],
    ) -> None:
        self._deltas = deltas
        self._finish = finish
        self.prompt_tokens = prompt_tokens
        self.output_tokens = 0
        self.finish_reason: FinishReason | None = None
        self.tool_calls: list[ToolCall] = []  # known once the deltas are read

    def __next__(self) -> str:
        try:
            return next(self._deltas)
        except StopIteration as end:
            self.finish_reason, self.output_tokens = self._finish(bool(end.value))
            raise

    def close(self) -> None:
        """Stop reading: the generation behind it ends."""
        self._deltas.close()


class InferenceBackend(Protocol):
    def generate(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> GenerationResult: ...

    def generate_batch(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]: ...

    def stream(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> TextStream:
        """Text deltas of one completion (``params.n`` is ignored)."""
        ...


def check_prompt(prompt: Conversation) -> None:
    """A prompt must end with a user turn: the model writes the next (model) turn."""
    if not prompt.is_prompt_only:
        raise InvalidArgument("the prompt must end with a user turn", "contents")


def cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """The text before the earliest stop sequence in it, and whether one was found."""
    positions = [i for i in (text.find(s) for s in stop) if i >= 0]
    if not positions:
        return text, False
    return text[: min(positions)], True


def held_back(text: str, stop: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop sequence.

    A stream must not emit them yet: the next piece may complete the stop sequence.
    """
    longest = 0
    for s in stop:
        for size in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:size]):
                longest = size
                break
    return longest


class BatchBackend:
    """A backend written in batches: one request is a batch of one, and every prompt is
    checked before any work starts. Subclasses implement ``_generate_checked``."""

    def generate(
        self, target: ModelTarget, prompt: Conversation, params: GenerationParams
    ) -> GenerationResult:
        return self.generate_batch(target, [prompt], params)[0]

    def generate_batch(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]:
        for prompt in prompts:
            check_prompt(prompt)
        if not prompts:
            return []
        return self._generate_checked(target, prompts, params)

    def _generate_checked(
        self, target: ModelTarget, prompts: list[Conversation], params: GenerationParams
    ) -> list[GenerationResult]:
        raise NotImplementedError
