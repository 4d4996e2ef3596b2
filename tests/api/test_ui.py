"""The web dashboard: sign-in, the jobs, files and models pages, job actions, project scoping,
and the loss curve's SVG."""

from __future__ import annotations

import io
import json
import re
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from markupsafe import escape

from tests.api.conftest import Api
from tests.api.test_models_api import TINY, fine_tuned_name, register_tuned_model
from tuneforge.api.ui import COOKIE
from tuneforge.errors import NotFound
from tuneforge.service import JobRequest
from tuneforge.store import repo
from tuneforge.store.models import File, TuningJob
from tuneforge.store.states import JobState
from tuneforge.ui import STATIC_DIR
from tuneforge.ui.svg import NO_DATA, Box, loss_curve_svg, metric_charts_svg, nice_ticks

SVG_NS = "{http://www.w3.org/2000/svg}"


def chat_line(question: str, answer: str) -> str:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return json.dumps({"messages": messages})


VALID_DATASET = "\n".join(chat_line(f"is {n} even?", "yes" if n % 2 == 0 else "no")
                          for n in range(12)).encode()  # fmt: skip


ORIGIN = "http://testserver"  # the TestClient's own origin, as a browser sends it


def form_token(api: Api, path: str) -> str:
    """The CSRF token in the form(s) of the page at ``path``."""
    tokens = set(re.findall(r'name="csrf_token" value="([^"]*)"', page(api, path)))
    assert len(tokens) == 1 and "" not in tokens, tokens
    return tokens.pop()


def post_form(api: Api, path: str, *, token_from: str, data: dict | None = None, **kwargs):
    """A POST as the browser sends the form of page ``token_from``: its token, our Origin."""
    data = {**(data or {}), "csrf_token": form_token(api, token_from)}
    return api.client.post(path, data=data, headers={"Origin": ORIGIN}, **kwargs)


def sign_in(api: Api, key: str | None = None) -> None:
    response = post_form(
        api, "/ui/login", token_from="/ui/login", data={"key": key or api.key},
        follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303, response.text


def upload(api: Api, project: str = "default") -> str:
    return api.service.files.upload(
        project, "data.jsonl", io.BytesIO(VALID_DATASET), "fine-tune"
    ).id


def create_job(api: Api, project: str = "default", **fields) -> TuningJob:
    request = JobRequest(base_model=TINY, training_file=upload(api, project), **fields)
    return api.service.jobs.create(project, request).job


def record_steps(api: Api, job_id: str, losses: list[float], valid_loss: float | None = None):
    with api.service.db.session() as s:
        for step, loss in enumerate(losses, start=1):
            metrics = {"step": step, "total_steps": len(losses), "loss": loss, "epoch": 1.0}
            repo.record_event(s, job_id, f"logged step {step}", type="metrics",
                              data={"kind": "step", "metrics": metrics})  # fmt: skip
        if valid_loss is not None:
            metrics = {"epoch": 1, "step": len(losses), "train_loss": losses[-1],
                       "valid_loss": valid_loss}  # fmt: skip
            repo.record_event(s, job_id, "logged epoch 1", type="metrics",
                              data={"kind": "epoch", "metrics": metrics})  # fmt: skip


def page(api: Api, path: str, status: int = 200) -> str:
    response = api.client.get(path)
    assert response.status_code == status, response.text
    return response.text


# --- sign-in --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ui", "/ui/jobs/tj-x", "/ui/files", "/ui/models"])
def test_every_page_redirects_to_sign_in_without_a_key(api: Api, path: str):
    response = api.client.get(path, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/login?next={path}"


def test_the_root_leads_to_the_dashboard(api: Api):
    response = api.client.get("/", follow_redirects=False)

    assert (response.status_code, response.headers["location"]) == (303, "/ui")


def test_a_bad_key_is_refused(api: Api):
    response = post_form(
        api, "/ui/login", token_from="/ui/login", data={"key": "tf-not-a-key"},
        follow_redirects=False,
    )  # fmt: skip

    assert response.status_code == 401
    assert "not valid" in response.text
    assert COOKIE not in response.headers.get("set-cookie", "")
    assert api.client.get("/ui", follow_redirects=False).status_code == 303


def test_signing_in_sets_a_strict_http_only_cookie_and_signing_out_clears_it(api: Api):
    response = post_form(
        api, "/ui/login", token_from="/ui/login", data={"key": api.key, "next": "/ui/files"},
        follow_redirects=False,
    )  # fmt: skip

    assert (response.status_code, response.headers["location"]) == (303, "/ui/files")
    [cookie] = [c.lower() for c in response.headers.get_list("set-cookie") if COOKIE in c]
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert "project <strong>default</strong>" in page(api, "/ui")

    post_form(api, "/ui/logout", token_from="/ui")
    assert api.client.get("/ui", follow_redirects=False).status_code == 303


def test_sign_in_never_sends_the_user_to_another_site(api: Api):
    for target in ("https://evil.example/", "//evil.example/ui"):
        response = post_form(
            api, "/ui/login", token_from="/ui/login", data={"key": api.key, "next": target},
            follow_redirects=False,
        )  # fmt: skip
        assert response.headers["location"] == "/ui"


# --- jobs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_are_served_with_their_type_to_anyone(api: Api, name: str, content_type):
    response = api.client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["cache-control"] == "max-age=300"
    assert response.content == (STATIC_DIR / name).read_bytes()
    assert api.client.head(f"/ui/static/{name}").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/ui/static/missing.css",
        "/ui/static/",
        "/ui/static/..%2F__init__.py",
        "/ui/static/%2e%2e/%2e%2e/api/ui.py",
        "/ui/static/..%2Ftemplates%2Fbase.html",
        "/ui/static/%2E%2E%2Fstatic%2F..%2F..%2Fapi%2Fui.py",
        "/ui/static/style.css%00.js",
    ],
)
def test_unknown_static_files_and_paths_out_of_the_folder_are_not_found(api: Api, path: str):
    assert api.client.get(path).status_code == 404


def test_jobs_list_shows_a_job_and_refreshes_while_it_is_active(api: Api):
    job = create_job(api, display_name="<b>spam</b> filter")
    sign_in(api)

    body = page(api, "/ui")

    assert job.id in body
    assert "&lt;b&gt;spam&lt;/b&gt; filter" in body  # user data is escaped
    assert "<b>spam</b>" not in body
    assert 'class="badge state-queued"' in body
    assert TINY in body and "supervised" in body
    assert 'data-refresh="5"' in body


def test_jobs_list_filters_by_state_and_searches_without_javascript(api: Api):
    spam = create_job(api, display_name="spam filter")
    ham = create_job(api, suffix="ham-v2")
    api.service.jobs.cancel("default", ham.id)
    many = [create_job(api, display_name=f"batch {n}") for n in range(3)]
    sign_in(api)

    def listed(query: str) -> list[str]:
        body = page(api, f"/ui?{query}")
        return re.findall(r'<a href="/ui/jobs/(tj-[^"]+)" class="strong"', body)

    assert listed("state=cancelled") == [ham.id]
    assert listed("q=SPAM") == [spam.id]
    assert listed("q=ham-v") == [ham.id]  # the suffix
    assert listed(f"q={ham.id[-6:]}&state=queued") == []
    assert set(listed(f"q={TINY}")) == {spam.id, ham.id, *(j.id for j in many)}
    body = page(api, "/ui?state=cancelled&q=ham")
    assert '<option value="cancelled" selected>' in body and 'value="ham"' in body
    assert "No job matches" in page(api, "/ui?q=nothing-like-it")
    bad = page(api, "/ui?state=done", status=400)
    assert "state must be one of queued, running" in bad


def test_the_next_page_of_a_filtered_list_keeps_its_filter(api: Api, monkeypatch):
    monkeypatch.setattr("tuneforge.api.ui.JOBS_PER_PAGE", 2)
    jobs = [create_job(api, display_name=f"batch {n}") for n in range(3)]
    create_job(api, display_name="other")
    sign_in(api)

    body = page(api, "/ui?q=batch")
    [next_page] = re.findall(r'<a href="([^"]+)">Older jobs', body)

    assert next_page == f"/ui?q=batch&amp;after={jobs[1].id}"
    assert jobs[0].id in page(api, next_page.replace("&amp;", "&"))


def test_jobs_list_of_a_new_project_is_empty_and_still(api: Api):
    sign_in(api)

    body = page(api, "/ui")

    assert "No tuning jobs" in body
    assert "data-refresh" not in body


def test_job_page_shows_state_hyperparameters_and_the_loss_curve(api: Api):
    job = create_job(api, hyperparameters={"epochs": 3, "learning_rate_multiplier": 2.0})
    record_steps(api, job.id, [2.0, 1.5, 1.2, 0.9, 0.8], valid_loss=1.1)
    tokens = {"sum": 120, "min": 8, "max": 12, "mean": 10.0, "median": 10.0, "p5": 8.0,
              "p95": 12.0, "buckets": [{"count": 12, "left": 8, "right": 12}]}  # fmt: skip
    stats = {"tuningDatasetExampleCount": 12, "totalBillableTokenCount": 4321,
             "userInputTokenDistribution": tokens}  # fmt: skip
    with api.service.db.session() as s:
        s.get(TuningJob, job.id).data_stats = stats
    sign_in(api)

    body = page(api, f"/ui/jobs/{job.id}")

    assert "queued" in body
    assert "learning rate multiplier" in body and "2.0" in body
    assert re.search(r"<dt>epochs</dt><dd[^>]*>3</dd>", body)
    [loss_curve] = re.findall(r'<svg [^>]*aria-label="Loss curve".*?</svg>', body, flags=re.S)
    [points] = re.findall(r'<polyline class="chart-train" points="([^"]*)"', loss_curve)
    assert len(points.split()) == 5
    assert loss_curve.count('<circle class="chart-valid"') == 2  # the point and the legend's
    assert "input tokens per example" in body and "4,321" in body
    assert "logged epoch 1" in body and "logged step 5" not in body  # the curve shows steps
    assert "logged step 5" in page(api, f"/ui/jobs/{job.id}?steps=true")
    assert re.search(rf'action="/ui/jobs/{job.id}/cancel" data-confirm="Cancel {job.id}\?', body)
    assert f'action="/ui/jobs/{job.id}/pause">' in body  # pausing loses nothing: no question
    assert f'action="/ui/jobs/{job.id}/resume"' not in body


def test_a_failed_job_shows_its_error(api: Api):
    job = create_job(api)
    with api.service.db.session() as s:
        row = s.get(TuningJob, job.id)
        row.state = JobState.FAILED
        row.error = {"code": "invalid_training_file", "message": "line 3: <no text>", "param": None}
    sign_in(api)

    body = page(api, f"/ui/jobs/{job.id}")

    assert "line 3: &lt;no text&gt;" in body
    assert "invalid_training_file" in body
    assert "data-refresh" not in body
    assert f'action="/ui/jobs/{job.id}/' not in body  # no action fits a finished job


def test_cancel_button_cancels_a_queued_job(api: Api):
    job = create_job(api)
    sign_in(api)

    response = post_form(
        api, f"/ui/jobs/{job.id}/cancel", token_from=f"/ui/jobs/{job.id}", follow_redirects=False
    )

    assert (response.status_code, response.headers["location"]) == (303, f"/ui/jobs/{job.id}")
    assert api.service.jobs.get("default", job.id).job.state == JobState.CANCELLED
    body = page(api, f"/ui/jobs/{job.id}")
    assert 'class="badge state-cancelled"' in body
    assert f'action="/ui/jobs/{job.id}/cancel"' not in body


def test_pause_and_resume_buttons(api: Api):
    job = create_job(api)
    sign_in(api)

    body = post_form(api, f"/ui/jobs/{job.id}/pause", token_from=f"/ui/jobs/{job.id}").text
    assert 'class="badge state-paused"' in body
    assert f'action="/ui/jobs/{job.id}/resume"' in body

    post_form(api, f"/ui/jobs/{job.id}/resume", token_from=f"/ui/jobs/{job.id}")
    assert api.service.jobs.get("default", job.id).job.state == JobState.QUEUED


def test_an_action_the_state_forbids_shows_why(api: Api):
    job = create_job(api)
    api.service.jobs.cancel("default", job.id)
    sign_in(api)

    response = post_form(api, f"/ui/jobs/{job.id}/pause", token_from=f"/ui/jobs/{job.id}")

    assert response.status_code == 400  # the same status the APIs give
    assert "only a queued or running job can pause" in response.text


def test_another_projects_job_is_not_found(api: Api):
    theirs = create_job(api, project="other")
    sign_in(api)

    body = page(api, f"/ui/jobs/{theirs.id}", status=404)
    assert "Not found" in body

    assert post_form(api, f"/ui/jobs/{theirs.id}/cancel", token_from="/ui").status_code == 404
    assert api.service.jobs.get("other", theirs.id).job.state == JobState.QUEUED


def test_a_tuned_model_is_shown_with_its_names_for_both_apis(api: Api, tmp_path):
    job = register_tuned_model(api.service, "default", tmp_path, suffix="mine")
    tuned = api.service.jobs.get("default", job.id).tuned_model
    sign_in(api)

    for path in (f"/ui/jobs/{job.id}", "/ui/models", f"/ui/models/{tuned.id}"):
        body = page(api, path)
        assert f"projects/default/locations/local/endpoints/{tuned.id}" in body
        assert fine_tuned_name(job) in body
    checkpoints = page(api, f"/ui/jobs/{job.id}")
    assert f"{fine_tuned_name(job)}:ckpt-step-10" in checkpoints
    assert ">default</span>" in checkpoints


# --- files ----------------------------------------------------------------------------------


def test_uploading_a_bad_file_shows_its_problems_by_line(api: Api):
    bad = b"\n".join([chat_line("hi", "hello").encode(), b"{not json", b'{"messages": "x"}'])
    sign_in(api)

    response = post_form(
        api, "/ui/files", token_from="/ui/files", files={"file": ("bad.jsonl", bad)},
        data={"purpose": "fine-tune"},
    )  # fmt: skip

    assert response.status_code == 200
    assert response.url.path.startswith("/ui/files/file-")
    body = response.text
    assert "Invalid" in body
    file_id = response.url.path.rsplit("/", 1)[1]
    problems = api.service.files.get("default", file_id).validation["problems"]
    for line in (2, 3):
        assert any(p["line"] == line for p in problems)
        assert re.search(rf'<td class="num">{line}</td>', body)
    for problem in problems:
        assert str(escape(problem["message"])) in body

    listing = page(api, "/ui/files")
    assert "bad.jsonl" in listing and 'class="badge file-error"' in listing


def test_uploading_a_valid_file_lists_it(api: Api):
    sign_in(api)

    body = post_form(
        api, "/ui/files", token_from="/ui/files", files={"file": ("good.jsonl", VALID_DATASET)}
    ).text

    assert "Valid" in body and "openai_chat" in body
    assert "good.jsonl" in page(api, "/ui/files")


def test_a_file_page_shows_its_first_lines_statistics_and_verdict_in_words(api: Api):
    file_id = upload(api)
    sign_in(api)

    body = page(api, f"/ui/files/{file_id}")

    assert re.search(r'class="badge file-processed file-status">Valid \(1 warning\)<', body)
    assert "Valid: valid" not in body
    assert "is 0 even?" in body and "is 4 even?" in body and "is 5 even?" not in body
    assert "input tokens per example" in body and "billable tokens" in body
    assert f'<option value="{TINY}" selected>' in body  # counted with that tokenizer
    assert f'href="/ui/files/{file_id}/content"' in body
    assert f'href="/ui/jobs/new?file={file_id}"' in body


def test_file_status_reads_invalid_with_its_problem_count_or_validating(api: Api):
    bad = api.service.files.upload(
        "default", "bad.jsonl", io.BytesIO(b"{not json\n[1]\n"), "fine-tune"
    )
    waiting = upload(api)
    with api.service.db.session() as s:
        s.get(File, waiting).status = "uploaded"
    sign_in(api)
    problems = bad.validation["error_count"] + bad.validation["warning_count"]

    assert f">Invalid: {problems} problems<" in page(api, f"/ui/files/{bad.id}")
    assert "No statistics: the file is not valid." in page(api, f"/ui/files/{bad.id}")
    pending = page(api, f"/ui/files/{waiting}")
    assert ">Validating…<" in pending and 'data-refresh="5"' in pending
    listing = page(api, "/ui/files")
    assert f">Invalid: {problems} problems<" in listing and ">Validating…<" in listing


def test_a_file_downloads_with_the_dashboard_cookie(api: Api):
    file_id = upload(api)
    theirs = upload(api, "other")

    anonymous = api.client.get(f"/ui/files/{file_id}/content", follow_redirects=False)
    assert anonymous.status_code == 303
    sign_in(api)
    response = api.client.get(f"/ui/files/{file_id}/content")

    assert response.status_code == 200
    assert response.content == VALID_DATASET
    assert 'filename="data.jsonl"' in response.headers["content-disposition"]
    assert api.client.get(f"/ui/files/{theirs}/content").status_code == 404


def test_deleting_a_file_from_its_page_asks_first_and_needs_the_form_token(api: Api):
    file_id = upload(api)
    sign_in(api)
    body = page(api, f"/ui/files/{file_id}")
    assert re.search(rf'action="/ui/files/{file_id}/delete" data-confirm="Delete data.jsonl', body)

    forged = api.client.post(f"/ui/files/{file_id}/delete", headers={"Origin": ORIGIN})
    assert forged.status_code == 403
    api.service.files.get("default", file_id)  # still there

    response = post_form(
        api, f"/ui/files/{file_id}/delete", token_from=f"/ui/files/{file_id}",
        follow_redirects=False,
    )  # fmt: skip
    assert (response.status_code, response.headers["location"]) == (303, "/ui/files")
    with pytest.raises(NotFound):
        api.service.files.get("default", file_id)
    page(api, f"/ui/files/{file_id}", status=404)


def test_another_projects_file_is_not_found(api: Api):
    theirs = upload(api, "other")
    sign_in(api)

    page(api, f"/ui/files/{theirs}", status=404)


# --- models ---------------------------------------------------------------------------------


def test_models_page_lists_the_tiny_model(api: Api):
    sign_in(api)

    body = page(api, "/ui/models")

    assert f'href="/ui/models/{TINY}"' in body
    assert page(api, f"/ui/models/{TINY}").count("Try it") == 1
    page(api, "/ui/models/tm-nonexistent", status=404)


def test_trying_a_model_shows_the_answer_and_token_counts(api: Api):
    sign_in(api)

    response = post_form(
        api, f"/ui/models/{TINY}", token_from=f"/ui/models/{TINY}",
        data={"prompt": "hello <there>", "system": "", "max_tokens": "4"},
    )  # fmt: skip

    assert response.status_code == 200, response.text
    assert re.search(r"\d+ prompt tokens · \d+ output tokens?", response.text)
    assert "<pre>hello &lt;there&gt;</pre>" in response.text  # the turn, in the transcript


def fake_adapter(folder: Path) -> Path:
    folder.mkdir()
    config = {"peft_type": "LORA", "base_model_name_or_path": "/data/models/tiny"}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    (folder / "optimizer.pt").write_bytes(b"only to resume training")
    return folder


def test_a_tuned_model_downloads_as_the_exported_adapter_zip(api: Api, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the zip is built
    job = register_tuned_model(api.service, "default", fake_adapter(tmp_path / "adapter"))
    tuned = api.service.jobs.get("default", job.id).tuned_model
    sign_in(api)
    assert f'href="/ui/models/{tuned.id}/download"' in page(api, f"/ui/models/{tuned.id}")

    response = api.client.get(f"/ui/models/{tuned.id}/download")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f'filename="{tuned.id}.zip"' in response.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors"
    ]  # fmt: skip
    config = json.loads(archive.read("adapter_config.json"))
    assert config["base_model_name_or_path"] == TINY  # the job's name for it, not a local path
    assert tuned.id in archive.read("README.md").decode()
    [checkpoint] = api.service.jobs.get("default", job.id).checkpoints
    assert api.client.get(f"/ui/models/{checkpoint.id}/download").status_code == 200
    assert "is a base model" in page(api, f"/ui/models/{TINY}/download", status=400)
    assert not list(scratch.iterdir())  # each export's folder removed once sent


def test_deleting_a_tuned_model_from_its_page(api: Api, tmp_path):
    job = register_tuned_model(api.service, "default", tmp_path)
    tuned = api.service.jobs.get("default", job.id).tuned_model
    theirs = register_tuned_model(api.service, "other", tmp_path)
    their_model = api.service.jobs.get("other", theirs.id).tuned_model
    sign_in(api)
    body = page(api, f"/ui/models/{tuned.id}")
    assert re.search(rf'action="/ui/models/{tuned.id}/delete" data-confirm="Delete', body)

    response = post_form(
        api, f"/ui/models/{tuned.id}/delete", token_from=f"/ui/models/{tuned.id}",
        follow_redirects=False,
    )  # fmt: skip

    assert (response.status_code, response.headers["location"]) == (303, "/ui/models")
    assert tuned.id not in page(api, "/ui/models")
    page(api, f"/ui/models/{tuned.id}", status=404)
    assert api.service.jobs.get("default", job.id).job.state == JobState.SUCCEEDED  # job stays
    refused = post_form(api, f"/ui/models/{their_model.id}/delete", token_from="/ui/models")
    assert refused.status_code == 404
    assert (
        "only tuned models"
        in post_form(api, f"/ui/models/{TINY}/delete", token_from="/ui/models").text
    )


# --- the SVG helper -------------------------------------------------------------------------


def test_loss_curve_points_scale_into_the_plot_box():
    box = Box(width=400, height=200)
    steps = [{"step": s, "loss": 3.0 / s, "total_steps": 10} for s in range(1, 11)]
    epochs = [{"epoch": 1, "step": 10, "train_loss": 0.3, "valid_loss": 0.5}]

    svg = ET.fromstring(loss_curve_svg(steps, epochs, box=box))

    [line] = svg.iter(f"{SVG_NS}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.attrib["points"].split()]
    assert len(points) == 10
    for x, y in points:
        assert box.left <= x <= box.plot_right
        assert box.top <= y <= box.plot_bottom
    assert points[-1][0] == pytest.approx(box.plot_right)  # the last of 10 steps: right edge
    assert points[0][1] < points[-1][1]  # falling loss: the line goes down (y grows)
    [valid] = [c for c in svg.iter(f"{SVG_NS}circle") if c.find(f"{SVG_NS}title") is not None]
    assert float(valid.attrib["cx"]) == pytest.approx(box.plot_right)
    assert "epoch 1" in "".join(svg.itertext())


def test_a_methods_own_metrics_get_charts_of_their_own():
    steps = [{"step": s, "loss": 0.1, "total_steps": 4, "extra": {"reward": s / 4, "kl": 0.01}}
             for s in range(1, 5)]  # fmt: skip
    epochs = [{"epoch": 1, "step": 4, "train_loss": 0.1, "extra": {"eval_reward": 0.9}}]
    charts = dict(metric_charts_svg(steps, epochs))
    assert {"Reward", "KL to the start"} <= set(charts)
    assert "Pairwise accuracy" not in charts  # nothing reported it
    reward = ET.fromstring(charts["Reward"])
    assert len(list(reward.iter(f"{SVG_NS}polyline"))) >= 1  # the training reward per step
    assert "held-out" in "".join(reward.itertext())
    plain = dict(metric_charts_svg([{"step": 1, "loss": 0.5, "total_steps": 1}], []))
    assert "Reward" not in plain


def test_loss_curve_without_data_says_so():
    for steps in ([], [{"step": 1, "loss": float("nan")}]):
        svg = loss_curve_svg(steps, [])
        assert NO_DATA in svg
        assert "<polyline" not in svg
        ET.fromstring(svg)


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(0.83, 2.1) == [0.5, 1.0, 1.5, 2.0, 2.5]
    assert nice_ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(1.0, 1.0)[0] < 1.0 < nice_ticks(1.0, 1.0)[-1]
