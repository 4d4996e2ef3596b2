"""Structured output's decoding overhead: the same requests with and without a JSON schema,
side by side in one run, on one model.

The cost of constrained decoding is per step: llguidance computes which of the vocabulary's
tokens may come next and the logits processor masks the rest. That cost grows with the
vocabulary, so the model here has a real-sized one: a byte-level BPE tokenizer of 32,000 tokens
trained on Python's own source files (no download), and a random Llama of that vocabulary
(``--shape small``: 6 layers of 768; ``tiny``: tuneforge's 0.8M-parameter tiny-chat-large and
its 560-token vocabulary, where the mask is nearly free and the model too).

Greedy decoding on a random model: unconstrained, every request runs to ``--tokens``; under the
schema, requests end when their document does. So the figure compared is time per generated
token (and the schema's share of a step), not time per request. Printed: ms per output token
for each, the ratio, and the one-off cost of preparing a tokenizer for llguidance (cached per
model).

    .venv/bin/python benchmarks/structured_output.py            # about a minute on 2 CPU cores
    .venv/bin/python benchmarks/structured_output.py --shape tiny
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

SCHEMA = {
    "type": "object",
    "properties": {
        "label": {"enum": ["positive", "negative", "neutral"]},
        "summary": {"type": "string", "maxLength": 80},
        "keywords": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 5},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["label", "summary", "keywords", "stars"],
    "additionalProperties": False,
}


def python_source_lines(limit: int = 400_000):
    """Lines of the standard library's own source: a varied corpus that is always there."""
    count = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for line in text.splitlines():
            if line.strip():
                yield line
                count += 1
                if count >= limit:
                    return


def build_model(folder: Path, vocab_size: int) -> str:
    """A random Llama with a byte-level BPE tokenizer of ``vocab_size`` tokens, saved in
    ``folder``."""
    import torch
    from serve_throughput import SMALL_LLAMA
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.models.tiny import build_tokenizer

    tokenizer = build_tokenizer(vocab_size, python_source_lines(), max_length=2048)
    config = LlamaConfig(
        **{**SMALL_LLAMA, "vocab_size": len(tokenizer)},
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def run(backend, target, prompts, max_tokens: int, schema: str | None) -> tuple[float, int]:
    """Seconds and output tokens for every prompt, in batches of 8 through the backend."""
    from tuneforge.inference.types import GenerationParams, Request

    params = GenerationParams(max_output_tokens=max_tokens, json_schema=schema)
    started, tokens = time.perf_counter(), 0
    for first in range(0, len(prompts), 8):
        requests = [Request(target, p, params) for p in prompts[first : first + 8]]
        for outcome in backend.generate_many(requests):
            if isinstance(outcome, Exception):
                raise outcome
            tokens += sum(c.output_tokens for c in outcome.completions)
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["small", "tiny"], default="small")
    parser.add_argument("--vocab", type=int, default=32_000)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64, help="output tokens at most")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = parser.parse_args()

    import torch

    from tuneforge.data.records import Conversation, Turn
    from tuneforge.inference.structured import _ll_tokenizer, schema_text
    from tuneforge.inference.transformers_backend import TransformersBackend
    from tuneforge.inference.types import ModelTarget
    from tuneforge.models.loading import load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        if args.shape == "tiny":
            from tuneforge.models.tiny import ensure_tiny_model

            source = str(ensure_tiny_model("tuneforge/tiny-chat-large", Path(root)))
        else:
            source = build_model(Path(root) / "model", args.vocab)
        tokenizer = load_tokenizer(source)
        started = time.perf_counter()
        _ll_tokenizer(tokenizer, len(tokenizer))
        prepare_s = time.perf_counter() - started

        backend = TransformersBackend(memory_budget_bytes=1 << 34, device="cpu")
        target = ModelTarget("bench", source)
        prompts = [
            Conversation((Turn("user", f"Review {i}: summarise this film as JSON."),))
            for i in range(args.prompts)
        ]
        run(backend, target, prompts[:8], 4, None)  # load the model and warm up
        run(backend, target, prompts[:8], 4, schema_text(SCHEMA))
        free_s, free_tokens = run(backend, target, prompts, args.tokens, None)
        json_s, json_tokens = run(backend, target, prompts, args.tokens, schema_text(SCHEMA))

    free_ms, json_ms = 1000 * free_s / free_tokens, 1000 * json_s / json_tokens
    print(f"model: {args.shape}, vocabulary {len(tokenizer):,}; {args.prompts} prompts, "
          f"batches of 8, at most {args.tokens} tokens, greedy; torch threads "
          f"{torch.get_num_threads()}")  # fmt: skip
    print(f"{'decoding':<14}{'tokens':>8}{'seconds':>9}{'ms/token':>10}")
    print(f"{'free':<14}{free_tokens:>8}{free_s:>9.2f}{free_ms:>10.2f}")
    print(f"{'JSON schema':<14}{json_tokens:>8}{json_s:>9.2f}{json_ms:>10.2f}")
    print(f"JSON schema / free, per output token: {json_ms / free_ms:.2f}x")
    print(f"preparing the tokenizer for llguidance (once per model): {prepare_s:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
