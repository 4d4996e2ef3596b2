"""An upload is validated after it is stored, as OpenAI's files are: it is listed at once with
status ``uploaded``, then ``processed`` or ``error``. A server stopped mid-validation validates
the file again when it starts, and removes what a killed upload left on disk."""

from __future__ import annotations

import os
import threading
import time

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Api
from tuneforge.api.app import create_app
from tuneforge.service import files as file_service
from tuneforge.storage import local_file

pytestmark = pytest.mark.both_databases

DEADLINE_S = 30.0


def wait_for_status(api: Api, file_id: str, *, not_: str = "uploaded") -> dict:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        body = api.client.get(f"/v1/files/{file_id}", headers=api.headers()).json()
        if body["status"] != not_:
            return body
        assert time.monotonic() < deadline, f"{file_id} stayed {not_}"
        time.sleep(0.05)


class HeldValidation:
    """Each file's first validation waits until the test releases it (a server stopped while
    validating never finishes it); any later one runs at once. The request does not wait."""

    def __init__(self, validate) -> None:
        self.validate = validate
        self.released = threading.Event()
        self.seen: set[str] = set()

    def __call__(self, source, **kwargs):
        if str(source) not in self.seen:
            self.seen.add(str(source))
            assert self.released.wait(DEADLINE_S)
        return self.validate(source, **kwargs)

    def set(self) -> None:
        self.released.set()


@pytest.fixture
def slow_validation(monkeypatch):
    held = HeldValidation(file_service.validate_any_task)
    monkeypatch.setattr(file_service, "validate_any_task", held)
    monkeypatch.setattr(file_service, "VALIDATION_WAIT_S", 0.0)
    yield held
    held.set()


def upload(api: Api, content: bytes) -> dict:
    response = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("d.jsonl", content)},
        data={"purpose": "fine-tune"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_an_upload_answers_before_validation_and_is_processed_after(
    api: Api, slow_validation, sentiment_files
):
    content = sentiment_files["train"].read_bytes()
    body = upload(api, content)
    assert (body["status"], body["example_count"], body["validation"]) == ("uploaded", None, None)
    listed = api.client.get("/v1/files", headers=api.headers()).json()["data"]
    assert [(f["id"], f["status"]) for f in listed] == [(body["id"], "uploaded")]

    slow_validation.set()
    done = wait_for_status(api, body["id"])
    assert (done["status"], done["format"], done["example_count"]) == (
        "processed",
        "openai_chat",
        400,
    )
    assert done["validation"]["ok"] is True


def test_an_invalid_upload_ends_in_error_with_its_problems(api: Api, slow_validation):
    body = upload(api, b'{"messages": []}\n{not json\n')
    assert body["status"] == "uploaded"
    slow_validation.set()
    done = wait_for_status(api, body["id"])
    assert done["status"] == "error"
    assert "line 2" in done["status_details"]


def test_a_file_deleted_while_it_is_validated_stays_deleted(api: Api, slow_validation):
    body = upload(api, b'{"messages": []}\n')
    assert api.client.delete(f"/v1/files/{body['id']}", headers=api.headers()).status_code == 200
    slow_validation.set()
    assert api.service.files.validations.flush(DEADLINE_S)
    response = api.client.get(f"/v1/files/{body['id']}", headers=api.headers())
    assert response.status_code == 404


def test_a_restart_validates_what_was_left_and_removes_abandoned_uploads(
    api: Api, slow_validation, sentiment_files
):
    # A server stopped while validating: its file stays "uploaded" in the store.
    body = upload(api, sentiment_files["train"].read_bytes())
    stored = local_file(api.service.files.get("default", body["id"]).path)
    files_dir = stored.parent
    # What killed uploads left, untouched for an hour: a partial file, and a whole file whose
    # row was never written. A partial file being written now belongs to a live upload.
    an_hour_ago = time.time() - 3600
    abandoned = [files_dir / "file-killed.partial", files_dir / "file-norow.jsonl"]
    live = files_dir / "file-live.partial"
    for path in [*abandoned, live]:
        path.write_bytes(b"x" * 1000)
    for path in [*abandoned, stored]:
        os.utime(path, (an_hour_ago, an_hour_ago))

    restarted = create_app(api.service.settings, run_scheduler=False)
    with TestClient(restarted):  # its start-up
        assert restarted.state.service.files.validations.flush(DEADLINE_S)
        assert [path.exists() for path in abandoned] == [False, False]
        assert live.exists() and stored.exists()
        # The first server's validation never finished; the restarted one's did.
        assert wait_for_status(api, body["id"])["status"] == "processed"
