"""``tuneforge samples DIR``: the generated datasets the README's quick start tunes on."""

from __future__ import annotations

from pathlib import Path

import typer

from tuneforge.cli.common import console, friendly_errors
from tuneforge.data.samples import TASKS, WRITERS, write_preference_task, write_task


@friendly_errors
def samples(
    out: Path = typer.Argument(..., file_okay=False, help="Folder to write the datasets to."),
    seed: int = typer.Option(0, help="Another seed gives other examples of the same tasks."),
) -> None:
    """Write the sample tasks (sentiment, format) as train/validation/test JSONL in each
    format: OUT/openai (chat messages), OUT/vertex (contents), OUT/preference (DPO pairs)."""
    written: list[tuple[str, str, dict[str, Path]]] = []
    for style in WRITERS:
        for task in TASKS:
            written.append((style, task, write_task(out / style, task, style=style, seed=seed)))
    preference = write_preference_task(out / "preference", seed=seed)
    written.append(("preference", "sentiment", preference))
    for style, task, paths in written:
        console.print(f"[bold]{style}[/] {task}:", highlight=False)
        for split in ("train", "validation", "test"):
            console.print(f"  {paths[split]}", soft_wrap=True, highlight=False)
