from __future__ import annotations

import io
import json

from rich.console import Console

from tuneforge.data import stats as stats_module
from tuneforge.data.records import DatasetFormat, Problem, ValidationReport
from tuneforge.data.report import problems_table, render, stats_table, summary, to_json
from tuneforge.data.stats import compute_stats
from tuneforge.data.validate import validate_dataset


def rendered(renderable) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def report_with_problems() -> ValidationReport:
    report = ValidationReport(format=DatasetFormat.OPENAI_CHAT)
    report.add(Problem(3, "messages[1].content", "expected text (a string); found [bold]x[/bold]"))
    report.add(Problem(0, "", "the file has 40 examples", "warning"))
    return report


def test_to_json_is_plain_data():
    report = report_with_problems()
    data = to_json(report)
    assert json.loads(json.dumps(data)) == data
    assert data["ok"] is False
    assert data["format"] == "openai_chat"
    assert (data["error_count"], data["warning_count"], data["omitted_problems"]) == (1, 1, 0)
    assert data["problems"][0] == {
        "line": 3,
        "field": "messages[1].content",
        "severity": "error",
        "message": "expected text (a string); found [bold]x[/bold]",
    }
    assert data["stats"] is None


def test_to_json_includes_stats(monkeypatch):
    monkeypatch.setattr(stats_module, "count_tokens", lambda example, tokenizer: (1, 1))
    report = validate_dataset(b'{"prompt": "q", "completion": "a"}\n' * 12)
    data = to_json(report, compute_stats(report.examples, None))
    assert data["stats"]["example_count"] == 12
    assert data["stats"]["output_tokens"]["sum"] == 12
    assert json.loads(json.dumps(data)) == data


def test_user_text_is_printed_as_is_not_as_rich_markup():
    output = rendered(problems_table(report_with_problems()))
    assert "found [bold]x[/bold]" in output
    assert "messages[1].content" in output
    assert "file" in output  # the line of a dataset-level problem


def test_summary_says_valid_or_invalid_with_counts():
    assert "invalid (OpenAI chat format, 0 valid examples), 1 error, 1 warning" in rendered(
        summary(report_with_problems(), source="train.jsonl")
    )
    ok = validate_dataset(b'{"prompt": "q", "completion": "a"}\n' * 100)
    assert "valid (prompt/completion format, 100 valid examples)" in rendered(summary(ok))


def test_problems_table_says_how_many_more_there_are():
    report = validate_dataset(b"x\n" * 60)
    output = rendered(problems_table(report, limit=5))
    assert "and 56 more problems" in output  # 60 invalid lines and one dataset-level error


def test_render_shows_summary_problems_and_stats(monkeypatch):
    monkeypatch.setattr(stats_module, "count_tokens", lambda example, tokenizer: (7, 3))
    report = validate_dataset(b'{"prompt": "q", "completion": "a"}\n' * 12)
    stats = compute_stats(report.examples, None, epochs=2, batch_size=5, max_length=8)
    output = rendered(render(report, stats, source="train.jsonl"))
    assert output.startswith("train.jsonl: valid")
    assert "Problems" in output  # the "fewer than 100 examples" warning
    assert "input tokens" in output and "output tokens" in output
    assert "6 steps at batch size 5" in output
    assert "12 truncated to 8 tokens" in output
    assert "Dataset statistics" in rendered(stats_table(stats))
