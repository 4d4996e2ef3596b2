"""``tuneforge models``: the base and tuned models of the local data dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.table import Table

from tuneforge.cli.common import console, fail, friendly_errors, local_service, print_json

app = typer.Typer(
    help="List tuned models and export them (from the local data dir).", no_args_is_help=True
)
PROJECT = "default"


@app.command("list")
@friendly_errors
def list_models() -> None:
    """Base models that can be tuned here, and the tuned models of project default."""
    table = Table("model", "kind", "base model", "created")
    for info in local_service().models.list(PROJECT):
        table.add_row(info.id, info.kind, info.base_model, str(info.created_at or "")[:19])
    console.print(table)


@app.command()
@friendly_errors
def get(model: str) -> None:
    """Where a tuned model's weights are and what it was tuned from."""
    service = local_service()
    target = service.models.target(PROJECT, model)
    job = service.models.tuned_job(PROJECT, model)
    print_json(
        {
            "model": model,
            "job": job.id,
            "base_model": job.base_model,
            "method": job.method,
            "mode": job.mode.value,
            "adapter": str(target.adapter_path or ""),
            "weights": str(target.weights_path or ""),
        }
    )


@app.command()
@friendly_errors
def export(
    model: str,
    out: Path = typer.Argument(..., help="Folder to write the model to."),
    merged: bool = typer.Option(False, help="Merge a LoRA adapter into the base weights."),
) -> None:
    """Write a tuned model to OUT: its PEFT adapter (loads with PeftModel.from_pretrained and
    vLLM), or with --merged / a full fine-tune, a complete model folder."""
    service = local_service()
    target = service.models.target(PROJECT, model)
    source = target.adapter_path or target.weights_path
    if source is None:
        fail(f"{model} is a base model; nothing to export")
    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty")
    if merged and target.adapter_path:
        from peft import PeftModel

        from tuneforge.models.loading import load_causal_lm, load_tokenizer

        merged_model = PeftModel.from_pretrained(load_causal_lm(target.base_source), source)
        merged_model.merge_and_unload().save_pretrained(out)
        load_tokenizer(source).save_pretrained(out)
    else:
        ignore = shutil.ignore_patterns(
            "optimizer.pt",
            "scheduler.pt",
            "rng_state*",
            "*.pth",
            "trainer_state.json",
            "training_args.bin",
        )
        shutil.copytree(source, out, ignore=ignore, dirs_exist_ok=True)
    console.print(f"exported {model} to {out}")
