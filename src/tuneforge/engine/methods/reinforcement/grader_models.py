"""The models a reinforcement job's grader names, loaded in the trainer's own process (the job
runs apart from the server): a ``score_model`` grader's judge answers with greedy decoding, a
``reward_model`` grader's reward model scores the prompt followed by the sampled answer.

All are loaded before training starts, so a model that cannot load fails the job at once and
their weights count in the job's memory plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from tuneforge.config import Settings
from tuneforge.data.tokenize import prompt_ids, text_conversation
from tuneforge.engine.errors import TuningError
from tuneforge.engine.hardware import Hardware
from tuneforge.engine.spec import GraderModelSource
from tuneforge.engine.training import load_model, tuned_kind
from tuneforge.graders import Grader
from tuneforge.graders.spec import models_named
from tuneforge.models.loading import load_reward_model, load_tokenizer
from tuneforge.models.resolve import resolve_base_model
from tuneforge.models.reward_scores import longest_input, score_conversations

JUDGE_MAX_TOKENS = 64  # what a judge writes unless its sampling_params say otherwise


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any


class GraderModels:
    def __init__(
        self,
        grader: Grader,
        sources: dict[str, GraderModelSource],
        settings: Settings,
        hardware: Hardware,
    ) -> None:
        self.device = hardware.device
        self.loaded: dict[str, LoadedModel] = {}
        for name, scores_only in models_named(grader).items():
            source = sources.get(name)
            if source is None or source.scores_only != scores_only:
                kind = "reward model" if scores_only else "judge"
                raise TuningError(
                    f"the grader's {kind} {name!r} was not resolved for this run",
                    code="invalid_grader",
                )
            if source.scores_only:
                self.loaded[name] = _load_reward_model(source, settings, hardware)
            else:
                base = load_model(source.base_model, settings, hardware, tuned=source.tuned)
                self.loaded[name] = LoadedModel(base.model.to(self.device), base.tokenizer)
            self.loaded[name].model.eval().requires_grad_(False)

    @property
    def weight_bytes(self) -> int:
        return sum(
            p.numel() * p.element_size()
            for each in self.loaded.values()
            for p in each.model.parameters()
        )

    def judge(self, model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
        judge = self.loaded[model]
        ids = prompt_ids(text_conversation(messages), judge.tokenizer)
        input_ids = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            output = judge.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=int(params.get("max_completions_tokens", JUDGE_MAX_TOKENS)),
                do_sample=False,
                use_cache=True,
                pad_token_id=judge.tokenizer.pad_token_id,
            )
        return judge.tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True)

    def reward_score(self, model: str, prompt: list[dict[str, str]], sample: str) -> float:
        scorer = self.loaded[model]
        answered = text_conversation([*prompt, {"role": "assistant", "content": sample}])
        (score,) = score_conversations(
            scorer.model, scorer.tokenizer, [answered], max_length=longest_input(scorer.model)
        )
        return score


def _load_reward_model(
    source: GraderModelSource, settings: Settings, hardware: Hardware
) -> LoadedModel:
    base = resolve_base_model(source.base_model, settings).source
    tokenizer = load_tokenizer(base)
    kind = tuned_kind(source.tuned) if source.tuned else None
    model = load_reward_model(
        source.tuned if kind == "weights" else base,
        tokenizer,
        dtype=hardware.dtype,
        adapter=source.tuned if kind == "adapter" else None,
    )
    return LoadedModel(model.to(hardware.device), tokenizer)
