"""The dashboard's "New job" page, the live loss chart's scales and labels, and checkpoints in
the playground."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.api.test_models_api import TINY, register_tuned_model
from tests.api.test_ui import (
    ORIGIN,
    SVG_NS,
    VALID_DATASET,
    create_job,
    form_token,
    page,
    post_form,
    record_steps,
    sign_in,
    upload,
)
from tests.helpers import random_lora_adapter
from tuneforge.engine.spec import auto_batch_size, auto_epochs
from tuneforge.models.tiny import ensure_tiny_model
from tuneforge.store import repo
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState
from tuneforge.ui.svg import loss_curve_svg, tick_label

NEW = "/ui/jobs/new"


@pytest.fixture(scope="module")
def adapter(models_dir, tmp_path_factory) -> Path:
    base = ensure_tiny_model(TINY, models_dir)
    return random_lora_adapter(base, tmp_path_factory.mktemp("tuned") / "adapter")


def resolved_cell(body: str, name: str) -> str:
    [value] = re.findall(rf'class="mono small resolved" data-name="{name}">([^<]*)<', body)
    return value


def test_the_new_job_page_previews_a_file_with_its_statistics_and_resolved_defaults(api: Api):
    file_id = upload(api)
    sign_in(api)

    body = page(api, f"{NEW}?file={file_id}&model={TINY}")

    assert re.search(r"Valid: 1 warning.*· format openai_chat · 12 examples", body)
    assert "is 0 even?" in body and "is 4 even?" in body  # the first lines
    assert "is 5 even?" not in body  # only the first five
    assert "input tokens per example" in body and "billable tokens" in body
    # The defaults the job would resolve for 12 examples, from the engine's own rules.
    assert resolved_cell(body, "epochs") == str(auto_epochs(12))
    assert resolved_cell(body, "batch_size") == str(auto_batch_size(12))
    assert re.search(r'id="estimate"><strong>[\d,]+</strong> tokens to train', body)
    assert "no job on this model has finished in this project yet" in body
    for method in ("supervised", "preference", "distillation"):
        assert f'<option value="{method}"' in body


def test_the_estimate_uses_a_finished_jobs_speed(api: Api):
    done = create_job(api)
    with api.service.db.session() as s:
        row = s.get(TuningJob, done.id)
        row.state, row.trained_tokens = JobState.SUCCEEDED, 1000
        row.started_at = row.created_at
        row.ended_at = row.created_at + timedelta(seconds=10)
    sign_in(api)

    body = page(api, f"{NEW}?file={upload(api)}&model={TINY}")

    assert f"the speed of job {done.id}" in body
    assert re.search(r"at 10\d tokens/s", body)  # 1000 tokens in about 10 s


def test_starting_a_job_from_the_form_creates_it_and_shows_its_page(api: Api):
    train, valid = upload(api), upload(api)
    sign_in(api)

    response = post_form(
        api, NEW, token_from=NEW, follow_redirects=False,
        data={"intent": "create", "training_file": train, "validation_file": valid,
              "model": TINY, "method": "supervised", "mode": "peft", "suffix": "web",
              "display_name": "from the page", "hp.epochs": "2", "hp.learning_rate": "0.001",
              "hp.packing": "true", "hp.batch_size": ""},
    )  # fmt: skip

    assert response.status_code == 303, response.text
    job_id = response.headers["location"].rsplit("/", 1)[1]
    job = api.service.jobs.get("default", job_id).job
    assert (job.training_file, job.validation_file) == (train, valid)
    assert (job.suffix, job.display_name, job.base_model) == ("web", "from the page", TINY)
    assert job.hyperparameters["epochs"] == 2 and job.hyperparameters["packing"] is True
    assert job.hyperparameters["learning_rate"] == 0.001
    assert "batch_size" not in job.hyperparameters  # left empty: the default
    assert "from the page" in page(api, response.headers["location"])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hp.epochs": "many"}, "hyperparameters.epochs"),
        ({"hp.adapter_size": "3"}, "adapter_size must be one of"),
        ({"hp.nonsense": "1"}, "unknown hyperparameter"),
        ({"model": "no/such-model"}, "base_model"),
        ({"training_file": ""}, "choose a training file"),
        ({"method": "nope"}, "unknown tuning method"),
    ],
)
def test_bad_input_shows_the_services_error_on_the_form(api: Api, fields, message):
    sign_in(api)
    data = {"intent": "create", "training_file": upload(api), "model": TINY, **fields}

    response = post_form(api, NEW, token_from=NEW, data=data)

    assert response.status_code == 400, response.text
    [shown] = re.findall(
        r'class="alert alert-error form-error" role="alert">([^<]*)<', response.text
    )
    assert message in shown
    assert 'id="job-form"' in response.text  # the form again, to correct
    assert not api.service.jobs.list("default").items


def test_an_invalid_file_is_previewed_with_its_problems_and_refused(api: Api):
    bad = api.service.files.upload(
        "default", "bad.jsonl", io.BytesIO(b'{"messages": []}\nnot json\n'), "fine-tune"
    )
    sign_in(api)

    body = page(api, f"{NEW}?file={bad.id}")

    assert re.search(r"Not valid: \d+ errors; line 1: the list is empty", body)
    assert "not json" in body  # the first lines, as they are
    data = {"intent": "create", "training_file": bad.id, "model": TINY}
    response = post_form(api, NEW, token_from=NEW, data=data)
    assert response.status_code == 400
    assert "training_file" in response.text


def test_uploading_in_place_returns_to_the_form_with_the_file_chosen(api: Api):
    sign_in(api)

    response = api.client.post(
        f"{NEW}/upload",
        data={"csrf_token": form_token(api, NEW)},
        files={"file": ("mine.jsonl", VALID_DATASET, "application/jsonl")},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    location = response.headers["location"]
    file_id = location.split("file=")[1]
    assert re.search(rf'<option value="{file_id}" selected>mine.jsonl', page(api, location))


def test_the_new_job_forms_refuse_a_post_without_the_token(api: Api):
    sign_in(api)
    for path in (NEW, f"{NEW}/upload"):
        response = api.client.post(path, data={"intent": "create"}, headers={"Origin": ORIGIN})
        assert response.status_code == 403
    assert not api.service.jobs.list("default").items


# --- watching it ----------------------------------------------------------------------------


def test_the_loss_axis_is_logarithmic_by_default_and_switchable(api: Api):
    job = create_job(api)
    record_steps(api, job.id, [4.0, 1.0, 0.1, 0.01], valid_loss=0.05)
    sign_in(api)

    log = page(api, f"/ui/jobs/{job.id}")
    linear = page(api, f"/ui/jobs/{job.id}?scale=linear")

    assert "loss (log scale)" in log and "loss (log scale)" not in linear

    def tick_labels(body: str) -> list[str]:
        return re.findall(r'text-anchor="end" dominant-baseline="middle">([^<]+)<', body)

    assert {"0.01", "0.1", "1"} <= set(tick_labels(log))
    assert "0.01" not in tick_labels(linear)
    assert f'href="/ui/jobs/{job.id}?scale=linear"' in log


def test_tick_labels_keep_the_decimals_their_values_need():
    ticks = [0.0, 2.5, 5.0, 7.5, 10.0]
    assert [tick_label(t, ticks) for t in ticks] == ["0.0", "2.5", "5.0", "7.5", "10.0"]
    assert [tick_label(t, [1.0, 2.0, 3.0]) for t in (1.0, 2.0)] == ["1", "2"]
    steps = [{"step": s, "loss": loss} for s, loss in enumerate([9.0, 7.5, 3.0, 0.5], 1)]
    svg = ET.fromstring(loss_curve_svg(steps))
    labels = [t.text for t in svg.iter(f"{SVG_NS}text") if t.get("text-anchor") == "end"]
    assert "2.5" in labels and "7.5" in labels and "2" not in labels


def test_validation_loss_is_drawn_as_a_curve():
    steps = [{"step": s, "loss": 3.0 / s, "total_steps": 9} for s in range(1, 10)]
    epochs = [{"epoch": e, "step": 3 * e, "valid_loss": 2.0 / e} for e in (1, 2, 3)]
    svg = ET.fromstring(loss_curve_svg(steps, epochs, log_scale=True))
    [line] = [p for p in svg.iter(f"{SVG_NS}polyline") if p.get("class") == "chart-valid-line"]
    points = [tuple(map(float, p.split(","))) for p in line.attrib["points"].split()]
    assert len(points) == 3 and points[0][1] < points[-1][1]  # falling: y grows downward


def record_metrics(api: Api, job_id: str, steps: list[dict], epochs: list[dict]) -> None:
    with api.service.db.session() as s:
        for metrics in steps:
            repo.record_event(s, job_id, f"logged step {metrics['step']}", type="metrics",
                              data={"kind": "step", "metrics": metrics})  # fmt: skip
        for metrics in epochs:
            repo.record_event(s, job_id, f"logged epoch {metrics['epoch']}", type="metrics",
                              data={"kind": "epoch", "metrics": metrics})  # fmt: skip


def chart(body: str, label: str) -> ET.Element:
    [svg] = re.findall(rf'<svg [^>]*aria-label="{label}".*?</svg>', body, flags=re.S)
    return ET.fromstring(svg)


def test_validation_loss_token_accuracy_and_learning_rate_are_charted_beside_the_loss(api: Api):
    job = create_job(api)
    steps = [{"step": s, "total_steps": 8, "loss": 2.0 / s, "token_accuracy": 0.5 + s / 20,
              "learning_rate": 2e-5 * (8 - s) / 8} for s in range(1, 9)]  # fmt: skip
    epochs = [{"epoch": e, "step": 4 * e, "train_loss": 1.0 / e, "valid_loss": 1.2 / e,
               "valid_token_accuracy": 0.6 + e / 10} for e in (1, 2)]  # fmt: skip
    record_metrics(api, job.id, steps, epochs)
    sign_in(api)

    body = page(api, f"/ui/jobs/{job.id}")

    valid = chart(body, "Validation loss")
    [line] = [p for p in valid.iter(f"{SVG_NS}polyline") if p.get("class") == "chart-valid-line"]
    assert len(line.attrib["points"].split()) == 2
    accuracy = chart(body, "Token accuracy")
    lines = {p.get("class"): p for p in accuracy.iter(f"{SVG_NS}polyline")}
    assert len(lines["chart-train"].attrib["points"].split()) == 8  # training, per step
    assert len(lines["chart-valid-line"].attrib["points"].split()) == 2  # validation, per epoch
    learning_rate = chart(body, "Learning rate")
    [lr_line] = learning_rate.iter(f"{SVG_NS}polyline")
    points = [tuple(map(float, p.split(","))) for p in lr_line.attrib["points"].split()]
    assert points[0][1] < points[-1][1]  # decaying: the line goes down the chart
    ticks = [t.text for t in learning_rate.iter(f"{SVG_NS}text") if t.get("text-anchor") == "end"]
    assert "2e-5" in ticks or "2.0e-5" in ticks, ticks  # not 0.00002, nor 0.0000
    for svg in (valid, accuracy, learning_rate):  # one step axis, with the epochs marked
        assert "epoch 2" in "".join(svg.itertext())


def test_without_a_validation_file_the_validation_chart_says_why(api: Api):
    job = create_job(api)
    record_steps(api, job.id, [2.0, 1.0])
    sign_in(api)

    valid = chart(page(api, f"/ui/jobs/{job.id}"), "Validation loss")

    assert "with a validation file" in "".join(valid.itertext())
    assert not list(valid.iter(f"{SVG_NS}polyline"))


def test_tick_labels_of_tiny_values_are_scientific():
    ticks = [0.0, 5e-6, 1e-5, 1.5e-5, 2e-5]
    assert [tick_label(t, ticks) for t in ticks] == ["0", "5.0e-6", "1.0e-5", "1.5e-5", "2.0e-5"]
    assert [tick_label(t, [1e-5, 2e-5]) for t in (1e-5, 2e-5)] == ["1e-5", "2e-5"]
    assert tick_label(2.5, [0.0, 2.5, 5.0]) == "2.5"


def test_a_job_that_failed_before_any_step_shows_its_error_instead_of_a_chart(api: Api):
    job = create_job(api)
    with api.service.db.session() as s:
        row = s.get(TuningJob, job.id)
        row.state = JobState.FAILED
        row.error = {"code": "internal", "message": "CUDA out of memory", "param": None}
    sign_in(api)

    body = page(api, f"/ui/jobs/{job.id}")

    assert re.search(r'chart-failed">No training step was logged.*CUDA out of memory', body)
    assert 'aria-label="Loss curve"' not in body
    assert 'aria-label="Learning rate"' not in body  # no empty charts either


# --- checkpoints in the playground ----------------------------------------------------------


def test_a_checkpoint_answers_in_the_playground(api: Api, adapter: Path):
    job = register_tuned_model(api.service, "default", adapter)
    [checkpoint] = api.service.jobs.get("default", job.id).checkpoints
    sign_in(api)

    assert f'href="/ui/models/{checkpoint.id}"' in page(api, f"/ui/jobs/{job.id}")
    body = page(api, f"/ui/models/{checkpoint.id}")
    assert "checkpoint model" in body and job.id in body
    response = post_form(
        api, f"/ui/models/{checkpoint.id}", token_from=f"/ui/models/{checkpoint.id}",
        data={"prompt": "hello", "max_tokens": "3"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert re.search(r"\d+ prompt tokens · \d+ output tokens?", response.text)
    assert page(api, "/ui/models/ckpt-nope", status=404)
