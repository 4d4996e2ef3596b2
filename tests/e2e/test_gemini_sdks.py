"""End to end: a real ``tuneforge serve`` driven by the Gemini API's clients, unmodified: the
legacy ``google-generativeai`` SDK on its REST transport. The README's blocks for it, for
``google-genai`` in Gemini API mode and for the tuning quickstart's curl flow run in
test_readme_blocks.py."""

from __future__ import annotations

import csv
import time
import warnings

import google.generativeai as legacy
import pytest
from google.api_core import exceptions as google_exceptions

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", category=FutureWarning)

TINY = "models/tuneforge/tiny-chat"
TIMEOUT_S = 300


def configure(server) -> None:
    legacy.configure(
        api_key=server.key, transport="rest", client_options={"api_endpoint": server.url}
    )


def rows(count: int, prefix: str = "") -> list[tuple[str, str]]:
    return [(f"{prefix}{n}", f"{prefix}{n + 1}") for n in range(count)]


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
