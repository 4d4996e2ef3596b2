"""The graders' JSON, checked once: OpenAI's shapes (``openai.types.graders``), each type a
pydantic model, told apart by ``type``. A mistake is a :class:`GraderError` naming its path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from tuneforge.errors import InvalidArgument
from tuneforge.graders.formula import check_formula

MAX_TEMPLATE_CHARS = 100_000
MAX_SOURCE_CHARS = 256_000  # OpenAI's limit for a python grader's source
MAX_SUB_GRADERS = 16
MAX_MODEL_NAME_CHARS = 512  # a judge or reward model: a model name of this server


class GraderError(InvalidArgument):
    """A grader that cannot run as given; ``param`` is its path in the request."""


class _Grader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256)


class StringCheck(_Grader):
    type: Literal["string_check"]
    input: str = Field(max_length=MAX_TEMPLATE_CHARS)
    reference: str = Field(max_length=MAX_TEMPLATE_CHARS)
    operation: Literal["eq", "ne", "like", "ilike"]


SimilarityMetric = Literal[
    "fuzzy_match", "bleu", "gleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5",
    "rouge_l", "meteor", "cosine",
]  # fmt: skip
UNAVAILABLE_METRICS = {
    "meteor": "needs NLTK's WordNet data, which tuneforge does not download",
    "cosine": "needs an embedding model, which this server does not serve",
}


class TextSimilarity(_Grader):
    type: Literal["text_similarity"]
    input: str = Field(max_length=MAX_TEMPLATE_CHARS)
    reference: str = Field(max_length=MAX_TEMPLATE_CHARS)
    evaluation_metric: SimilarityMetric
    pass_threshold: float | None = None  # OpenAI's evals field; the score is the reward

    @model_validator(mode="after")
    def _available(self) -> TextSimilarity:
        why = UNAVAILABLE_METRICS.get(self.evaluation_metric)
        if why:
            raise ValueError(f"evaluation_metric {self.evaluation_metric!r} {why}")
        return self


class Python(_Grader):
    type: Literal["python"]
    source: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS)
    image_tag: str | None = None  # OpenAI's runtime image; one Python here

    @model_validator(mode="after")
    def _compiles(self) -> Python:
        try:
            code = compile(self.source, f"<grader {self.name}>", "exec")
        except SyntaxError as err:
            raise ValueError(f"source does not compile: line {err.lineno}: {err.msg}") from None
        if "grade" not in code.co_names and "grade" not in code.co_varnames:
            raise ValueError("source must define grade(sample, item)")
        return self


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=MAX_TEMPLATE_CHARS)
    type: Literal["message"] | None = None


class ScoreModel(_Grader):
    type: Literal["score_model"]
    model: str = Field(min_length=1, max_length=MAX_MODEL_NAME_CHARS)
    input: list[Message] = Field(min_length=1, max_length=64)
    range: tuple[float, float] = (0.0, 1.0)
    sampling_params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _range(self) -> ScoreModel:
        low, high = self.range
        if not low < high:
            raise ValueError(f"range must be [low, high] with low < high, got {list(self.range)}")
        return self


class RewardModel(_Grader):
    """tuneforge's own: a reward model tuned on this server (method ``reward``) scores the
    prompt followed by the sample; its score, unbounded, is the reward."""

    type: Literal["reward_model"]
    model: str = Field(min_length=1, max_length=MAX_MODEL_NAME_CHARS)


class Multi(_Grader):
    type: Literal["multi"]
    graders: dict[str, SingleGrader] = Field(min_length=1, max_length=MAX_SUB_GRADERS)
    calculate_output: str = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _formula(self) -> Multi:
        check_formula(self.calculate_output, set(self.graders))
        return self


SingleGrader = Annotated[
    StringCheck | TextSimilarity | Python | ScoreModel | RewardModel, Field(discriminator="type")
]
Grader = Annotated[
    StringCheck | TextSimilarity | Python | ScoreModel | RewardModel | Multi,
    Field(discriminator="type"),
]
Multi.model_rebuild()
_GRADER = TypeAdapter(Grader)
GRADER_TYPES = (
    "string_check", "text_similarity", "python", "score_model", "reward_model", "multi"
)  # fmt: skip


def parse_grader(raw: Any, param: str = "grader") -> Grader:
    """The grader, or a GraderError naming the first problem by its path under ``param``."""
    if isinstance(raw, dict) and raw.get("type") not in GRADER_TYPES:
        raise GraderError(
            f"{param}.type: {raw.get('type')!r} is not one of the types {', '.join(GRADER_TYPES)}",
            f"{param}.type",
        )
    try:
        return _GRADER.validate_python(raw)
    except ValidationError as err:
        first = err.errors()[0]
        # A union's member name ("string_check") is no part of the request's path.
        parts = [str(p) for p in first["loc"] if str(p) not in GRADER_TYPES]
        path = ".".join([param, *parts])
        message = first["msg"].removeprefix("Value error, ")
        raise GraderError(f"{path}: {message}", path) from None


def with_paths(grader: Grader, param: str = "grader") -> Iterator[tuple[str, Grader]]:
    """The grader and each of a multi grader's own, with their paths in the request."""
    yield param, grader
    if isinstance(grader, Multi):
        for name, sub in grader.graders.items():
            yield f"{param}.graders.{name}", sub


def models_named(grader: Grader) -> dict[str, bool]:
    """The models the grader names (judges and reward models), each with whether it is a
    reward model (it scores rather than generates)."""
    return {
        each.model: isinstance(each, RewardModel)
        for _, each in with_paths(grader)
        if isinstance(each, ScoreModel | RewardModel)
    }
