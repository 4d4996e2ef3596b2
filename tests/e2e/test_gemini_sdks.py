"""End to end: a real ``tuneforge serve`` driven by the Gemini API's clients, unmodified: the
legacy ``google-generativeai`` SDK on its REST transport, ``google-genai`` in Gemini API mode,
and the tuning quickstart's curl flow, each as the README shows it (its code blocks are run as
they stand)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import google.generativeai as legacy
import httpx
import pytest
from google.api_core import exceptions as google_exceptions

from tests.helpers import readme_block

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", category=FutureWarning)

TINY = "models/tuneforge/tiny-chat"
TIMEOUT_S = 300


def run_readme(marker: str, command: list[str], server, cwd: Path) -> str:
    env = {**os.environ, "GOOGLE_API_KEY": server.key, "TUNEFORGE_SERVER": server.url}
    done = subprocess.run(
        [*command, readme_block(marker)], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def configure(server) -> None:
    legacy.configure(
        api_key=server.key, transport="rest", client_options={"api_endpoint": server.url}
    )


def rows(count: int, prefix: str = "") -> list[tuple[str, str]]:
    return [(f"{prefix}{n}", f"{prefix}{n + 1}") for n in range(count)]


def test_the_readme_routes_legacy_sdk_google_genai_and_curl(live_server, tmp_path):
    # The legacy SDK's block tunes number-generator, waits, and answers, also streamed.
    printed = run_readme("gemini-legacy-sdk", [sys.executable, "-c"], live_server, tmp_path)
    first, answer = printed.split("\n", 1)
    assert first == "tunedModels/number-generator ACTIVE"
    configure(live_server)
    greedy = legacy.GenerativeModel("tunedModels/number-generator")
    config = {"temperature": 0, "max_output_tokens": 4}
    whole = greedy.generate_content("5", generation_config=config)
    streamed = greedy.generate_content("5", generation_config=config, stream=True)
    assert "".join(chunk.text for chunk in streamed) == whole.text
    assert whole.candidates[0].finish_reason.name in ("STOP", "MAX_TOKENS")
    assert answer.strip()  # the README block printed the model's answers

    # google-genai in Gemini API mode reads it and asks it.
    printed = run_readme("gemini-genai", [sys.executable, "-c"], live_server, tmp_path)
    assert printed.splitlines()[0] == "JobState.JOB_STATE_SUCCEEDED"

    # curl: create with the quickstart's body, poll on /v1, read the state, ask, delete.
    printed = run_readme("gemini-curl", ["bash", "-c"], live_server, tmp_path)
    assert "Tuning...100%" in printed  # jq writes the float 100.0 as 100
    assert '"ACTIVE"' in printed
    assert '"candidates"' in printed and '"finishReason":' in printed
    created = (tmp_path / "tunemodel.json").read_text()
    name = re.search(r'"tunedModel":\s*"([^"]+)"', created)[1]
    gone = httpx.get(f"{live_server.url}/v1beta/{name}?key={live_server.key}")
    assert gone.status_code == 404 and gone.json()["error"]["status"] == "NOT_FOUND"


def test_legacy_sdk_tunes_from_tuples_and_csv_and_manages_its_models(live_server, tmp_path):
    configure(live_server)
    operation = legacy.create_tuned_model(
        source_model=TINY, training_data=rows(12), display_name="tuples", epoch_count=1
    )
    model = operation.result(timeout=TIMEOUT_S)
    assert model.state.name == "ACTIVE" and model.name.startswith("tunedModels/tj-")
    assert model.display_name == "tuples" and model.base_model == TINY
    assert model.tuning_task.hyperparameters.epoch_count == 1
    snapshots = model.tuning_task.snapshots
    assert snapshots and all(s["mean_loss"] > 0 for s in snapshots)
    assert [s["step"] for s in snapshots] == list(range(1, len(snapshots) + 1))

    path = tmp_path / "train.csv"
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(["text_input", "output"])
        writer.writerows(rows(12, "csv "))
    from_csv = legacy.create_tuned_model(
        source_model=model.name, training_data=str(path), id="from-csv", epoch_count=1
    )
    assert from_csv.metadata.tuned_model == "tunedModels/from-csv"
    chained = from_csv.result(timeout=TIMEOUT_S)
    assert chained.source_model == model.name  # went on from the first model's weights

    got = legacy.get_tuned_model("tunedModels/from-csv")
    assert (got.state.name, got.create_time <= got.update_time) == ("ACTIVE", True)
    listed = [m.name for m in legacy.list_tuned_models(page_size=1)]
    assert listed == ["tunedModels/from-csv", model.name]
    updated = legacy.update_tuned_model(
        "tunedModels/from-csv", {"description": "from a CSV file", "display_name": "csv"}
    )
    assert (updated.description, updated.display_name) == ("from a CSV file", "csv")
    assert legacy.get_tuned_model("tunedModels/from-csv").description == "from a CSV file"

    legacy.delete_tuned_model(model.name)
    with pytest.raises(google_exceptions.NotFound, match=f"{model.name} not found"):
        legacy.get_tuned_model(model.name)
    with pytest.raises(google_exceptions.NotFound, match="not found"):
        legacy.GenerativeModel(model.name).generate_content("x")


def test_legacy_sdk_errors_cancel_and_a_failed_operation(live_server):
    configure(live_server)
    with pytest.raises(google_exceptions.BadRequest, match=r"examples\[1\]\.textInput"):
        legacy.create_tuned_model(source_model=TINY, training_data=[("a", "b"), ("", "c")] * 6)
    with pytest.raises(google_exceptions.BadRequest, match="baseModel"):
        legacy.create_tuned_model(source_model="models/no-such-model", training_data=rows(12))

    operation = legacy.create_tuned_model(source_model=TINY, training_data=rows(12), id="stop")
    operation.cancel()
    deadline = time.monotonic() + TIMEOUT_S
    while not operation.done() and time.monotonic() < deadline:
        time.sleep(0.5)
    with pytest.raises(google_exceptions.Cancelled):
        operation.result()
    assert legacy.get_tuned_model("tunedModels/stop").state.name == "FAILED"
