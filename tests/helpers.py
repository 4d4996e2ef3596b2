"""Small helpers the tests share."""

from __future__ import annotations

import torch

from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_ids


def greedy_answers(model, tokenizer, examples: list[Conversation], max_new_tokens: int = 4):
    """Greedy answers of ``model`` to the prompts of ``examples`` (their last turn removed)."""
    answers = []
    model.eval()
    for example in examples:
        prompt = Conversation(turns=example.turns[:-1], system=example.system)
        ids = prompt_ids(prompt, tokenizer)
        with torch.no_grad():
            output = model.generate(
                input_ids=torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False
            )
        answers.append(tokenizer.decode(output[0][len(ids) :], skip_special_tokens=True).strip())
    return answers


def exact_match(model, tokenizer, examples: list[Conversation]) -> float:
    answers = greedy_answers(model, tokenizer, examples)
    expected = [e.turns[-1].text for e in examples]
    return sum(a == b for a, b in zip(answers, expected, strict=True)) / len(examples)
