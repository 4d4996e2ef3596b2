"""Generation with base models and tuned models, behind one interface for the CLI and both APIs.

``make_backend(settings)`` gives the configured backend: transformers (default, runs anywhere)
or vLLM (``TUNEFORGE_INFERENCE_BACKEND=vllm``; needs a GPU and the vllm package). Both are
wrapped in a :class:`BatchingBackend`, so concurrent requests share batches. Torch, transformers
and vLLM are imported only when a backend is made.
"""

from __future__ import annotations

from tuneforge.config import Settings
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


def backend_kind(settings: Settings) -> str:
    """``transformers`` or ``vllm``, from ``TUNEFORGE_INFERENCE_BACKEND`` (checked by Settings)."""
    return settings.inference_backend


def make_backend(settings: Settings) -> BatchingBackend:
    if backend_kind(settings) == "vllm":
        from tuneforge.inference.vllm_backend import VLLMBackend

        return BatchingBackend(VLLMBackend())
    from tuneforge.inference.transformers_backend import TransformersBackend

    return BatchingBackend(TransformersBackend(settings.inference_memory_bytes))
