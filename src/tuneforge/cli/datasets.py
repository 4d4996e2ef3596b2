"""``tuneforge datasets validate``: every problem by line, and the statistics, before tuning."""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge.cli.common import console, friendly_errors, print_json
from tuneforge.cli.help import App
from tuneforge.config import get_settings

app = App(help="Check datasets before spending GPU time on them.", no_args_is_help=True)


@app.command()
@friendly_errors
def validate(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A JSONL dataset."),
    base_model: str | None = typer.Option(
        None, "--base-model", "-m", help="Count tokens with this model's tokenizer and template."
    ),
    task: str = typer.Option("auto", help="supervised, preference, distillation or auto."),
    epochs: int = typer.Option(3, help="Epochs, for billable tokens and steps."),
    batch_size: int = typer.Option(8, help="Batch size, for the step count."),
    max_length: int = typer.Option(2048, help="Examples longer than this are reported."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Validate FILE line by line; exit 0 when it can be tuned on, 1 when not."""
    from tuneforge.data.report import render, to_json
    from tuneforge.data.stats import compute_stats
    from tuneforge.data.validate import implied_task, validate_any_task, validate_dataset

    tokenizer, media = None, None
    if base_model:
        from tuneforge.jobs.media_files import media_rules
        from tuneforge.models.loading import load_tokenizer, quiet_transformers
        from tuneforge.models.resolve import resolve_base_model

        quiet_transformers()
        tokenizer = load_tokenizer(resolve_base_model(base_model, get_settings()).source)
        media = media_rules(get_settings(), base_model, read=None)
    if task == "auto":
        report = validate_any_task(file)
        if tokenizer is not None and report.format is not None:
            task = implied_task(report)
    if task != "auto":
        report = validate_dataset(
            file, task=task, tokenizer=tokenizer, max_length=max_length, media=media
        )
    stats = None
    if tokenizer is not None and report.examples:
        stats = compute_stats(
            report.examples,
            tokenizer,
            epochs=epochs,
            batch_size=batch_size,
            max_length=max_length,
            token_counts=report.token_counts,
            media_tokens=report.media_tokens,
        )
    if as_json:
        print_json(to_json(report, stats))
    else:
        console.print(render(report, stats, source=str(file)))
    raise typer.Exit(0 if report.ok else 1)
