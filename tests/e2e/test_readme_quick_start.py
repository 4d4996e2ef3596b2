"""The README's quick start, run as pasted in a fresh folder: samples, validate, tune, list,
generate (the label the README shows), evaluate, export. Timed: the README's claims of speed
are measured here (about 2 minutes on 2 busy CPU cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import readme_block

pytestmark = pytest.mark.slow


def test_the_quick_start_runs_as_pasted(settings, tmp_path):
    bin_dir = str(Path(sys.executable).parent)  # where `tuneforge` and `python` are installed
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "TUNEFORGE_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "200",
    }
    env.pop("TUNEFORGE_SERVER", None)
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-ec", readme_block("quick-start")], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"quick start: {elapsed:.0f} s")

    lines = done.stdout.splitlines()
    answer = lines[lines.index(next(x for x in lines if "prompt tokens" in x)) - 1]
    assert answer.strip() == "positive"  # the label the README's comment shows
    config = json.loads((tmp_path / "my-adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tuneforge/tiny-chat"
    assert "## Hyperparameters" in (tmp_path / "my-adapter" / "README.md").read_text()
