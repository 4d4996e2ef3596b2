"""``make demo``: tune the built-in tiny model on a generated task, end to end, offline.

``tuneforge tune`` validates the dataset and prints its statistics, tunes a LoRA adapter with
a progress bar (through the same server code ``tuneforge serve`` runs); then ``tuneforge
evaluate`` compares the tuned model with the base model zero-shot and few-shot on held-out
examples.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DEMO_DIR = Path(".demo")
BASE_MODEL = "tuneforge/tiny-chat"


def run(*args: str) -> None:
    from tuneforge.cli.main import app

    code = app(list(args), standalone_mode=False, prog_name="tuneforge")
    if code:
        sys.exit(code)


def main() -> None:
    os.environ.setdefault("TUNEFORGE_DATA_DIR", str((DEMO_DIR / "data").resolve()))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tuneforge.cli.common import console, local_service
    from tuneforge.data.samples import write_task

    started = time.perf_counter()
    files = write_task(DEMO_DIR / "datasets", "sentiment")
    console.rule("1. validate, measure and tune (the validation set picks the best epoch)")
    run(
        "tune",
        str(files["train"]),
        "--base-model",
        BASE_MODEL,
        "--validation",
        str(files["validation"]),
        "--epochs",
        "5",
        "--name",
        "demo-sentiment",
    )
    job = local_service().jobs.list("default", limit=1).items[0].job
    console.rule("2. tuned model vs. base model zero-shot and few-shot, on held-out reviews")
    run("evaluate", job.id, str(files["test"]), "--few-shot", "3")
    console.print(
        f"\ntry it:  tuneforge generate {job.id} 'review: a superb and moving film ->' "
        f"--system '{_system()}'"
    )
    console.print(
        f"demo finished in {time.perf_counter() - started:.0f} s "
        f"(data in {os.environ['TUNEFORGE_DATA_DIR']})"
    )


def _system() -> str:
    from tuneforge.data.samples import SENTIMENT_SYSTEM

    return SENTIMENT_SYSTEM


if __name__ == "__main__":
    main()
