"""How tuned models and their checkpoints are named on each surface.

* Vertex: a tuned model is an endpoint ``projects/{p}/locations/{l}/endpoints/{tuned-model-id}``;
  each checkpoint has an endpoint of its own, ``.../endpoints/{checkpoint-id}``.
* OpenAI: ``ft:{base}:{project}:{suffix}:{job-id}``, and a checkpoint
  ``ft:{base}:{project}:{suffix}:{job-id}:ckpt-step-{step}``.
* CLI: a tuned model id (``tm-...``), a job id (``tj-...``) or a checkpoint id (``ckpt-...``);
  ``ID@epoch-N`` names the checkpoint of epoch N.
Anything else is a base model name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

_ENDPOINT = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?endpoints/(?P<id>[^/:@]+)$")
_PUBLISHER_MODEL = re.compile(
    r"^(?:projects/[^/]+/locations/[^/]+/)?publishers/[^/]+/models/(?P<m>.+)$"
)
_PROJECT_MODEL = re.compile(r"^(?:projects/[^/]+/locations/[^/]+/)?models/(?P<m>.+)$")
_CHECKPOINT_STEP = re.compile(r"^ckpt-step-(?P<step>\d+)$")
_EPOCH = re.compile(r"^epoch-(?P<epoch>\d+)$")


@dataclass(frozen=True)
class TunedRef:
    """A reference to a tuned model (by one of its ids) and optionally one checkpoint."""

    tuned_model_id: str | None = None
    job_id: str | None = None
    checkpoint_id: str | None = None
    epoch: int | None = None
    step: int | None = None


def base_display_name(base_model: str) -> str:
    """A base model as a tuned model's name shows it: a local folder (``/srv/models/qwen``,
    ``./qwen``, ``~/qwen``) by its folder name, never the server's path; a built-in name or
    hub id as given."""
    if base_model.startswith(("/", ".", "~")):
        return PurePosixPath(base_model).name or "local-model"
    return base_model


def openai_model_name(base_model: str, project_id: str, suffix: str | None, job_id: str) -> str:
    base = base_display_name(base_model).replace(":", "-")
    return f"ft:{base}:{project_id}:{suffix or ''}:{job_id}"


def fine_tuned_model_name(job) -> str:
    """The OpenAI name of a job's tuned model (``job``: a TuningJob row)."""
    return openai_model_name(job.base_model, job.project_id, job.suffix, job.id)


def openai_checkpoint_name(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}:ckpt-step-{step}"


def parse_model_name(name: str) -> TunedRef | str:
    """A TunedRef for a tuned model or checkpoint name, else the base model's name."""
    name = name.strip()
    if name.startswith("ft:"):
        parts = name.split(":")
        if len(parts) >= 5:
            ref = TunedRef(job_id=parts[4])
            if len(parts) == 6 and (match := _CHECKPOINT_STEP.match(parts[5])):
                ref = TunedRef(job_id=parts[4], step=int(match["step"]))
            return ref
    if match := _ENDPOINT.match(name):
        name = match["id"]
    elif match := _PUBLISHER_MODEL.match(name) or _PROJECT_MODEL.match(name):
        name = match["m"]  # a tuned model's Vertex name (models/tm-...) or a base model
    identifier, _, checkpoint = name.partition("@")
    epoch = int(m["epoch"]) if checkpoint and (m := _EPOCH.match(checkpoint)) else None
    if identifier.startswith("tm-"):
        return TunedRef(tuned_model_id=identifier, epoch=epoch)
    if identifier.startswith("tj-"):
        return TunedRef(job_id=identifier, epoch=epoch)
    if identifier.startswith("ckpt-"):
        return TunedRef(checkpoint_id=identifier)
    return name
