"""``tuneforge models``: the base and tuned models of the local data dir."""

from __future__ import annotations

import json
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
from tuneforge.cli.model_card import model_card

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
    target = service.models.target(PROJECT, model)
    source = target.adapter_path or target.weights_path
    if source is None:
        fail(f"{model} is a base model; nothing to export")
    if out.exists() and not out.is_dir():
        fail(f"{out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not force:
            fail(f"{out} is not empty: choose an empty folder, or add --force to replace it")
        shutil.rmtree(out)
    job = service.models.tuned_job(PROJECT, model)
    adapter = target.adapter_path is not None and not merged
    with console.status(f"exporting {model}"):
        if target.adapter_path and merged:
            _write_merged(target, out)
        else:
            shutil.copytree(source, out, ignore=TRAINING_STATE, dirs_exist_ok=True)
        if adapter:
            _name_the_base(out / "adapter_config.json", job.base_model)
        card = model_card(model, job, service.jobs.metrics(PROJECT, job.id), adapter=adapter)
        (out / "README.md").write_text(card, encoding="utf-8")
    console.print(f"exported {model} to {out}")


# What a checkpoint holds only to resume training.
TRAINING_STATE = shutil.ignore_patterns(
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*",
    "*.pth",
    "trainer_state.json",
    "training_args.bin",
)


def _write_merged(target, out: Path) -> None:
    from tuneforge.models.loading import load_causal_lm, load_tokenizer, quiet_transformers

    quiet_transformers()
    from peft import PeftModel

    base = load_causal_lm(target.base_source)
    merged_model = PeftModel.from_pretrained(base, target.adapter_path)
    merged_model.merge_and_unload().save_pretrained(out)
    load_tokenizer(target.adapter_path).save_pretrained(out)


def _name_the_base(config_path: Path, base_model: str) -> None:
    """The adapter's base as the job named it (a hub id, or tuneforge's name), not the folder
    of this machine's data dir it was loaded from: the folder means nothing elsewhere."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
