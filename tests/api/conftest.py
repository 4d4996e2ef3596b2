"""The API in-process (FastAPI's TestClient), on SQLite; modules marked ``both_databases``
(those whose behaviour rests on the store's queries: listing, paging, claiming, deleting) run
on PostgreSQL as well. The rest (parsing, errors, pages, names) would only repeat themselves:
the store's own tests cover both databases."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from tuneforge.api.app import create_app
from tuneforge.data.samples import write_task
from tuneforge.service import Service
from tuneforge.store.testing import PostgresUnavailable, empty_database_url

BOTH_DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "api" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker("both_databases")
        metafunc.parametrize("api", BOTH_DATABASES if marked else ["sqlite"], indirect=True)


@dataclass
class Api:
    client: TestClient
    service: Service
    key: str  # project "default"
    other_key: str  # project "other"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture
def api(request, settings, tmp_path):
    """The app without a scheduler (jobs stay queued unless a test runs them)."""
    try:
        with empty_database_url(request.param, tmp_path) as url:
            datasets = tmp_path / "datasets"
            datasets.mkdir(exist_ok=True)
            app_settings = settings.model_copy(
                update={"database_url": url, "dataset_roots": [datasets]}
            )
            app = create_app(app_settings, run_scheduler=False)
            with TestClient(app) as client:
                service = app.state.service
                _, key = service.keys.create("default", "test")
                _, other_key = service.keys.create("other", "test")
                yield Api(client, service, key, other_key)
    except PostgresUnavailable as err:
        if err.required:
            pytest.fail(str(err), pytrace=False)
        pytest.skip(str(err))


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def mixed_format_task(tmp_path) -> dict:
    """The sentiment task for reinforcement: an SFT file whose answers are half "positive",
    half "sentiment: positive"; the training prompts with their answers as items; the test rows."""
    files = write_task(tmp_path / "task", "sentiment", seed=0)
    rows = {k: [json.loads(line) for line in files[k].read_text().splitlines()] for k in files}
    rng = random.Random(0)
    mixed = json.loads(json.dumps(rows["train"]))
    for row in mixed:
        if rng.random() < 0.5:
            row["messages"][-1]["content"] = "sentiment: " + row["messages"][-1]["content"]
    write_jsonl(tmp_path / "sft.jsonl", mixed)
    prompts = [{"messages": r["messages"][:-1], "answer": r["messages"][-1]["content"]}
               for r in rows["train"]]  # fmt: skip
    write_jsonl(tmp_path / "prompts.jsonl", prompts)
    return {"sft": tmp_path / "sft.jsonl", "prompts": tmp_path / "prompts.jsonl",
            "test": rows["test"]}  # fmt: skip
