"""Scores from reward models, for the server: loaded models are kept and shared between
requests (models/reward_scores.py does the scoring itself); higher is better.

Reward models are kept apart from the generation cache: they load as sequence classifiers, not
causal LMs, and a server holds few of them. The least recently used of ``MAX_LOADED`` goes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tuneforge.data.records import Conversation
from tuneforge.engine.hardware import detect_hardware
from tuneforge.inference.types import ModelTarget
from tuneforge.models.loading import load_reward_model, load_tokenizer
from tuneforge.models.reward_scores import longest_input, score_conversations

MAX_LOADED = 4


@dataclass
class LoadedScorer:
    model: Any
    tokenizer: Any
    max_length: int


class RewardScorer:
    def __init__(self) -> None:
        hardware = detect_hardware()
        self.device, self.dtype = hardware.device, hardware.dtype
        self._loaded: OrderedDict[ModelTarget, LoadedScorer] = OrderedDict()
        self._lock = threading.Lock()  # one forward pass at a time; loading under it too

    def score(self, target: ModelTarget, conversations: list[Conversation]) -> list[float]:
        with self._lock:
            loaded = self._load(target)
            return score_conversations(
                loaded.model, loaded.tokenizer, conversations, max_length=loaded.max_length
            )

    def _load(self, target: ModelTarget) -> LoadedScorer:
        if target in self._loaded:
            self._loaded.move_to_end(target)
            return self._loaded[target]
        tokenizer = load_tokenizer(target.tokenizer_source)
        source = target.weights_path or target.base_source
        model = load_reward_model(source, tokenizer, dtype=self.dtype, adapter=target.adapter_path)
        model.to(self.device).eval()
        self._loaded[target] = LoadedScorer(model, tokenizer, longest_input(model))
        while len(self._loaded) > MAX_LOADED:
            self._loaded.popitem(last=False)
        return self._loaded[target]
