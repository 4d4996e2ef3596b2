"""Small helpers the tests share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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


def random_lora_adapter(
    base_source: str | Path,
    folder: Path,
    seed: int = 0,
    *,
    randomized: str = "lora_B",
    scale: float = 0.5,
    **config,
) -> Path:
    """A LoRA adapter of ``base_source`` whose weights named with ``randomized`` are random
    (times ``scale``), saved as a tuned model's checkpoint is: it answers unlike its base,
    without training. ``config``: LoraConfig's fields (default rank 4 on every linear layer)."""
    from peft import LoraConfig, get_peft_model

    from tuneforge.models.loading import load_causal_lm, load_tokenizer

    config = {"r": 4, "target_modules": "all-linear", **config}
    model = get_peft_model(load_causal_lm(base_source), LoraConfig(task_type="CAUSAL_LM", **config))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if randomized in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    model.save_pretrained(folder)
    load_tokenizer(base_source).save_pretrained(folder)
    return folder


README = Path(__file__).resolve().parents[1] / "README.md"
NOT_RUN = "text"  # the info string of a README block that is not meant to run
FENCE = re.compile(
    r"(?:^<!-- test: (?P<marker>[\w-]+) -->\n)?^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```$",
    re.S | re.M,
)


@dataclass(frozen=True)
class ReadmeBlock:
    line: int  # of its opening fence
    info: str  # its info string: the language, or NOT_RUN
    marker: str | None  # the NAME of a ``<!-- test: NAME -->`` line right above it
    body: str


def readme_blocks(path: Path = README) -> list[ReadmeBlock]:
    """Every fenced code block of the README, in order."""
    text = path.read_text()
    return [
        ReadmeBlock(
            text.count("\n", 0, m.start("info")) + 1, m["info"].strip(), m["marker"], m["body"]
        )
        for m in FENCE.finditer(text)
    ]


def readme_block(marker: str) -> str:
    """The code block under ``<!-- test: MARKER -->`` in the README."""
    found = [block.body for block in readme_blocks() if block.marker == marker]
    assert len(found) == 1, f"README has {len(found)} blocks marked {marker}"
    return found[0]
