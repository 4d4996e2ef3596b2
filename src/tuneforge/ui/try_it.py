"""The model page's "Try it" form: a conversation with a tuned model and its base side by side.

Nothing is kept on the server: the form carries the conversation so far as hidden fields, one
``history_user`` per user turn and, for each side, one ``history_<side>`` per answer, in order.
Each side sees the user's turns and its own earlier answers, as it would in a chat of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tuneforge.data.records import Conversation, Turn
from tuneforge.data.system_instruction import first_system_instruction
from tuneforge.errors import InvalidArgument, TuneforgeError
from tuneforge.inference.types import GenerationParams
from tuneforge.service import ModelInfo, Service
from tuneforge.store.models import TuningJob

TUNED, BASE = "tuned", "base"


@dataclass(frozen=True)
class Side:
    key: str  # TUNED or BASE: the suffix of its history fields
    label: str
    model: str  # the name generation is asked for


@dataclass(frozen=True)
class Exchange:
    user: str
    answers: dict[str, str]  # by side key


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    output_tokens: int
    seconds: float


@dataclass
class Chat:
    """What the form holds: the sides, the conversation so far and the sampling parameters."""

    sides: list[Side]
    history: list[Exchange] = field(default_factory=list)
    system: str = ""
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 64
    last: dict[str, Answer] = field(default_factory=dict)  # the newest answer of each side

    def params(self) -> GenerationParams:
        return GenerationParams(
            temperature=self.temperature, top_p=self.top_p, max_output_tokens=self.max_tokens
        )


def sides_of(info: ModelInfo) -> list[Side]:
    """A tuned model or checkpoint answers beside the base model its job tuned; a base
    model answers alone."""
    if info.job is None:
        return [Side(BASE, info.id, info.id)]
    return [
        Side(TUNED, f"tuned: {info.id}", info.id),
        Side(BASE, f"base: {info.job.base_model}", info.job.base_model),
    ]


def read_history(sides: list[Side], users: list[str], answers: dict[str, list[str]]) -> list:
    """The exchanges the form's hidden fields hold; InvalidArgument when they do not pair up."""
    if any(len(answers.get(side.key, [])) != len(users) for side in sides):
        raise InvalidArgument(
            "the conversation in the form is incomplete (every user turn needs each model's "
            "answer): start a new conversation",
            "history",
        )
    return [
        Exchange(user, {side.key: answers[side.key][i] for side in sides})
        for i, user in enumerate(users)
    ]


def conversation_for(side: Side, chat: Chat, prompt: str) -> Conversation:
    turns: list[Turn] = []
    for exchange in chat.history:
        turns += [Turn("user", exchange.user), Turn("model", exchange.answers[side.key])]
    turns.append(Turn("user", prompt))
    return Conversation(turns=tuple(turns), system=chat.system.strip() or None)


def answer(service: Service, project_id: str, chat: Chat, prompt: str) -> Chat:
    """Each side answers ``prompt`` after the conversation so far (through the service's
    generation, one side after the other); the exchange is added to the chat."""
    if not prompt.strip():
        raise InvalidArgument("write a prompt", "prompt")
    params = chat.params()
    answers: dict[str, Answer] = {}
    for side in chat.sides:
        started = time.perf_counter()
        conversation = conversation_for(side, chat, prompt)
        result = service.generation.generate(project_id, side.model, conversation, params)
        completion = result.completions[0]
        answers[side.key] = Answer(
            text=completion.text,
            finish_reason=completion.finish_reason,
            prompt_tokens=result.prompt_tokens,
            output_tokens=result.output_tokens,
            seconds=time.perf_counter() - started,
        )
    chat.history.append(Exchange(prompt, {key: a.text for key, a in answers.items()}))
    chat.last = answers
    return chat


def training_system_instruction(service: Service, project_id: str, job: TuningJob | None) -> str:
    """The system instruction of the job's training data (its first example that has one),
    or "" for a base model, a file without one, or a training file since deleted."""
    if job is None:
        return ""
    try:
        path = service.files.dataset_path(project_id, job.training_file, "training_file")
    except TuneforgeError:  # deleted since, or a remote file this machine cannot fetch now
        return ""
    return first_system_instruction(path) or ""
