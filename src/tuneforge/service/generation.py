"""Answers from base and tuned models, through the configured inference backend."""

from __future__ import annotations

from tuneforge.config import Settings
from tuneforge.data.media import media_limits
from tuneforge.data.records import Conversation
from tuneforge.errors import InvalidArgument
from tuneforge.inference.types import ModelTarget
from tuneforge.jobs.media_files import MediaReader, refuse_unreadable, resolved, target_media_kinds
from tuneforge.service.models import ModelService


class GenerationService:
    def __init__(self, settings: Settings, models: ModelService, backend=None) -> None:
        self.settings = settings
        self.models = models
        self._backend = backend
        self._scorer = None  # reward models' own cache, made on first use
        self._training_memory: dict[str, int] = {}

    @property
    def backend(self):
        """The inference backend, made on first use: serving loads torch, listing jobs does not."""
        if self._backend is None:
            from tuneforge.inference import make_backend

            self._backend = make_backend(self.settings)
            self._reserve(self._training_memory)
        return self._backend

    def serves_on_cpu(self) -> bool:
        """Whether a model is loaded on the CPU for serving now (it then takes a share of the
        cores from the training runners); never makes the backend."""
        serves = getattr(self._backend, "serves_on_cpu", None)
        return bool(serves and serves())

    def reserve_for_training(self, planned: dict[str, int]) -> None:
        """The memory the running jobs planned for, per device: the inference's cache of
        loaded models counts it against its budget (now, or once the backend is made)."""
        self._training_memory = planned
        if self._backend is not None:
            self._reserve(planned)

    def _reserve(self, planned: dict[str, int]) -> None:
        reserve = getattr(self._backend, "reserve_for_training", None)
        if reserve is not None:
            reserve(planned)

    def generate(self, project_id: str, model: str, prompt: Conversation, params):
        self._refuse_oversized(prompt)
        target = self.models.generation_target(project_id, model)
        prompt = self._with_media(project_id, target, prompt)
        return self.backend.generate(target, prompt, params)

    def stream(self, project_id: str, model: str, prompt: Conversation, params):
        self._refuse_oversized(prompt)
        target = self.models.generation_target(project_id, model)
        prompt = self._with_media(project_id, target, prompt)
        return self.backend.stream(target, prompt, params)

    def prompt_tokens(self, project_id: str, model: str, prompt: Conversation):
        """The prompt's tokens per turn (``inference.token_count.TurnTokens``), as ``model``
        would read them in ``generate``."""
        from tuneforge.inference.token_count import prompt_tokens

        self._refuse_oversized(prompt)
        target = self.models.generation_target(project_id, model)
        return prompt_tokens(target, self._with_media(project_id, target, prompt))

    def score(self, project_id: str, model: str, conversations: list[Conversation]) -> list[float]:
        """A reward model's score of each conversation (each ends with the model's turn)."""
        for conversation in conversations:
            self._refuse_oversized(conversation)
        target = self.models.scoring_target(project_id, model)
        conversations = [self._with_media(project_id, target, c) for c in conversations]
        if self._scorer is None:
            from tuneforge.inference.reward_scoring import RewardScorer

            self._scorer = RewardScorer()
        return self._scorer.score(target, conversations)

    def _with_media(self, project_id: str, target: ModelTarget, prompt: Conversation):
        """The prompt with its media parts' bytes read and checked (a 400 naming the part when
        one cannot be read, breaks a limit, or is of a kind the model cannot read): what the
        backend receives. A prompt without media is returned as it is."""
        if not prompt.media:
            return prompt
        reader = MediaReader(self.models.db, self.settings, project_id)
        prompt = resolved(prompt, reader, media_limits(self.settings), holder="a request")
        refuse_unreadable(prompt, target.name, target_media_kinds(target))
        return prompt

    def _refuse_oversized(self, prompt: Conversation) -> None:
        """By its size in bytes, before any model is loaded: tokenizing megabytes of text
        takes minutes, only to find it longer than any model reads."""
        limit = self.settings.max_prompt_bytes
        size = prompt.text_bytes()
        if size > limit:
            raise InvalidArgument(
                f"the prompt is {size:,} bytes of text; this server reads at most {limit:,} "
                "(setting TUNEFORGE_MAX_PROMPT_BYTES)",
                "contents",
            )
