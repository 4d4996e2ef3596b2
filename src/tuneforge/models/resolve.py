"""Base-model names → a folder or hub id that transformers can load.

A name is one of: a built-in tiny model (``tuneforge/tiny-chat``), a local folder under one of
the configured model roots (by path, or by name relative to a root), or a Hugging Face hub id
that is already in the local cache or can be downloaded when the user allows the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tuneforge.config import Settings
from tuneforge.errors import ModelNotFound
from tuneforge.models.tiny import TINY_MODELS, ensure_tiny_model
from tuneforge.storage import storage_for

MAX_MODEL_NAME_LENGTH = 1024


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user called it
    source: str  # what to pass to ``from_pretrained``: a local folder or a hub id


def _model_roots(settings: Settings) -> list[Path]:
    return [storage_for(settings).models_dir, *settings.model_roots]


def _is_under(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def resolve_base_model(name: str, settings: Settings) -> ResolvedModel:
    if name in TINY_MODELS:
        folder = ensure_tiny_model(name, storage_for(settings).models_dir)
        return ResolvedModel(name, str(folder))

    if len(name) > MAX_MODEL_NAME_LENGTH or "\x00" in name:
        # Past the OS's limits a path check raises instead of answering.
        raise ModelNotFound(
            f"base model name of {len(name)} characters: at most {MAX_MODEL_NAME_LENGTH}, "
            "without NUL bytes"
        )
    roots = _model_roots(settings)
    if ".." in Path(name).parts:
        raise ModelNotFound(f"base model {name!r}: '..' is not allowed in a model name")
    candidate = Path(name).expanduser()
    if candidate.is_absolute() or name.startswith("."):
        if not (candidate / "config.json").is_file():
            raise ModelNotFound(f"base model {name!r}: no config.json in that folder")
        if not any(_is_under(candidate, root) for root in roots):
            raise ModelNotFound(
                f"base model {name!r} is outside the model roots; add its parent folder to "
                "TUNEFORGE_MODEL_ROOTS"
            )
        return ResolvedModel(name, str(candidate.resolve()))
    for root in roots:
        folder = root / name
        # The resolved folder must stay under its root: a symlink must not lead elsewhere.
        if (folder / "config.json").is_file() and _is_under(folder, root):
            return ResolvedModel(name, str(folder.resolve()))
    if candidate.exists():
        # transformers reads a hub id that names an existing folder (relative to the server's
        # working directory) as that folder: only the model roots may be read from disk.
        raise ModelNotFound(
            f"base model {name!r} is a folder outside the model roots; add its parent folder to "
            "TUNEFORGE_MODEL_ROOTS"
        )
    return ResolvedModel(name, _check_hub_id(name))


def _check_hub_id(name: str) -> str:
    """Fail now, with a clear message, if a hub id can be neither found in the cache nor fetched."""
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError, HFValidationError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " (HF_HUB_OFFLINE=1: only models already in the local cache can be used)"
        raise ModelNotFound(
            f"unknown base model {name!r}: not a built-in model ({', '.join(TINY_MODELS)}), "
            f"not a folder under the model roots, and not a loadable hub id"
            + (hint if offline else "")
        ) from err
    return name
