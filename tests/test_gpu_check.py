"""benchmarks/gpu_check.sh's smoke mode: the GPU check's code, on tiny shapes on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_part_and_writes_one_table_and_json(tmp_path):
    report_file = tmp_path / "gpu_check.json"
    env = {
        **os.environ,
        "GPU_CHECK_SMOKE": "1",
        "GPU_CHECK_JSON": str(report_file),
        "GPU_CHECK_WHEELS": str(tmp_path / "no-wheels"),  # this machine has its packages
        "PYTHON": sys.executable,
        "TMPDIR": str(tmp_path),
    }
    done = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_file.read_text())
    parts = report["parts"]
    assert set(parts) == {"throughput", "full_ft", "qlora_8b", "serve"}
    failed = {name: part for name, part in parts.items() if "error" in part or "skipped" in part}
    assert not failed, failed
    trainers = [run["trainer"] for run in parts["throughput"]["runs"]]
    assert trainers == ["tuneforge", "TRL SFTTrainer", "TRL padding-free"]  # no Liger on a CPU
    assert all(run["tokens_per_second"] > 0 for run in parts["throughput"]["runs"])
    assert parts["full_ft"]["tokens_per_second"] > 0 and parts["full_ft"]["mfu"] is None
    assert parts["qlora_8b"]["outcome"] == "succeeded"
    assert parts["qlora_8b"]["memory_plan"]["batch_size"] == 8
    assert set(parts["serve"]["results"]) == {"single", "mixed", "per-model"}
    assert report["versions"]["torch"] and report["smoke"] is True
    table = done.stdout
    assert "tuneforge / TRL SFTTrainer" in table and "MFU" in table and "mixed tokens/s" in table
