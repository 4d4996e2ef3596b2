"""Training beside chat on the CPU: every process on every core (before) against the split
``tuneforge.jobs.cpu_share.split`` gives (after), with training alone as the baseline.

One process trains a randomly initialised Qwen2-shaped model (about 98M parameters: over the
50M-parameter line above which a model gets a share of the cores rather than one thread) with
AdamW; another answers three chat requests at once, in a loop, on a model of the same shape.
The script prints the median training step time and the chat's tokens per second for each
scenario, and their ratios to training alone.

    .venv/bin/python benchmarks/cpu_thread_budget.py            # a few minutes on 2 cores
    .venv/bin/python benchmarks/cpu_thread_budget.py --repeats 3   # steadier on a shared machine
    .venv/bin/python benchmarks/cpu_thread_budget.py --steps 8 --cores 16
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

SHAPE = {  # about 98M parameters: the shape of tests/engine/test_midsize_model.py
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "intermediate_size": 2048,
    "vocab_size": 32000,
    "tie_word_embeddings": True,
}


def build_model():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    return Qwen2ForCausalLM(Qwen2Config(**SHAPE))


def train(threads: int, steps: int, tokens: int, started, results) -> None:
    import torch

    torch.set_num_threads(threads)
    model = build_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = torch.randint(0, SHAPE["vocab_size"], (4, tokens))
    started.wait()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        begin = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - begin)
    results.put(("train", statistics.median(times[1:])))


def chat(threads: int, stop, started, results) -> None:
    import torch

    torch.set_num_threads(threads)
    model = build_model().eval()
    prompts = torch.randint(0, SHAPE["vocab_size"], (3, 48))  # three requests, one batch
    with torch.no_grad():
        model.generate(prompts, max_new_tokens=2, do_sample=False)  # warm up
        started.wait()
        produced, begin = 0, time.perf_counter()
        while not stop.is_set():
            out = model.generate(prompts, max_new_tokens=16, min_new_tokens=16, do_sample=False)
            produced += (out.shape[1] - prompts.shape[1]) * prompts.shape[0]
    results.put(("chat", produced / (time.perf_counter() - begin)))


def scenario(train_threads: int, chat_threads: int | None, args) -> dict[str, float]:
    context = mp.get_context("spawn")
    results, stop = context.Queue(), context.Event()
    started = context.Barrier(2 if chat_threads else 1)
    trainer = context.Process(
        target=train, args=(train_threads, args.steps, args.tokens, started, results)
    )
    chatter = None
    if chat_threads:
        chatter = context.Process(target=chat, args=(chat_threads, stop, started, results))
        chatter.start()
    trainer.start()
    measured = dict([results.get()])
    if chatter:
        stop.set()
        measured.update([results.get()])
        chatter.join()
    trainer.join()
    return measured


def main() -> None:
    from tuneforge.jobs.cpu_share import split
    from tuneforge.machine import cpu_count

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=cpu_count())
    parser.add_argument("--steps", type=int, default=4, help="timed training steps")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per example (batch 4)")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds of all scenarios; each one's best counts"
    )
    args = parser.parse_args()
    each, inference = split(args.cores, runners=1, serving=True)
    plans = {
        "training alone (all cores)": (args.cores, None),
        f"before: training {args.cores} + chat {args.cores} threads": (args.cores, args.cores),
        f"after: training {each} + chat {inference} threads": (each, inference),
    }
    runs: dict[str, dict[str, float]] = {}
    for _ in range(args.repeats):  # in turns: a shared machine's load hits every scenario
        for name, (train_threads, chat_threads) in plans.items():
            measured = scenario(train_threads, chat_threads, args)
            best = runs.setdefault(name, measured)
            best["train"] = min(best["train"], measured["train"])
            if "chat" in measured:
                best["chat"] = max(best["chat"], measured["chat"])
    alone = runs["training alone (all cores)"]["train"]
    print(f"{args.cores} cores, model of {SHAPE}")
    print(f"{'scenario':<42} {'step s':>8} {'vs alone':>9} {'chat tok/s':>11}")
    for name, measured in runs.items():
        chat_rate = f"{measured['chat']:.1f}" if "chat" in measured else "-"
        print(
            f"{name:<42} {measured['train']:>8.2f} {measured['train'] / alone:>8.2f}x "
            f"{chat_rate:>11}"
        )


if __name__ == "__main__":
    main()
