"""Issue 18's GPU check in one run: what ``benchmarks/gpu_check.sh`` runs (benchmarks/README.md).

Four parts, each in a child process of its own (its memory its own; one that fails or runs past
its time is reported so, and the others still run):

- ``throughput``: train_throughput.py on the 1B Llama shape: tuneforge against TRL's default
  SFTTrainer and TRL padding-free (with Liger's kernels when installed);
- ``full_ft``: tuneforge's full fine-tuning of the same shape, its MFU (6 x parameters x
  tokens/s over the device's dense bf16 peak), from the steps after the first three;
- ``qlora_8b``: a Llama 3 8B-shaped base (random weights) loaded as NF4 through the engine,
  batches of 8 examples of 2,048 tokens: its peak memory, step time and memory plan (needs
  bitsandbytes);
- ``serve``: serve_throughput.py, one model against ten adapters.

It prints one table and writes every number as JSON. ``GPU_CHECK_SMOKE=1`` runs the same code on
tiny shapes on the CPU (the suite's test of this script).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
SMOKE = os.environ.get("GPU_CHECK_SMOKE") == "1"
PARTS = ("throughput", "full_ft", "qlora_8b", "serve")
# Seconds each part may take: on the GPU together under the 8 minutes the check is given.
TIME_LIMITS = {"throughput": 150, "full_ft": 80, "qlora_8b": 170, "serve": 80}
LLAMA_8B = {  # Llama 3 8B's shape
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 8192,
}
TINY_SHAPE = {  # what the smoke run builds instead
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 768,
    "max_position_embeddings": 512,
}
MFU_GOAL, THROUGHPUT_GOALS = 0.5, {"TRL SFTTrainer": 2.0}


def throughput_arguments() -> list[str]:
    if SMOKE:
        return [
            *("--device", "cpu", "--model-shape", "tiny", "--examples", "24"),
            *("--mean-tokens", "40", "--max-length", "128"),
        ]
    return ["--device", "cuda", "--model-shape", "1b", "--examples", "1000"]


def part_throughput() -> dict[str, Any]:
    import train_throughput as tt

    results, parameters, device = tt.measure(throughput_arguments())
    flops = tt.peak_flops(device)
    return {
        "device": device,
        "parameters": parameters,
        "runs": [
            {
                "trainer": r.name,
                "tokens_per_second": r.tokens_per_second,
                "train_s": r.train_s,
                "non_padding_share": r.non_padding_share,
                "peak_memory_bytes": r.peak_memory_bytes,
                "mfu": tt.mfu(r, parameters, flops),
            }
            for r in results
        ],
    }


class Steps:
    """Records each step's metrics (and the memory plan): a TuningObserver."""

    def __init__(self) -> None:
        from tuneforge.engine.observer import TuningObserver

        class Recorder(TuningObserver):
            def __init__(self) -> None:
                self.steps: list = []
                self.plan = None

            def on_step(self, metrics) -> None:
                self.steps.append(metrics)

            def on_memory_plan(self, plan) -> None:
                self.plan = plan

        self.observer = Recorder()

    def steady_tokens_per_second(self, skip: int = 3) -> float | None:
        """Tokens per second between the ``skip``-th step and the last (the first steps warm
        the kernels up; the epoch's checkpoint is written after the last)."""
        steps = self.observer.steps
        if len(steps) <= skip:
            return steps[-1].tokens_per_second if steps else None
        first, last = steps[skip - 1], steps[-1]
        tokens = last.tokens_per_second * last.elapsed_s - first.tokens_per_second * first.elapsed_s
        return tokens / (last.elapsed_s - first.elapsed_s)


def part_full_ft() -> dict[str, Any]:
    import train_throughput as tt

    from tuneforge.models.resolve import resolve_base_model

    args = tt.with_device_defaults(tt.parse_args(throughput_arguments()), device_of())
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        root = Path(folder)
        base_model, settings = tt.prepare_model(args.model_shape, root)
        parameters = tt.parameter_count(resolve_base_model(base_model, settings).source)
        examples = tt.make_examples(args.examples // 2, args.mean_tokens, args.max_length, tt.SEED)
        setup = tt.Setup(
            base_model=base_model,
            settings=settings,
            examples=examples,
            batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=2e-5,
            adapter_size=args.adapter_size,
            output_dir=root / "runs",
            mode="full",
        )
        steps = Steps()
        result = tt.run_tuneforge(setup, steps.observer)
    device = device_name()
    steady = steps.steady_tokens_per_second()
    flops = tt.peak_flops(device)
    return {
        "device": device,
        "parameters": parameters,
        "steps": len(steps.observer.steps),
        "tokens_per_second": steady,
        "peak_memory_bytes": result.peak_memory_bytes,
        "gradient_checkpointing": steps.observer.plan.gradient_checkpointing,
        "mfu": 6 * parameters * steady / flops if flops and steady else None,
    }


def part_qlora_8b() -> dict[str, Any]:
    if importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "bitsandbytes is not installed"}
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.config import Settings
    from tuneforge.data.records import Conversation, Turn
    from tuneforge.engine.run import run_tuning
    from tuneforge.engine.spec import Hyperparameters, TuningSpec
    from tuneforge.models.tiny import build_tokenizer

    shape, length, batch = (TINY_SHAPE, 256, 8) if SMOKE else (LLAMA_8B, 2048, 8)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        root = Path(folder)
        started = time.perf_counter()
        tokenizer = build_tokenizer()
        config = LlamaConfig(
            **shape,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=None,
            initializer_range=0.02,
        )
        torch.manual_seed(0)
        with torch.device(device_of()):
            model = LlamaForCausalLM(config).to(torch.bfloat16)
        model.save_pretrained(root / "models" / "llama-8b-random")
        tokenizer.save_pretrained(root / "models" / "llama-8b-random")
        del model
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        built_s = time.perf_counter() - started
        words = " ".join(["good"] * length)  # each word a token: every example cut to length
        examples = [
            Conversation(turns=(Turn("user", "continue:"), Turn("model", words)))
            for _ in range(2 * batch)
        ]
        settings = Settings(data_dir=root / "data", model_roots=[root / "models"])
        spec = TuningSpec(
            base_model="llama-8b-random",
            hyperparameters=Hyperparameters(
                epochs=1, batch_size=batch, max_seq_length=length, quantization="nf4"
            ),
        )
        steps = Steps()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        result = run_tuning(spec, examples, [], root / "run", settings, steps.observer)
    plan = steps.observer.plan
    times = [step.elapsed_s for step in steps.observer.steps]
    on_gpu = torch.cuda.is_available()
    return {
        "shape": "tiny" if SMOKE else "llama-3-8b",
        "batch_size": batch,
        "tokens_per_example": length,
        "outcome": result.outcome,
        "build_s": built_s,
        # the last step's time (the first loads the kernels)
        "step_s": times[-1] - times[-2] if len(times) > 1 else (times or [None])[0],
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if on_gpu else None,
        "device_memory": torch.cuda.get_device_properties(0).total_memory if on_gpu else None,
        "memory_plan": plan.as_dict() if plan else None,
    }


def part_serve() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        out = Path(folder) / "serve.json"
        if SMOKE:
            sizes = [
                *("--device", "cpu", "--model-shape", "tiny", "--requests", "8"),
                *("--clients", "4", "--output-tokens", "4", "--adapters", "3"),
            ]
        else:
            sizes = ["--device", "cuda", "--requests", "256"]
        command = [sys.executable, str(BENCHMARKS / "serve_throughput.py"), *sizes]
        subprocess.run([*command, "--json", str(out)], check=True, stdout=sys.stderr)
        return json.loads(out.read_text())


def device_of() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "liger-kernel")
    found: dict[str, str | None] = {}
    for name in (*names, "bitsandbytes", "triton"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


# --- the parent: run each part, print one table, write the JSON ---------------------------------


def run_part(part: str) -> dict[str, Any]:
    limit = 300 if SMOKE else TIME_LIMITS[part]
    started = time.perf_counter()
    command = [sys.executable, __file__, "--part", part]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as expired:
        tail = (expired.stderr or b"")[-2000:]
        return {"error": f"ran past its {limit} s", "log_tail": str(tail)}
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": f"exit status {done.returncode}", "log_tail": done.stderr[-4000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "wall_s": elapsed}


def table_rows(results: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(part, measure, value) for each number the issue's goals are about."""
    rows: list[tuple[str, str, str]] = []
    for part, result in results.items():
        if "error" in result or "skipped" in result:
            rows.append((part, "not measured", result.get("error") or result["skipped"]))
            continue
        if part == "throughput":
            runs = result["runs"]
            ours = runs[0]["tokens_per_second"]
            for run in runs:
                mfu = f", MFU {run['mfu']:.1%}" if run.get("mfu") else ""
                memory = run["peak_memory_bytes"] / 2**30
                rows.append(
                    (
                        part,
                        f"{run['trainer']} tokens/s",
                        f"{run['tokens_per_second']:,.0f} ({memory:.1f} GiB{mfu})",
                    )
                )
            for run in runs[1:]:
                goal = THROUGHPUT_GOALS.get(run["trainer"])
                ratio = ours / run["tokens_per_second"] if run["tokens_per_second"] else 0
                rows.append(
                    (
                        part,
                        f"tuneforge / {run['trainer']}",
                        f"{ratio:.2f}x" + (f" (goal {goal}x)" if goal else ""),
                    )
                )
        elif part == "full_ft":
            mfu = result["mfu"]
            rows.append((part, "tokens/s", f"{result['tokens_per_second'] or 0:,.0f}"))
            rows.append(
                (part, "MFU", "n/a (no bf16 peak for this device)" if mfu is None else f"{mfu:.1%}")
            )
            rows[-1] = (*rows[-1][:2], rows[-1][2] + f" (goal {MFU_GOAL:.0%})")
        elif part == "qlora_8b":
            peak = result["peak_memory_bytes"]
            total = result["device_memory"]
            rows.append(
                (part, f"{result['shape']}, batch {result['batch_size']}", result["outcome"])
            )
            rows.append((part, "step s", f"{result['step_s'] or 0:.2f}"))
            if peak is not None:
                rows.append((part, "peak memory", f"{peak / 2**30:.1f} of {total / 2**30:.0f} GiB"))
        elif part == "serve":
            single = result["results"]["single"]["tokens_per_second"]
            for name, run in result["results"].items():
                speed = run["tokens_per_second"]
                rows.append((part, f"{name} tokens/s", f"{speed:,.0f} ({speed / single:.2f}x)"))
    return rows


def print_table(rows: list[tuple[str, str, str]], title: str) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    print(title)
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run these parts alone")
    parser.add_argument("--json", default=os.environ.get("GPU_CHECK_JSON", "gpu_check.json"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(BENCHMARKS))
    if SMOKE:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.part:
        from tuneforge.models.loading import quiet_transformers

        quiet_transformers()
        result = globals()[f"part_{args.part}"]()
        print(json.dumps(result, default=str))
        return
    started = time.perf_counter()
    results = {part: run_part(part) for part in args.only or PARTS}
    report = {
        "smoke": SMOKE,
        "versions": versions(),
        "total_s": time.perf_counter() - started,
        "parts": results,
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    title = f"tuneforge GPU check{' (smoke: tiny shapes on the CPU)' if SMOKE else ''}, "
    title += f"{report['total_s']:.0f} s; JSON in {args.json}"
    print_table(table_rows(results), title)
    for part, result in results.items():
        if "error" in result:
            print(f"\n{part} failed: {result['error']}\n{result.get('log_tail', '')}")


if __name__ == "__main__":
    main()
