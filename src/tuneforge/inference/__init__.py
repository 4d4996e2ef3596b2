"""Generation with base models and tuned models, behind one interface for the CLI and both APIs.

``make_backend(settings)`` gives the configured backend: transformers (default, runs anywhere)
or vLLM (``TUNEFORGE_INFERENCE_BACKEND=vllm``; needs a GPU and the vllm package). Both are
wrapped in a :class:`BatchingBackend`, so concurrent requests share batches. Torch, transformers
and vLLM are imported only when a backend is made.
"""

from __future__ import annotations

import os

from tuneforge.config import Settings
from tuneforge.errors import InvalidArgument
from tuneforge.inference.batching import BatchingBackend
from tuneforge.inference.types import (
    Completion,
    GenerationParams,
    GenerationResult,
    InferenceBackend,
    ModelTarget,
)

__all__ = [
    "BatchingBackend",
    "Completion",
    "GenerationParams",
    "GenerationResult",
    "InferenceBackend",
    "ModelTarget",
    "backend_kind",
    "make_backend",
]

BACKEND_ENV = "TUNEFORGE_INFERENCE_BACKEND"
BACKENDS = ("transformers", "vllm")


def backend_kind(settings: Settings) -> str:
    """The settings' ``inference_backend`` when it has one, else the environment variable."""
    kind = getattr(settings, "inference_backend", None) or os.environ.get(BACKEND_ENV)
    kind = (kind or "transformers").strip().lower()
    if kind not in BACKENDS:
        raise InvalidArgument(
            f"{BACKEND_ENV}={kind!r}: expected one of {', '.join(BACKENDS)}", BACKEND_ENV
        )
    return kind


def make_backend(settings: Settings) -> BatchingBackend:
    if backend_kind(settings) == "vllm":
        from tuneforge.inference.vllm_backend import VLLMBackend

        return BatchingBackend(VLLMBackend())
    from tuneforge.inference.transformers_backend import TransformersBackend

    return BatchingBackend(TransformersBackend(settings.inference_memory_bytes))
