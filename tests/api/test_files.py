"""The files API: OpenAI's shape (driven by the unmodified openai SDK where it has a call),
immutable storage with a sha256, validation on arrival, the size limit, project scoping."""

from __future__ import annotations

import hashlib
import io
import json

import openai
import pytest

from tests.api.conftest import Api
from tuneforge.api.files_schema import LISTED_PROBLEMS
from tuneforge.storage import LocalStorage, local_file

pytestmark = pytest.mark.both_databases


@pytest.fixture
def sdk(api: Api) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=api.key, http_client=api.client)


def upload(
    api: Api, content: bytes, *, purpose: str | None = "fine-tune", key=None, name="d.jsonl"
):
    data = {"purpose": purpose} if purpose is not None else {}
    return api.client.post(
        "/v1/files", headers=api.headers(key), files={"file": (name, content)}, data=data
    )


def test_upload_shows_openai_fields_format_count_and_report(
    api: Api, sdk: openai.OpenAI, sentiment_files
):
    content = sentiment_files["train"].read_bytes()
    created = sdk.files.create(file=("train.jsonl", content), purpose="fine-tune")
    assert created.id.startswith("file-")
    assert (created.object, created.filename, created.purpose) == (
        "file",
        "train.jsonl",
        "fine-tune",
    )
    assert (created.bytes, created.status, created.status_details) == (
        len(content),
        "processed",
        None,
    )
    assert isinstance(created.created_at, int)

    body = api.client.get(f"/v1/files/{created.id}", headers=api.headers()).json()
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert (body["format"], body["example_count"]) == ("openai_chat", 400)
    assert body["validation"]["ok"] is True
    assert body["validation"]["error_count"] == 0

    assert sdk.files.retrieve(created.id).id == created.id
    assert sdk.files.content(created.id).read() == content
    stored = api.service.files.get("default", created.id)
    assert stored.path.endswith(f"{created.id}.jsonl")
    assert local_file(stored.path).read_bytes() == content


def test_an_invalid_file_is_stored_with_its_errors_by_line(api: Api):
    lines = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "yo"}]},
    ]
    content = ("\n".join(json.dumps(line) for line in lines) + "\n{not json\n").encode()
    body = upload(api, content).json()
    assert body["status"] == "error"
    assert "line 2" in body["status_details"] and "line 3" in body["status_details"]
    problems = body["validation"]["problems"]
    assert {problem["line"] for problem in problems} >= {2, 3}
    assert body["example_count"] == 1


def test_a_list_carries_a_summary_of_each_report_and_a_get_the_whole(api: Api):
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    lines = [good] + [{"messages": []} for _ in range(LISTED_PROBLEMS + 7)]
    file_id = upload(api, "\n".join(json.dumps(line) for line in lines).encode()).json()["id"]

    whole = api.client.get(f"/v1/files/{file_id}", headers=api.headers()).json()
    listed = api.client.get("/v1/files", headers=api.headers()).json()["data"]
    [summary] = [file for file in listed if file["id"] == file_id]
    report, shown = whole["validation"], summary["validation"]
    problems = report["error_count"] + report["warning_count"]
    assert report["error_count"] == LISTED_PROBLEMS + 7 and len(report["problems"]) == problems
    assert shown["problems"] == report["problems"][:LISTED_PROBLEMS]
    assert shown["omitted_problems"] == problems - LISTED_PROBLEMS
    for field in ("ok", "format", "example_count", "error_count", "warning_count"):
        assert shown[field] == report[field]
    # Everything else about the file is as a get shows it.
    assert {**summary, "validation": None} == {**whole, "validation": None}


def test_list_pages_newest_first_and_filters_on_purpose(api: Api, sdk: openai.OpenAI):
    ids = [upload(api, b'{"prompt": "a", "completion": "b"}\n').json()["id"] for _ in range(3)]
    batch = upload(api, b'{"prompt": "a", "completion": "b"}\n', purpose="batch").json()["id"]

    first = api.client.get("/v1/files", params={"limit": 2}, headers=api.headers()).json()
    assert first["object"] == "list"
    assert [f["id"] for f in first["data"]] == [batch, ids[2]]
    assert first["has_more"] is True
    rest = api.client.get(
        "/v1/files", params={"limit": 2, "after": first["last_id"]}, headers=api.headers()
    ).json()
    assert [f["id"] for f in rest["data"]] == [ids[1], ids[0]]
    assert rest["has_more"] is False

    tuning = api.client.get("/v1/files", params={"purpose": "fine-tune"}, headers=api.headers())
    assert [f["id"] for f in tuning.json()["data"]] == ids[::-1]
    # The SDK's pager walks every page.
    assert [f.id for f in sdk.files.list(limit=1)] == [batch, *ids[::-1]]


def test_delete_removes_the_row_and_the_bytes(api: Api, sdk: openai.OpenAI):
    file_id = upload(api, b'{"prompt": "a", "completion": "b"}\n').json()["id"]
    path = local_file(api.service.files.get("default", file_id).path)
    assert path.is_file()
    deleted = sdk.files.delete(file_id)
    assert (deleted.id, deleted.object, deleted.deleted) == (file_id, "file", True)
    missing = api.client.get(f"/v1/files/{file_id}", headers=api.headers())
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"
    assert not path.exists()
    with pytest.raises(openai.NotFoundError):
        sdk.files.delete(file_id)


def test_files_of_another_project_are_not_found(api: Api):
    file_id = upload(api, b'{"prompt": "a", "completion": "b"}\n').json()["id"]
    for method, path in [
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ]:
        response = api.client.request(method, path, headers=api.headers(api.other_key))
        assert response.status_code == 404, (method, path)
    listed = api.client.get("/v1/files", headers=api.headers(api.other_key)).json()
    assert listed["data"] == []
    assert api.service.files.get("default", file_id).id == file_id


@pytest.mark.parametrize("size", [1_500, 3 << 20], ids=["just-over", "declared-too-large"])
def test_uploads_over_the_limit_are_refused_with_413(api: Api, monkeypatch, size: int):
    """Just over the limit, the copy to disk stops at it; far over it, the declared length
    alone refuses the upload before any of it is read."""
    monkeypatch.setattr(api.service.settings, "max_upload_bytes", 1_000)
    response = upload(api, b"x" * size)
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "file_too_large",
        "file",
    )
    assert "1000 bytes" in error["message"]
    files_dir = LocalStorage(api.service.settings.data_dir).files_dir
    assert not files_dir.exists() or list(files_dir.iterdir()) == []
    assert api.client.get("/v1/files", headers=api.headers()).json()["data"] == []


def test_a_file_at_the_limit_is_accepted(api: Api, monkeypatch):
    line = b'{"prompt": "a", "completion": "b"}\n'
    monkeypatch.setattr(api.service.settings, "max_upload_bytes", len(line) * 3)
    assert upload(api, line * 3).status_code == 200


@pytest.mark.parametrize(
    ("purpose", "fragment"),
    [(None, "purpose must be one of"), ("training", "got 'training'")],
)
def test_a_missing_or_unknown_purpose_is_refused(api: Api, purpose, fragment):
    response = upload(api, b"{}\n", purpose=purpose)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "purpose"
    assert fragment in response.json()["error"]["message"]


def test_an_upload_without_a_file_part_is_refused(api: Api):
    response = api.client.post(
        "/v1/files", headers=api.headers(), data={"purpose": "fine-tune", "file": "text"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "file"


def test_the_stored_name_drops_client_folders(api: Api):
    body = upload(api, b'{"prompt": "a", "completion": "b"}\n', name="../../etc/x.jsonl").json()
    assert body["filename"] == "x.jsonl"
    windows = upload(api, b'{"prompt": "a", "completion": "b"}\n', name="C:\\data\\y.jsonl")
    assert windows.json()["filename"] == "y.jsonl"


def test_an_upload_streams_from_a_file_object(api: Api, sdk: openai.OpenAI):
    """The SDK streams a file object it is given; the stored bytes are those bytes."""
    content = b'{"prompt": "a", "completion": "b"}\n' * 1000
    created = sdk.files.create(file=("big.jsonl", io.BytesIO(content)), purpose="fine-tune")
    assert created.bytes == len(content)
    assert api.service.files.get("default", created.id).example_count == 1000
