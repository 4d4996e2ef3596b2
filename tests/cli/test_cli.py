"""The ``tuneforge`` command as a user runs it."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from tuneforge.cli.main import app
from tuneforge.config import get_settings

TINY = "tuneforge/tiny-chat"


def test_validate_valid_file_exits_0_with_statistics(cli, sentiment_files):
    output = cli("datasets", "validate", str(sentiment_files["train"]), "--base-model", TINY)
    assert "valid" in output and "400" in output
    assert "input tokens" in output and "billable tokens" in output


def test_validate_reports_every_bad_line_and_exits_1(cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = json.dumps({"prompt": "a", "completion": "b"})
    bad.write_text("\n".join([good] * 12 + ["{not json", json.dumps({"prompt": 3})]) + "\n")
    output = cli("datasets", "validate", str(bad), "--json", code=1)
    report = json.loads(output)
    lines = {p["line"] for p in report["problems"] if p["severity"] == "error"}
    assert lines == {13, 14}  # line 14: "prompt" is not text, and "completion" is missing


def test_validate_without_a_task_names_each_prompt_only_line_of_a_supervised_file(
    cli, sentiment_files, tmp_path
):
    rows = [json.loads(line) for line in sentiment_files["train"].read_text().splitlines()]
    for line in (5, 123):  # the last turn is the user's: nothing to learn
        rows[line - 1]["messages"] = rows[line - 1]["messages"][:-1]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = json.loads(cli("datasets", "validate", str(mixed), "--json", code=1))
    errors = [(p["line"], p["field"]) for p in report["problems"] if p["severity"] == "error"]
    assert [line for line, _ in errors] == [5, 123]
    assert all(field.startswith("messages") for _, field in errors)


def test_validate_accepts_a_file_of_prompts_for_distillation(cli, sentiment_files, tmp_path):
    rows = [json.loads(line) for line in sentiment_files["train"].read_text().splitlines()]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"messages": row["messages"][:-1]}) + "\n" for row in rows)
    )
    output = cli("datasets", "validate", str(prompts))
    assert "400 of the 400 examples are prompts" in output and "distillation" in output


@pytest.mark.slow
def test_tune_then_use_the_tuned_model(cli, sentiment_files, tmp_path):
    train, validation, test = (str(sentiment_files[k]) for k in ("train", "validation", "test"))
    output = cli(
        "tune",
        train,
        "--base-model",
        TINY,
        "--validation",
        validation,
        "--epochs",
        "5",
        "--name",
        "cli-test",
    )
    job_id = re.search(r"tuning job (tj-[0-9a-f]+) created", output)[1]
    assert "best epoch" in output and "tuned model" in output

    assert "SUCCEEDED" in cli("jobs", "list")
    assert "checkpoint saved: epoch 1" in cli("jobs", "events", job_id)

    answer = cli(
        "generate",
        job_id,
        "review: superb and charming ->",
        "--system",
        "Classify the sentiment of the review as positive or negative.",
    )
    assert answer.splitlines()[0] == "positive"

    report = json.loads(cli("evaluate", job_id, test, "--few-shot", "2", "--limit", "40", "--json"))
    scores = {c["label"]: c["exact_match"] for c in report["candidates"]}
    assert scores["tuned"] >= 0.9 > scores["base"]

    exported = tmp_path / "exported"
    cli("models", "export", job_id, str(exported))
    assert (exported / "adapter_model.safetensors").is_file()
    assert not (exported / "optimizer.pt").exists()

    plot = tmp_path / "curve.png"
    cli("jobs", "plot", job_id, "--out", str(plot))
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_jobs_commands_talk_to_a_server(live_server, monkeypatch):
    """With --server, the CLI uses that server and TUNEFORGE_API_KEY, not the local data."""
    monkeypatch.setenv("TUNEFORGE_API_KEY", live_server.key)
    monkeypatch.setenv("TUNEFORGE_DATA_DIR", str(live_server.settings.data_dir / "elsewhere"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["jobs", "list", "--server", live_server.url])
        assert result.exit_code == 0, result.output
        assert "job" in result.output and "state" in result.output
        missing = CliRunner().invoke(
            app, ["jobs", "get", "tj-000000000000", "--server", live_server.url]
        )
        assert missing.exit_code == 1 and "not found" in missing.output
    finally:
        get_settings.cache_clear()


def test_tune_with_a_broken_validation_file_is_refused_before_any_training(
    cli, sentiment_files, tmp_path
):
    rows = sentiment_files["validation"].read_text().splitlines()
    rows[2] = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]})
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(rows) + "\n")
    output = cli(
        "tune",
        str(sentiment_files["train"]),
        "--base-model",
        TINY,
        "--validation",
        str(broken),
        code=1,
    )
    said = " ".join(output.split())  # the console wraps long lines
    assert "validationDatasetUri" in said and "line 3, messages[1].content" in said
    assert "created" not in said


def test_a_csv_file_gets_one_message_saying_how_to_convert_it(cli, tmp_path):
    data = tmp_path / "reviews.csv"
    data.write_text("input,output\n" + "".join(f"review {i} ->,positive\n" for i in range(50)))

    output = cli("datasets", "validate", str(data), code=1)

    said = " ".join(output.split())
    assert said.count("this looks like CSV") == 1 and "examples), 1 error" in said
    assert "invalid JSON" not in said and "no examples" not in said
    assert "csv.DictReader" in said
    tuned = " ".join(cli("tune", str(data), "--base-model", TINY, code=1).split())
    assert tuned.count("this looks like CSV") == 1 and "created" not in tuned


def test_samples_writes_each_format_of_the_quick_starts_datasets(cli, tmp_path, sentiment_files):
    from tuneforge.data.validate import validate_any_task

    output = cli("samples", str(tmp_path))

    expected = {
        "openai": "openai_chat",
        "vertex": "vertex_sft",
        "preference": "openai_preference",
    }
    for folder, fmt in expected.items():
        files = sorted((tmp_path / folder).glob("*sentiment*.jsonl"))
        assert len(files) == 3 and all(str(f) in output for f in files)
        for file in files:
            report = validate_any_task(file)
            assert report.ok and report.format == fmt, (file, report.format)
    # The quick start's files are the ones the suite tunes on.
    train = tmp_path / "openai" / "sentiment_train.jsonl"
    assert train.read_bytes() == sentiment_files["train"].read_bytes()


def test_jobs_resume_without_a_server_runs_the_job_here(cli, settings, sentiment_files, tmp_path):
    """Without --server nothing else would run the resumed job: the command runs it, as
    `tune` runs its job, and shows how it ended."""
    from tuneforge.cli.common import local_service
    from tuneforge.service import JobRequest

    service = local_service(settings)
    small = tmp_path / "small.jsonl"
    small.write_text("".join(sentiment_files["train"].read_text().splitlines(True)[:40]))
    with small.open("rb") as handle:
        upload = service.files.upload("default", small.name, handle, "fine-tune")
    request = JobRequest(
        base_model=TINY, training_file=upload.id, hyperparameters={"epochs": 1, "batch_size": 8}
    )
    job_id = service.jobs.create("default", request).job.id
    assert service.jobs.pause("default", job_id).job.state.name == "PAUSED"

    output = cli("jobs", "resume", job_id)

    assert f"tuning job {job_id} resumed" in output and "tuned model" in output
    assert service.jobs.get("default", job_id).job.state.name == "SUCCEEDED"


def test_evaluate_caps_answers_near_the_longest_reference_unless_told(cli, sentiment_files):
    from tuneforge.inference.evaluate import output_budget
    from tuneforge.models.loading import load_tokenizer
    from tuneforge.models.resolve import resolve_base_model

    test = sentiment_files["test"]
    rows = [json.loads(line) for line in test.read_text().splitlines()[:4]]
    tokenizer = load_tokenizer(resolve_base_model(TINY, get_settings()).source)
    longest = max(
        len(tokenizer(row["messages"][-1]["content"], add_special_tokens=False)["input_ids"])
        for row in rows
    )
    args = ("evaluate", TINY, str(test), "--few-shot", "0", "--limit", "4", "--json")

    [base] = json.loads(cli(*args))["candidates"]
    assert base["max_output_tokens"] == output_budget(longest)  # not the default 256

    [told] = json.loads(cli(*args, "--max-tokens", "3"))["candidates"]
    assert told["max_output_tokens"] == 3
    assert told["mean_output_tokens"] <= 3


def test_tune_a_reward_model_then_score_with_it(cli, preference_files, tmp_path):
    output = cli("tune", str(preference_files["train"]), "-m", TINY, "--method", "reward")
    job_id = re.search(r"tuning job (tj-[0-9a-f]+) created", output)[1]

    accuracy = json.loads(cli("score", job_id, "--pairs", str(preference_files["test"]), "--json"))
    assert accuracy["pairs"] == 100 and accuracy["pairwise_accuracy"] >= 0.9

    scores = json.loads(
        cli("score", job_id, "review: dull tedious mess ->", "negative", "positive", "--json",
            "--system", "Classify the sentiment of the review as positive or negative.")
    )  # fmt: skip
    assert [s["response"] for s in scores] == ["negative", "positive"]
    assert scores[0]["score"] > scores[1]["score"]

    refused = cli("generate", job_id, "hello", code=1)
    assert "is a reward model" in refused
    assert "give PROMPT" in cli("score", job_id, code=2)

    # Reinforcement against it: the reward model is the grader.
    prompts = tmp_path / "prompts.jsonl"
    rows = [json.loads(line) for line in preference_files["test"].read_text().splitlines()][:12]
    prompts.write_text("".join(json.dumps(row["input"]) + "\n" for row in rows))
    output = cli("tune", str(prompts), "-m", TINY, "--method", "reinforcement", "--reward-model",
                 job_id, "--epochs", "1", "-H", "num_generations=2",
                 "-H", "max_completion_length=4")  # fmt: skip
    assert "tuned model" in output
    rl_job = re.search(r"tuning job (tj-[0-9a-f]+) created", output)[1]
    assert "scored by the reward_model grader 'reward model'" in cli("jobs", "events", rl_job)
    both = cli("tune", str(prompts), "-m", TINY, "--method", "reinforcement", "--reward-model",
               job_id, "--grader", str(prompts), code=1)  # fmt: skip
    assert "not both" in both


def test_tune_with_reinforcement_takes_a_grader_file(cli, tmp_path):
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps({"type": "string_check", "name": "exact", "operation": "eq",
                                  "input": "{{ sample.output_text }}",
                                  "reference": "{{ item.answer }}"}))  # fmt: skip
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"{i} plus one"}], "answer": str(i + 1)}
            for i in range(16)]  # fmt: skip
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = cli("tune", str(prompts), "-m", TINY, "--method", "reinforcement", "--grader",
                 str(grader), "--epochs", "1", "-H", "num_generations=2",
                 "-H", "max_completion_length=4")  # fmt: skip
    job_id = re.search(r"tuning job (tj-[0-9a-f]+) created", output)[1]
    events = cli("jobs", "events", job_id)
    assert "scored by the string_check grader 'exact'" in events
    assert "tuned model" in output


@pytest.mark.slow
def test_tune_with_quantization_trains_on_a_4_bit_base(cli, sentiment_files):
    train = str(sentiment_files["train"])
    output = cli("tune", train, "-m", TINY, "--quantization", "nf4", "--epochs", "1")
    job_id = re.search(r"tuning job (tj-[0-9a-f]+) created", output)[1]
    assert "tuned model" in output
    assert "quantization" in cli("jobs", "get", job_id) and "nf4" in cli("jobs", "get", job_id)

    full = cli("tune", train, "-m", TINY, "--quantization", "nf4", "--mode", "full", code=1)
    assert "LoRA adapter only" in " ".join(full.split())
