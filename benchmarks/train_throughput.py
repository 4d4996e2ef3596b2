"""Training throughput: tuneforge's SFT against a plain TRL ``SFTTrainer``, side by side.

All train the same LoRA adapter on the same model, examples and hyperparameters, one after
the other in this process with the same seed. tuneforge hands the model padding-free batches
(the examples of a step laid end to end); TRL's defaults pad every example of a step to the
longest one, and with lengths as uneven as real datasets have, the padding is much of the
work. TRL's own ``padding_free=True`` runs as a second baseline, isolating what tuneforge's
per-example attention adds (engine/attention.py).

Printed for each: trained tokens per second (non-padding input tokens per second of
``train()``), the non-padding share of the tokens the model was given, peak memory, and on a
GPU the model FLOPs utilisation. Run ``python benchmarks/train_throughput.py --help``; see
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

SEED = 42
LENGTH_SIGMA = 0.8  # lognormal spread of example lengths: mean = 1.38 x median
LONGEST_OVER_MEDIAN = 10
SYSTEM_PROMPT = "Continue the review."
TEMPLATE_TOKENS = 30  # ChatML markup and the system prompt in the tiny tokenizer; a word is ~1
# Dense bf16 peak of each device (NVIDIA datasheets, without sparsity), most specific name first.
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
)
LLAMA_1B = {  # the shape of Llama 3.2 1B, with a 32k vocabulary
    "hidden_size": 2048,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "intermediate_size": 8192,
    "vocab_size": 32000,
    "max_position_embeddings": 8192,
}
# Per device. One torch thread on a CPU: on a shared two-core machine, two intra-op threads
# spend much of their time spin-waiting for each other (both trainers ran 4-8x slower with two).
DEFAULTS = {
    "cpu": dict(model_shape="tiny", examples=320, mean_tokens=100, max_length=512, threads=1),
    "cuda": dict(model_shape="1b", examples=2000, mean_tokens=400, max_length=4096),
}


@dataclass(frozen=True)
class RunResult:
    name: str
    trained_tokens: int
    train_s: float
    non_padding_share: float
    peak_memory_bytes: int

    @property
    def tokens_per_second(self) -> float:
        return self.trained_tokens / self.train_s if self.train_s else 0.0


# --- data ------------------------------------------------------------------------------------


def example_lengths(count: int, mean: float, longest: int, rng: random.Random) -> list[int]:
    """Long-tailed lengths: lognormal with the given mean, cut at 10x the median (and at
    ``longest``). Real chat datasets look like this: most examples short, a few very long."""
    median = mean / math.exp(LENGTH_SIGMA**2 / 2)
    cap = min(longest, int(LONGEST_OVER_MEDIAN * median))
    return [
        max(2, min(cap, round(rng.lognormvariate(math.log(median), LENGTH_SIGMA))))
        for _ in range(count)
    ]


def make_examples(count: int, mean_tokens: int, max_length: int, seed: int) -> list:
    """Chat examples of the tiny tokenizer's words: a user turn and a longer model turn."""
    from tuneforge.data.records import Conversation, Turn
    from tuneforge.data.samples import FILLER_WORDS, FORMAT_VALUES, NEGATIVE_WORDS, POSITIVE_WORDS

    vocabulary = [*POSITIVE_WORDS, *NEGATIVE_WORDS, *FILLER_WORDS, *FORMAT_VALUES]
    rng = random.Random(f"throughput-{seed}")
    lengths = example_lengths(
        count, mean_tokens - TEMPLATE_TOKENS, max_length - TEMPLATE_TOKENS, rng
    )
    examples = []
    for words in lengths:
        prompt_words = max(1, round(words * rng.uniform(0.2, 0.6)))
        prompt = " ".join(rng.choices(vocabulary, k=prompt_words))
        answer = " ".join(rng.choices(vocabulary, k=max(1, words - prompt_words)))
        turns = (Turn("user", prompt), Turn("model", answer))
        examples.append(Conversation(turns=turns, system=SYSTEM_PROMPT))
    return examples


def token_lengths(examples: list, tokenizer, max_length: int) -> list[int]:
    from tuneforge.data.tokenize import tokenize_conversation

    return [len(tokenize_conversation(e, tokenizer, max_length).input_ids) for e in examples]


def describe_lengths(lengths: list[int]) -> str:
    ordered = sorted(lengths)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (
        f"{len(ordered)} examples, tokens: mean {statistics.fmean(ordered):.0f}, "
        f"median {statistics.median(ordered):.0f}, p90 {p90}, max {ordered[-1]}, "
        f"total {sum(ordered):,}"
    )


# --- model -----------------------------------------------------------------------------------


def prepare_model(shape: str, root: Path) -> tuple[str, Any]:
    """The base model's name and the settings that resolve it, built under ``root``."""
    from tuneforge.config import Settings

    settings = Settings(data_dir=root / "data", model_roots=[root / "models"])
    if shape == "tiny":
        from tuneforge.models.tiny import ensure_tiny_model
        from tuneforge.storage import storage_for

        ensure_tiny_model("tuneforge/tiny-chat-large", storage_for(settings).models_dir)
        return "tuneforge/tiny-chat-large", settings
    build_random_llama(root / "models" / "llama-1b-random")
    return "llama-1b-random", settings


def build_random_llama(folder: Path) -> None:
    """A randomly initialised Llama of 1B parameters with the tiny tokenizer (its ids are a
    subset of the 32k vocabulary): real shapes for timing, no weights to download."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneforge.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.model_max_length = LLAMA_1B["max_position_embeddings"]
    config = LlamaConfig(
        **LLAMA_1B,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(SEED)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    release_memory()


def parameter_count(source: str) -> int:
    """Parameters of the model at ``source``, counted on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
    return sum(p.numel() for p in model.parameters())


# --- measuring -------------------------------------------------------------------------------


def release_memory() -> None:
    """Give freed memory back, so the next run's peak is its own and not its predecessor's."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    else:
        # glibc keeps freed heap pages unless asked to return them; then RSS only ever grows.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextlib.contextmanager
def peak_memory(result: list[int]) -> Iterator[None]:
    """Appends the peak memory the block added: GPU memory allocated by torch on a GPU, the
    process's resident set size (sampled every 5 ms) above its size at the start on a CPU."""
    import psutil
    import torch

    release_memory()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield
        result.append(torch.cuda.max_memory_allocated() - start)
        return
    process = psutil.Process()
    start = process.memory_info().rss
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()
        result.append(max(peak[0], process.memory_info().rss) - start)


def timed_train(trainer) -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    trainer.train()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


# --- the two trainers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    base_model: str
    settings: Any
    examples: list
    batch_size: int
    max_length: int
    learning_rate: float
    adapter_size: int
    output_dir: Path
    mode: str = "peft"  # "full": every weight (gpu_check.py's MFU)


def run_tuneforge(setup: Setup, observer=None) -> RunResult:
    from tuneforge.engine.observer import StepMetrics, TuningObserver
    from tuneforge.engine.run import run_tuning
    from tuneforge.engine.spec import Hyperparameters, TuningSpec

    class LastStep(TuningObserver):
        metrics: StepMetrics | None = None

        def on_step(self, metrics: StepMetrics) -> None:
            self.metrics = metrics

    spec = TuningSpec(
        base_model=setup.base_model,
        seed=SEED,
        mode=setup.mode,
        hyperparameters=Hyperparameters(
            epochs=1,
            batch_size=setup.batch_size,
            learning_rate=setup.learning_rate,
            adapter_size=setup.adapter_size,
            max_seq_length=setup.max_length,
        ),
    )
    observer = observer or LastStep()
    memory: list[int] = []
    with peak_memory(memory):
        result = run_tuning(
            spec, setup.examples, [], setup.output_dir / "tuneforge", setup.settings, observer
        )
    metrics = getattr(observer, "metrics", None)
    share = metrics.non_padding_share if metrics else 1.0
    return RunResult("tuneforge", result.trained_tokens, result.elapsed_s, share, memory[0])


def run_trl(
    setup: Setup, gradient_checkpointing: bool, padding_free: bool = False, liger: bool = False
) -> RunResult:
    """TRL's SFTTrainer as its documentation shows it: a ``messages`` dataset, default collator
    (padded batches), and only what must match tuneforge's run set explicitly. With
    ``padding_free``, TRL's own padding-free batches (its ``padding_free=True``); with
    ``liger``, Liger's kernels (its ``use_liger_kernel=True``)."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from tuneforge.data.tokenize import chat_messages
    from tuneforge.engine.callbacks import TokenCounter
    from tuneforge.engine.hardware import detect_hardware
    from tuneforge.engine.training import lora_config, seed_everything
    from tuneforge.models.loading import load_causal_lm, load_tokenizer
    from tuneforge.models.resolve import resolve_base_model

    hardware = detect_hardware()
    source = resolve_base_model(setup.base_model, setup.settings).source
    dataset = Dataset.from_list([{"messages": chat_messages(e)} for e in setup.examples])
    args = SFTConfig(
        output_dir=str(setup.output_dir / "trl"),
        num_train_epochs=1,
        per_device_train_batch_size=setup.batch_size,
        learning_rate=setup.learning_rate,
        # TRL refuses a max_length it cannot enforce without packing; the examples are
        # already cut to it.
        max_length=None if padding_free else setup.max_length,
        seed=SEED,
        data_seed=SEED,
        bf16=hardware.bf16,  # TRL's default bf16 raises on a CPU
        use_cpu=hardware.device == "cpu",
        # SFTConfig turns recomputation on by default; it is set as tuneforge chose, so the
        # two runs differ in batching alone.
        gradient_checkpointing=gradient_checkpointing,
        padding_free=padding_free,
        use_liger_kernel=liger,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    memory: list[int] = []
    with peak_memory(memory):
        model = load_causal_lm(
            source, dtype=hardware.dtype, attn_implementation=hardware.padded_attention
        )
        # Without this, transformers ignores a padding-free row's position ids and lets its
        # examples attend to each other (tuneforge's engine does the same).
        model.config.use_cache = False
        seed_everything(SEED)
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=load_tokenizer(source),
            peft_config=lora_config(setup.adapter_size),
        )
        trainer.remove_callback(PrinterCallback)  # its end-of-run metrics dict would clutter
        counter = TokenCounter(trainer.data_collator)
        trainer.data_collator = counter
        elapsed = timed_train(trainer)
        del trainer, model
    name = "TRL padding-free" if padding_free else "TRL SFTTrainer"
    name += " + Liger" if liger else ""
    return RunResult(name, counter.real_tokens, elapsed, counter.non_padding_share, memory[0])


def tuneforge_gradient_checkpointing(
    source: str, lengths: list[int], batch_size: int, adapter_size: int
) -> bool:
    """Whether tuneforge's memory plan (engine/memory_plan.py) recomputes activations for this
    model, batch and data on this machine (only when the batch would not fit otherwise)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tuneforge.engine.hardware import available_memory_bytes, detect_hardware
    from tuneforge.engine.memory_plan import Workload, model_shape, plan_memory

    hardware = detect_hardware()
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(source), dtype=hardware.dtype
        )
    shape = model_shape(
        model, new_adapter_rank=adapter_size, activation_value_bytes=hardware.dtype.itemsize
    )
    rows = sorted(lengths, reverse=True)[:batch_size]
    plan = plan_memory(
        shape,
        Workload(batch_size=batch_size, longest_rows=rows),
        hardware.device,
        available_memory_bytes(hardware.device),
    )
    return plan.gradient_checkpointing


# --- report ----------------------------------------------------------------------------------


def peak_flops(device_name: str) -> float | None:
    for name, flops in PEAK_BF16_FLOPS:
        if name.lower() in device_name.lower():
            return flops
    return None


def mfu(result: RunResult, parameters: int, device_flops: float | None) -> float | None:
    """Model FLOPs utilisation by the usual 6 x parameters per trained token."""
    if device_flops is None:
        return None
    return 6 * parameters * result.tokens_per_second / device_flops


def print_report(results: list[RunResult], parameters: int, device_name: str) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    on_gpu = torch.cuda.is_available()
    device_flops = peak_flops(device_name) if on_gpu else None
    table = Table(title=f"SFT throughput on {device_name}")
    for column in ("trainer", "trained tokens", "train s", "tokens/s", "non-padding", "peak mem"):
        table.add_column(column, justify="left" if column == "trainer" else "right")
    if on_gpu:
        table.add_column("MFU", justify="right")
    for result in results:
        row = [
            result.name,
            f"{result.trained_tokens:,}",
            f"{result.train_s:.1f}",
            f"{result.tokens_per_second:,.0f}",
            f"{result.non_padding_share:.1%}",
            f"{result.peak_memory_bytes / 2**20:,.0f} MiB",
        ]
        if on_gpu:
            utilisation = mfu(result, parameters, device_flops)
            row.append("n/a" if utilisation is None else f"{utilisation:.1%}")
        table.add_row(*row)
    # Piped output is 80 columns to rich; the table needs a little more.
    console = Console() if sys.stdout.isatty() else Console(width=100)
    console.print(table)
    ours, *baselines = results
    for theirs in baselines:
        ratio = ours.tokens_per_second / theirs.tokens_per_second if theirs.tokens_per_second else 0
        console.print(f"tuneforge / {theirs.name}: {ratio:.2f}x trained tokens per second")
    if on_gpu and device_flops is None:
        console.print(f"MFU: no peak bf16 FLOPs known for {device_name!r}")


def fastest_of(repeats: int, setup: Setup, recompute: bool) -> list[RunResult]:
    """Each trainer's fastest run of ``repeats``, the two taking turns: a shared machine's
    load comes and goes, and alternating runs see the same spells of it."""
    from tuneforge.engine.hardware import use_liger_kernel

    liger = use_liger_kernel()  # tuneforge's engine uses it too, where it runs (a GPU)
    fastest: dict[str, RunResult] = {}
    for repeat in range(repeats):
        # A folder per run: tuneforge would resume from a finished run's checkpoint.
        attempt = replace(setup, output_dir=setup.output_dir / str(repeat))
        runs = (
            run_tuneforge(attempt),
            run_trl(attempt, recompute),
            run_trl(attempt, recompute, padding_free=True, liger=liger),
        )
        for result in runs:
            best = fastest.get(result.name)
            if best is None or result.train_s < best.train_s:
                fastest[result.name] = result
    return list(fastest.values())


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--model-shape", choices=("tiny", "1b"), help="default: by device")
    parser.add_argument("--examples", type=int, help="training examples (one epoch)")
    parser.add_argument("--mean-tokens", type=int, help="mean example length in tokens")
    parser.add_argument("--max-length", type=int, help="longer examples are cut (both trainers)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--adapter-size", type=int, default=8, help="LoRA rank")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of each, taking turns; the fastest counts"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on a CPU)")
    return parser.parse_args(argv)


def with_device_defaults(args: argparse.Namespace, device: str) -> argparse.Namespace:
    for name, value in DEFAULTS[device].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> None:
    results, parameters, device_name = measure(argv)
    print_report(results, parameters, device_name)


def measure(argv: list[str] | None = None) -> tuple[list[RunResult], int, str]:
    """Each trainer's run on the command line's model and data: the results (tuneforge's
    first), the model's parameters and the device's name."""
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch is imported: the engine follows
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers' notices that `gradient_checkpointing` is being renamed, from both trainers
    warnings.filterwarnings("ignore", category=FutureWarning)
    import datasets
    import torch

    from tuneforge.models.loading import load_tokenizer, quiet_transformers
    from tuneforge.models.resolve import resolve_base_model

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args = with_device_defaults(args, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_transformers()
    datasets.disable_progress_bars()
    device_name = (
        torch.cuda.get_device_name() if device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    )

    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as folder:
        root = Path(folder)
        base_model, settings = prepare_model(args.model_shape, root)
        source = resolve_base_model(base_model, settings).source
        examples = make_examples(args.examples, args.mean_tokens, args.max_length, SEED)
        parameters = parameter_count(source)
        print(
            f"model: {base_model} ({parameters / 1e6:,.1f}M parameters), "
            f"LoRA rank {args.adapter_size}"
        )
        lengths = token_lengths(examples, load_tokenizer(source), args.max_length)
        recompute = tuneforge_gradient_checkpointing(
            source, lengths, args.batch_size, args.adapter_size
        )
        print(f"data: {describe_lengths(lengths)}")
        print(
            f"batch size {args.batch_size}, max length {args.max_length}, one epoch, "
            f"gradient checkpointing {'on' if recompute else 'off'}, "
            f"torch threads {torch.get_num_threads()}"
        )
        setup = Setup(
            base_model=base_model,
            settings=settings,
            examples=examples,
            batch_size=args.batch_size,
            max_length=args.max_length,
            learning_rate=args.learning_rate,
            adapter_size=args.adapter_size,
            output_dir=root / "runs",
        )
        results = fastest_of(args.repeats, setup, recompute)
    return results, parameters, device_name


if __name__ == "__main__":
    main()
