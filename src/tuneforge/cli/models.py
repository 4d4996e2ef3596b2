"""``tuneforge models``: the base and tuned models of the local data dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.table import Table

from tuneforge.cli.common import (
    JSON_OPTION,
    console,
    fail,
    friendly_errors,
    local_service,
    print_json,
)
from tuneforge.cli.help import App
from tuneforge.service.model_export import export_model, exported_target

app = App(help="List tuned models and export them (from the local data dir).", no_args_is_help=True)
PROJECT = "default"


@app.command("list")
@friendly_errors
def list_models(as_json: bool = JSON_OPTION) -> None:
    """Base models that can be tuned here, and the tuned models of project default."""
    rows = [_model_row(info) for info in local_service().models.list(PROJECT)]
    if as_json:
        print_json(rows)
        return
    table = Table("model", "kind", "name", "suffix", "base model", "created")
    for row in rows:
        table.add_row(
            row["id"],
            row["kind"],
            row["display_name"] or "",
            row["suffix"] or "",
            row["base_model"],
            str(row["created"] or "")[:19],
        )
    console.print(table)


def _model_row(info) -> dict:
    return {
        "id": info.id,
        "kind": info.kind,
        "display_name": info.tuned_model.display_name if info.tuned_model else None,
        "suffix": info.job.suffix if info.job else None,
        "job": info.job.id if info.job else None,
        "base_model": info.base_model,
        "created": info.created_at,
    }


@app.command()
@friendly_errors
def get(model: str, as_json: bool = JSON_OPTION) -> None:
    """Where a tuned model's weights are and what it was tuned from."""
    service = local_service()
    target = service.models.target(PROJECT, model)
    job = service.models.tuned_job(PROJECT, model)
    data = {
        "model": model,
        "job": job.id,
        "display_name": job.display_name,
        "suffix": job.suffix,
        "base_model": job.base_model,
        "method": job.method,
        "mode": job.mode.value,
        "adapter": str(target.adapter_path or ""),
        "weights": str(target.weights_path or ""),
    }
    if as_json:
        print_json(data)
        return
    table = Table(title=model, show_header=False)
    for label, value in data.items():
        if value:
            table.add_row(label.replace("_", " "), str(value))
    console.print(table)


@app.command()
@friendly_errors
def export(
    model: str,
    out: Path = typer.Argument(..., help="Folder to write the model to."),
    merged: bool = typer.Option(False, help="Merge a LoRA adapter into the base weights."),
    force: bool = typer.Option(False, "--force", help="Replace what OUT already holds."),
) -> None:
    """Write a tuned model to OUT: its PEFT adapter (loads with PeftModel.from_pretrained and
    vLLM, its base named as you named it), or with --merged / a full fine-tune, a complete
    model folder; and a model card (README.md) with its data, hyperparameters and losses."""
    service = local_service()
    exported_target(service, PROJECT, model)  # a base model's name fails before OUT is touched
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            fail(f"{out} is not empty: choose an empty folder, or add --force to replace it")
        shutil.rmtree(out)
    with console.status(f"exporting {model}"):
        export_model(service, PROJECT, model, out, merged=merged)
    console.print(f"exported {model} to {out}")
