"""Google's generateContent shapes: the request the ``google-genai`` SDK sends to a model or an
endpoint, and the answer it reads back. Vertex serves them today; the Gemini API's
``tunedModels/...:generateContent`` takes the same ones."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from tuneforge.api.google import GoogleRequest, GoogleResponse
from tuneforge.data.checks import LineIssues
from tuneforge.data.json_schema import check_depth, openapi_to_json_schema
from tuneforge.data.records import Conversation, Function, ToolCall
from tuneforge.data.tools import vertex_tools
from tuneforge.data.turns import vertex_contents
from tuneforge.errors import InvalidArgument
from tuneforge.inference.structured import grammar_for, schema_text
from tuneforge.inference.token_count import TurnTokens
from tuneforge.inference.types import (
    MAX_TOP_LOGPROBS,
    GenerationParams,
    GenerationResult,
    TokenChoice,
    TokenLogprob,
)

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
# functionCallingConfig.mode, by name or by the number the legacy SDK sends, as tool_choice:
# ANY calls, AUTO lets the model choose, NONE hides the tools. VALIDATED (the model chooses, and
# Gemini holds its calls to their schemas) is served as AUTO: calls come back only when they
# parse, but their arguments are not held to the schema unless the mode is ANY.
CALLING_MODES = {
    "MODE_UNSPECIFIED": "auto", "AUTO": "auto", "ANY": "required", "NONE": "none",
    "VALIDATED": "auto", 0: "auto", 1: "auto", 2: "required", 3: "none", 4: "auto",
}  # fmt: skip
JSON_MIME_TYPE = "application/json"
MAX_LABELS = 64  # Vertex's limit on a request's labels
MAX_CANDIDATES = 8  # Vertex's limit on candidateCount
TEXT_ONLY = "tuneforge answers with text from the model alone"
# Safety settings that ask for no filtering, the only kind tuneforge (which filters nothing) meets.
NO_FILTERING = {"OFF", "BLOCK_NONE", "HARM_BLOCK_THRESHOLD_UNSPECIFIED"}
# google.ai.generativelanguage's HarmBlockThreshold numbers, as the legacy SDK sends them.
THRESHOLD_NUMBERS = dict(
    enumerate(
        ["HARM_BLOCK_THRESHOLD_UNSPECIFIED", "BLOCK_LOW_AND_ABOVE", "BLOCK_MEDIUM_AND_ABOVE",
         "BLOCK_ONLY_HIGH", "BLOCK_NONE", "OFF"]
    )
)  # fmt: skip
# google.ai.generativelanguage's Candidate.FinishReason numbers, for ``enum-encoding=int``.
FINISH_REASON_NUMBERS = {"STOP": 1, "MAX_TOKENS": 2}
DEFAULT_TEMPERATURE = 1.0  # Google's APIs sample unless told otherwise; 0 is greedy
# tuneforge's generation parameter names → generateContent's, for error messages.
GENERATION_NAMES = {
    "max_output_tokens": "generationConfig.maxOutputTokens",
    "top_p": "generationConfig.topP",
    "top_k": "generationConfig.topK",
    "temperature": "generationConfig.temperature",
    "n": "generationConfig.candidateCount",
    "logprobs": "generationConfig.responseLogprobs",
    "stop": "generationConfig.stopSequences",
    "json_schema": "generationConfig.responseSchema",
    "tool_choice": "toolConfig",
}


class StrictGoogleRequest(GoogleRequest):
    """A generateContent body: an unknown field is refused, as Google refuses it ("Unknown
    name"), and a known one asking for what tuneforge does not do is refused naming it
    (``refusals``), never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    def refusals(self) -> list[tuple[str, object, str]]:
        """(field, whether this request asks for it (truthy), why it is refused)."""
        return []

    def refuse_unsupported(self) -> None:
        for name, asked, why in self.refusals():
            if asked:
                raise InvalidArgument(f"{name}: {why}", name)


class GenerationConfig(StrictGoogleRequest):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: float | None = Field(default=None, ge=1)  # a number in Vertex's API; a whole one
    max_output_tokens: int | None = Field(default=None, ge=1)
    stop_sequences: list[str] | None = None
    seed: int | None = None
    candidate_count: int | None = Field(default=None, ge=1, le=MAX_CANDIDATES)
    # Accepted only with the value that asks for nothing more.
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_mime_type: str | None = None
    response_modalities: list[str] | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    audio_timestamp: bool | None = None
    enable_affective_dialog: bool | None = None
    # Accepted: they change nothing about the answer.
    media_resolution: str | None = None
    routing_config: dict[str, Any] | None = None
    model_selection_config: dict[str, Any] | None = None
    # Structured output, with responseMimeType "application/json".
    response_schema: dict[str, Any] | None = None  # Vertex's OpenAPI subset
    response_json_schema: dict[str, Any] | None = None  # plain JSON Schema
    # Refused whenever given.
    thinking_config: Any = None
    speech_config: Any = None

    def refusals(self) -> list[tuple[str, object, str]]:
        prefix = "generationConfig."
        return [
            (prefix + "presencePenalty", self.presence_penalty,
             "penalties are not supported; send 0"),
            (prefix + "frequencyPenalty", self.frequency_penalty,
             "penalties are not supported; send 0"),
            (prefix + "responseMimeType",
             self.response_mime_type not in (None, "text/plain", JSON_MIME_TYPE),
             f'only "text/plain" and "{JSON_MIME_TYPE}" are supported'),
            (prefix + "responseSchema",
             self.response_schema is not None and self.response_mime_type != JSON_MIME_TYPE,
             f'a schema needs responseMimeType "{JSON_MIME_TYPE}"'),
            (prefix + "responseJsonSchema",
             self.response_json_schema is not None and self.response_mime_type != JSON_MIME_TYPE,
             f'a schema needs responseMimeType "{JSON_MIME_TYPE}"'),
            (prefix + "responseJsonSchema",
             self.response_json_schema is not None and self.response_schema is not None,
             "give responseSchema or responseJsonSchema, not both"),
            (prefix + "responseModalities", self.response_modalities not in (None, ["TEXT"]),
             "only TEXT is supported"),
            (prefix + "logprobs", self.logprobs is not None and not self.response_logprobs,
             "logprobs needs responseLogprobs: true"),
            (prefix + "thinkingConfig", self.thinking_config is not None,
             "thinking is not supported"),
            (prefix + "speechConfig", self.speech_config is not None, "speech is not supported"),
            (prefix + "audioTimestamp", self.audio_timestamp, "audio is not supported"),
            (prefix + "enableAffectiveDialog", self.enable_affective_dialog,
             "affective dialog is not supported"),
        ]  # fmt: skip

    def to_params(self) -> GenerationParams:
        given = {
            "temperature": DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            "top_p": self.top_p,
            "top_k": int(self.top_k) if self.top_k is not None else None,
            "max_output_tokens": self.max_output_tokens,
            "stop": tuple(self.stop_sequences) if self.stop_sequences else None,
            "seed": self.seed,
            "n": self.candidate_count,
            "logprobs": (self.logprobs or 0) if self.response_logprobs else None,
            "json_schema": self._json_schema(),
        }
        return GenerationParams(**{k: v for k, v in given.items() if v is not None})

    def _json_schema(self) -> str | None:
        """The JSON Schema the answer must match (canonical text), checked to compile."""
        if self.response_mime_type != JSON_MIME_TYPE:
            return None
        if self.response_json_schema is not None:
            schema, field = self.response_json_schema, "generationConfig.responseJsonSchema"
        elif self.response_schema is not None:
            field = "generationConfig.responseSchema"
            check_depth(self.response_schema, field)  # before converting it recursively
            schema = openapi_to_json_schema(self.response_schema)
        else:
            schema, field = {}, "generationConfig.responseMimeType"  # any JSON value
        text = schema_text(schema, field)
        grammar_for(text, field)
        return text


class SafetySetting(GoogleRequest):
    """A category and the threshold to block it at; the legacy SDK sends both as numbers."""

    category: str | int | None = None
    threshold: str | int | None = None
    method: str | int | None = None

    @field_validator("threshold")
    @classmethod
    def _threshold_name(cls, value: str | int | None) -> str | int | None:
        return THRESHOLD_NUMBERS.get(value, value) if isinstance(value, int) else value


class GenerateContentRequest(StrictGoogleRequest):
    # Read as JSON by the data layer's reader, so a request and a dataset line get the same
    # checks and the same field paths in their errors.
    contents: list[Any] = Field(default_factory=list)
    system_instruction: Any = None
    generation_config: GenerationConfig = Field(default_factory=GenerationConfig)
    # Accepted: they change nothing about the answer.
    labels: dict[str, str] | None = Field(default=None, max_length=MAX_LABELS)
    # Accepted only with the value that asks for nothing more.
    safety_settings: list[SafetySetting] | None = None
    # Function calling: tools[].functionDeclarations, and toolConfig.functionCallingConfig.
    tools: list[Any] | None = None
    tool_config: ToolConfig | None = None
    # Refused whenever given.
    cached_content: str | None = None

    def refusals(self) -> list[tuple[str, object, str]]:
        filtering = [
            setting.threshold
            for setting in self.safety_settings or []
            if setting.threshold not in NO_FILTERING
        ]
        return [
            ("toolConfig.retrievalConfig",
             self.tool_config is not None and self.tool_config.retrieval_config is not None,
             "retrieval is not supported: tuneforge calls only the declared functions"),
            ("generationConfig.responseMimeType",
             self.generation_config.response_mime_type == JSON_MIME_TYPE and self.calling_mode()
             != "none" and bool(self.tools),
             "an answer held to JSON could make no function call; send JSON mode or tools"),
            ("cachedContent", self.cached_content is not None,
             "cached contents are not supported; send the contents themselves"),
            ("safetySettings", filtering,
             f"tuneforge filters nothing: only thresholds {sorted(NO_FILTERING)} are accepted; "
             f"found {filtering[0] if filtering else None!r}"),
        ]  # fmt: skip

    def refuse_unsupported(self) -> None:
        super().refuse_unsupported()
        self.generation_config.refuse_unsupported()

    def calling_mode(self) -> str:
        """functionCallingConfig.mode as tool_choice: "auto", "required" or "none"."""
        config = self.tool_config.function_calling_config if self.tool_config else None
        mode = config.mode if config is not None and config.mode is not None else "AUTO"
        if mode not in CALLING_MODES:
            field = "toolConfig.functionCallingConfig.mode"
            raise InvalidArgument(
                f'{field}: expected "AUTO", "ANY", "NONE" or "VALIDATED"; found {mode!r}', field
            )
        return CALLING_MODES[mode]

    def tool_params(self) -> dict[str, Any]:
        """The calling mode in GenerationParams' names."""
        mode = self.calling_mode()
        config = self.tool_config.function_calling_config if self.tool_config else None
        allowed = tuple(config.allowed_function_names or ()) if config else ()
        field = "toolConfig.functionCallingConfig.allowedFunctionNames"
        if allowed and mode != "required":
            raise InvalidArgument(f"{field}: only with mode ANY", field)
        if mode == "required" and not self.tools:
            raise InvalidArgument("toolConfig: mode ANY needs tools to call", "toolConfig")
        declared = {f.name for f in self.functions}
        if unknown := [name for name in allowed if name not in declared]:
            raise InvalidArgument(f"{field}: {unknown[0]!r} is not declared in tools", field)
        return {"tool_choice": "required", "tool_names": allowed} if mode == "required" else {}

    @cached_property
    def functions(self) -> tuple[Function, ...]:
        """The request's declared functions, each checked (once: both the prompt and the
        calling mode read them)."""
        if not self.tools:
            return ()
        issues = LineIssues(line=0)
        functions = vertex_tools(self.tools, "tools", issues)
        raise_first(issues)
        return functions

    def conversation(self, *, answerable: bool = True) -> Conversation:
        """The prompt; ``answerable``: it must end with a user turn (countTokens counts any)."""
        if not self.contents:
            raise InvalidArgument("contents: give at least one user content", "contents")
        # Vertex lets the role be left out, meaning "user".
        contents = [
            {**content, "role": "user"}
            if isinstance(content, dict) and content.get("role") is None
            else content
            for content in self.contents
        ]
        raw: dict[str, Any] = {"contents": contents}
        if self.system_instruction is not None:
            raw["systemInstruction"] = self.system_instruction
        issues = LineIssues(line=0)
        prompt = vertex_contents(raw, issues, ending="any", tools=self.functions)
        raise_first(issues)
        assert prompt is not None  # no error was found
        if self.calling_mode() == "none":  # the model is not shown the tools
            prompt = replace(prompt, tools=())
        if answerable and not prompt.is_prompt_only:
            last = f"contents[{len(contents) - 1}]"
            raise InvalidArgument(
                f"{last}: the contents must end with a user turn, which the model answers", last
            )
        return prompt


def raise_first(issues: LineIssues) -> None:
    """An InvalidArgument naming the first error among ``issues``, if any."""
    first = issues.first_error
    if first is not None:
        raise InvalidArgument(f"{first.field}: {first.message}", first.field)


class FunctionCallingConfig(StrictGoogleRequest):
    mode: str | int | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(StrictGoogleRequest):
    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: Any = None


class FunctionCall(GoogleResponse):
    name: str
    args: dict[str, Any]


class Part(GoogleResponse):
    text: str | None = None
    function_call: FunctionCall | None = None


class Content(GoogleResponse):
    role: str
    parts: list[Part]

    @classmethod
    def of(cls, text: str, calls: Sequence[ToolCall] = ()) -> Content:
        """The model's turn: its text, then a functionCall part per call."""
        parts = [Part(text=text)] if text or not calls else []
        parts += [
            Part(function_call=FunctionCall(name=c.name, args=json.loads(c.arguments)))
            for c in calls
        ]
        return cls(role="model", parts=parts)


class LogprobsCandidate(GoogleResponse):
    token: str
    token_id: int
    log_probability: float

    @classmethod
    def of(cls, choice: TokenChoice) -> LogprobsCandidate:
        return cls(token=choice.text, token_id=choice.token_id, log_probability=choice.logprob)


class TopCandidates(GoogleResponse):
    candidates: list[LogprobsCandidate]


class LogprobsResult(GoogleResponse):
    top_candidates: list[TopCandidates]
    chosen_candidates: list[LogprobsCandidate]

    @classmethod
    def of(cls, logprobs: list[TokenLogprob]) -> LogprobsResult:
        return cls(
            top_candidates=[
                TopCandidates(candidates=[LogprobsCandidate.of(c) for c in token.top])
                for token in logprobs
            ],
            chosen_candidates=[LogprobsCandidate.of(token.chosen) for token in logprobs],
        )


class Candidate(GoogleResponse):
    index: int
    content: Content
    finish_reason: str | None = None  # a streamed answer's last chunk only
    avg_logprobs: float | None = None  # with responseLogprobs
    logprobs_result: LogprobsResult | None = None
    # tuneforge filters nothing, so it rates nothing: always empty (code that loops over a
    # candidate's ratings, as Gemini's samples do, finds none).
    safety_ratings: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class ResponseIdentity:
    """What every chunk of one answer shares: its id and when it was made."""

    response_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    create_time: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat().replace("+00:00", "Z")
    )


class UsageMetadata(GoogleResponse):
    prompt_token_count: int
    candidates_token_count: int
    total_token_count: int


class GenerateContentResponse(GoogleResponse):
    candidates: list[Candidate]
    usage_metadata: UsageMetadata | None = None  # a streamed answer's last chunk only
    model_version: str
    create_time: str
    response_id: str

    @classmethod
    def chunk(
        cls,
        text: str,
        model_version: str,
        identity: ResponseIdentity,
        finish_reason: str | None = None,
        usage: tuple[int, int] | None = None,
        calls: Sequence[ToolCall] = (),
    ) -> GenerateContentResponse:
        """One chunk of a streamed answer: its text delta; the last one also holds the calls
        and says how it ended and the token counts (prompt, output)."""
        return cls(
            create_time=identity.create_time,
            response_id=identity.response_id,
            candidates=[
                Candidate(
                    index=0,
                    content=Content.of(text, calls),
                    finish_reason=FINISH_REASONS[finish_reason] if finish_reason else None,
                )
            ],
            usage_metadata=(
                UsageMetadata(
                    prompt_token_count=usage[0],
                    candidates_token_count=usage[1],
                    total_token_count=usage[0] + usage[1],
                )
                if usage
                else None
            ),
            model_version=model_version,
        )

    def to_json(self, int_enums: bool = False) -> dict[str, Any]:
        """The wire form; ``int_enums`` writes finishReason as its number, as a request with
        ``$alt=json;enum-encoding=int`` (the legacy google-generativeai SDK) asks."""
        body = self.model_dump(exclude_none=True)
        if int_enums:
            for candidate in body["candidates"]:
                if "finishReason" in candidate:
                    candidate["finishReason"] = FINISH_REASON_NUMBERS[candidate["finishReason"]]
        return body

    @classmethod
    def of(cls, result: GenerationResult, model_version: str) -> GenerateContentResponse:
        identity = ResponseIdentity()
        return cls(
            create_time=identity.create_time,
            response_id=identity.response_id,
            candidates=[
                Candidate(
                    index=index,
                    content=Content.of(completion.text, completion.tool_calls),
                    finish_reason=FINISH_REASONS[completion.finish_reason],
                    **_logprobs_fields(completion.logprobs),
                )
                for index, completion in enumerate(result.completions)
            ],
            usage_metadata=UsageMetadata(
                prompt_token_count=result.prompt_tokens,
                candidates_token_count=result.output_tokens,
                total_token_count=result.prompt_tokens + result.output_tokens,
            ),
            model_version=model_version,
        )


def _logprobs_fields(logprobs: list[TokenLogprob] | None) -> dict[str, Any]:
    if logprobs is None:
        return {}
    chosen = [token.chosen.logprob for token in logprobs]
    return {
        "avg_logprobs": sum(chosen) / len(chosen) if chosen else 0.0,
        "logprobs_result": LogprobsResult.of(logprobs),
    }


# --- countTokens and computeTokens ----------------------------------------------------------


class ModalityTokenCount(GoogleResponse):
    modality: str = "TEXT"
    token_count: int


class CountTokensResponse(GoogleResponse):
    """``:countTokens``: the tokens of the request's prompt, chat template included, as
    ``usageMetadata.promptTokenCount`` counts them."""

    total_tokens: int
    prompt_tokens_details: list[ModalityTokenCount]

    @classmethod
    def of(cls, turns: list[TurnTokens]) -> CountTokensResponse:
        total = sum(len(turn.ids) for turn in turns)
        return cls(
            total_tokens=total, prompt_tokens_details=[ModalityTokenCount(token_count=total)]
        )


class TokensInfo(GoogleResponse):
    tokens: list[str]  # each token's bytes, base64 (proto3 JSON's bytes)
    token_ids: list[str]  # int64, a string in proto3 JSON
    role: str


class ComputeTokensResponse(GoogleResponse):
    """``:computeTokens``: a TokensInfo per content, through its closing markup; the system
    instruction counts with the first, the generation prompt with the last."""

    tokens_info: list[TokensInfo]

    @classmethod
    def of(cls, turns: list[TurnTokens]) -> ComputeTokensResponse:
        return cls(
            tokens_info=[
                TokensInfo(
                    tokens=[base64.b64encode(piece).decode("ascii") for piece in turn.pieces],
                    token_ids=[str(token_id) for token_id in turn.ids],
                    role=turn.role,
                )
                for turn in turns
            ]
        )
