"""Authentication and authorization on both surfaces, each in its own error shape: no key or a
revoked key is 401, another project's job is 404 (as a missing one is), and a dataset path
outside the dataset roots is 400."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.both_databases

TINY = "tuneforge/tiny-chat"
VERTEX_JOBS = "/v1/projects/any-label/locations/us-central1/tuningJobs"


@dataclass(frozen=True)
class Surface:
    name: str
    jobs: str  # the collection URL
    cancel: str  # format string with {job}

    def create_body(self, training: str) -> dict:
        if self.name == "vertex":
            return {"baseModel": TINY, "supervisedTuningSpec": {"trainingDatasetUri": training}}
        return {"model": TINY, "training_file": training}

    def job(self, job_id: str) -> str:
        return f"{self.jobs}/{job_id}"

    def check_error(self, response, status: int) -> str:
        """Assert the surface's error shape; return the message."""
        assert response.status_code == status, response.text
        error = response.json()["error"]
        if self.name == "vertex":
            expected = {401: "UNAUTHENTICATED", 404: "NOT_FOUND", 400: "INVALID_ARGUMENT"}
            assert (error["code"], error["status"]) == (status, expected[status])
        else:
            expected = {
                401: "authentication_error",
                404: "not_found_error",
                400: "invalid_request_error",
            }
            assert error["type"] == expected[status]
            assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
        return error["message"]


SURFACES = [
    Surface("vertex", VERTEX_JOBS, VERTEX_JOBS + "/{job}:cancel"),
    Surface("openai", "/v1/fine_tuning/jobs", "/v1/fine_tuning/jobs/{job}/cancel"),
]


@pytest.fixture(params=SURFACES, ids=lambda s: s.name)
def surface(request) -> Surface:
    return request.param


@pytest.fixture
def training_file(api: Api, sentiment_files) -> str:
    response = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("train.jsonl", sentiment_files["train"].read_bytes())},
        data={"purpose": "fine-tune"},
    )
    return response.json()["id"]


def create_job(api: Api, surface: Surface, training: str, key: str | None = None):
    return api.client.post(
        surface.jobs, json=surface.create_body(training), headers=api.headers(key)
    )


def job_id_from(surface: Surface, body: dict) -> str:
    return body["name"].rsplit("/", 1)[-1] if surface.name == "vertex" else body["id"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "empty-bearer", "basic"],
)
def test_requests_without_a_key_are_401(api: Api, surface: Surface, headers: dict):
    for method, url in [("GET", surface.jobs), ("POST", surface.jobs), ("GET", "/v1/files")]:
        response = api.client.request(method, url, headers=headers, json={})
        shape = surface if url != "/v1/files" else SURFACES[1]  # files answer in OpenAI's
        message = shape.check_error(response, 401)
        assert "API key" in message
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_or_revoked_key_is_401(api: Api, surface: Surface):
    assert api.client.get(surface.jobs, headers=api.headers()).status_code == 200
    surface.check_error(api.client.get(surface.jobs, headers=api.headers("tf-wrong")), 401)

    key_row, key = api.service.keys.create("default", "soon revoked")
    assert api.client.get(surface.jobs, headers=api.headers(key)).status_code == 200
    api.service.keys.revoke("default", key_row.id)
    message = surface.check_error(api.client.get(surface.jobs, headers=api.headers(key)), 401)
    assert "revoked" in message
    # Other keys of the project keep working.
    assert api.client.get(surface.jobs, headers=api.headers()).status_code == 200


def test_the_google_api_key_header_is_accepted(api: Api):
    response = api.client.get(VERTEX_JOBS, headers={"x-goog-api-key": api.key})
    assert response.status_code == 200


def test_another_projects_job_is_404_like_a_missing_one(
    api: Api, surface: Surface, training_file: str
):
    created = create_job(api, surface, training_file)
    assert created.status_code == 200, created.text
    job_id = job_id_from(surface, created.json())

    theirs = surface.check_error(
        api.client.get(surface.job(job_id), headers=api.headers(api.other_key)), 404
    )
    missing = surface.check_error(
        api.client.get(surface.job("tj-000000000000"), headers=api.headers(api.other_key)), 404
    )
    assert theirs.replace(job_id, "ID") == missing.replace("tj-000000000000", "ID")
    cancel = api.client.post(surface.cancel.format(job=job_id), headers=api.headers(api.other_key))
    surface.check_error(cancel, 404)
    listed = api.client.get(surface.jobs, headers=api.headers(api.other_key)).json()
    assert listed.get("tuningJobs", listed.get("data")) in (None, [])
    # Nor can the other project train on this project's file.
    surface.check_error(create_job(api, surface, training_file, key=api.other_key), 400)
    # The owner still sees it, still queued.
    mine = api.client.get(surface.job(job_id), headers=api.headers()).json()
    assert mine.get("state", mine.get("status")) in ("JOB_STATE_QUEUED", "queued")


def test_dataset_paths_outside_the_roots_are_400(
    api: Api, surface: Surface, tmp_path: Path, sentiment_files
):
    root = tmp_path / "datasets"  # the api fixture's only dataset root
    inside = root / "train.jsonl"
    inside.write_bytes(sentiment_files["train"].read_bytes())
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(inside.read_bytes())
    (root / "link.jsonl").symlink_to(outside)

    for path in [outside, root / ".." / "elsewhere.jsonl", root / "link.jsonl", "/etc/passwd"]:
        message = surface.check_error(create_job(api, surface, str(path)), 400)
        assert "dataset root" in message, path
    assert create_job(api, surface, str(inside)).status_code == 200
