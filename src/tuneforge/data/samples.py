"""Generated sample tasks for the demo and the tests: no download, fully deterministic.

* ``sentiment``: a label task. A review made of sentiment words and filler is classified as
  ``positive`` or ``negative``; exact match measures it.
* ``format``: a format-following task. ``key=value`` pairs are rewritten as ``value (key)``
  lines in a fixed order; token F1 / ROUGE-L measure it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

POSITIVE_WORDS = (
    "great", "wonderful", "superb", "delightful", "brilliant", "charming", "moving", "excellent",
    "joyful", "stunning", "lovely", "fantastic",
)  # fmt: skip
NEGATIVE_WORDS = (
    "awful", "boring", "dreadful", "terrible", "dull", "clumsy", "tedious", "horrible",
    "painful", "bland", "messy", "weak",
)  # fmt: skip
FILLER_WORDS = (
    "the", "movie", "plot", "acting", "film", "story", "was", "and", "really", "quite", "a",
    "script", "ending", "cast", "music", "scenes", "very", "overall", "this", "with",
)  # fmt: skip
FORMAT_KEYS = ("name", "city", "color", "fruit")
FORMAT_VALUES = (
    "alice", "bob", "carol", "dave", "paris", "rome", "oslo", "lima", "red", "blue", "green",
    "apple", "pear", "plum", "kiwi",
)  # fmt: skip

SENTIMENT_SYSTEM = "Classify the sentiment of the review as positive or negative."
FORMAT_SYSTEM = "Rewrite each key=value pair as 'value (key)', one per line, sorted by key."


def sentiment_example(rng: random.Random) -> dict[str, str]:
    label = rng.choice(("positive", "negative"))
    cue_words = POSITIVE_WORDS if label == "positive" else NEGATIVE_WORDS
    words = rng.choices(FILLER_WORDS, k=rng.randint(0, 5))
    for _ in range(rng.randint(2, 3)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(cue_words))
    return {"input": "review: " + " ".join(words) + " ->", "output": label}


def format_example(rng: random.Random) -> dict[str, str]:
    keys = rng.sample(FORMAT_KEYS, k=rng.randint(1, 3))
    pairs = {key: rng.choice(FORMAT_VALUES) for key in keys}
    prompt = "; ".join(f"{k}={v}" for k, v in pairs.items())
    answer = "\n".join(f"{pairs[k]} ({k})" for k in sorted(pairs))
    return {"input": prompt, "output": answer}


TASKS = {
    "sentiment": (sentiment_example, SENTIMENT_SYSTEM),
    "format": (format_example, FORMAT_SYSTEM),
}


def generate_pairs(
    task: str, count: int, seed: int, exclude: set[str] | None = None
) -> list[dict[str, str]]:
    """``count`` distinct examples (a duplicate would weigh one example more in training),
    none of whose inputs is in ``exclude``."""
    make, _ = TASKS[task]
    rng = random.Random(f"{task}-{seed}")
    pairs: dict[str, dict[str, str]] = {}
    while len(pairs) < count:
        pair = make(rng)
        if not exclude or pair["input"] not in exclude:
            pairs.setdefault(pair["input"], pair)
    return list(pairs.values())


def split_pairs(
    task: str, sizes: tuple[int, int, int], seed: int
) -> dict[str, list[dict[str, str]]]:
    """Train, validation and test examples; no input of one split appears in another, so the
    validation and test splits are truly held out."""
    seen: set[str] = set()
    splits = {}
    for offset, (split, size) in enumerate(
        zip(("train", "validation", "test"), sizes, strict=True)
    ):
        splits[split] = generate_pairs(task, size, seed + offset, exclude=seen)
        seen.update(pair["input"] for pair in splits[split])
    return splits


def to_openai_chat(pair: dict[str, str], system: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": pair["input"]},
            {"role": "assistant", "content": pair["output"]},
        ]
    }


def to_vertex(pair: dict[str, str], system: str) -> dict:
    return {
        "systemInstruction": {"parts": [{"text": system}]},
        "contents": [
            {"role": "user", "parts": [{"text": pair["input"]}]},
            {"role": "model", "parts": [{"text": pair["output"]}]},
        ],
    }


WRITERS = {"openai": to_openai_chat, "vertex": to_vertex}


def write_task(
    out_dir: Path,
    task: str = "sentiment",
    *,
    sizes: tuple[int, int, int] = (400, 50, 100),
    style: str = "openai",
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``train``/``validation``/``test`` JSONL files of one task; return their paths.
    No input appears in two splits (see :func:`split_pairs`)."""
    _, system = TASKS[task]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, pairs in split_pairs(task, sizes, seed).items():
        path = out_dir / f"{task}_{split}.jsonl"
        rows = (WRITERS[style](pair, system) for pair in pairs)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        paths[split] = path
    return paths


def corpus_lines(seed: int = 0) -> Iterator[str]:
    """Text the built-in tokenizer is trained on: the tasks' words, in shuffled sentences.

    It depends on the word lists only, not on how the tasks combine them, so the tiny model
    stays the same when a task changes.
    """
    rng = random.Random(f"corpus-{seed}")
    vocabulary = [*POSITIVE_WORDS, *NEGATIVE_WORDS, *FILLER_WORDS, *FORMAT_KEYS, *FORMAT_VALUES]
    for _, system in TASKS.values():
        yield system
    for _ in range(400):
        yield "review: " + " ".join(rng.choices(vocabulary, k=8)) + " ->"
        key, value = rng.choice(FORMAT_KEYS), rng.choice(FORMAT_VALUES)
        yield f"{key}={value}; {value} ({key})"
    yield "system user assistant model positive negative"


# --- preference data ---------------------------------------------------------------------------
# The sentiment task as preferences: the right label is chosen, the other one rejected.

OPPOSITE_LABEL = {"positive": "negative", "negative": "positive"}


def to_openai_preference(pair: dict[str, str], system: str) -> dict:
    return {
        "input": {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": pair["input"]},
            ]
        },
        "preferred_output": [{"role": "assistant", "content": pair["output"]}],
        "non_preferred_output": [{"role": "assistant", "content": pair["rejected"]}],
    }


def to_vertex_preference(pair: dict[str, str], system: str) -> dict:
    def completion(score: int, text: str) -> dict:
        return {"score": score, "completion": {"role": "model", "parts": [{"text": text}]}}

    return {
        "systemInstruction": {"parts": [{"text": system}]},
        "contents": [{"role": "user", "parts": [{"text": pair["input"]}]}],
        "completions": [
            completion(1, pair["output"]),
            completion(0, pair["rejected"]),
        ],
    }


def to_prompt_chosen_rejected(pair: dict[str, str], system: str) -> dict:
    return {
        "prompt": [
            {"role": "system", "content": system},
            {"role": "user", "content": pair["input"]},
        ],
        "chosen": pair["output"],
        "rejected": pair["rejected"],
    }


def malformed_label(label: str, rng: random.Random) -> str:
    """The label written wrong: with a prefix the answer should not have, cut short, or
    trailed by a stray word."""
    kind = rng.randrange(3)
    if kind == 0:
        return f"sentiment: {label}"
    if kind == 1:
        return label[: rng.randint(1, len(label) - 1)]
    return f"{label} {rng.choice(FILLER_WORDS)}"


PREFERENCE_WRITERS = {
    "openai": to_openai_preference,
    "vertex": to_vertex_preference,
    "prompt_chosen_rejected": to_prompt_chosen_rejected,
}


def write_preference_task(
    out_dir: Path,
    *,
    sizes: tuple[int, int, int] = (400, 50, 100),
    style: str = "openai",
    seed: int = 0,
    malformed: bool = False,
) -> dict[str, Path]:
    """Write the sentiment task's ``train``/``validation``/``test`` splits as preference JSONL.

    The prompts are those of :func:`write_task` with the same seed, so a model tuned on one
    can be measured on the other's held-out split. Each prompt's right label is preferred to
    the other label; with ``malformed``, each prompt also has a second pair, the right label
    preferred to the same label written wrong (see :func:`malformed_label`), as raters reject
    a garbled answer: a reward model that never saw one can score it above both labels.
    """
    _, system = TASKS["sentiment"]
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"malformed-{seed}")
    paths = {}
    for split, pairs in split_pairs("sentiment", sizes, seed).items():
        path = out_dir / f"sentiment_preference_{split}.jsonl"
        rejected = [{**pair, "rejected": OPPOSITE_LABEL[pair["output"]]} for pair in pairs]
        if malformed:
            rejected += [
                {**pair, "rejected": malformed_label(pair["output"], rng)} for pair in pairs
            ]
        rows = (PREFERENCE_WRITERS[style](pair, system) for pair in rejected)
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        paths[split] = path
    return paths
