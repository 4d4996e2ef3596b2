"""The Gemini API's tunedModels surface in-process, on SQLite and PostgreSQL: REST as the docs'
curl samples and the SDKs send it, google-genai in Gemini API mode, and every bad case in
Google's error shape. The legacy google-generativeai SDK (requests-based) and curl run against
a live server in tests/e2e/test_gemini_sdks.py."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.api.conftest import Api
from tests.api.test_vertex import complete_job
from tuneforge.data.records import Conversation
from tuneforge.inference.types import Completion, GenerationResult, ModelTarget, TextStream
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.states import JobState

pytestmark = pytest.mark.both_databases

warnings.filterwarnings("ignore", message=".*experimental.*")

TINY = "tuneforge/tiny-chat"
METADATA_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.CreateTunedModelMetadata"
TUNED_MODEL_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.TunedModel"
EXAMPLES = [{"textInput": f"{n}", "output": f"{n + 1}"} for n in range(12)]
VERTEX = "projects/p/locations/us-central1"
TEXT = [{"parts": [{"text": "x"}]}]


def body(examples=None, **fields) -> dict:
    return {
        "baseModel": f"models/{TINY}",
        "tuningTask": {
            "trainingData": {"examples": {"examples": EXAMPLES if examples is None else examples}},
            "hyperparameters": {"epochCount": 2, "batchSize": 4, "learningRate": 0.001},
        },
        **fields,
    }


def gkey(key: str) -> dict[str, str]:
    return {"x-goog-api-key": key}


def create(api: Api, payload: dict | None = None, query: str = "", version="v1beta", key=None):
    return api.client.post(
        f"/{version}/tunedModels{query}", json=payload or body(), headers=gkey(key or api.key)
    )


def assert_google_error(response, code: int, status: str, *fragments: str) -> str:
    assert response.status_code == code, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error["message"]


def record_steps(api: Api, job_id: str, losses: list[float]) -> None:
    with api.service.db.session() as s:
        for step, loss in enumerate(losses, 1):
            metrics = {"step": step, "epoch": step / 2, "loss": loss, "elapsed_s": float(step)}
            repo.record_event(s, job_id, f"step {step}", type="metrics",
                              data={"kind": "step", "metrics": metrics})  # fmt: skip


def finished(api: Api, tmp_path: Path, query: str = "?tunedModelId=numbers") -> tuple[str, str]:
    """A tuned model created here, then completed as a runner would: (its name, its job id)."""
    operation = create(api, query=query).json()
    job_id = operation["name"].rsplit("/", 1)[-1]
    complete_job(api, job_id, tmp_path)
    return operation["metadata"]["tunedModel"], job_id


# --- create, operation, get ------------------------------------------------------------------


def test_create_answers_an_operation_that_follows_the_job_to_its_tuned_model(
    api: Api, tmp_path: Path
):
    response = create(api, body(displayName="numbers", description="n+1"), "?tunedModelId=numbers")
    assert response.status_code == 200, response.text
    operation = response.json()
    name, _, job_id = operation["name"].partition("/operations/")
    assert name == "tunedModels/numbers" and job_id.startswith("tj-")
    assert operation["metadata"] == {"@type": METADATA_TYPE, "tunedModel": "tunedModels/numbers"}
    assert "done" not in operation

    stored = api.service.jobs.get("default", job_id).job
    assert (stored.base_model, stored.suffix, stored.display_name) == (TINY, "numbers", "numbers")
    assert stored.hyperparameters == {"epochs": 2, "batch_size": 4, "learning_rate": 0.001}
    training = api.service.files.get("default", stored.training_file)
    assert (training.example_count, training.status) == (12, "processed")

    model = api.client.get("/v1beta/tunedModels/numbers", headers=gkey(api.key)).json()
    assert (model["state"], model["baseModel"], model["displayName"]) == (
        "CREATING", f"models/{TINY}", "numbers"
    )  # fmt: skip
    assert model["tuningTask"]["hyperparameters"] == {
        "epochCount": 2, "batchSize": 4, "learningRate": 0.001
    }  # fmt: skip
    assert "trainingData" not in model["tuningTask"]
    as_ints = api.client.get(
        "/v1beta/tunedModels/numbers?$alt=json;enum-encoding=int", headers=gkey(api.key)
    )
    assert as_ints.json()["state"] == 1

    complete_job(api, job_id, tmp_path)
    record_steps(api, job_id, [2.5, 1.5, 0.5])
    done = api.client.get(f"/v1/{operation['name']}", headers=gkey(api.key)).json()
    assert done["done"] is True
    assert done["metadata"]["completedPercent"] == 100.0
    assert done["metadata"]["totalSteps"] == done["metadata"]["completedSteps"] == 20
    assert done["response"]["@type"] == TUNED_MODEL_TYPE
    assert done["response"]["state"] == "ACTIVE"
    snapshots = done["response"]["tuningTask"]["snapshots"]
    assert [(s["step"], s["epoch"], s["meanLoss"]) for s in snapshots] == [
        (1, 1, 2.5), (2, 1, 1.5), (3, 2, 0.5)
    ]  # fmt: skip
    assert all(s["computeTime"].endswith("Z") for s in snapshots)
    model = api.client.get("/v1beta/tunedModels/numbers", headers=gkey(api.key)).json()
    assert model["state"] == "ACTIVE"
    assert model["tuningTask"]["completeTime"] >= model["createTime"]
    assert model["tuningTask"]["snapshots"] == snapshots


def test_the_docs_curl_body_snake_case_trailing_commas_and_key_in_the_query(api: Api):
    examples = ",".join(
        f'{{"text_input": "{n}, said \\"x,}}\\"", "output": "{n + 1}",}}' for n in range(10)
    )
    curl_body = """{
        "display_name": "number generator model",
        "base_model": "models/tuneforge/tiny-chat",
        "tuning_task": {
          "hyperparameters": {"batch_size": 2, "learning_rate": 0.001, "epoch_count":5,},
          "training_data": {"examples": {"examples": [EXAMPLES]}}
        }
      }""".replace("EXAMPLES", examples)
    response = api.client.post(
        f"/v1beta/tunedModels?key={api.key}",
        content=curl_body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    job_id = response.json()["name"].rsplit("/", 1)[-1]
    job = api.service.jobs.get("default", job_id).job
    assert (job.display_name, job.hyperparameters["epochs"]) == ("number generator model", 5)
    dataset = api.service.files.local_path(api.service.files.get("default", job.training_file))
    first = json.loads(dataset.read_text().splitlines()[0])
    assert first == {"text_input": '0, said "x,}"', "output": "1"}  # commas in strings kept

    broken = api.client.post(
        f"/v1beta/tunedModels?key={api.key}", content='{"baseModel": "models/x" "tuningTask": {}}'
    )
    assert_google_error(broken, 400, "INVALID_ARGUMENT", "not valid JSON", "line 1 column")


def test_each_bad_example_is_named_by_index_and_field(api: Api):
    examples = [*EXAMPLES, {"textInput": 5, "output": "x"}, {"output": "y"}, "text",
                {"text_input": " ", "output": "z"}]  # fmt: skip
    message = assert_google_error(create(api, body(examples)), 400, "INVALID_ARGUMENT")
    at = "tuningTask.trainingData.examples.examples"
    assert f"{at}: 4 problems" in message
    assert f"{at}[12].textInput: expected text (a string); found a number (5)" in message
    assert f"{at}[13].textInput: missing" in message
    assert f"{at}[14]: expected an object {{textInput, output}}" in message
    assert f"{at}[15].textInput: the text is empty" in message
    assert api.client.get("/v1/files", headers=api.headers()).json()["data"] == []

    too_few = create(api, body(EXAMPLES[:3]))
    assert_google_error(too_few, 400, "INVALID_ARGUMENT", "tuningTask.trainingData", "10")
    empty = create(api, body([]))
    assert_google_error(empty, 400, "INVALID_ARGUMENT", "examples is required")


def test_bad_fields_say_what_to_fix(api: Api):
    cases = [
        (body(baseModel=None), "baseModel is required"),
        (body(baseModel="models/no-such-model"), "baseModel"),
        ({**body(), "tuningTask": {**body()["tuningTask"], "hyperparameters": {"epochCount": 0}}},
         "tuningTask.hyperparameters.epochCount"),
        ({**body(), "tuningTask": {**body()["tuningTask"],
                                   "hyperparameters": {"learningRate": 1e-3,
                                                       "learningRateMultiplier": 2}}},
         "learningRate or learningRateMultiplier, not both"),
        (body(tunedModelSource={"tunedModel": "tunedModels/nope"}),
         "tunedModelSource.tunedModel: tunedModels/nope not found"),
    ]  # fmt: skip
    for payload, fragment in cases:
        assert_google_error(create(api, payload), 400, "INVALID_ARGUMENT", fragment)
    bad_id = create(api, query="?tunedModelId=Bad_Id")
    assert_google_error(bad_id, 400, "INVALID_ARGUMENT", "tunedModelId 'Bad_Id'")
    reserved = create(api, query="?tuned_model_id=tj-mine")
    assert_google_error(reserved, 400, "INVALID_ARGUMENT", "tj-")


def test_an_oversized_inline_dataset_is_refused_by_the_configured_limit(api: Api, monkeypatch):
    big = [{"textInput": "x" * 1000, "output": "y"} for _ in range(4200)]  # over 4 MB
    message = assert_google_error(create(api, body(big)), 400, "INVALID_ARGUMENT")
    assert "4194304 bytes" in message and "TUNEFORGE_MAX_INLINE_DATASET_BYTES" in message

    monkeypatch.setattr(api.service.settings, "max_inline_dataset_bytes", 1000)
    small = create(api, body([{"textInput": "x" * 100, "output": "y"}] * 12))
    assert_google_error(small, 400, "INVALID_ARGUMENT", "1000 bytes")
    assert api.client.get("/v1/fine_tuning/jobs", headers=api.headers()).json()["data"] == []


def test_ids_are_per_project_and_taken_once(api: Api):
    assert create(api, query="?tunedModelId=mine").status_code == 200
    again = create(api, query="?tunedModelId=mine")
    assert_google_error(again, 409, "ALREADY_EXISTS", "tunedModels/mine already exists")
    # Another project may use the same id: ids of other projects are not revealed.
    assert create(api, query="?tunedModelId=mine", key=api.other_key).status_code == 200


def test_a_model_from_any_surface_is_reachable_from_the_others(api: Api, tmp_path, sentiment_files):
    name, job_id = finished(api, tmp_path)
    upload = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("train.jsonl", sentiment_files["train"].read_bytes())},
        data={"purpose": "fine-tune"},
    ).json()
    vertex = api.client.post(
        f"/v1/{VERTEX}/tuningJobs",
        json={"baseModel": TINY, "supervisedTuningSpec": {"trainingDatasetUri": upload["id"]}},
        headers=api.headers(),
    ).json()
    vertex_job = vertex["name"].rsplit("/", 1)[-1]
    got = api.client.get(f"/v1/tunedModels/{vertex_job}", headers=gkey(api.key)).json()
    assert (got["name"], got["state"]) == (f"tunedModels/{vertex_job}", "CREATING")

    tuned_id = api.service.jobs.get("default", job_id).tuned_model.id
    # This API's model on the others: OpenAI's job (with the id as its suffix), Vertex's job.
    openai = api.client.get(f"/v1/fine_tuning/jobs/{job_id}", headers=api.headers()).json()
    assert openai["fine_tuned_model"] == f"ft:{TINY.replace(':', '-')}:default:numbers:{job_id}"
    assert openai["status"] == "succeeded"
    assert (
        api.client.get(f"/v1/{VERTEX}/tuningJobs/{job_id}", headers=api.headers())
        .json()["tunedModel"]["endpoint"]
        .endswith(tuned_id)
    )
    # And by any of its ids here.
    for alias in (job_id, tuned_id):
        got = api.client.get(f"/v1/tunedModels/{alias}", headers=gkey(api.key)).json()
        assert (got["name"], got["state"]) == (name, "ACTIVE")
    # Listed once, newest first, under the name each one has here.
    listed = api.client.get("/v1/tunedModels", headers=gkey(api.key)).json()["tunedModels"]
    assert [m["name"] for m in listed] == [f"tunedModels/{vertex_job}", name]


# --- list, update, delete, cancel -------------------------------------------------------------


def test_list_pages_with_both_casings_and_the_docs_page_token_bug(api: Api):
    for n in range(5):
        assert create(api, query=f"?tunedModelId=m{n}").status_code == 200
    first = api.client.get("/v1beta/tunedModels?pageSize=2", headers=gkey(api.key)).json()
    assert [m["name"] for m in first["tunedModels"]] == ["tunedModels/m4", "tunedModels/m3"]
    token = first["nextPageToken"]
    second = api.client.get(
        f"/v1beta/tunedModels?page_size=2&page_token={token}", headers=gkey(api.key)
    ).json()
    assert [m["name"] for m in second["tunedModels"]] == ["tunedModels/m2", "tunedModels/m1"]
    # The docs' sample sends "?page_size=5&page_token=TOKEN?key=KEY": the key rides in the token.
    bugged = api.client.get(f"/v1beta/tunedModels?page_size=2&page_token={token}?key={api.key}")
    assert bugged.json()["tunedModels"] == second["tunedModels"]
    last = api.client.get(
        f"/v1beta/tunedModels?pageSize=2&pageToken={second['nextPageToken']}",
        headers=gkey(api.key),
    ).json()
    assert [m["name"] for m in last["tunedModels"]] == ["tunedModels/m0"]
    assert "nextPageToken" not in last
    as_ints = api.client.get("/v1beta/tunedModels?$alt=json;enum-encoding=int",
                             headers=gkey(api.key))  # fmt: skip
    assert {m["state"] for m in as_ints.json()["tunedModels"]} == {1}

    for query, fragment in [("pageToken=nonsense!", "pageToken"), ("pageSize=x", "pageSize")]:
        bad = api.client.get(f"/v1beta/tunedModels?{query}", headers=gkey(api.key))
        assert_google_error(bad, 400, "INVALID_ARGUMENT", fragment)
    assert api.client.get("/v1beta/tunedModels", headers=gkey(api.other_key)).json() == {}


def test_patch_follows_the_update_mask_or_the_fields_present(api: Api):
    create(api, body(displayName="old", description="old"), "?tunedModelId=m")
    url = "/v1beta/tunedModels/m"
    whole = api.client.get(url + "?$alt=json;enum-encoding=int", headers=gkey(api.key)).json()
    # The legacy SDK: the whole model (output-only fields, int state) and a camelCase mask.
    patched = api.client.patch(
        url + "?updateMask=description", json={**whole, "description": "new", "displayName": "x"},
        headers=gkey(api.key),
    ).json()  # fmt: skip
    assert (patched["description"], patched["displayName"]) == ("new", "old")
    # curl: a snake_case mask; google-genai: no mask at all.
    api.client.patch(url + "?update_mask=display_name", json={"displayName": "renamed"},
                     headers=gkey(api.key))  # fmt: skip
    got = api.client.patch(url, json={"description": "third"}, headers=gkey(api.key)).json()
    assert (got["displayName"], got["description"]) == ("renamed", "third")

    bad_mask = api.client.patch(url + "?updateMask=state", json={}, headers=gkey(api.key))
    assert_google_error(bad_mask, 400, "INVALID_ARGUMENT", "updateMask: state cannot be updated")
    nothing = api.client.patch(url, json={"state": "ACTIVE"}, headers=gkey(api.key))
    assert_google_error(nothing, 400, "INVALID_ARGUMENT", "nothing to update")
    too_long = api.client.patch(url, json={"displayName": "x" * 201}, headers=gkey(api.key))
    assert_google_error(too_long, 400, "INVALID_ARGUMENT", "displayName")


def test_cancel_then_delete(api: Api):
    operation = create(api, query="?tunedModelId=m").json()
    still_creating = api.client.delete("/v1beta/tunedModels/m", headers=gkey(api.key))
    assert_google_error(still_creating, 400, "FAILED_PRECONDITION", ":cancel")

    cancel = api.client.post(f"/v1beta/{operation['name']}:cancel", headers=gkey(api.key))
    assert cancel.status_code == 200 and cancel.json() == {}
    done = api.client.get(f"/v1/{operation['name']}", headers=gkey(api.key)).json()
    assert (done["done"], done["error"]["code"]) == (True, 1)  # google.rpc.Code.CANCELLED
    again = api.client.post(f"/v1beta/{operation['name']}:cancel", headers=gkey(api.key))
    assert_google_error(again, 400, "FAILED_PRECONDITION", "nothing to cancel")
    model = api.client.get("/v1beta/tunedModels/m", headers=gkey(api.key)).json()
    assert model["state"] == "FAILED"

    job_dir = storage_for(api.service.settings).job_dir(operation["name"].rsplit("/", 1)[-1])
    job_dir.mkdir(parents=True)
    (job_dir / "metrics.csv").write_text("step,loss\n")
    assert api.client.delete("/v1beta/tunedModels/m", headers=gkey(api.key)).json() == {}
    gone = api.client.get("/v1beta/tunedModels/m", headers=gkey(api.key))
    assert_google_error(gone, 404, "NOT_FOUND", "tunedModels/m not found")
    assert not job_dir.exists()
    # The id is free again.
    assert create(api, query="?tunedModelId=m").status_code == 200


def test_a_failed_job_is_a_failed_operation_with_a_grpc_code(api: Api):
    operation = create(api, query="?tunedModelId=m").json()
    job_id = operation["name"].rsplit("/", 1)[-1]
    with api.service.db.session() as s:
        repo.claim_next_job(s, "test-worker", capacity=100)
        repo.finish_job(s, job_id, JobState.FAILED,
                        error=repo.job_error("invalid_training_file", "line 3: bad"))  # fmt: skip
    done = api.client.get(f"/v1beta/{operation['name']}", headers=gkey(api.key)).json()
    assert done["done"] is True
    assert done["error"] == {"code": 3, "message": "line 3: bad"}  # INVALID_ARGUMENT
    model = api.client.get("/v1beta/tunedModels/m?$alt=json;enum-encoding=int",
                           headers=gkey(api.key)).json()  # fmt: skip
    assert model["state"] == 3


# --- generateContent ------------------------------------------------------------------------


@dataclass
class ScriptedBackend:
    """Answers "positive" in two deltas, and remembers what it was asked."""

    calls: list[tuple[ModelTarget, Conversation, object]]

    def generate(self, target, prompt, params) -> GenerationResult:
        self.calls.append((target, prompt, params))
        return GenerationResult([Completion("positive", "stop", 2)], prompt_tokens=7)

    def stream(self, target, prompt, params) -> TextStream:
        self.calls.append((target, prompt, params))

        def deltas() -> Iterator[str]:
            yield "posi"
            yield "tive"
            return False

        return TextStream(deltas(), 7, lambda _: ("stop", 2))


@pytest.fixture
def scripted(api: Api, monkeypatch) -> ScriptedBackend:
    backend = ScriptedBackend([])
    monkeypatch.setattr(api.service.generation, "_backend", backend)
    return backend


def test_generate_and_stream_as_the_legacy_sdk_and_curl_send_them(
    api: Api, scripted: ScriptedBackend, tmp_path: Path
):
    name, job_id = finished(api, tmp_path)
    url = f"/v1beta/{name}"
    curl = api.client.post(f"{url}:generateContent?key={api.key}",
                           json={"contents": [{"parts": [{"text": "LXIII"}]}]})  # fmt: skip
    assert curl.status_code == 200, curl.text
    answer = curl.json()
    assert answer["candidates"][0]["content"] == {"role": "model", "parts": [{"text": "positive"}]}
    assert (answer["candidates"][0]["finishReason"], answer["modelVersion"]) == ("STOP", name)
    target, prompt, _ = scripted.calls[-1]
    assert target.adapter_path == tmp_path / job_id / "epoch-2"
    assert [(t.role, t.text) for t in prompt.turns] == [("user", "LXIII")]

    legacy = {"contents": [{"parts": [{"text": "x"}], "role": "user"}], "generationConfig": {}}
    as_ints = api.client.post(f"{url}:generateContent?$alt=json;enum-encoding=int", json=legacy,
                              headers=gkey(api.key)).json()  # fmt: skip
    assert as_ints["candidates"][0]["finishReason"] == 1

    array = api.client.post(f"{url}:streamGenerateContent?$alt=json;enum-encoding=int",
                            json=legacy, headers=gkey(api.key))  # fmt: skip
    chunks = json.loads(array.text)
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["posi", "tive"]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == 1
    assert chunks[-1]["usageMetadata"] == {
        "promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9
    }  # fmt: skip

    sse = api.client.post(f"{url}:streamGenerateContent?alt=sse", json=legacy,
                          headers=gkey(api.key))  # fmt: skip
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in sse.text.split("\r\n\r\n") if line]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


def test_generate_content_refuses_a_model_still_being_created(api: Api, scripted):
    create(api, query="?tunedModelId=m")
    for action in ("generateContent", "streamGenerateContent"):
        response = api.client.post(f"/v1/tunedModels/m:{action}", json={"contents": []},
                                   headers=gkey(api.key))  # fmt: skip
        assert_google_error(response, 400, "FAILED_PRECONDITION", "CREATING", "ACTIVE")
    assert scripted.calls == []


# --- google-genai in Gemini API mode ----------------------------------------------------------


def gemini_client(api: Api, key: str, version: str = "v1") -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url="http://testserver", api_version=version, httpx_client=api.client
        ),
    )


def test_google_genai_gets_generates_streams_updates_and_cancels(
    api: Api, scripted: ScriptedBackend, tmp_path: Path
):
    name, _ = finished(api, tmp_path)
    for version in ("v1", "v1beta"):
        client = gemini_client(api, api.key, version)
        job = client.tunings.get(name=name)
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.has_succeeded
        assert job.tuned_model.model == name
        assert client.models.generate_content(model=name, contents="x").text == "positive"
        streamed = client.models.generate_content_stream(model=name, contents="x")
        assert [chunk.text for chunk in streamed] == ["posi", "tive"]
    client = gemini_client(api, api.key)
    updated = client.models.update(model=name, config={"description": "via genai"})
    assert updated.description == "via genai"
    assert [m.name for m in client.models.list(config={"query_base": False})] == [name]

    create(api, query="?tunedModelId=running")
    client.tunings.cancel(name="tunedModels/running")
    assert client.tunings.get(name="tunedModels/running").state == types.JobState.JOB_STATE_FAILED


def test_google_genai_tune_is_refused_naming_what_works(api: Api):
    client = gemini_client(api, api.key)
    with pytest.raises(genai_errors.ClientError) as caught:
        client.tunings.tune(
            base_model=f"models/{TINY}",
            training_dataset=types.TuningDataset(
                examples=[types.TuningExample(text_input="1", output="2")] * 12
            ),
            config=types.CreateTuningJobConfig(epoch_count=1),
        )
    assert caught.value.code == 400
    for fragment in ("drops the training examples", "Vertex mode", "google-generativeai", "REST"):
        assert fragment in caught.value.message
    assert api.client.get("/v1/fine_tuning/jobs", headers=api.headers()).json()["data"] == []


# --- authentication and other projects -------------------------------------------------------


def test_the_api_key_comes_from_the_header_or_the_query(api: Api):
    missing = api.client.get("/v1beta/tunedModels")
    assert_google_error(missing, 401, "UNAUTHENTICATED", "x-goog-api-key", "?key=")
    wrong = api.client.get("/v1beta/tunedModels?key=nope")
    assert_google_error(wrong, 401, "UNAUTHENTICATED", "invalid")
    assert api.client.get(f"/v1beta/tunedModels?key={api.key}").status_code == 200
    assert api.client.get("/v1/tunedModels", headers=api.headers()).status_code == 200


def test_another_projects_models_and_operations_are_not_found(
    api: Api, scripted: ScriptedBackend, tmp_path: Path
):
    name, job_id = finished(api, tmp_path)
    own = create(api, query="?tunedModelId=own", key=api.other_key).json()["name"]
    other = gkey(api.other_key)
    requests = [
        ("get", f"/v1beta/{name}", None),
        ("patch", f"/v1beta/{name}", {"description": "x"}),
        ("delete", f"/v1beta/{name}", None),
        ("get", f"/v1/{name}/operations/{job_id}", None),
        ("post", f"/v1/{name}/operations/{job_id}:cancel", None),
        ("post", f"/v1beta/{name}:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}),
        ("post", f"/v1beta/{name}:streamGenerateContent", {"contents": []}),
        ("get", f"/v1beta/tunedModels/{job_id}", None),
    ]
    for method, url, payload in requests:
        kwargs = {"json": payload} if payload is not None else {}
        response = api.client.request(method, url, headers=other, **kwargs)
        message = assert_google_error(response, 404, "NOT_FOUND", "not found")
        assert "default" not in message  # nothing about the project that owns it
    # Its own model with another project's operation id.
    stolen = api.client.get(f"/v1/{own.split('/operations/')[0]}/operations/{job_id}",
                            headers=other)  # fmt: skip
    assert_google_error(stolen, 404, "NOT_FOUND", "operation")
    source = create(api, body(tunedModelSource={"tunedModel": name}), key=api.other_key)
    assert_google_error(source, 400, "INVALID_ARGUMENT", f"{name} not found")
    assert scripted.calls == []


def test_tuning_goes_on_from_an_active_tuned_model(api: Api, tmp_path: Path):
    name, job_id = finished(api, tmp_path)
    payload = body(tunedModelSource={"tunedModel": name, "baseModel": f"models/{TINY}"})
    payload.pop("baseModel")
    operation = create(api, payload, "?tunedModelId=more").json()
    model = api.client.get("/v1beta/tunedModels/more", headers=gkey(api.key)).json()
    assert model["tunedModelSource"] == {
        "tunedModel": f"tunedModels/{job_id}", "baseModel": f"models/{TINY}"
    }  # fmt: skip
    assert "baseModel" not in model  # a oneof: the legacy SDK fails on both
    new_job = operation["name"].rsplit("/", 1)[-1]
    assert api.service.jobs.get("default", new_job).job.hyperparameters["pre_tuned_model"] == job_id


# --- Vertex streamGenerateContent ------------------------------------------------------------


def test_vertex_stream_generate_content_through_google_genai(
    api: Api, scripted: ScriptedBackend, tmp_path: Path
):
    from tests.api.test_vertex import sdk_client

    client = sdk_client(api, api.key)
    _, job_id = finished(api, tmp_path)
    tuned_id = api.service.jobs.get("default", job_id).tuned_model.id
    for model in (f"{VERTEX}/endpoints/{tuned_id}", TINY):
        chunks = list(client.models.generate_content_stream(model=model, contents="x"))
        assert "".join(chunk.text for chunk in chunks) == "positive"
        assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
        assert chunks[-1].usage_metadata.total_token_count == 9
    assert scripted.calls[0][0].adapter_path == tmp_path / job_id / "epoch-2"
    assert scripted.calls[1][0].name == TINY
    array = api.client.post(
        f"/v1/{VERTEX}/publishers/tuneforge/models/tiny-chat:streamGenerateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
        headers=api.headers(),
    )
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in array.json()] == [
        "posi", "tive"
    ]  # fmt: skip
    others = api.client.post(
        f"/v1/{VERTEX}/endpoints/{tuned_id}:streamGenerateContent?alt=sse",
        json={"contents": TEXT},
        headers=api.headers(api.other_key),
    )
    assert_google_error(others, 404, "NOT_FOUND", "not found")
    assert "default" not in others.text and job_id not in others.text
    missing = api.client.post(f"/v1/{VERTEX}/endpoints/tm-nope:streamGenerateContent?alt=sse",
                              json={"contents": TEXT}, headers=api.headers())  # fmt: skip
    assert_google_error(missing, 404, "NOT_FOUND")
