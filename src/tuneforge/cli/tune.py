"""``tuneforge tune``: validate, upload, tune with a progress bar, and summarise."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tuneforge.cli.client import Client, check_reachable, connect
from tuneforge.cli.common import console, fail, friendly_errors
from tuneforge.config import get_settings
from tuneforge.storage import storage_for

TERMINAL = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_PAUSED"}


@friendly_errors
def tune(
    train_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training JSONL."),
    base_model: str = typer.Option(
        ..., "--base-model", "-m", help="Built-in, local path or hub id."
    ),
    validation: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Validation JSONL (early stopping, best epoch)."
    ),
    method: str = typer.Option(
        "supervised", help="A tuning method: supervised, preference or distillation."
    ),
    mode: str = typer.Option("peft", help="peft (a LoRA adapter) or full (all weights)."),
    epochs: int | None = typer.Option(None, help="Passes over the data (default: auto)."),
    batch_size: int | None = typer.Option(None, help="Examples per step (default: auto)."),
    learning_rate: float | None = typer.Option(None, help="Peak learning rate."),
    learning_rate_multiplier: float | None = typer.Option(None, help="Scales the default rate."),
    adapter_size: int = typer.Option(8, help="LoRA rank: 1, 2, 4, 8, 16 or 32."),
    beta: float | None = typer.Option(None, help="DPO's KL strength (preference method)."),
    max_seq_length: int | None = typer.Option(None, help="Longer examples are cut (2048)."),
    warmup_ratio: float | None = typer.Option(None, help="Share of warmup steps (0.03)."),
    early_stopping_patience: int | None = typer.Option(
        None, help="Epochs without a lower validation loss before stopping (2)."
    ),
    packing: bool | None = typer.Option(
        None, "--packing/--no-packing", help="Pack examples into rows of max length."
    ),
    divergence: str | None = typer.Option(
        None, help="Distillation: forward_kl (default), reverse_kl or jsd."
    ),
    quantization: str | None = typer.Option(
        None, help="nf4: the base in 4 bits, a LoRA adapter on it (QLoRA; mode peft)."
    ),
    teacher: str | None = typer.Option(None, help="Teacher model (distillation method)."),
    grader: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        help="A grader as JSON, OpenAI's shapes (reinforcement method).",
    ),
    reward_model: str | None = typer.Option(
        None,
        help="A reward model tuned here (method reward) that scores the answers "
        "(reinforcement method; instead of --grader).",
    ),
    extra_hyperparameters: list[str] = typer.Option(
        [],
        "--hyperparameter",
        "-H",
        help="Any of the method's hyperparameters as NAME=VALUE (a JSON value or a word), "
        "e.g. -H beta=0.2.",
    ),
    display_name: str | None = typer.Option(None, "--name", help="Tuned model display name."),
    devices: int = typer.Option(
        1, help="Train on this many devices (GPUs, else CPU processes) under torch.distributed."
    ),
    server: str | None = typer.Option(
        None, envvar="TUNEFORGE_SERVER", help="A tuneforge server; default: run here."
    ),
) -> None:
    """Tune BASE_MODEL on TRAIN_FILE and print the tuned model's name."""
    from tuneforge.api.vertex_schema import ADAPTER_SIZE_NAMES
    from tuneforge.engine.methods import get_method

    chosen = get_method(method, "--method")
    server = server or get_settings().server
    if server:
        check_reachable(server)  # before validating locally: say at once it is not there
    extra = parse_assignments(extra_hyperparameters)
    preview = {"epochs": epochs, "batch_size": batch_size, "max_seq_length": max_seq_length}
    preview |= {name: extra[name] for name in preview if name in extra}
    _check_locally(train_file, _tokenizer_model(base_model, server), method, preview)
    hyperparameters = {
        "epochCount": epochs,
        "batchSize": batch_size,
        "learningRate": learning_rate,
        "learningRateMultiplier": learning_rate_multiplier,
        "adapterSize": ADAPTER_SIZE_NAMES.get(adapter_size, f"ADAPTER_SIZE_{adapter_size}"),
        "beta": beta,
        "maxSequenceLength": max_seq_length,
        "warmupRatio": warmup_ratio,
        "earlyStoppingPatience": early_stopping_patience,
        "packing": packing,
        "divergence": divergence,
        "quantization": quantization,
        **extra,
    }
    with connect(server, run_jobs=True) as client:
        spec: dict = {
            "hyperParameters": {k: v for k, v in hyperparameters.items() if v is not None}
        }
        spec["trainingDatasetUri"] = client.upload(train_file)["id"]
        if validation:
            spec["validationDatasetUri"] = client.upload(validation)["id"]
        if mode == "full":
            spec["tuningMode"] = "TUNING_MODE_FULL"
        if grader is not None and reward_model is not None:
            fail("give --grader or --reward-model, not both")
        if grader is not None:
            try:
                spec["grader"] = json.loads(grader.read_text())
            except ValueError as err:
                fail(f"--grader {grader}: not JSON: {err}")
        if reward_model is not None:
            spec["grader"] = {"type": "reward_model", "name": "reward model", "model": reward_model}
        if chosen.needs_teacher:
            if not teacher:
                fail(f"--teacher is needed for {chosen.name}")
            spec["baseTeacherModel"] = teacher
            spec["studentModel"] = base_model
        body = {
            "baseModel": base_model,
            chosen.vertex_spec: spec,
            "tunedModelDisplayName": display_name,
            "devices": devices,
        }
        job = client.create_job(body)
        job_id = job["name"].rsplit("/", 1)[-1]
        console.print(f"tuning job [bold]{job_id}[/] created")
        job = follow(client, job_id)
        print_summary(client, job)
    if job["state"] != "JOB_STATE_SUCCEEDED":
        raise typer.Exit(1)


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["beta=0.2", "divergence=jsd"]`` -> ``{"beta": 0.2, "divergence": "jsd"}``."""
    parsed: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or not name:
            fail(f"--hyperparameter {assignment!r}: expected NAME=VALUE")
        try:
            parsed[name] = json.loads(text)
        except json.JSONDecodeError:
            parsed[name] = text
    return parsed


def _tokenizer_model(base_model: str, server: str | None) -> str | None:
    """The base model whose tokenizer counts the tokens; a tuned model's own base. None when
    the tuned model lives on a remote server (validation then goes without token counts)."""
    from tuneforge.models.names import TunedRef, parse_model_name

    if not isinstance(parse_model_name(base_model), TunedRef):
        return base_model
    if server or get_settings().server:
        return None
    from tuneforge.cli.common import local_service

    return local_service().models.tuned_job("default", base_model).base_model


def _check_locally(
    train_file: Path, base_model: str | None, method: str, preview: dict[str, Any]
) -> None:
    """Validate and show the statistics before anything is uploaded or trained. ``preview``:
    the epochs, batch size and maximum length asked for (None: the job's default), which the
    statistics estimate with; the job resolves them for itself when it starts."""
    from tuneforge.data.report import render
    from tuneforge.data.stats import compute_stats
    from tuneforge.data.validate import validate_dataset
    from tuneforge.engine.methods import get_method
    from tuneforge.engine.spec import auto_batch_size, auto_epochs
    from tuneforge.jobs.media_files import media_rules
    from tuneforge.models.loading import load_tokenizer, quiet_transformers
    from tuneforge.models.resolve import resolve_base_model

    quiet_transformers()
    tokenizer, media = None, None
    if base_model:
        tokenizer = load_tokenizer(resolve_base_model(base_model, get_settings()).source)
        media = media_rules(get_settings(), base_model, read=None)
    task = get_method(method).task
    max_length = preview.get("max_seq_length") or 2048
    report = validate_dataset(
        train_file, task=task, tokenizer=tokenizer, max_length=max_length, media=media
    )
    stats = None
    if report.examples and tokenizer is not None:
        count = len(report.examples)
        epochs = preview.get("epochs") or auto_epochs(count, method)
        stats = compute_stats(
            report.examples,
            tokenizer,
            epochs=epochs,
            batch_size=preview.get("batch_size") or auto_batch_size(count),
            max_length=max_length,
            token_counts=report.token_counts,
            media_tokens=report.media_tokens,
        )
    console.print(render(report, stats, source=str(train_file)))
    if not report.ok:
        raise typer.Exit(1)


def follow(
    client: Client, job_id: str, interval_s: float = 0.5, on_interrupt: str = "cancel"
) -> dict:
    """Show the job's progress until it ends; Ctrl-C asks for ``on_interrupt`` (cancel or
    pause) and waits for the job to stop."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("queued", total=None, info="")
        try:
            while True:
                job = client.get_job(job_id)
                steps = client.metrics(job_id).get("steps", [])
                if steps:
                    last = steps[-1]
                    progress.update(
                        task,
                        total=last["total_steps"],
                        completed=last["step"],
                        description=f"epoch {last['epoch']:.2f}",
                        info=f"loss {last['loss']:.4f}",
                    )
                else:
                    progress.update(task, description=_state_words(job))
                if job["state"] in TERMINAL:
                    return job
                time.sleep(interval_s)
        except KeyboardInterrupt:
            words = {"cancel": "cancelling", "pause": "pausing"}
            progress.update(task, description=words.get(on_interrupt, on_interrupt))
            client.action(job_id, on_interrupt)
            while (job := client.get_job(job_id))["state"] not in TERMINAL:
                time.sleep(interval_s)
            return job


def _state_words(job: dict) -> str:
    return job["state"].removeprefix("JOB_STATE_").lower().replace("_", " ")


def print_summary(client: Client, job: dict) -> None:
    job_id = job["name"].rsplit("/", 1)[-1]
    if job["state"] == "JOB_STATE_FAILED":
        console.print(f"[bold red]job {job_id} failed:[/] {job.get('error', {}).get('message')}")
        return
    metrics = client.metrics(job_id)
    epochs, steps = metrics.get("epochs", []), metrics.get("steps", [])
    table = Table(title=f"tuning job {job_id}: {_state_words(job)}", show_header=False)
    table.add_row("epochs run", str(len(epochs)))
    events = client.events(job_id)
    default = _default_epoch(events)
    if default is not None:
        table.add_row("best epoch (default checkpoint)", str(default))
    if steps:
        table.add_row("final training loss", f"{steps[-1]['loss']:.4f}")
        table.add_row("time", f"{steps[-1]['elapsed_s']:.1f} s")
        table.add_row("tokens/s", f"{steps[-1]['tokens_per_second']:.0f}")
    valid = [e["valid_loss"] for e in epochs if e.get("valid_loss") is not None]
    if valid:
        table.add_row("best validation loss", f"{min(valid):.4f}")
    console.print(table)
    tuned = job.get("tunedModel") or {}
    if tuned:
        console.print(
            f"tuned model: [bold]{tuned['model'].rsplit('/', 1)[-1]}[/] "
            f"(also usable as {job_id}; Vertex endpoint {tuned.get('endpoint')})"
        )
    elif job["state"] in ("JOB_STATE_CANCELLED", "JOB_STATE_PAUSED"):
        console.print(_usable_checkpoints(job_id, events), soft_wrap=True, highlight=False)
    storage = storage_for(get_settings())
    curve = storage.job_uri(job_id, "loss_curve.png")
    if storage.exists(curve):
        console.print(f"loss curve: {storage.local_path(curve)}")


def _usable_checkpoints(job_id: str, events: list[dict]) -> str:
    """What a stopped job left that can be used: the checkpoint of each epoch it finished."""
    saved = [
        (event.get("data") or {}).get("epoch")
        for event in events
        if event.get("message", "").startswith("checkpoint saved: epoch")
    ]
    names = [f"{job_id}@epoch-{epoch}" for epoch in saved if epoch is not None]
    if not names:
        return "no checkpoint was saved before the job stopped: nothing of it can be used"
    return (
        f"checkpoints you can still use: {', '.join(names)} "
        f"(e.g. tuneforge generate {names[-1]} PROMPT, or tuneforge evaluate {names[-1]} TEST)"
    )


def _default_epoch(events: list[dict]) -> int | None:
    for event in events:
        if event.get("message", "").startswith("default checkpoint"):
            return (event.get("data") or {}).get("epoch")
    return None
