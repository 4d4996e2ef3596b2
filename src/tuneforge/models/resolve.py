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
from tuneforge.models.tiny_media import TINY_MEDIA_MODELS, ensure_tiny_media_model
from tuneforge.storage import storage_for

MAX_MODEL_NAME_LENGTH = 1024
# Every built-in model, built on first use: the tiny chat models, then the tiny media ones.
BUILTIN_MODELS: tuple[str, ...] = (*TINY_MODELS, *TINY_MEDIA_MODELS)


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # what the user called it
    source: str  # what to pass to ``from_pretrained``: a local folder or a hub id


def _model_roots(settings: Settings) -> list[Path]:
    return [storage_for(settings).models_dir, *settings.model_roots]


def _is_under(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a symlink loop, a name past the OS's limits
        return False


def _is_model_folder(folder: Path) -> bool:
    try:
        return (folder / "config.json").is_file()
    except OSError:  # a name past the OS's limits (ENAMETOOLONG) is no folder
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _no_model_folder(name: str) -> ModelNotFound:
    # One answer whether the path is missing, outside the roots or without config.json: it
    # must not tell which of the server's paths exist.
    return ModelNotFound(
        f"base model {name!r} is not a model folder (with config.json) under the model roots; "
        "to use a folder, add its parent to TUNEFORGE_MODEL_ROOTS"
    )


def _unknown(name: str) -> ModelNotFound:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = " (HF_HUB_OFFLINE=1: only models already in the local cache can be used)"
    return ModelNotFound(
        f"unknown base model {name!r}: not a built-in model ({', '.join(BUILTIN_MODELS)}), "
        f"not a folder under the model roots, and not a loadable hub id" + (hint if offline else "")
    )


def ensure_builtin_model(name: str, models_dir: Path) -> Path:
    """Build the named built-in model into ``models_dir`` unless it is there; return its folder."""
    if name in TINY_MEDIA_MODELS:
        return ensure_tiny_media_model(name, models_dir)
    return ensure_tiny_model(name, models_dir)


def local_base_models(settings: Settings) -> list[str]:
    """The names of the model folders directly under the model roots, as resolve_base_model
    accepts them (a symlink that leads out of its root is none)."""
    names = []
    for root in _model_roots(settings):
        if root.is_dir():
            names += [
                p.name for p in sorted(root.iterdir()) if _is_model_folder(p) and _is_under(p, root)
            ]
    return names


def resolve_base_model(name: str, settings: Settings) -> ResolvedModel:
    if name in BUILTIN_MODELS:
        folder = ensure_builtin_model(name, storage_for(settings).models_dir)
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
    try:
        candidate = Path(name).expanduser()
    except RuntimeError:  # ~user of no such user
        raise _no_model_folder(name) from None
    if candidate.is_absolute() or name.startswith("."):
        if not (_is_model_folder(candidate) and any(_is_under(candidate, r) for r in roots)):
            raise _no_model_folder(name)
        return ResolvedModel(name, str(candidate.resolve()))
    for root in roots:
        folder = root / name
        # The resolved folder must stay under its root: a symlink must not lead elsewhere.
        if _is_model_folder(folder) and _is_under(folder, root):
            return ResolvedModel(name, str(folder.resolve()))
    if _exists(candidate):
        # transformers reads a hub id that names an existing folder (relative to the server's
        # working directory) as that folder: only the model roots may be read from disk. The
        # answer is an unknown hub id's, so it does not tell whether that folder exists.
        raise _unknown(name)
    return ResolvedModel(name, _check_hub_id(name))


def _check_hub_id(name: str) -> str:
    """Fail now, with a clear message, if a hub id can be neither found in the cache nor fetched."""
    from huggingface_hub.errors import HFValidationError
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name)
    except (OSError, ValueError, HFValidationError) as err:
        raise _unknown(name) from err
    return name
