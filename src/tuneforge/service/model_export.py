"""A tuned model (or checkpoint) written out as a portable folder: its PEFT adapter with the base
named as the job named it (or, merged or fully fine-tuned, a complete model folder) and a model
card. ``tuneforge models export`` and the dashboard's download both write it here."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.errors import InvalidArgument
from tuneforge.models.names import base_display_name
from tuneforge.service.model_card import model_card

if TYPE_CHECKING:
    from tuneforge.inference.types import ModelTarget
    from tuneforge.service import Service

# What a checkpoint holds only to resume training.
TRAINING_STATE = shutil.ignore_patterns(
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*",
    "*.pth",
    "trainer_state.json",
    "training_args.bin",
)


def exported_target(service: Service, project_id: str, name: str) -> ModelTarget:
    """What ``export_model`` would write for ``name``; InvalidArgument for a base model."""
    target = service.models.target(project_id, name)
    if target.adapter_path is None and target.weights_path is None:
        raise InvalidArgument(f"{name} is a base model; nothing to export", "model")
    return target


def export_model(
    service: Service, project_id: str, name: str, out: Path, *, merged: bool = False
) -> None:
    """Write the model ``name`` into the folder ``out`` (created, or empty): its adapter, or
    with ``merged`` / a full fine-tune its complete weights, and a README.md model card.
    InvalidArgument for a base model's name."""
    target = exported_target(service, project_id, name)
    source = target.adapter_path or target.weights_path
    assert source is not None  # exported_target refuses a base model
    job = service.models.tuned_job(project_id, name)
    adapter = target.adapter_path is not None and not merged
    if target.adapter_path and merged:
        _write_merged(target, out)
    else:
        shutil.copytree(source, out, ignore=TRAINING_STATE, dirs_exist_ok=True)
    if adapter:
        _name_the_base(out / "adapter_config.json", job.base_model)
    card = model_card(name, job, service.jobs.metrics(project_id, job.id), adapter=adapter)
    (out / "README.md").write_text(card, encoding="utf-8")
    _modes_of_new_files(out)


def _modes_of_new_files(out: Path) -> None:
    """Give every exported file the mode a newly created file gets here (0644 under the usual
    umask 022). safetensors weights are written 0600 (by save_pretrained, and so in every
    checkpoint copied), which would hide an export from the owner's group."""
    probe = out / ".tuneforge-mode-probe"
    os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        file_mode = probe.stat().st_mode & 0o777  # 0o666 less the umask
    finally:
        probe.unlink()
    dir_mode = file_mode | ((file_mode & 0o444) >> 2)  # searchable wherever readable
    for path in out.rglob("*"):
        if path.is_symlink():
            continue
        path.chmod(dir_mode if path.is_dir() else file_mode)


def _write_merged(target: ModelTarget, out: Path) -> None:
    from tuneforge.models.loading import load_causal_lm, load_tokenizer, quiet_transformers

    quiet_transformers()
    from peft import PeftModel

    base = load_causal_lm(target.base_source)
    merged_model = PeftModel.from_pretrained(base, target.adapter_path)
    merged_model.merge_and_unload().save_pretrained(out)
    load_tokenizer(target.adapter_path).save_pretrained(out)


def _name_the_base(config_path: Path, base_model: str) -> None:
    """The adapter's base as the job named it (a hub id, or tuneforge's name; a local folder by
    its folder name), not the folder of this machine it was loaded from: the folder means
    nothing elsewhere, and the server's paths are not the reader's business."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_display_name(base_model)
    config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
