"""Per-row controls for one ``model.generate`` call whose rows are different requests.

transformers applies one temperature, top-p, top-k, stop list and length to a whole batch. These
give each row its own, so requests with different sampling parameters share a batch:

- :class:`PerRowSampling` warps each row's scores with its own temperature, top-k and top-p (the
  same arithmetic as transformers' warpers), and makes a greedy row's distribution one-hot at its
  argmax, so sampling it gives exactly what greedy decoding would.
- :class:`RowBudget` ends a row at its own ``max_new_tokens``.
- :class:`StopOnText` ends a row once its text contains one of its stop sequences.

A row that ends keeps its place in the batch until the longest row ends (transformers pads it):
see ``mixed_batch``'s docstring for why rows are not swapped in mid-generation.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

DECODE_KWARGS = {"skip_special_tokens": True}


class PerRowSampling(LogitsProcessor):
    """Each row's own temperature (0: greedy), top-k (0: off) and top-p (1: off)."""

    def __init__(
        self, temperatures: list[float], top_ks: list[int], top_ps: list[float], device: Any
    ) -> None:
        self.greedy = torch.tensor([t == 0 for t in temperatures], device=device)
        self.temperatures = torch.tensor(
            [t if t > 0 else 1.0 for t in temperatures], device=device
        ).unsqueeze(1)
        self.top_ks = torch.tensor(top_ks, device=device)
        self.top_ps = torch.tensor(top_ps, device=device).unsqueeze(1)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        vocabulary = scores.shape[-1]
        best = scores.argmax(dim=-1, keepdim=True)
        one_hot = torch.full_like(scores, -float("inf")).scatter_(1, best, 0.0)
        warped = scores / self.temperatures.to(scores.dtype)
        # top-k: below the row's k-th largest score is out (k = vocabulary when off)
        ks = torch.where(self.top_ks > 0, self.top_ks.clamp(max=vocabulary), vocabulary)
        descending = warped.sort(dim=-1, descending=True).values
        kth = descending.gather(1, (ks - 1).unsqueeze(1))
        warped = warped.masked_fill(warped < kth, -float("inf"))
        # top-p: drop the least likely tokens whose total probability stays within 1 - top_p
        ascending, order = warped.sort(dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - self.top_ps)
        drop[:, -1] = False  # the most likely token always stays
        warped = warped.masked_fill(drop.scatter(1, order, drop), -float("inf"))
        return torch.where(self.greedy.unsqueeze(1), one_hot, warped)


class RowBudget(StoppingCriteria):
    """Ends each row once it has generated its own number of tokens."""

    def __init__(self, budgets: list[int], prompt_length: int) -> None:
        self.budgets = torch.tensor(budgets)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        generated = input_ids.shape[1] - self.prompt_length
        return self.budgets.to(input_ids.device) <= generated


class StopOnText(StoppingCriteria):
    """Ends each row once its generated text contains one of its stop sequences; remembers where."""

    def __init__(self, tokenizer: Any, stops: list[tuple[str, ...]], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stops = stops  # one tuple per row; an empty one never stops
        self.prompt_length = prompt_length
        # A character is at most 4 bytes and a byte-level token at least one byte, so a stop
        # sequence that ends in the newest token starts within this many tokens of the end.
        self.window = 4 * max(len(s) for stop in stops for s in stop) + 2
        self.stopped_at: dict[int, int] = {}  # row -> generated tokens when it stopped

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        length = input_ids.shape[1]
        start = max(self.prompt_length, length - self.window)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row, stop in enumerate(self.stops):
            if stop and row not in self.stopped_at:
                tail = self.tokenizer.decode(input_ids[row, start:].tolist(), **DECODE_KWARGS)
                if any(s in tail for s in stop):
                    self.stopped_at[row] = length - self.prompt_length
            done[row] = row in self.stopped_at
        return done
