"""Errors the API must not leak, and files it must not delete."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tuneforge.service import RESULTS_PURPOSE
from tuneforge.storage import local_file
from tuneforge.store import repo


def test_deleting_a_result_file_keeps_the_jobs_metrics(api: Api, tmp_path):
    metrics = tmp_path / "jobs" / "tj-x" / "metrics.csv"
    metrics.parent.mkdir(parents=True)
    metrics.write_text("step,loss\n1,0.5\n")
    with api.service.db.session() as s:
        row = repo.create_file(
            s,
            "default",
            filename="step_metrics.csv",
            bytes=metrics.stat().st_size,
            sha256=hashlib.sha256(metrics.read_bytes()).hexdigest(),
            purpose=RESULTS_PURPOSE,
            path=str(metrics),
            status="processed",
        )
        file_id = row.id
    response = api.client.delete(f"/v1/files/{file_id}", headers=api.headers())
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] is True
    assert metrics.is_file()


def test_an_uploaded_file_is_still_removed_from_disk(api: Api, sentiment_files):
    content = sentiment_files["train"].read_bytes()
    created = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("t.jsonl", content)},
        data={"purpose": "fine-tune"},
    ).json()
    with api.service.db.session() as s:
        path = local_file(repo.get_file(s, "default", created["id"]).path)
    assert path.is_file()
    assert api.client.delete(f"/v1/files/{created['id']}", headers=api.headers()).is_success
    assert not path.exists()


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("models.list", "/v1/models", {"message": "internal error", "type": "server_error"}),
        (
            "jobs.list",
            "/v1/projects/p/locations/l/tuningJobs",
            {"code": 500, "message": "internal error", "status": "INTERNAL"},
        ),
    ],
)
def test_unexpected_errors_answer_500_in_the_surfaces_shape(
    api: Api, monkeypatch, caplog, method, path, expected
):
    def boom(*args, **kwargs):
        raise RuntimeError("secret detail /data/path")

    resource, name = method.split(".")
    monkeypatch.setattr(getattr(api.service, resource), name, boom)
    client = TestClient(api.client.app, raise_server_exceptions=False)
    response = client.get(path, headers=api.headers())
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    body = response.json()["error"]
    assert expected.items() <= body.items()
    assert "secret" not in response.text
    assert "secret detail" in caplog.text
