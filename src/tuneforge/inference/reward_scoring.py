"""Scores from reward models: each conversation (ending with the model's turn) is rendered as
the reward method trained on it, and the score head reads it to one number; higher is better.

Reward models are kept apart from the generation cache: they load as sequence classifiers, not
causal LMs, and a server holds few of them. The least recently used of ``MAX_LOADED`` goes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import tokenize_conversation
from tuneforge.engine.hardware import detect_hardware
from tuneforge.inference.types import ModelTarget
from tuneforge.models.loading import load_reward_model, load_tokenizer

MAX_LOADED = 4
MAX_BATCH = 16  # conversations scored in one forward pass


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
            ids = [
                tokenize_conversation(c, loaded.tokenizer, loaded.max_length).input_ids
                for c in conversations
            ]
            scores: list[float] = []
            for start in range(0, len(ids), MAX_BATCH):
                scores += self._forward(loaded, ids[start : start + MAX_BATCH])
            return scores

    def _forward(self, loaded: LoadedScorer, rows: list[list[int]]) -> list[float]:
        # Right padding, as in training: the head reads each row's last token before the pad.
        width = max(map(len, rows))
        pad = loaded.tokenizer.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor(
            [[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device
        )
        with torch.inference_mode():
            logits = loaded.model(input_ids=input_ids, attention_mask=mask).logits
        return [float(x) for x in logits[:, 0].float().cpu()]

    def _load(self, target: ModelTarget) -> LoadedScorer:
        if target in self._loaded:
            self._loaded.move_to_end(target)
            return self._loaded[target]
        tokenizer = load_tokenizer(target.tokenizer_source)
        source = target.weights_path or target.base_source
        model = load_reward_model(source, tokenizer, dtype=self.dtype)
        if target.adapter_path is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, target.adapter_path)
        model.to(self.device).eval()
        config = model.config
        max_length = getattr(config, "max_position_embeddings", None) or 2048
        self._loaded[target] = LoadedScorer(model, tokenizer, max_length)
        while len(self._loaded) > MAX_LOADED:
            self._loaded.popitem(last=False)
        return self._loaded[target]
