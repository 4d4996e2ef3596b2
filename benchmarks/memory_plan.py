"""The memory plan against the measured peak: what ``engine/memory_plan.py`` estimates for a run,
next to the most memory the run's process really held.

A randomly initialised Qwen2-shaped model of about 100M parameters (32k vocabulary, tied
embeddings: the shape of the model issue 20 was measured on) is trained for a few steps through
tuneforge's engine (``run_tuning``, so the real trainer, collator and plan), with LoRA and with
all weights, at two batch sizes, and once under a memory limit that makes the plan split the
batch (gradient accumulation) and once one that makes it recompute (gradient checkpointing).
Each case runs in a fresh process, so peaks do not mix: the peak is the process's maximum
resident set size (``ru_maxrss``) when its last training step ends, before the epoch's
checkpoint is written (saving is not training; its own peak is printed beside it).

    .venv/bin/python benchmarks/memory_plan.py              # about 6 minutes on 2 cores
    .venv/bin/python benchmarks/memory_plan.py --tokens 128 --steps 2
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPE = {  # about 100M parameters, as the Qwen2 model of issue 20 (98M, 32k vocabulary)
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 4,
    "intermediate_size": 2048,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
MODEL = "qwen2-100m-random"
SEED = 0
# (name, method, mode, batch size, training memory limit: None, or how many GiB)
CASES = [
    ("SFT LoRA, batch 4", "supervised", "peft", 4, None),
    ("SFT LoRA, batch 8", "supervised", "peft", 8, None),
    ("SFT full, batch 4", "supervised", "full", 4, None),
    ("SFT full, batch 8", "supervised", "full", 8, None),
    ("SFT full, batch 8, limit 4.3 GiB", "supervised", "full", 8, 4.3),  # 2 micro-batches of 4
    ("SFT LoRA, batch 8, limit 1.6 GiB", "supervised", "peft", 8, 1.6),  # 8 of 1, recomputed
    ("DPO LoRA, batch 4", "preference", "peft", 4, None),
    ("distillation LoRA, batch 4", "distillation", "peft", 4, None),  # the model teaches itself
]


def build_model(root: Path) -> None:
    """The model and a ChatML tokenizer (the tiny one: its ids are a subset of the 32k rows)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from tuneforge.models.tiny import build_tokenizer

    folder = root / "models" / MODEL
    if (folder / "config.json").exists():
        return
    tokenizer = build_tokenizer()
    config = Qwen2Config(
        **SHAPE,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(SEED)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def examples(method: str, count: int, tokens: int) -> list:
    """Conversations of about ``tokens`` tokens each (one token per word of the tiny
    tokenizer's vocabulary, the ChatML markup around), or preference pairs whose chosen and
    rejected sequences are each that long."""
    from tuneforge.data.records import Conversation, PreferenceExample, Turn
    from tuneforge.data.samples import FILLER_WORDS, NEGATIVE_WORDS, POSITIVE_WORDS

    vocabulary = [*POSITIVE_WORDS, *NEGATIVE_WORDS, *FILLER_WORDS]
    rng = random.Random(SEED)

    def words(k: int) -> str:
        return " ".join(rng.choices(vocabulary, k=k))

    prompt, answer = tokens // 4, tokens - tokens // 4 - 12
    if method == "preference":
        return [
            PreferenceExample(Conversation(turns=(Turn("user", words(prompt)),)), *pair)
            for pair in ((words(answer), words(answer)) for _ in range(count))
        ]
    return [
        Conversation(turns=(Turn("user", words(prompt)), Turn("model", words(answer))))
        for _ in range(count)
    ]


def run_case(root: Path, method: str, mode: str, batch: int, limit_gib: float | None, args) -> dict:
    """One case, in this (fresh) process: the plan and the peaks."""
    from tuneforge.config import Settings
    from tuneforge.engine.observer import TuningObserver
    from tuneforge.engine.run import run_tuning
    from tuneforge.engine.spec import Hyperparameters, TuningSpec

    class Peaks(TuningObserver):
        plan = None
        training_peak = 0

        def on_memory_plan(self, plan) -> None:
            self.plan = plan

        def on_step(self, metrics) -> None:
            self.training_peak = max_rss()

    limit = int(limit_gib * (1 << 30)) if limit_gib else None
    settings = Settings(data_dir=root, training_memory_bytes=limit)
    spec = TuningSpec(
        base_model=MODEL,
        method=method,
        mode=mode,
        teacher_model=MODEL if method == "distillation" else None,
        hyperparameters=Hyperparameters(
            epochs=1, batch_size=batch, max_seq_length=args.tokens + 16
        ),
    )
    observer = Peaks()
    run_tuning(
        spec,
        examples(method, batch * args.steps, args.tokens),
        [],
        Path(tempfile.mkdtemp(dir=root)),
        settings,
        observer,
    )
    return {
        "plan": observer.plan.as_dict(),
        "training_peak": observer.training_peak,
        "peak_with_save": max_rss(),
    }


def max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def gib(value: int) -> str:
    return f"{value / (1 << 30):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=192, help="tokens per example")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps per case")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # a child's one case
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        _, method, mode, batch, limit = CASES[args.case]
        print(json.dumps(run_case(args.root, method, mode, batch, limit, args)))
        return

    root = Path(tempfile.mkdtemp(prefix="memory-plan-"))
    build_model(root)
    print(f"model: Qwen2 shape {SHAPE}, {args.tokens} tokens per example, {args.steps} steps")
    header = (
        "| case | micro-batch x accumulation | checkpointing | weights | grads | optimizer | "
        "activations | logits | runtime | plan | measured peak | plan / peak | peak with save |"
    )
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for index, (name, *_rest) in enumerate(CASES):
        child = subprocess.run(
            [
                *(sys.executable, __file__, "--case", str(index), "--root", str(root)),
                *("--tokens", str(args.tokens), "--steps", str(args.steps)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        plan, peak = result["plan"], result["training_peak"]
        parts = [gib(plan[k]) for k in ("weights", "gradients", "optimizer")]
        parts += [gib(plan[k]) for k in ("activations", "logits", "runtime")]
        print(
            f"| {name} | {plan['micro_batch_size']} x {plan['gradient_accumulation_steps']} | "
            f"{'on' if plan['gradient_checkpointing'] else 'off'} | {' | '.join(parts)} | "
            f"{gib(plan['total'])} | {gib(peak)} | {plan['total'] / peak:.2f} | "
            f"{gib(result['peak_with_save'])} |"
        )


if __name__ == "__main__":
    main()
