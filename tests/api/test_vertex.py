"""The Vertex AI-compatible API, driven by the unmodified google-genai SDK (in-process, through
the TestClient) and by plain requests where the SDK has no call for a route."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import google.oauth2.credentials
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.api.conftest import Api
from tuneforge.data.records import Conversation
from tuneforge.inference.types import Completion, GenerationResult, ModelTarget
from tuneforge.store import repo
from tuneforge.store.states import JobState

pytestmark = pytest.mark.both_databases

PARENT = "projects/my-project/locations/us-central1"
JOBS = f"/v1/{PARENT}/tuningJobs"
TINY = "tuneforge/tiny-chat"
TEXT = [{"parts": [{"text": "x"}]}]  # generateContent's contents: one user text

warnings.filterwarnings("ignore", message=".*experimental.*")


@pytest.fixture
def client(api: Api) -> genai.Client:
    return sdk_client(api, api.key)


def sdk_client(api: Api, key: str) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token=key),
        http_options=types.HttpOptions(
            base_url="http://testserver", api_version="v1", httpx_client=api.client
        ),
    )


@pytest.fixture
def train_file(api: Api, sentiment_files) -> str:
    response = api.client.post(
        "/v1/files",
        headers=api.headers(),
        files={"file": ("train.jsonl", sentiment_files["train"].read_bytes())},
        data={"purpose": "fine-tune"},
    )
    assert response.status_code == 200, response.text
    return response.json()["id"]


def create(api: Api, body: dict, version: str = "v1", key: str | None = None):
    return api.client.post(f"/{version}/{PARENT}/tuningJobs", json=body, headers=api.headers(key))


def supervised(train_file: str, **spec) -> dict:
    return {"baseModel": TINY, "supervisedTuningSpec": {"trainingDatasetUri": train_file, **spec}}


def job_id_of(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def complete_job(api: Api, job_id: str, tmp_path: Path, epochs: int = 2) -> list[str]:
    """Record what a runner records, without training: progress, data stats, a checkpoint per
    epoch (the last the default), the tuned model, SUCCEEDED. Returns the checkpoint ids."""
    with api.service.db.session() as s:
        assert repo.claim_next_job(s, "test-worker", capacity=100).id == job_id
        stats = {"tuningDatasetExampleCount": 400, "tuningStepCount": 10 * epochs}
        repo.update_progress(s, job_id, completed_steps=10 * epochs, completed_epochs=epochs,
                             total_epochs=epochs, data_stats=stats, disk_bytes=3 << 20)  # fmt: skip
        checkpoints = []
        for epoch in range(1, epochs + 1):
            path = str(tmp_path / job_id / f"epoch-{epoch}")
            checkpoint = repo.add_checkpoint(
                s, job_id, epoch=epoch, step=10 * epoch, path=path, is_default=epoch == epochs
            )
            checkpoints.append(checkpoint.id)
        repo.create_tuned_model(s, job_id)
        repo.finish_job(s, job_id, JobState.SUCCEEDED)
    return checkpoints


# --- tuning jobs through the SDK -----------------------------------------------------------


def test_sdk_tunes_gets_lists_and_cancels(api: Api, client: genai.Client, train_file: str):
    job = client.tunings.tune(
        base_model=TINY,
        training_dataset=types.TuningDataset(gcs_uri=train_file),
        config=types.CreateTuningJobConfig(
            epoch_count=3,
            learning_rate_multiplier=2.0,
            adapter_size="ADAPTER_SIZE_FOUR",
            tuned_model_display_name="sentiment",
            description="a test",
            labels={"team": "nlp"},
        ),
    )
    assert job.name.startswith(f"{PARENT}/tuningJobs/tj-")
    assert job.state == types.JobState.JOB_STATE_QUEUED
    assert (job.base_model, job.tuned_model_display_name, job.description) == (
        TINY,
        "sentiment",
        "a test",
    )
    assert job.labels == {"team": "nlp"}
    spec = job.supervised_tuning_spec
    assert spec.training_dataset_uri == train_file
    assert spec.tuning_mode == types.TuningMode.TUNING_MODE_PEFT_ADAPTER
    assert spec.hyper_parameters.epoch_count == 3
    assert spec.hyper_parameters.learning_rate_multiplier == 2.0
    assert spec.hyper_parameters.adapter_size == types.AdapterSize.ADAPTER_SIZE_FOUR
    assert job.create_time is not None and job.start_time is None

    stored = api.service.jobs.get("default", job_id_of(job.name)).job
    assert stored.hyperparameters == {
        "epochs": 3,
        "learning_rate_multiplier": 2.0,
        "adapter_size": 4,
    }
    assert (stored.method, stored.mode) == ("supervised", "peft")

    assert client.tunings.get(name=job.name).name == job.name
    assert [j.name for j in client.tunings.list()] == [job.name]
    client.tunings.cancel(name=job.name)
    assert client.tunings.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED


def test_a_finished_job_shows_its_tuned_model_and_checkpoints(
    api: Api, client: genai.Client, train_file: str, tmp_path: Path
):
    created = create(api, supervised(train_file)).json()
    checkpoints = complete_job(api, job_id_of(created["name"]), tmp_path)

    job = client.tunings.get(name=created["name"])
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.end_time is not None and job.start_time is not None
    tuned = api.service.jobs.get("default", job_id_of(job.name)).tuned_model
    assert job.tuned_model.model == f"{PARENT}/models/{tuned.id}"
    assert job.tuned_model.endpoint == f"{PARENT}/endpoints/{tuned.id}"
    assert [
        (c.checkpoint_id, c.epoch, c.step, c.endpoint) for c in job.tuned_model.checkpoints
    ] == [
        (checkpoints[0], 1, 10, f"{PARENT}/endpoints/{checkpoints[0]}"),
        (checkpoints[1], 2, 20, f"{PARENT}/endpoints/{checkpoints[1]}"),
    ]
    assert job.tuning_job_metadata.completed_epoch_count == 2
    assert job.tuning_job_metadata.completed_step_count == 20
    disk_bytes = api.client.get(f"/v1/{created['name']}", headers=api.headers()).json()[
        "tuningJobMetadata"
    ]["diskBytes"]
    assert disk_bytes == 3 << 20
    stats = job.tuning_data_stats.supervised_tuning_data_stats
    assert (stats.tuning_dataset_example_count, stats.tuning_step_count) == (400, 20)
    # Epochs the job resolved show even when the request left them to the service.
    assert job.supervised_tuning_spec.hyper_parameters.epoch_count == 2


def test_export_last_checkpoint_only_is_kept_and_shown_in_the_spec(
    api: Api, client: genai.Client, train_file: str
):
    job = client.tunings.tune(
        base_model=TINY,
        training_dataset=types.TuningDataset(gcs_uri=train_file),
        config=types.CreateTuningJobConfig(export_last_checkpoint_only=True),
    )
    assert job.supervised_tuning_spec.export_last_checkpoint_only is True
    stored = api.service.jobs.get("default", job_id_of(job.name)).job
    assert stored.hyperparameters == {"export_last_checkpoint_only": True}
    bad = create(api, supervised(train_file, exportLastCheckpointOnly="sometimes"))
    assert bad.status_code == 400
    assert "supervisedTuningSpec.exportLastCheckpointOnly" in bad.json()["error"]["message"]


def test_list_pages_and_filters_on_state(api: Api, client: genai.Client, train_file: str):
    names = [create(api, supervised(train_file)).json()["name"] for _ in range(5)]
    api.client.post(f"/v1/{names[0]}:cancel", headers=api.headers())

    first = api.client.get(JOBS, params={"pageSize": 2}, headers=api.headers()).json()
    assert [j["name"] for j in first["tuningJobs"]] == names[::-1][:2]
    second = api.client.get(
        JOBS, params={"pageSize": 2, "pageToken": first["nextPageToken"]}, headers=api.headers()
    ).json()
    assert [j["name"] for j in second["tuningJobs"]] == names[::-1][2:4]

    # The SDK's pager follows nextPageToken to the end.
    listed = client.tunings.list(config={"page_size": 2})
    assert [job.name for job in listed] == names[::-1]

    queued = client.tunings.list(config={"filter": "state=JOB_STATE_QUEUED"})
    assert [job.name for job in queued] == names[:0:-1]
    either = api.client.get(
        JOBS,
        params={"filter": 'state="JOB_STATE_CANCELLED" OR state=JOB_STATE_RUNNING'},
        headers=api.headers(),
    ).json()
    assert [j["name"] for j in either["tuningJobs"]] == [names[0]]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"filter": "display_name=x"}, "only filters on state"),
        ({"filter": "state=JOB_STATE_DONE"}, "only filters on state"),
        ({"pageToken": "not-a-token!"}, "invalid page token"),
        ({"pageSize": -1}, "pageSize"),
    ],
)
def test_bad_list_parameters_say_what_to_fix(api: Api, query, fragment):
    response = api.client.get(JOBS, params=query, headers=api.headers())
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert fragment in error["message"]


def test_methods_modes_and_pre_tuned_models_map_to_the_service(
    api: Api, client: genai.Client, train_file: str, preference_files, tmp_path: Path
):
    full = client.tunings.tune(
        base_model=TINY,
        training_dataset=types.TuningDataset(gcs_uri=f"files/{train_file}"),
        config=types.CreateTuningJobConfig(
            tuning_mode="TUNING_MODE_FULL",
            batch_size=8,
            learning_rate=1e-3,
            validation_dataset=types.TuningValidationDataset(gcs_uri=train_file),
        ),
    )
    assert full.supervised_tuning_spec.tuning_mode == types.TuningMode.TUNING_MODE_FULL
    assert full.supervised_tuning_spec.validation_dataset_uri == train_file
    stored = api.service.jobs.get("default", job_id_of(full.name)).job
    assert (stored.mode, stored.hyperparameters) == (
        "full",
        {"batch_size": 8, "learning_rate": 1e-3},
    )
    api.service.jobs.cancel("default", stored.id)

    with preference_files["train"].open("rb") as stream:
        pairs = api.service.files.upload("default", "pairs.jsonl", stream, "fine-tune").id
    preference = client.tunings.tune(
        base_model=TINY,
        training_dataset=types.TuningDataset(gcs_uri=pairs),
        config=types.CreateTuningJobConfig(method="PREFERENCE_TUNING", epoch_count=2, beta=0.2),
    )
    assert preference.preference_optimization_spec.hyper_parameters.beta == 0.2
    assert preference.supervised_tuning_spec is None
    stored = api.service.jobs.get("default", job_id_of(preference.name)).job
    assert (stored.method, stored.hyperparameters) == ("preference", {"epochs": 2, "beta": 0.2})
    api.service.jobs.cancel("default", stored.id)

    distillation = client.tunings.tune(
        base_model=TINY,
        training_dataset=types.TuningDataset(gcs_uri=train_file),
        config=types.CreateTuningJobConfig(
            method="DISTILLATION", base_teacher_model="tuneforge/tiny-chat-large"
        ),
    )
    assert distillation.distillation_spec.base_teacher_model == "tuneforge/tiny-chat-large"
    assert distillation.distillation_spec.prompt_dataset_uri == train_file
    stored = api.service.jobs.get("default", job_id_of(distillation.name)).job
    assert (stored.method, stored.teacher_model) == ("distillation", "tuneforge/tiny-chat-large")
    api.service.jobs.cancel("default", stored.id)

    # A tuned model's Vertex name as the base continues its tuning (the SDK sends
    # preTunedModel with snake_case keys).
    first = create(api, supervised(train_file)).json()
    checkpoints = complete_job(api, job_id_of(first["name"]), tmp_path)
    tuned_name = client.tunings.get(name=first["name"]).tuned_model.model
    further = client.tunings.tune(
        base_model=tuned_name,
        training_dataset=types.TuningDataset(gcs_uri=train_file),
        config=types.CreateTuningJobConfig(pre_tuned_model_checkpoint_id=checkpoints[0]),
    )
    assert further.base_model == TINY
    assert further.pre_tuned_model.tuned_model_name == checkpoints[0]
    stored = api.service.jobs.get("default", job_id_of(further.name)).job
    assert stored.hyperparameters == {"pre_tuned_model": checkpoints[0]}

    without_checkpoint = create(
        api,
        {
            "preTunedModel": {"tunedModelName": tuned_name},
            "supervisedTuningSpec": {"trainingDatasetUri": train_file},
        },
    )
    assert without_checkpoint.status_code == 200, without_checkpoint.text
    assert without_checkpoint.json()["baseModel"] == TINY


def test_unknown_fields_are_ignored_and_v1beta1_is_the_same_api(api: Api, train_file: str):
    body = supervised(train_file, exportLastCheckpointOnly=True, evaluationConfig={"x": 1})
    body |= {"encryptionSpec": {"kmsKeyName": "k"}, "serviceAccount": "sa@x"}
    response = create(api, body, version="v1beta1")
    assert response.status_code == 200, response.text
    name = response.json()["name"]
    assert api.client.get(f"/v1/{name}", headers=api.headers()).json()["name"] == name
    assert api.client.get(f"/v1beta1/{name}", headers=api.headers()).json()["name"] == name


@pytest.mark.parametrize(
    ("top", "spec", "fragment"),
    [
        ({"baseModel": None}, {}, "baseModel is required"),
        ({"baseModel": "no-such/model-anywhere"}, {}, "baseModel"),
        ({"supervisedTuningSpec": None}, {}, "exactly one of supervisedTuningSpec"),
        ({"preferenceOptimizationSpec": {"trainingDatasetUri": "file-x"}}, {}, "exactly one"),
        ({}, {"trainingDatasetUri": None}, "supervisedTuningSpec.trainingDatasetUri"),
        ({}, {"trainingDatasetUri": "file-missing"}, "no file 'file-missing'"),
        ({}, {"trainingDatasetUri": "/etc/passwd"}, "not under a dataset root"),
        ({}, {"trainingDatasetUri": "ftp://host/x.jsonl"}, "unsupported URI scheme"),
        ({}, {"validationDatasetUri": "file-missing"}, "supervisedTuningSpec.validationDataset"),
        ({}, {"hyperParameters": {"epochCount": 0}}, "hyperParameters.epochCount"),
        ({}, {"hyperParameters": {"epochCount": "many"}}, "hyperParameters.epochCount"),
        ({}, {"hyperParameters": {"adapterSize": "ADAPTER_SIZE_THREE"}}, "adapterSize"),
        ({}, {"tuningMode": "TUNING_MODE_HALF"}, "tuningMode"),
        (
            {},
            {"hyperParameters": {"learningRate": 0.1, "learningRateMultiplier": 2}},
            "supervisedTuningSpec.hyperParameters.learningRate or "
            "supervisedTuningSpec.hyperParameters.learningRateMultiplier",
        ),
    ],
)
def test_wrong_values_get_vertex_errors_that_say_what_to_fix(
    api: Api, train_file: str, top: dict, spec: dict, fragment: str
):
    """``None`` leaves a field out."""
    body = supervised(train_file)
    body["supervisedTuningSpec"] = without_nones(body["supervisedTuningSpec"] | spec)
    response = create(api, without_nones(body | top))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert fragment in error["message"]


def without_nones(body: dict) -> dict:
    return {key: value for key, value in body.items() if value is not None}


def test_distillation_without_a_teacher_is_refused(api: Api, train_file: str):
    response = create(
        api, {"baseModel": TINY, "distillationSpec": {"promptDatasetUri": train_file}}
    )
    assert response.status_code == 400
    assert "distillationSpec.baseTeacherModel" in response.json()["error"]["message"]


def test_sdk_raises_the_vertex_error(client: genai.Client):
    with pytest.raises(genai_errors.ClientError) as caught:
        client.tunings.tune(
            base_model=TINY,
            training_dataset=types.TuningDataset(gcs_uri="gs://bucket/train.jsonl"),
            config=types.CreateTuningJobConfig(epoch_count=1),
        )
    assert caught.value.code == 400
    assert "gs://" in caught.value.message


# --- native additions: pause, resume, events, metrics --------------------------------------


def test_pause_resume_events_and_metrics(api: Api, train_file: str):
    name = create(api, supervised(train_file)).json()["name"]
    paused = api.client.post(f"/v1/{name}:pause", headers=api.headers()).json()
    assert paused["state"] == "JOB_STATE_PAUSED"
    resumed = api.client.post(f"/v1/{name}:resume", headers=api.headers()).json()
    assert resumed["state"] == "JOB_STATE_QUEUED"
    again = api.client.post(f"/v1/{name}:resume", headers=api.headers())
    assert again.status_code == 400
    assert again.json()["error"]["status"] == "FAILED_PRECONDITION"

    metrics = [("step", {"step": 1, "loss": 2.0}), ("step", {"step": 2, "loss": 1.5}),
               ("epoch", {"epoch": 1, "step": 2, "valid_loss": 1.7})]  # fmt: skip
    with api.service.db.session() as s:
        for kind, values in metrics:
            data = {"kind": kind, "metrics": values}
            repo.record_event(s, job_id_of(name), kind, type="metrics", data=data)

    events = api.client.get(f"/v1/{name}/events", headers=api.headers()).json()["events"]
    messages = [event["message"] for event in events]
    assert messages[:3] == ["created tuning job", "tuning job paused", "tuning job resumed"]
    assert events[-1]["data"]["metrics"]["valid_loss"] == 1.7
    assert all(event["createTime"].endswith("Z") for event in events)
    page = api.client.get(f"/v1/{name}/events", params={"pageSize": 2}, headers=api.headers())
    rest = api.client.get(
        f"/v1/{name}/events",
        params={"pageToken": page.json()["nextPageToken"]},
        headers=api.headers(),
    )
    assert [e["message"] for e in page.json()["events"] + rest.json()["events"]] == messages

    series = api.client.get(f"/v1/{name}/metrics", headers=api.headers()).json()
    assert series == {
        "steps": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}],
        "epochs": [{"epoch": 1, "step": 2, "valid_loss": 1.7}],
    }


def test_cancelling_a_finished_job_is_a_failed_precondition(
    api: Api, train_file: str, tmp_path: Path
):
    name = create(api, supervised(train_file)).json()["name"]
    complete_job(api, job_id_of(name), tmp_path)
    response = api.client.post(f"/v1/{name}:cancel", headers=api.headers())
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_a_broken_training_file_is_refused_at_creation_with_its_first_errors(
    api: Api, sentiment_files, tmp_path: Path
):
    rows = sentiment_files["train"].read_text().splitlines()
    rows[6] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(rows) + "\n")
    with broken.open("rb") as stream:
        file_id = api.service.files.upload("default", "broken.jsonl", stream, "fine-tune").id
    response = create(api, supervised(file_id))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "supervisedTuningSpec.trainingDatasetUri" in error["message"]
    assert 'line 7, messages[0]: the last message is a "user" message' in error["message"]
    assert api.service.jobs.list("default").items == []


def test_a_failed_job_shows_a_google_rpc_status(api: Api, client: genai.Client, train_file: str):
    name = create(api, supervised(train_file)).json()["name"]
    with api.service.db.session() as s:
        repo.claim_next_job(s, "w", capacity=1)
        repo.finish_job(
            s,
            job_id_of(name),
            JobState.FAILED,
            {"code": "invalid_training_file", "message": "line 3: bad", "param": "training_file"},
        )
    job = client.tunings.get(name=name)
    assert job.state == types.JobState.JOB_STATE_FAILED
    assert (job.error.code, job.error.message) == (3, "line 3: bad")
    assert job.error.details[0]["reason"] == "INVALID_TRAINING_FILE"


# --- generateContent ------------------------------------------------------------------------


@dataclass
class RecordingBackend:
    """An inference backend that answers "positive" and remembers what it was asked."""

    calls: list[tuple[ModelTarget, Conversation, object]]

    def generate(self, target, prompt, params) -> GenerationResult:
        self.calls.append((target, prompt, params))
        completions = [Completion("positive", "stop", 1) for _ in range(params.n)]
        return GenerationResult(completions, prompt_tokens=7)


@pytest.fixture
def recording(api: Api, monkeypatch) -> RecordingBackend:
    backend = RecordingBackend([])
    monkeypatch.setattr(api.service.generation, "_backend", backend)
    return backend


def test_generate_content_on_a_tuned_model_and_its_checkpoints(
    api: Api, client: genai.Client, recording: RecordingBackend, train_file: str, tmp_path: Path
):
    name = create(api, supervised(train_file)).json()["name"]
    checkpoints = complete_job(api, job_id_of(name), tmp_path)
    job = client.tunings.get(name=name)

    response = client.models.generate_content(
        model=job.tuned_model.endpoint,
        contents=[
            types.Content(role="user", parts=[types.Part(text="hi")]),
            types.Content(role="model", parts=[types.Part(text="hello")]),
            types.Content(role="user", parts=[types.Part(text="review: "), types.Part(text="ok")]),
        ],
        config=types.GenerateContentConfig(
            system_instruction="classify",
            temperature=0.5,
            top_p=0.9,
            top_k=20,
            max_output_tokens=4,
            stop_sequences=["\n"],
            seed=7,
            candidate_count=2,
        ),
    )
    assert [c.content.parts[0].text for c in response.candidates] == ["positive", "positive"]
    assert response.candidates[0].content.role == "model"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (7, 2)
    assert usage.total_token_count == 9

    target, prompt, params = recording.calls[-1]
    assert target.adapter_path == tmp_path / job_id_of(name) / "epoch-2"  # the default
    assert prompt.system == "classify"
    assert [(t.role, t.text) for t in prompt.turns] == [
        ("user", "hi"),
        ("model", "hello"),
        ("user", "review: ok"),
    ]
    assert (params.temperature, params.top_p, params.top_k) == (0.5, 0.9, 20)
    assert (params.max_output_tokens, params.stop, params.seed, params.n) == (4, ("\n",), 7, 2)

    client.models.generate_content(model=job.tuned_model.checkpoints[0].endpoint, contents="x")
    assert recording.calls[-1][0].adapter_path == tmp_path / job_id_of(name) / "epoch-1"
    # By the tuned model's id, under any publisher, and under /v1beta1.
    client.models.generate_content(model=job_id_of(job.tuned_model.model), contents="x")
    assert recording.calls[-1][0].adapter_path.name == "epoch-2"
    response = api.client.post(
        f"/v1beta1/{PARENT}/endpoints/{checkpoints[0]}:generateContent",
        json={"contents": TEXT},
        headers=api.headers(),
    )
    assert response.status_code == 200
    assert response.json()["modelVersion"] == checkpoints[0]

    # Another project's tuned model is not found.
    other = sdk_client(api, api.other_key)
    with pytest.raises(genai_errors.ClientError) as caught:
        other.models.generate_content(model=job.tuned_model.endpoint, contents="x")
    assert caught.value.code == 404


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (TINY, TINY),  # sent as publishers/tuneforge/models/tiny-chat
        ("tiny-chat-large", "tiny-chat-large"),  # sent as publishers/google/models/tiny-chat-large
        (f"{PARENT}/publishers/tuneforge/models/tiny-chat", TINY),
        (f"{PARENT}/models/tuneforge/tiny-chat", TINY),
    ],
)
def test_generate_content_on_base_models(
    api: Api, client: genai.Client, recording: RecordingBackend, model: str, expected: str
):
    response = client.models.generate_content(model=model, contents="x")
    assert response.text == "positive"
    target = recording.calls[-1][0]
    assert (target.name, target.adapter_path) == (expected, None)
    assert response.model_version == expected


def test_generate_content_with_the_real_tiny_model(api: Api, client: genai.Client):
    response = client.models.generate_content(
        model=TINY,
        contents="review: great movie ->",
        config=types.GenerateContentConfig(temperature=0, max_output_tokens=3),
    )
    assert response.candidates[0].finish_reason in (
        types.FinishReason.STOP,
        types.FinishReason.MAX_TOKENS,
    )
    assert response.usage_metadata.candidates_token_count <= 3
    assert response.usage_metadata.prompt_token_count > 0

    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(
            model=TINY,
            contents=[
                types.Content(role="user", parts=[types.Part(text="x")]),
                types.Content(role="model", parts=[types.Part(text="y")]),
            ],
        )
    assert caught.value.code == 400
    assert "contents[1]: the contents must end with a user turn" in caught.value.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"contents": []}, "contents"),
        ({"contents": [{"role": "tool", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": [{"inlineData": {"data": ""}}]}]}, "inlineData.mimeType"),
        # The same checks, and field paths, as a dataset line.
        (
            {"contents": [{"role": "model", "parts": [{"text": "x"}]}, *TEXT]},
            'contents[0].role: expected a "user" turn here',
        ),
        ({"contents": [*TEXT, *TEXT]}, 'contents[1].role: expected a "model" turn here'),
        ({"contents": [{"role": "user", "parts": []}]}, "contents[0].parts"),
        ({"contents": [{"role": "user", "parts": [{"text": 3}]}]}, "contents[0].parts[0].text"),
        ({"contents": TEXT, "systemInstruction": {"parts": "x"}}, "systemInstruction.parts"),
        ({"contents": TEXT, "generationConfig": {"topP": 2}}, "generationConfig.topP"),
        ({"contents": TEXT, "generationConfig": {"maxOutputTokens": 0}}, "maxOutputTokens"),
        ({"contents": TEXT, "generationConfig": {"candidateCount": 0}}, "candidateCount"),
    ],
)
def test_bad_generate_requests_say_what_to_fix(
    api: Api, recording: RecordingBackend, body: dict, fragment: str
):
    response = api.client.post(
        f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:generateContent",
        json=body,
        headers=api.headers(),
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "resource",
    ["endpoints/tm-000000000000", "endpoints/1234567890", "datasets/abc", "tuningJobs/x"],
)
def test_generate_content_on_unknown_models_is_not_found(
    api: Api, recording: RecordingBackend, resource: str
):
    response = api.client.post(
        f"/v1/{PARENT}/{resource}:generateContent",
        json={"contents": TEXT},
        headers=api.headers(),
    )
    assert response.status_code == 404
    assert response.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize(("config", "temperature"), [({}, 1.0), ({"temperature": 0}, 0.0)])
def test_generate_content_samples_unless_told_otherwise(
    api: Api, recording: RecordingBackend, config: dict, temperature: float
):
    response = api.client.post(
        f"/v1/{PARENT}/publishers/tuneforge/models/tiny-chat:generateContent",
        json={"contents": TEXT, "generationConfig": config},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    assert recording.calls[-1][2].temperature == temperature
