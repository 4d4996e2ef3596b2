"""How long the commands that need no model take, against `python -c pass` and against an
import of torch and transformers (what every command paid before they became lazy).

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5]

Each command runs as a new process on a fresh data dir holding one queued job, as a user runs
it; the median of the repeats is printed with its ratio to `python -c pass`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = "tuneforge/tiny-chat"
HEAVY_IMPORT = "import torch, transformers, peft, trl"


def make_data_dir(root: Path) -> str:
    """A data dir with the tiny model's training file uploaded and one job queued on it."""
    from tuneforge.cli.common import local_service
    from tuneforge.config import Settings
    from tuneforge.data.samples import write_task
    from tuneforge.service import JobRequest

    service = local_service(Settings(data_dir=root / "data"))
    train = write_task(root / "task", "sentiment")["train"]
    with train.open("rb") as stream:
        file_id = service.files.upload("default", train.name, stream, "fine-tune").id
    return service.jobs.create("default", JobRequest(base_model=TINY, training_file=file_id)).job.id


def timed(argv: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        job_id = make_data_dir(root)
        env = {**os.environ, "TUNEFORGE_DATA_DIR": str(root / "data"), "HF_HUB_OFFLINE": "1"}
        env.pop("TUNEFORGE_SERVER", None)
        tuneforge = [sys.executable, "-m", "tuneforge.cli.main"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            f"python -c '{HEAVY_IMPORT}'": [sys.executable, "-c", HEAVY_IMPORT],
            "tuneforge --help": [*tuneforge, "--help"],
            "tuneforge jobs list": [*tuneforge, "jobs", "list"],
            "tuneforge jobs get": [*tuneforge, "jobs", "get", job_id],
            "tuneforge jobs events": [*tuneforge, "jobs", "events", job_id],
            "tuneforge models list": [*tuneforge, "models", "list"],
            "tuneforge keys list": [*tuneforge, "keys", "list"],
        }
        baseline = None
        print(f"{'command':<58} {'median s':>9} {'x pass':>7}")
        for name, argv in commands.items():
            seconds = timed(argv, env, args.repeats)
            baseline = baseline or seconds
            print(f"{name:<58} {seconds:>9.3f} {seconds / baseline:>7.1f}")


if __name__ == "__main__":
    main()
