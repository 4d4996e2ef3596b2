"""Commands that need no model start without torch or transformers (seconds on a busy machine):
their timings are in benchmarks/cli_startup.py; this checks what they import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tuneforge.cli.common import local_service
from tuneforge.service import JobRequest

TINY = "tuneforge/tiny-chat"
PROBE = """
import json, sys
from typer.testing import CliRunner
from tuneforge.cli.main import app
result = CliRunner().invoke(app, sys.argv[1:])
heavy = sorted(m for m in ("torch", "transformers", "peft", "trl") if m in sys.modules)
print(json.dumps({"code": result.exit_code, "heavy": heavy, "output": result.output}))
"""


@pytest.fixture
def job_id(settings, sentiment_files) -> str:
    service = local_service(settings)
    with sentiment_files["train"].open("rb") as stream:
        file_id = service.files.upload("default", "train.jsonl", stream, "fine-tune").id
    request = JobRequest(base_model=TINY, training_file=file_id)
    return service.jobs.create("default", request).job.id


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["jobs", "list"],
        ["jobs", "get", "{job}"],
        ["jobs", "events", "{job}"],
        ["models", "list"],
        ["keys", "list"],
    ],
)
def test_a_command_that_needs_no_model_imports_no_torch(command, job_id, settings):
    env = {**os.environ, "TUNEFORGE_DATA_DIR": str(settings.data_dir)}
    env.pop("TUNEFORGE_SERVER", None)
    args = [part.format(job=job_id) for part in command]
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, result["output"]
    assert result["heavy"] == [], f"`tuneforge {' '.join(args)}` imported {result['heavy']}"
    if command[:2] == ["jobs", "get"]:
        assert job_id in result["output"]
    if command[:2] == ["jobs", "events"]:
        assert "created tuning job" in result["output"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuneforge.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "80", **(env or {})},
    )


def test_version_prints_the_packages_version() -> None:
    from tuneforge import __version__

    result = run_cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"tuneforge {__version__}")


@pytest.mark.parametrize(
    "command",
    [
        ["jobs", "list"],
        # tune must say so before it spends time validating the dataset locally.
        ["tune", "README.md", "--base-model", TINY],
    ],
)
def test_a_server_that_is_not_running_is_named_in_one_line(command, settings) -> None:
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli(*command, "--server", url, env={"TUNEFORGE_API_KEY": "tf-some-key"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback, not wrapped
    assert lines[0].startswith(f"error: no tuneforge server answers at {url}")
    assert "tuneforge serve" in lines[0]
