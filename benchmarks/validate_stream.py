"""Time and memory of validating one big JSONL file, as an upload's background validation does.

    PYTHONPATH=src .venv/bin/python benchmarks/validate_stream.py --size-mb 200
    PYTHONPATH=src .venv/bin/python benchmarks/validate_stream.py --file my.jsonl --tracemalloc

It writes (or reuses) a file of generated chat examples with a few bad lines and duplicates, then
runs ``validate_dataset`` and ``validate_any_task`` with ``keep_examples=False``, each in a fresh
process, and prints seconds, the growth of the process's peak resident memory, and (with
``--tracemalloc``, about 2x slower) Python's own peak allocation.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

WORDS = [
    "the",
    "a",
    "model",
    "answer",
    "question",
    "data",
    "tune",
    "forge",
    "stream",
    "memory",
    "line",
    "file",
    "token",
]


def write_dataset(path: Path, size_bytes: int, seed: int = 0) -> int:
    """Chat examples of 10-60 words a turn; every 5,000th line is broken JSON and every
    7,000th repeats one example. Returns the number of lines."""
    rng = random.Random(seed)
    duplicate = {
        "messages": [
            {"role": "user", "content": "question 1"},
            {"role": "assistant", "content": "answer 1"},
        ]
    }
    count = written = 0
    with path.open("wb") as file:
        while written < size_bytes:
            count += 1
            if count % 5000 == 17:
                line = b'{"messages": [oops\n'
            elif count % 7000 == 3:
                line = json.dumps(duplicate).encode() + b"\n"
            else:
                question = " ".join(rng.choices(WORDS, k=rng.randint(10, 60)))
                answer = " ".join(rng.choices(WORDS, k=rng.randint(10, 60)))
                example = {
                    "messages": [
                        {"role": "system", "content": "Answer."},
                        {"role": "user", "content": f"{count} {question}"},
                        {"role": "assistant", "content": answer},
                    ]
                }
                line = json.dumps(example).encode() + b"\n"
            file.write(line)
            written += len(line)
    return count


def measure(function: str, path: str, trace: bool) -> dict:
    from tuneforge.data import validate

    call = getattr(validate, function)
    # The code before streaming has no keep_examples: it always kept them.
    kwargs = (
        {"keep_examples": False} if "keep_examples" in inspect.signature(call).parameters else {}
    )
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    report = call(Path(path), **kwargs)
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] if trace else None
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kb
    count = getattr(report, "example_count", None)
    return {
        "function": function,
        "seconds": round(seconds, 2),
        "rss_growth_mb": round(grown_kb / 1024, 1),
        "tracemalloc_peak_mb": round(traced / 2**20, 1) if traced is not None else None,
        "examples": count if count is not None else len(report.examples),
        "errors": report.error_count,
        "warnings": report.warning_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=Path("/tmp/tuneforge-validate-bench.jsonl"))
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--measure", nargs=2, metavar=("FUNCTION", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure, trace=args.tracemalloc)))
        return
    size = int(args.size_mb * 2**20)
    if not args.file.exists() or args.file.stat().st_size < size:
        lines = write_dataset(args.file, size)
        print(f"wrote {args.file}: {args.file.stat().st_size / 2**20:.0f} MiB, {lines} lines")
    for function in ("validate_dataset", "validate_any_task"):
        command = [sys.executable, __file__, "--measure", function, str(args.file)]
        if args.tracemalloc:
            command.append("--tracemalloc")
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
