"""Google's generateContent shapes: the request the ``google-genai`` SDK sends to a model or an
endpoint, and the answer it reads back. Vertex serves them today; the Gemini API's
``tunedModels/...:generateContent`` takes the same ones."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tuneforge.api.google import GoogleRequest, GoogleResponse
from tuneforge.data.checks import LineIssues
from tuneforge.data.records import Conversation
from tuneforge.data.turns import vertex_contents
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import GenerationParams, GenerationResult

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS"}
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
}


class GenerationConfig(GoogleRequest):
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None  # a number in Vertex's API; a whole one is expected
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None
    candidate_count: int | None = None

    def to_params(self) -> GenerationParams:
        given = {
            "temperature": DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
            "top_p": self.top_p,
            "top_k": int(self.top_k) if self.top_k is not None else None,
            "max_output_tokens": self.max_output_tokens,
            "stop": tuple(self.stop_sequences) if self.stop_sequences else None,
            "seed": self.seed,
            "n": self.candidate_count,
        }
        return GenerationParams(**{k: v for k, v in given.items() if v is not None})


class GenerateContentRequest(GoogleRequest):
    # Read as JSON by the data layer's reader, so a request and a dataset line get the same
    # checks and the same field paths in their errors.
    contents: list[Any] = Field(default_factory=list)
    system_instruction: Any = None
    generation_config: GenerationConfig = Field(default_factory=GenerationConfig)

    def conversation(self) -> Conversation:
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
        prompt = vertex_contents(raw, issues, ending="any")
        if prompt is None:
            first = next(p for p in issues.problems if p.severity == "error")
            raise InvalidArgument(f"{first.field}: {first.message}", first.field)
        if not prompt.is_prompt_only:
            last = f"contents[{len(contents) - 1}]"
            raise InvalidArgument(
                f"{last}: the contents must end with a user turn, which the model answers", last
            )
        return prompt


class Part(GoogleResponse):
    text: str


class Content(GoogleResponse):
    role: str
    parts: list[Part]


class Candidate(GoogleResponse):
    index: int
    content: Content
    finish_reason: str | None = None  # a streamed answer's last chunk only


class UsageMetadata(GoogleResponse):
    prompt_token_count: int
    candidates_token_count: int
    total_token_count: int


class GenerateContentResponse(GoogleResponse):
    candidates: list[Candidate]
    usage_metadata: UsageMetadata | None = None  # a streamed answer's last chunk only
    model_version: str

    @classmethod
    def chunk(
        cls,
        text: str,
        model_version: str,
        finish_reason: str | None = None,
        usage: tuple[int, int] | None = None,
    ) -> GenerateContentResponse:
        """One chunk of a streamed answer: its text delta; the last one also says how it ended
        and the token counts (prompt, output)."""
        return cls(
            candidates=[
                Candidate(
                    index=0,
                    content=Content(role="model", parts=[Part(text=text)]),
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
        return cls(
            candidates=[
                Candidate(
                    index=index,
                    content=Content(role="model", parts=[Part(text=completion.text)]),
                    finish_reason=FINISH_REASONS[completion.finish_reason],
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
