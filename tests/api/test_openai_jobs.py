"""/v1/fine_tuning/jobs: OpenAI's fine-tuning jobs, their events and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from tuneforge.data.samples import write_task
from tuneforge.jobs.runner import METRICS_CSV_COLUMNS, run_job
from tuneforge.store import repo

pytestmark = pytest.mark.both_databases

TINY = "tuneforge/tiny-chat"
JOBS = "/v1/fine_tuning/jobs"


def upload(api, path: Path, project: str = "default") -> str:
    with path.open("rb") as stream:
        return api.service.files.upload(project, path.name, stream, "fine-tune").id


@pytest.fixture
def train_file(api, sentiment_files) -> str:
    return upload(api, sentiment_files["train"])


def create(api, key: str | None = None, **body) -> dict:
    response = api.client.post(JOBS, json=body, headers=api.headers(key))
    assert response.status_code == 200, response.text
    return response.json()


def refused(api, status: int = 400, **body) -> dict:
    response = api.client.post(JOBS, json=body, headers=api.headers())
    assert response.status_code == status, response.text
    return response.json()["error"]


def run_next_job(api) -> None:
    """Claim the oldest queued job and run it in this process, as a worker would."""
    db, settings = api.service.db, api.service.settings
    with db.session() as s:
        job = repo.claim_next_job(s, "test-worker", capacity=1)
    run_job(db, settings, job.id, "test-worker")


# --- create -------------------------------------------------------------------------------


def test_a_minimal_job_is_queued_in_openais_shape(api, train_file):
    body = create(api, model=TINY, training_file=train_file)

    job = FineTuningJob.model_validate(body)
    assert job.object == "fine_tuning.job"
    assert job.status == "queued"
    assert job.model == TINY
    assert job.training_file == train_file
    assert job.organization_id == "default"
    assert job.fine_tuned_model is None and job.finished_at is None
    assert job.result_files == [] and job.error is None
    assert job.hyperparameters.model_dump() == {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }
    assert job.method.type == "supervised"
    assert isinstance(job.seed, int)


def test_method_hyperparameters_suffix_seed_and_metadata_are_kept(api, sentiment_files):
    train, validation = (upload(api, sentiment_files[s]) for s in ("train", "validation"))
    hyperparameters = {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.5}

    body = create(
        api,
        model=TINY,
        training_file=train,
        validation_file=validation,
        method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        suffix="probe",
        seed=7,
        metadata={"k": "v"},
    )

    job = FineTuningJob.model_validate(body)
    assert job.hyperparameters.model_dump() == hyperparameters
    assert job.method.supervised.hyperparameters.model_dump() == hyperparameters
    assert (job.validation_file, job.seed, job.metadata) == (validation, 7, {"k": "v"})
    stored = api.service.jobs.get("default", job.id).job
    assert stored.suffix == "probe"
    assert stored.hyperparameters == {"epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.5}


def test_the_deprecated_top_level_hyperparameters_still_work(api, train_file):
    body = create(
        api,
        model=TINY,
        training_file=train_file,
        hyperparameters={"n_epochs": 2, "batch_size": "auto"},
    )

    assert body["hyperparameters"]["n_epochs"] == 2
    assert body["hyperparameters"]["batch_size"] == "auto"
    assert api.service.jobs.get("default", body["id"]).job.hyperparameters == {"epochs": 2}

    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 4}}}
    both = create(
        api,
        model=TINY,
        training_file=train_file,
        method=method,
        hyperparameters={"n_epochs": 2, "batch_size": 4},
    )
    assert both["hyperparameters"] == {
        "n_epochs": 4,  # the method's value wins
        "batch_size": 4,
        "learning_rate_multiplier": "auto",
    }


def test_dpo_is_the_preference_method_with_its_beta(api, preference_files):
    body = create(
        api,
        model=TINY,
        training_file=upload(api, preference_files["train"]),
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
    )

    job = FineTuningJob.model_validate(body)
    assert job.method.type == "dpo"
    assert job.method.dpo.hyperparameters.beta == 0.2
    stored = api.service.jobs.get("default", job.id).job
    assert stored.method == "preference"
    assert stored.hyperparameters == {"beta": 0.2, "epochs": 1}


@pytest.mark.parametrize("method", ["distillation", "reward", "unknown"])
def test_other_methods_are_refused_with_the_way_to_them(api, train_file, method):
    error = refused(api, model=TINY, training_file=train_file, method={"type": method})

    assert error["param"] == "method.type"
    assert "'supervised', 'dpo' and 'reinforcement'" in error["message"]
    assert "reward is available through the Vertex API" in error["message"]
    assert "distillation is available through the Vertex API" in error["message"]
    assert "CLI" in error["message"]


def test_an_unknown_model_is_refused_naming_model(api, train_file):
    error = refused(api, model="no-such-model", training_file=train_file)

    assert error["param"] == "model"
    assert error["type"] == "invalid_request_error"
    assert "no-such-model" in error["message"]


def test_another_projects_training_file_is_refused(api, sentiment_files):
    theirs = upload(api, sentiment_files["train"], project="other")

    error = refused(api, model=TINY, training_file=theirs)

    assert error["param"] == "training_file"
    assert theirs in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
        ),
        ({"hyperparameters": {"n_epochs": 0}}, "hyperparameters.n_epochs"),
        (
            {"hyperparameters": {"learning_rate_multiplier": -1}},
            "hyperparameters.learning_rate_multiplier",
        ),
        ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}}, None),
        ({"hyperparameters": {"n_epochs": "many"}}, "hyperparameters.n_epochs"),
        ({"suffix": "a:b"}, "suffix"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(api, train_file, body, param):
    error = refused(api, model=TINY, training_file=train_file, **body)

    expected = param or "method.dpo.hyperparameters.beta"
    assert error["param"] == expected
    assert expected in error["message"]


def test_a_training_file_is_required(api):
    error = refused(api, model=TINY)

    assert error["param"] == "training_file"


# --- list, get, cancel, pause, resume ------------------------------------------------------


def test_list_pages_newest_first_and_filters_by_metadata(api, train_file):
    ids = [
        create(api, model=TINY, training_file=train_file, metadata={"n": str(i % 2)})["id"]
        for i in range(3)
    ]

    first = api.client.get(JOBS, params={"limit": 2}, headers=api.headers()).json()
    assert first["object"] == "list"
    assert [job["id"] for job in first["data"]] == ids[::-1][:2]
    assert first["has_more"] is True
    rest = api.client.get(JOBS, params={"limit": 2, "after": ids[1]}, headers=api.headers()).json()
    assert [job["id"] for job in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False

    even = api.client.get(JOBS, params={"metadata[n]": "0"}, headers=api.headers()).json()
    assert [job["id"] for job in even["data"]] == [ids[2], ids[0]]
    one = api.client.get(JOBS, params={"metadata[n]": "0", "limit": 1}, headers=api.headers())
    assert one.json()["has_more"] is True
    theirs = api.client.get(JOBS, headers=api.headers(api.other_key)).json()
    assert theirs["data"] == []


def test_get_returns_the_job_and_hides_other_projects_jobs(api, train_file):
    job_id = create(api, model=TINY, training_file=train_file)["id"]

    assert api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()["id"] == job_id
    response = api.client.get(f"{JOBS}/{job_id}", headers=api.headers(api.other_key))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


def test_pause_resume_and_cancel(api, train_file):
    job_id = create(api, model=TINY, training_file=train_file)["id"]

    def act(action: str):
        return api.client.post(f"{JOBS}/{job_id}/{action}", headers=api.headers())

    assert act("pause").json()["status"] == "paused"
    assert act("resume").json()["status"] == "queued"
    cancelled = act("cancel")
    assert cancelled.status_code == 200
    assert FineTuningJob.model_validate(cancelled.json()).status == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    again = act("resume")
    assert again.status_code == 400
    assert set(again.json()["error"]) == {"message", "type", "param", "code"}


def test_a_claimed_job_reading_its_files_is_validating_files(api, train_file):
    job_id = create(api, model=TINY, training_file=train_file)["id"]
    with api.service.db.session() as s:
        repo.claim_next_job(s, "test-worker", capacity=1)  # RUNNING, PROCESSING_DATASET

    body = api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()

    assert body["status"] == "validating_files"


def test_events_are_newest_first_and_page_with_after(api, train_file):
    job_id = create(api, model=TINY, training_file=train_file)["id"]
    for action in ("pause", "resume", "pause"):
        api.client.post(f"{JOBS}/{job_id}/{action}", headers=api.headers())

    url = f"{JOBS}/{job_id}/events"
    everything = api.client.get(url, headers=api.headers()).json()
    messages = [event["message"] for event in everything["data"]]
    assert messages == [
        "tuning job paused",
        "tuning job resumed",
        "tuning job paused",
        "created tuning job",
    ]
    events = [FineTuningJobEvent.model_validate(e) for e in everything["data"]]
    assert all(e.id.startswith("ftevent-") and e.type == "message" for e in events)

    first = api.client.get(url, params={"limit": 3}, headers=api.headers()).json()
    assert first["has_more"] is True
    rest = api.client.get(
        url, params={"limit": 3, "after": first["data"][-1]["id"]}, headers=api.headers()
    ).json()
    assert [e["message"] for e in rest["data"]] == ["created tuning job"]
    assert rest["has_more"] is False
    bad = api.client.get(url, params={"after": "nope"}, headers=api.headers())
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "after"


# --- running jobs -------------------------------------------------------------------------


def bad_copy(sentiment_files, target: Path) -> Path:
    """20 lines of the sentiment task; line 3's answer has no content."""
    lines = sentiment_files["train"].read_text().splitlines()[:20]
    lines[2] = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]})
    target.write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.parametrize("param", ["training_file", "validation_file"])
def test_a_file_with_a_bad_line_is_refused_at_creation(api, sentiment_files, tmp_path, param):
    bad = upload(api, bad_copy(sentiment_files, tmp_path / "bad.jsonl"))
    files = {"training_file": upload(api, sentiment_files["train"]), param: bad}
    error = refused(api, model=TINY, **files)

    assert error["param"] == param
    assert "line 3, messages[1].content" in error["message"] and bad in error["message"]
    assert api.service.jobs.list("default").items == []  # nothing was queued


def test_a_refusal_quotes_the_users_path_as_it_is(api, sentiment_files):
    """The path holds a parameter's name (epochs): the surface's renaming leaves it alone."""
    folder = api.service.settings.dataset_roots[0] / "epochs"
    folder.mkdir()
    broken = bad_copy(sentiment_files, folder / "train.jsonl")
    error = refused(api, model=TINY, training_file=str(broken))
    assert f"'{broken}' is not a valid supervised dataset" in error["message"]


def test_a_file_for_another_method_is_refused_at_creation(api, train_file):
    error = refused(api, model=TINY, training_file=train_file, method={"type": "dpo"})

    assert error["param"] == "training_file"
    assert "not a valid preference dataset" in error["message"]
    assert "use the supervised or distillation method" in error["message"]


def test_a_training_file_broken_after_creation_fails_the_job(api, sentiment_files):
    """A file under a dataset root can change between creation and start: the job validates
    it again, and fails naming the line and field."""
    root = api.service.settings.dataset_roots[0]
    dataset = root / "train.jsonl"
    dataset.write_text(sentiment_files["train"].read_text())
    job_id = create(api, model=TINY, training_file=str(dataset))["id"]
    bad_copy(sentiment_files, dataset)

    run_next_job(api)

    job = FineTuningJob.model_validate(
        api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    )
    assert job.status == "failed"
    assert job.error.code == "invalid_training_file"
    assert job.error.param == "training_file"
    assert "line 3" in job.error.message
    assert "messages[1].content" in job.error.message
    assert job.fine_tuned_model is None


def test_a_succeeded_job_shows_its_model_checkpoints_events_and_results(
    api, tmp_path, one_torch_thread
):
    files = write_task(tmp_path / "task", "sentiment", sizes=(40, 10, 10))
    job_id = create(
        api,
        model=TINY,
        training_file=upload(api, files["train"]),
        validation_file=upload(api, files["validation"]),
        hyperparameters={"n_epochs": 2, "batch_size": 8},
        suffix="small",
    )["id"]

    run_next_job(api)

    job = FineTuningJob.model_validate(
        api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    )
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{TINY}:default:small:{job_id}"
    assert job.trained_tokens and job.trained_tokens > 0
    assert job.finished_at is not None

    # The metrics CSV is a file of the project, registered once.
    assert len(job.result_files) == 1
    again = api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    assert again["result_files"] == job.result_files
    results = f"/v1/files/{job.result_files[0]}"
    assert api.client.get(results, headers=api.headers()).json()["purpose"] == "fine-tune-results"
    csv = api.client.get(f"{results}/content", headers=api.headers()).text.splitlines()
    assert csv[0] == ",".join(METRICS_CSV_COLUMNS)
    assert len(csv) == 1 + 10  # a row per step

    events = api.client.get(
        f"{JOBS}/{job_id}/events", params={"limit": 100}, headers=api.headers()
    ).json()["data"]
    metrics = [FineTuningJobEvent.model_validate(e) for e in events if e["type"] == "metrics"]
    assert metrics
    steps = [e.data for e in metrics if "total_steps" in e.data]
    assert {"step", "train_loss", "train_mean_token_accuracy"} <= set(steps[0])

    listed = api.client.get(f"{JOBS}/{job_id}/checkpoints", headers=api.headers()).json()
    checkpoints = [FineTuningJobCheckpoint.model_validate(c) for c in listed["data"]]
    assert [c.step_number for c in checkpoints] == [10, 5]  # newest first
    newest = checkpoints[0]
    assert newest.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-10"
    assert newest.fine_tuning_job_id == job_id
    assert newest.metrics.step == 10
    assert newest.metrics.train_loss is not None and newest.metrics.valid_loss is not None
    assert newest.metrics.train_mean_token_accuracy is not None
    page = api.client.get(
        f"{JOBS}/{job_id}/checkpoints",
        params={"limit": 1, "after": newest.id},
        headers=api.headers(),
    ).json()
    assert [c["step_number"] for c in page["data"]] == [5] and page["has_more"] is False

    # The tuned model and each checkpoint answer chat completions; only in this project.
    for model in (job.fine_tuned_model, checkpoints[1].fine_tuned_model_checkpoint):
        chat = {"model": model, "messages": [{"role": "user", "content": "review: great ->"}]}
        answer = api.client.post("/v1/chat/completions", json=chat, headers=api.headers())
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"] == model
        hidden = api.client.post(
            "/v1/chat/completions", json=chat, headers=api.headers(api.other_key)
        )
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "model_not_found"


def test_once_started_a_job_shows_the_values_it_trains_with_on_both_apis(
    api, tmp_path, one_torch_thread
):
    files = write_task(tmp_path / "task", "sentiment", sizes=(40, 10, 10))
    job_id = create(api, model=TINY, training_file=upload(api, files["train"]), hyperparameters={})[
        "id"
    ]
    queued = api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    assert queued["hyperparameters"] == {
        "n_epochs": "auto",
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
    }

    run_next_job(api)

    job = api.client.get(f"{JOBS}/{job_id}", headers=api.headers()).json()
    # 40 examples: 3 epochs (OpenAI's rule), batch 1 (about examples / 32), the default rate.
    assert job["hyperparameters"] == {
        "n_epochs": 3,
        "batch_size": 1,
        "learning_rate_multiplier": pytest.approx(1.0),
    }
    assert job["method"]["supervised"]["hyperparameters"] == job["hyperparameters"]
    vertex = api.client.get(
        f"/v1/projects/p/locations/l/tuningJobs/{job_id}", headers=api.headers()
    ).json()["supervisedTuningSpec"]["hyperParameters"]
    assert (vertex["epochCount"], vertex["batchSize"]) == (3, 1)
    assert vertex["learningRateMultiplier"] == pytest.approx(1.0)
    assert vertex["learningRate"] == pytest.approx(2e-4 * 32)  # LoRA at width 64, capped 32x
    assert vertex["adapterSize"] == "ADAPTER_SIZE_EIGHT"
