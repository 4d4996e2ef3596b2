"""The job page's "Evaluate": a succeeded job's tuned model against its base zero-shot and
few-shot on an uploaded test file, the table on the page, and bad input as a message there."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from markupsafe import escape

from tests.api.conftest import Api
from tests.api.test_models_api import TINY, register_tuned_model
from tests.api.test_ui import ORIGIN, create_job, form_token, page, post_form, sign_in
from tests.helpers import random_lora_adapter
from tuneforge.data.validate import load_examples
from tuneforge.models.tiny import ensure_tiny_model
from tuneforge.service.evaluation import compare_with_base
from tuneforge.store.models import TuningJob


@pytest.fixture(scope="module")
def adapter(models_dir, tmp_path_factory) -> Path:
    base = ensure_tiny_model(TINY, models_dir)
    return random_lora_adapter(base, tmp_path_factory.mktemp("tuned") / "adapter")


def chat_lines(count: int, start: int = 0) -> bytes:
    rows = [
        {"messages": [{"role": "user", "content": f"is {n} even?"},
                      {"role": "assistant", "content": "yes" if n % 2 == 0 else "no"}]}
        for n in range(start, start + count)
    ]  # fmt: skip
    return "\n".join(json.dumps(row) for row in rows).encode()


def upload(api: Api, data: bytes, project: str = "default", name: str = "test.jsonl") -> str:
    return api.service.files.upload(project, name, io.BytesIO(data), "fine-tune").id


def succeeded_job(api: Api, adapter: Path) -> TuningJob:
    """A succeeded job with a tuned model whose training file holds 12 examples."""
    job = register_tuned_model(api.service, "default", adapter)
    training = upload(api, chat_lines(12, start=100), name="train.jsonl")
    with api.service.db.session() as s:
        s.get(TuningJob, job.id).training_file = training
    return api.service.jobs.get("default", job.id).job


def evaluate(api: Api, job: TuningJob, **data):
    path = f"/ui/jobs/{job.id}"
    return post_form(api, f"{path}/evaluate", token_from=path, data=data)


def rows(body: str) -> list[list[str]]:
    table = re.search(r'<table class="compact evaluation">.*?</table>', body, re.S)
    assert table, body
    return [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(0).split("<tbody>")[1], re.S)
    ]


def test_uploading_test_data_from_the_job_page_chooses_it(api: Api, adapter: Path):
    job = succeeded_job(api, adapter)
    sign_in(api)
    path = f"/ui/jobs/{job.id}"
    assert "at most 100 examples" in page(api, path)

    response = api.client.post(
        f"{path}/evaluate/upload",
        data={"csrf_token": form_token(api, path)},
        files={"file": ("held-out.jsonl", chat_lines(5))},
        headers={"Origin": ORIGIN},
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    [file_id] = re.findall(r"test_file=(file-[0-9a-f]+)#evaluate", response.headers["location"])
    body = page(api, response.headers["location"])
    assert re.search(rf'<option value="{file_id}" selected>held-out.jsonl', body)


def test_evaluating_shows_the_tuned_model_and_its_base_zero_and_few_shot(api: Api, adapter):
    job = succeeded_job(api, adapter)
    test_file = upload(api, chat_lines(8))
    sign_in(api)
    tuned = api.service.jobs.get("default", job.id).tuned_model.id

    response = evaluate(api, job, test_file=test_file, examples="5", few_shot="2")

    assert response.status_code == 200, response.text
    row = api.service.files.get("default", test_file)
    test = load_examples(api.service.files.local_path(row), min_examples=1)
    report = compare_with_base(api.service, "default", tuned, test[:5], 2)
    expected = [
        [c.label, c.model, f"{c.exact_match:.3f}", f"{c.token_f1:.3f}", f"{c.rouge_l:.3f}",
         f"{c.mean_prompt_tokens:.1f}"]
        for c in report.candidates
    ]  # fmt: skip
    assert [row[:6] for row in rows(response.text)] == expected
    assert [row[0] for row in expected] == ["tuned", "base", "base 2-shot"]
    assert "On the first 5 examples of" in response.text
    assert "is 0 even?" in response.text  # a sample answer's prompt


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b'{"messages": [}\nnot json', 400, "the dataset has 2 errors: line 1"),
        (b'{"prompt": "p", "chosen": "a", "rejected": "b"}', 400, "preference"),
        (chat_lines(3), 400, "examples must be 1 to 100"),
        (None, 400, "choose a test file"),
    ],
    ids=["invalid-json", "preference-data", "too-many-examples", "no-file"],
)
def test_bad_test_data_is_a_message_on_the_page(api: Api, adapter, data, status, message):
    job = succeeded_job(api, adapter)
    test_file = upload(api, data) if data else ""
    sign_in(api)
    examples = "101" if "examples must" in message else "5"

    response = evaluate(api, job, test_file=test_file, examples=examples, few_shot="2")

    assert response.status_code == status, response.text
    [shown] = re.findall(r'evaluation-error" role="alert">([^<]*)<', response.text)
    assert message in shown, shown
    assert 'class="compact evaluation"' not in response.text


def test_another_projects_file_and_a_job_without_a_model_are_refused(api: Api, adapter):
    job = succeeded_job(api, adapter)
    theirs = upload(api, chat_lines(3), project="other")
    sign_in(api)

    response = evaluate(api, job, test_file=theirs, examples="5", few_shot="0")

    assert response.status_code == 404
    assert theirs in re.findall(r'evaluation-error" role="alert">([^<]*)<', response.text)[0]
    queued = create_job(api)
    assert 'id="evaluate"' not in page(api, f"/ui/jobs/{queued.id}")
    refused = evaluate(api, queued, test_file=upload(api, chat_lines(3)))
    assert refused.status_code == 400
    assert escape("only a succeeded job's tuned model can be evaluated") in refused.text
