"""Loaded models for inference: an LRU cache bounded by parameter bytes, and LoRA adapter switching.

A base model is loaded once, however many tuned models are built on it: its adapters are loaded
into one ``PeftModel`` under stable names and switched per request. A full fine-tune is a model
of its own in the same cache. Switching adapters mutates the model, so each loaded model has a
lock that a request holds from switching to the end of generation.

A mixed batch (:meth:`LoadedModel.mixed`) runs rows of different adapters, and of the base, in one
forward pass: each LoRA layer adds every row's own adapter delta. Plain LoRA adapters on linear
layers take ``gathered_lora.py``'s path (their weights stacked per layer, every row's delta in
two batched products); a batch with any other adapter takes PEFT's ``adapter_names``, which
loops over the adapters in Python. PEFT refuses a mixed batch for DoRA, for adapters on
parameters (``target_parameters``) and for a few module types, and it cannot work on merged
weights (never merged here): :func:`mixable` tells which adapters may join, the others run in
batches of their own adapter.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tuneforge.errors import NotFound
from tuneforge.inference.types import ModelTarget
from tuneforge.models.loading import (
    load_causal_lm,
    load_media_model,
    load_processor,
    load_tokenizer,
    media_kinds,
    quiet_transformers,
)
from tuneforge.models.threads import fit_cpu_threads

if TYPE_CHECKING:  # imported when first used: it imports peft
    from tuneforge.inference.gathered_lora import GatheredLora

ADAPTER_CONFIG = "adapter_config.json"
BASE_ROW = "__base__"  # PEFT's name for a row that runs without any adapter


def parameter_bytes(model: torch.nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def adapter_name(adapter_path: Path) -> str:
    """A stable name for an adapter folder; a folder rewritten in place gets a new name."""
    weights = adapter_path / "adapter_model.safetensors"
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    digest = hashlib.sha1(f"{adapter_path.resolve()}:{stamp}".encode()).hexdigest()
    return f"adapter_{digest[:16]}"


def mixable(adapter_path: Path) -> bool:
    """Whether PEFT can run this adapter's rows beside other adapters' in one batch."""
    config = json.loads((adapter_path / ADAPTER_CONFIG).read_text())
    return (
        config.get("peft_type", "LORA") == "LORA"
        and not config.get("use_dora")
        and not config.get("target_parameters")
        and not config.get("alora_invocation_tokens")
        and not config.get("layer_replication")
    )


@dataclass
class LoadedModel:
    key: str  # the base source, or the folder of a full fine-tune
    model: Any  # a PreTrainedModel, or a PeftModel once an adapter has been loaded into it
    tokenizer: Any
    device: str
    max_adapters: int
    nbytes: int = 0
    last_used: float = 0.0  # time.monotonic() when a generation last held it
    lock: threading.Lock = field(default_factory=threading.Lock)
    # loaded adapters' names, LRU first, each with whether gathered_lora can stack it
    adapters: OrderedDict[str, bool] = field(default_factory=OrderedDict)
    gathered: GatheredLora | None = None  # the stackable adapters' stacks; None: to build
    processor: Any = None  # a model that reads media: its processor; None: text only

    @property
    def eos_ids(self) -> list[int]:
        """The tokenizer's EOS and any end-of-turn ids the model's generation config adds."""
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(configured, int):
            ids.add(configured)
        elif configured:
            ids.update(configured)
        return sorted(ids)

    @property
    def context_length(self) -> int | None:
        config = self.model.config.get_text_config()  # a media model's language model's
        return getattr(config, "max_position_embeddings", None)

    @contextmanager
    def using(self, adapter_path: Path | None) -> Iterator[Any]:
        """Hold the model with this adapter active, or with every adapter disabled."""
        with self.lock, self._in_use():
            if adapter_path is not None:
                name = self._ensure_adapter(adapter_path)  # may wrap self.model in a PeftModel
                self.model.set_adapter(name, inference_mode=True)
                yield self.model
            elif hasattr(self.model, "disable_adapter"):
                with self.model.disable_adapter():
                    yield self.model
            else:
                yield self.model

    @contextmanager
    def _in_use(self) -> Iterator[None]:
        self.last_used = time.monotonic()
        fit_cpu_threads()  # this process's share of the cores may have changed
        try:
            yield
        finally:
            self.last_used = time.monotonic()

    @contextmanager
    def mixed(self, adapter_paths: list[Path | None]) -> Iterator[tuple[Any, dict[str, object]]]:
        """Hold the model ready to run each row with its own adapter (None: the base): the model
        and what to add to ``generate``'s arguments. With only stackable adapters the stacked
        path is on for the duration and nothing is added; else PEFT's ``adapter_names``
        (``__base__`` for a row without one). Every path must be :func:`mixable`, and there may
        be no more distinct adapters than ``max_adapters``."""
        with self.lock, self._in_use():
            names = {path: self._ensure_adapter(path) for path in set(adapter_paths) if path}
            rows = [names[path] if path else BASE_ROW for path in adapter_paths]
            gathered = self._gathered()
            if gathered is not None and gathered.holds(rows):
                with gathered.applied(self.model, rows):
                    yield self.model, {}
            else:
                yield self.model, {"adapter_names": rows}

    def _gathered(self) -> GatheredLora | None:
        """The stacks of every stackable adapter loaded, built on first use after a change."""
        if self.gathered is None and self.adapters:
            from tuneforge.inference.gathered_lora import GatheredLora

            stackable = [name for name, gatherable in self.adapters.items() if gatherable]
            self.gathered = GatheredLora(self.model, stackable)
            self.nbytes = parameter_bytes(self.model) + self.gathered.nbytes
        return self.gathered

    def _ensure_adapter(self, adapter_path: Path) -> str:
        name = adapter_name(adapter_path)
        if name in self.adapters:
            self.adapters.move_to_end(name)
            return name
        if not self.adapters:
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(
                self.model, str(adapter_path), adapter_name=name, torch_device=self.device
            )
        else:
            self.model.load_adapter(str(adapter_path), adapter_name=name, torch_device=self.device)
        from tuneforge.inference.gathered_lora import gatherable

        self.adapters[name] = gatherable(self.model, name)
        if len(self.adapters) > self.max_adapters:
            oldest = next(iter(self.adapters))
            self.model.delete_adapter(oldest)
            del self.adapters[oldest]
        self.model.eval()
        self.gathered = None  # its slots name the adapters loaded before
        self.nbytes = parameter_bytes(self.model)
        return name


class ModelCache:
    """Loaded models, least recently used evicted once their parameters pass the budget (less
    what training on the same device planned for, :meth:`reserve`).

    The model just loaded is never evicted, so a single model larger than the budget still
    loads. A model evicted while a request still runs on it stays in memory until that request
    ends (its last reference goes), which can briefly exceed the budget.
    """

    def __init__(
        self,
        memory_budget_bytes: int,
        device: str,
        dtype: torch.dtype,
        attn_implementation: str,
        max_adapters_per_model: int = 64,
    ) -> None:
        self.memory_budget_bytes = memory_budget_bytes
        self.reserved_bytes = 0  # what training on this device planned for: see reserve()
        self.device = device
        self.dtype = dtype
        self.attn_implementation = attn_implementation
        self.max_adapters_per_model = max_adapters_per_model
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.load_counts: Counter[str] = Counter()
        self.evictions = 0

    def used_within(self, seconds: float) -> bool:
        """Whether a generation held one of the loaded models in the last ``seconds``."""
        since = time.monotonic() - seconds
        with self._lock:
            return any(model.last_used >= since for model in self._models.values())

    def loaded(self) -> list[str]:
        """Keys of the loaded models, least recently used first."""
        with self._lock:
            return list(self._models)

    def get(self, target: ModelTarget) -> LoadedModel:
        """The model a target runs on, loaded if needed; its adapter loads on first use."""
        adapter = target.adapter_path
        if adapter is not None and not (adapter / ADAPTER_CONFIG).is_file():
            raise NotFound(f"model {target.name!r}: no LoRA adapter in {adapter}")
        if target.weights_path is not None:
            folder = target.weights_path
            if not (folder / "config.json").is_file():
                raise NotFound(f"model {target.name!r}: no config.json in {folder}")
            return self._get(str(folder.resolve()), target.tokenizer_source, target.base_source)
        return self._get(target.base_source, target.tokenizer_source, target.base_source)

    def _get(self, key: str, tokenizer_source: str, base_source: str) -> LoadedModel:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per key, while other keys stay served
            with self._lock:
                if key in self._models:
                    self._models.move_to_end(key)
                    return self._models[key]
            loaded = self._load(key, tokenizer_source, base_source)
            with self._lock:
                self._models[key] = loaded
                self.load_counts[key] += 1
                self._evict(keep=key)
            return loaded

    def _load(self, source: str, tokenizer_source: str, base_source: str) -> LoadedModel:
        quiet_transformers()
        tokenizer = load_tokenizer(tokenizer_source)
        # A full fine-tune keeps its base's processor: training saves only the tokenizer.
        processor = load_processor(base_source) if media_kinds(source) else None
        load = load_causal_lm if processor is None else load_media_model
        model = load(source, dtype=self.dtype, attn_implementation=self.attn_implementation).to(
            self.device
        )
        model.eval()
        fit_cpu_threads(model)
        return LoadedModel(
            key=source,
            model=model,
            tokenizer=tokenizer,
            device=self.device,
            max_adapters=self.max_adapters_per_model,
            nbytes=parameter_bytes(model),
            processor=processor,
        )

    def reserve(self, training_bytes: int) -> None:
        """Count what training on this device planned for against the budget: the cache
        evicts down to the budget less it, keeping the model used last."""
        with self._lock:
            self.reserved_bytes = training_bytes
            if self._models:
                self._evict(keep=next(reversed(self._models)))

    def _evict(self, keep: str) -> None:
        evicted = False
        budget = self.memory_budget_bytes - self.reserved_bytes
        while sum(m.nbytes for m in self._models.values()) > budget:
            oldest = next(iter(self._models))
            if oldest == keep:
                break
            # A request still running on it keeps its own reference until it ends.
            del self._models[oldest]
            self.evictions += 1
            evicted = True
        if evicted and self.device.startswith("cuda"):
            torch.cuda.empty_cache()
