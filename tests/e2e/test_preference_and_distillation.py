"""End to end: preference tuning (DPO) and distillation through every surface of one real
``tuneforge serve``: the google-genai SDK in Vertex mode, the openai SDK, and the CLI.

The usual recipe runs on the sentiment task: SFT first, then DPO going on from the tuned model;
a tuned tiny-chat-large teaches tiny-chat from prompts alone. Trained jobs are shared by the
module's tests, so every model is tuned once.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import types
from openai import BadRequestError, OpenAI
from typer.testing import CliRunner

from tests.servers import LiveServer
from tuneforge.cli.main import app
from tuneforge.config import Settings, get_settings
from tuneforge.data.records import Conversation
from tuneforge.data.samples import SENTIMENT_SYSTEM, write_preference_task

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The SDK's tuning implementation is experimental"),
]

STUDENT = "tuneforge/tiny-chat"
TEACHER = "tuneforge/tiny-chat-large"
PROJECT, LOCATION = "e2e-project", "us-central1"
SFT_EPOCHS = 2  # leaves the policy part-way: DPO goes on from there
DPO_EPOCHS = 2
TEACHER_EPOCHS = 4
STUDENT_EPOCHS = 8  # as in tests/engine/test_distill.py
BETA = 0.1
ACCURACY_BAR = 0.9
# One run's floor, as in tests/engine/test_distill.py: over 17 seeds on two machines the worst
# student reached 0.94 of the teacher (the default seed 42, on an AMD EPYC), the rest 0.97-1.0.
STUDENT_SHARE_OF_TEACHER = 0.9
JOB_TIMEOUT_S = 300.0
ANSWER_TOKENS = 4


# --- the server and the data ------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir) -> Iterator[LiveServer]:
    """One server for the module; its job runners on one torch thread each (on two shared
    cores, two intra-op threads make the tiny model train several times slower)."""
    root = tmp_path_factory.mktemp("preference-and-distillation")
    data_dir = root / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    settings = Settings(data_dir=data_dir, dataset_roots=[root])
    live = LiveServer(settings, root / "server.log")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def preference_files(tmp_path_factory) -> dict[str, Path]:
    """The sentiment task's splits as preference pairs (the same prompts as ``sentiment``)."""
    return write_preference_task(tmp_path_factory.mktemp("preference"))


@pytest.fixture(scope="module")
def prompt_files(sentiment_files, tmp_path_factory) -> dict[str, Path]:
    """The sentiment task's training and validation prompts without their answers: the
    teacher writes the responses."""
    folder = tmp_path_factory.mktemp("prompts")
    paths = {}
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in sentiment_files[split].read_text().splitlines()]
        path = folder / f"sentiment_prompts_{split}.jsonl"
        path.write_text("".join(json.dumps({"messages": r["messages"][:-1]}) + "\n" for r in rows))
        paths[split] = path
    return paths


def upload_valid(server: LiveServer, path: Path) -> str:
    uploaded = server.upload(path)
    assert uploaded["status"] == "processed", uploaded["status_details"]
    return uploaded["id"]


def held_out_accuracy(answer: Callable[[Conversation], str], examples: list[Conversation]) -> float:
    """Exact match of ``answer`` on the held-out examples (their last turn is the reference)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(answer, examples))
    expected = [example.turns[-1].text for example in examples]
    return sum(a == e for a, e in zip(answers, expected, strict=True)) / len(examples)


# --- Vertex (google-genai) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def vertex(server) -> genai.Client:
    return server.vertex_client(PROJECT, LOCATION)


def wait_for_vertex_job(client: genai.Client, job: types.TuningJob) -> types.TuningJob:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.tunings.get(name=job.name)
        if job.has_ended:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{job.name} did not finish in {JOB_TIMEOUT_S} s: {job.state}")


def tune_to_success(client: genai.Client, **request) -> types.TuningJob:
    job = wait_for_vertex_job(client, client.tunings.tune(**request))
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED, job.error
    return job


def vertex_accuracy(client: genai.Client, job: types.TuningJob, examples) -> float:
    config = types.GenerateContentConfig(
        system_instruction=SENTIMENT_SYSTEM, temperature=0, max_output_tokens=ANSWER_TOKENS
    )

    def answer(example: Conversation) -> str:
        response = client.models.generate_content(
            model=job.tuned_model.endpoint, contents=example.turns[-2].text, config=config
        )
        return (response.text or "").strip()

    return held_out_accuracy(answer, examples)


def job_id_of(job: types.TuningJob) -> str:
    return job.name.rsplit("/", 1)[-1]


def vertex_job_name(job_id: str) -> str:
    return f"projects/{PROJECT}/locations/{LOCATION}/tuningJobs/{job_id}"


def job_resource(server: LiveServer, job_id: str, what: str) -> dict:
    """A job's ``events`` or ``metrics`` (tuneforge's additions beside Vertex's TuningJob)."""
    response = httpx.get(
        f"{server.url}/v1/{vertex_job_name(job_id)}/{what}",
        headers={"Authorization": f"Bearer {server.key}"},
        params={"pageSize": 1000},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()


def event_messages(server: LiveServer, job_id: str) -> list[str]:
    return [event["message"] for event in job_resource(server, job_id, "events")["events"]]


def validation_rewards(server: LiveServer, job_id: str) -> tuple[float, float]:
    """DPO's rewards on the validation pairs at the last epoch: the share of pairs whose chosen
    response gained more likelihood (over the reference) than the rejected one, and the mean
    margin between the two."""
    extra = job_resource(server, job_id, "metrics")["epochs"][-1]["extra"]
    return extra["eval_rewards/accuracies"], extra["eval_rewards/margins"]


def tune_with_validation(
    client: genai.Client, server: LiveServer, base_model: str, files: dict[str, Path], **config
) -> types.TuningJob:
    """A job on the uploaded ``train`` file, validated on the ``validation`` one."""
    return tune_to_success(
        client,
        base_model=base_model,
        training_dataset=types.TuningDataset(gcs_uri=upload_valid(server, files["train"])),
        config=types.CreateTuningJobConfig(
            validation_dataset=types.TuningValidationDataset(
                gcs_uri=upload_valid(server, files["validation"])
            ),
            **config,
        ),
    )


@pytest.fixture(scope="module")
def sft_job(vertex, server, sentiment_files) -> types.TuningJob:
    """SFT part-way: the start of the usual recipe."""
    return tune_with_validation(vertex, server, STUDENT, sentiment_files, epoch_count=SFT_EPOCHS)


@pytest.fixture(scope="module")
def teacher_job(vertex, server, sentiment_files) -> types.TuningJob:
    return tune_with_validation(
        vertex, server, TEACHER, sentiment_files, epoch_count=TEACHER_EPOCHS
    )


def test_vertex_preference_tuning_goes_on_from_a_tuned_model(
    vertex, server, sft_job, preference_files, sentiment
):
    dpo = tune_with_validation(
        vertex,
        server,
        sft_job.tuned_model.model,  # projects/...: the SDK sends it as preTunedModel
        preference_files,
        method="PREFERENCE_TUNING",
        epoch_count=DPO_EPOCHS,
        beta=BETA,
    )
    assert dpo.pre_tuned_model.tuned_model_name == sft_job.tuned_model.model
    assert dpo.base_model == STUDENT
    spec = dpo.preference_optimization_spec
    assert spec.hyper_parameters.beta == BETA and spec.hyper_parameters.epoch_count == DPO_EPOCHS
    # The reference is the SFT adapter: DPO went on from the tuned model, not from the base.
    assert "DPO reference: a frozen copy of the starting adapter" in event_messages(
        server, job_id_of(dpo)
    )
    reward_accuracy, reward_margin = validation_rewards(server, job_id_of(dpo))
    before = vertex_accuracy(vertex, sft_job, sentiment["test"])
    accuracy = vertex_accuracy(vertex, dpo, sentiment["test"])
    print(
        f"\nVertex: held-out exact match after {SFT_EPOCHS} SFT epochs {before:.2f}, after DPO "
        f"{accuracy:.2f}; validation reward accuracy {reward_accuracy:.2f}, margin "
        f"{reward_margin:.3f}"
    )
    assert accuracy >= ACCURACY_BAR
    assert reward_accuracy > 0.5 and reward_margin > 0  # it learned the preferences


def test_vertex_distillation_from_prompts_alone(
    vertex, server, teacher_job, prompt_files, sentiment
):
    student = tune_with_validation(
        vertex,
        server,
        STUDENT,
        prompt_files,
        method="DISTILLATION",
        tuned_teacher_model_source=teacher_job.tuned_model.model,
        epoch_count=STUDENT_EPOCHS,
    )
    spec = student.distillation_spec
    assert spec.tuned_teacher_model_source == teacher_job.tuned_model.model
    assert spec.student_model == STUDENT
    events = event_messages(server, job_id_of(student))
    assert "the teacher is answering 400 training prompts" in events
    assert "the teacher is answering 50 validation prompts" in events
    teacher_accuracy = vertex_accuracy(vertex, teacher_job, sentiment["test"])
    student_accuracy = vertex_accuracy(vertex, student, sentiment["test"])
    print(
        f"\nVertex distillation: held-out exact match teacher {teacher_accuracy:.2f}, "
        f"student {student_accuracy:.2f}"
    )
    assert teacher_accuracy >= ACCURACY_BAR
    assert student_accuracy >= STUDENT_SHARE_OF_TEACHER * teacher_accuracy


# --- OpenAI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_client(server) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0)


def test_openai_dpo_goes_on_from_a_fine_tuned_model(
    openai_client, server, sft_job, preference_files, sentiment
):
    client = openai_client
    sft = client.fine_tuning.jobs.retrieve(job_id_of(sft_job))
    assert sft.fine_tuned_model.startswith(f"ft:{STUDENT}:")
    with preference_files["train"].open("rb") as handle:
        pairs = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=sft.fine_tuned_model,
        training_file=pairs.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": BETA, "n_epochs": DPO_EPOCHS}}},
    )
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.status not in {"succeeded", "failed", "cancelled"}:
        assert time.monotonic() < deadline, f"{job.id} did not finish: {job.status}"
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == BETA
    assert job.model == STUDENT
    events = [event.message for event in client.fine_tuning.jobs.list_events(job.id, limit=1000)]
    assert "DPO reference: a frozen copy of the starting adapter" in events

    def answer(example: Conversation) -> str:
        completion = client.chat.completions.create(
            model=job.fine_tuned_model,
            messages=[
                {"role": "system", "content": SENTIMENT_SYSTEM},
                {"role": "user", "content": example.turns[-2].text},
            ],
            temperature=0,
            max_tokens=ANSWER_TOKENS,
        )
        return completion.choices[0].message.content.strip()

    accuracy = held_out_accuracy(answer, sentiment["test"])
    print(f"\nOpenAI DPO: held-out exact match {accuracy:.2f}")
    assert accuracy >= ACCURACY_BAR


def test_openai_has_no_distillation_method(openai_client, prompt_files):
    with prompt_files["train"].open("rb") as handle:
        prompts = openai_client.files.create(file=handle, purpose="fine-tune")
    with pytest.raises(BadRequestError) as refused:
        openai_client.fine_tuning.jobs.create(
            model=STUDENT, training_file=prompts.id, method={"type": "distillation"}
        )
    message = refused.value.body["message"]
    assert "Vertex API" in message and "CLI" in message and "distillation" in message


# --- CLI --------------------------------------------------------------------------------------


@dataclass
class CliResult:
    output: str

    @property
    def job_id(self) -> str:
        return re.search(r"tuning job (tj-[0-9a-f]+) created", self.output)[1]


@pytest.fixture(scope="module")
def cli(server) -> Iterator[Callable[..., CliResult]]:
    """``tuneforge ...`` in-process on the server's data dir: its embedded app shares the
    server's database, so the jobs tuned through the APIs are there to go on from."""
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEFORGE_DATA_DIR", str(server.settings.data_dir))
        patch.delenv("TUNEFORGE_SERVER", raising=False)
        patch.setenv("OMP_NUM_THREADS", "1")  # for the runners the embedded app starts
        get_settings.cache_clear()

        def invoke(*args: str, code: int = 0) -> CliResult:
            result = runner.invoke(app, list(args), catch_exceptions=False)
            assert result.exit_code == code, result.output
            return CliResult(result.output)

        yield invoke
    get_settings.cache_clear()


def test_cli_preference_tuning_goes_on_from_a_tuned_job(cli, vertex, sft_job, preference_files):
    result = cli(
        "tune",
        str(preference_files["train"]),
        "--method",
        "preference",
        "--beta",
        str(BETA),
        "--base-model",
        job_id_of(sft_job),
        "--epochs",
        "1",
    )
    assert "tuned model" in result.output
    job = vertex.tunings.get(name=vertex_job_name(result.job_id))
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.preference_optimization_spec.hyper_parameters.beta == BETA
    assert job.pre_tuned_model.tuned_model_name == job_id_of(sft_job)
    assert job.base_model == STUDENT


def test_cli_distills_and_evaluates_student_teacher_and_untuned_student(
    cli, teacher_job, prompt_files, sentiment_files
):
    student = cli(
        "tune",
        str(prompt_files["train"]),
        "--method",
        "distillation",
        "--teacher",
        job_id_of(teacher_job),
        "--base-model",
        STUDENT,
        "--validation",
        str(prompt_files["validation"]),
        "--epochs",
        str(STUDENT_EPOCHS),
    )
    report = json.loads(
        cli("evaluate", student.job_id, str(sentiment_files["test"]), "--json").output
    )
    candidates = {c["label"]: c for c in report["candidates"]}
    assert {"tuned", "base", "teacher"} <= candidates.keys()
    for label in ("tuned", "base", "teacher"):
        assert candidates[label]["output_tokens_per_second"] > 0, label
    assert candidates["base"]["model"] == STUDENT
    matches = {label: c["exact_match"] for label, c in candidates.items()}
    print(f"\nCLI evaluate: {matches}")
    assert matches["tuned"] >= STUDENT_SHARE_OF_TEACHER * matches["teacher"]


# --- bad preference data ----------------------------------------------------------------------


BAD_LINE = 7


def broken_copy(source: Path, target: Path, breaks: Callable[[dict], None]) -> Path:
    """``source`` with line BAD_LINE changed by ``breaks``."""
    rows = [json.loads(line) for line in source.read_text().splitlines()]
    breaks(rows[BAD_LINE - 1])
    target.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return target


def without_rejected(row: dict) -> None:
    del row["non_preferred_output"]


def with_equal_scores(row: dict) -> None:
    for completion in row["completions"]:
        completion["score"] = 1


def ending_with_a_model_turn(row: dict) -> None:
    row["input"]["messages"].append({"role": "assistant", "content": "positive"})


# case -> (file format, how line BAD_LINE is broken, the field named, words of the message)
BAD_PREFERENCE_DATA = {
    "missing rejected": (
        "openai", without_rejected, "non_preferred_output", 'missing "non_preferred_output"'
    ),
    "equal scores": ("vertex", with_equal_scores, "completions", "have the same score"),
    "prompt ending with a model turn": (
        "openai", ending_with_a_model_turn, "input.messages[2]", 'must end with a "user" message'
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_PREFERENCE_DATA)
def test_bad_preference_data_fails_validation_naming_the_line(case, vertex, server, tmp_path):
    style, breaks, field, words = BAD_PREFERENCE_DATA[case]
    source = write_preference_task(tmp_path / "source", style=style, sizes=(40, 1, 1))["train"]
    uploaded = server.upload(broken_copy(source, tmp_path / "bad.jsonl", breaks))
    assert uploaded["status"] == "error"
    errors = [p for p in uploaded["validation"]["problems"] if p["severity"] == "error"]
    assert [(p["line"], p["field"]) for p in errors] == [(BAD_LINE, field)], errors
    assert words in errors[0]["message"]
    assert f"line {BAD_LINE}" in uploaded["status_details"]

    with pytest.raises(genai.errors.ClientError) as refused:  # at creation, not 25 s later
        vertex.tunings.tune(
            base_model=STUDENT,
            training_dataset=types.TuningDataset(gcs_uri=uploaded["id"]),
            config=types.CreateTuningJobConfig(method="PREFERENCE_TUNING", epoch_count=1),
        )
    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    message = refused.value.message
    assert f"line {BAD_LINE}, {field}: " in message and words in message
