"""Presenting a validation report (and dataset statistics): as JSON, and as Rich renderables.

Every string that comes from the dataset goes into a ``Text``, never through Rich markup, so a
``[bold]`` in someone's data is printed as it is.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tuneforge.data.formats import FORMAT_NAMES
from tuneforge.data.media import KIND_WORDS
from tuneforge.data.records import ValidationReport
from tuneforge.data.stats import DatasetStats, Distribution

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow"}
DEFAULT_SHOWN_PROBLEMS = 50


def to_json(report: ValidationReport, stats: DatasetStats | None = None) -> dict:
    """The report as plain JSON-able data (for ``--json`` and the API)."""
    return {
        "ok": report.ok,
        "format": report.format.value if report.format else None,
        "example_count": report.example_count,
        "error_count": report.error_count,
        "warning_count": report.warning_count,
        "problems": [
            {
                "line": problem.line,
                "field": problem.field,
                "severity": problem.severity,
                "message": problem.message,
            }
            for problem in report.problems
        ],
        "omitted_problems": report.omitted_problems,
        "truncated_examples": list(report.truncated),
        "stats": stats.model_dump() if stats is not None else None,
    }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary(report: ValidationReport, *, source: str | None = None) -> Text:
    """One line: the verdict, the format, the example count, the problem counts."""
    text = Text()
    if source:
        text.append(source)
        text.append(": ")
    if report.ok:
        text.append("valid", style="bold green")
    else:
        text.append("invalid", style="bold red")
    fmt = FORMAT_NAMES[report.format] + " format" if report.format else "format unknown"
    text.append(f" ({fmt}, {_plural(report.example_count, 'valid example')})")
    if report.error_count:
        text.append(", ")
        text.append(_plural(report.error_count, "error"), style=SEVERITY_STYLES["error"])
    if report.warning_count:
        text.append(", ")
        text.append(_plural(report.warning_count, "warning"), style=SEVERITY_STYLES["warning"])
    return text


def problems_table(
    report: ValidationReport, *, limit: int | None = DEFAULT_SHOWN_PROBLEMS
) -> Table:
    """The problems, one row each: line, field, severity and message."""
    shown = report.problems if limit is None else report.problems[:limit]
    hidden = report.error_count + report.warning_count - len(shown)
    caption = f"and {_plural(hidden, 'more problem')} (see --json)" if hidden else None
    table = Table(title="Problems", caption=caption, show_lines=False)
    table.add_column("Line", justify="right", no_wrap=True)
    table.add_column("Field", overflow="fold")
    table.add_column("", no_wrap=True)
    table.add_column("Problem", overflow="fold")
    for problem in shown:
        table.add_row(
            Text(str(problem.line) if problem.line else "file"),
            Text(problem.field),
            Text(problem.severity, style=SEVERITY_STYLES[problem.severity]),
            Text(problem.message),
        )
    return table


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def stats_table(stats: DatasetStats) -> Table:
    """Totals and the per-example distributions of tokens and messages."""
    table = Table(title="Dataset statistics")
    table.add_column("", style="bold")
    for column in ("min", "p5", "median", "mean", "p95", "max", "sum"):
        table.add_column(column, justify="right")
    rows: list[tuple[str, Distribution]] = [
        ("input tokens", stats.input_tokens),
        ("output tokens", stats.output_tokens),
        ("messages", stats.messages_per_example),
    ]
    for name, dist in rows:
        values = (dist.min, dist.p5, dist.median, dist.mean, dist.p95, dist.max, dist.sum)
        table.add_row(name, *map(_number, values))
    return table


def stats_totals(stats: DatasetStats) -> Text:
    """The dataset's totals on one line: examples, tokens, characters, billable tokens, steps."""
    totals = [
        _plural(stats.example_count, "example"),
        f"{stats.total_tokens:,} tokens",
        f"{stats.total_characters:,} characters",
        f"{stats.billable_tokens:,} billable tokens over {_plural(stats.epochs, 'epoch')}",
        f"{_plural(stats.step_count, 'step')} at batch size {stats.batch_size}",
    ]
    if stats.media:
        parts = [f"{count:,} {KIND_WORDS[kind]}" for kind, count in sorted(stats.media.items())]
        cost = f" ({stats.media_tokens:,} tokens)" if stats.media_tokens else ""
        totals.append(", ".join(parts) + cost)
    if stats.max_length is not None:
        truncated = len(stats.truncated_example_indices)
        totals.append(f"{truncated} truncated to {stats.max_length:,} tokens")
    return Text(" · ".join(totals))


def render(
    report: ValidationReport, stats: DatasetStats | None = None, *, source: str | None = None
) -> RenderableType:
    """Everything the ``datasets validate`` command prints, in order."""
    parts: list[RenderableType] = [summary(report, source=source)]
    if report.problems:
        parts.append(problems_table(report))
    if stats is not None:
        parts += [stats_table(stats), stats_totals(stats)]
    return Group(*parts)
