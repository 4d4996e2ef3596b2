"""The model card ``tuneforge models export`` writes beside a tuned model: what it was tuned on,
with which hyperparameters, and how its losses went (the README.md the Hugging Face Hub shows)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneforge.models.names import base_display_name

if TYPE_CHECKING:
    from tuneforge.store.models import TuningJob

# data_stats keys (Vertex's names) and how the card labels them.
DATA_ROWS = {
    "tuningDatasetExampleCount": "examples",
    "totalBillableTokenCount": "billable tokens (all epochs)",
    "tuningStepCount": "steps",
    "totalTruncatedExampleCount": "examples cut to the maximum length",
}
DISTRIBUTION_ROWS = {
    "userInputTokenDistribution": "input tokens per example",
    "userOutputTokenDistribution": "output tokens per example",
}


def model_card(model: str, job: TuningJob, metrics: dict[str, list[dict]], adapter: bool) -> str:
    """``metrics``: the job's series as ``JobService.metrics`` returns them."""
    title = job.display_name or job.suffix or model
    kind = "a LoRA adapter" if adapter else "a fully fine-tuned model"
    base = base_display_name(job.base_model)  # a local base by its folder name, not its path
    lines = [
        "---",
        f"base_model: {base}",
        *(["library_name: peft"] if adapter else []),
        "tags: [tuneforge]",
        "---",
        "",
        f"# {title}",
        "",
        f"{kind.capitalize()} of `{base}`, tuned by tuneforge with the "
        f"{job.method} method (job `{job.id}`, model `{model}`).",
        "",
    ]
    if adapter:
        lines += [
            "```python",
            "from peft import PeftModel",
            "from transformers import AutoModelForCausalLM",
            "",
            f'base = AutoModelForCausalLM.from_pretrained("{base}")',
            'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
            "```",
            "",
        ]
    lines += _section("Data", _data_rows(job.data_stats or {}))
    hyperparameters = job.resolved_hyperparameters or job.hyperparameters or {}
    lines += _section("Hyperparameters", {k: v for k, v in sorted(hyperparameters.items())})
    lines += _metrics_section(metrics)
    return "\n".join(lines).rstrip() + "\n"


def _data_rows(stats: dict[str, Any]) -> dict[str, Any]:
    rows = {label: stats[key] for key, label in DATA_ROWS.items() if key in stats}
    for key, label in DISTRIBUTION_ROWS.items():
        if dist := stats.get(key):
            rows[label] = f"mean {dist.get('mean', 0):.1f}, max {dist.get('max', 0):g}"
    return rows


def _section(title: str, rows: dict[str, Any]) -> list[str]:
    if not rows:
        return [f"## {title}", "", "Not recorded.", ""]
    table = ["| | |", "| --- | --- |", *(f"| {k} | {_cell(v)} |" for k, v in rows.items())]
    return [f"## {title}", "", *table, ""]


def _metrics_section(metrics: dict[str, list[dict]]) -> list[str]:
    steps, epochs = metrics.get("steps", []), metrics.get("epochs", [])
    if not steps and not epochs:
        return ["## Metrics", "", "Not recorded.", ""]
    lines = ["## Metrics", ""]
    if steps:
        lines.append(f"- final training loss: {steps[-1]['loss']:.4f} (step {steps[-1]['step']})")
    valid = [e for e in epochs if e.get("valid_loss") is not None]
    if valid:
        best = min(valid, key=lambda e: e["valid_loss"])
        lines.append(f"- best validation loss: {best['valid_loss']:.4f} (epoch {best['epoch']})")
    if epochs:
        lines += ["", "| epoch | training loss | validation loss |", "| --- | --- | --- |"]
        for epoch in epochs:
            lines.append(
                f"| {epoch['epoch']} | {_loss(epoch.get('train_loss'))} | "
                f"{_loss(epoch.get('valid_loss'))} |"
            )
    return [*lines, ""]


def _loss(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")
