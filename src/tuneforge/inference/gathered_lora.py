"""LoRA deltas of a mixed batch in one gathered computation per layer (Punica's BGMV, S-LoRA).

Why not PEFT's own path: PEFT's mixed-adapter forward (``generate(..., adapter_names=...)``,
``peft/tuners/lora/layer.py`` ``LoraLayer._mixed_batch_forward``) loops in Python over the
batch's adapters in every LoRA layer, picking each adapter's rows by index, running its two
small products and writing them back, at every decoding step: with ten adapters that loop
cost mixed batches 30% of one model's throughput on a CPU (``benchmarks/README.md``). PEFT has
no batched kernel for it (the gathered kernels of Punica, S-LoRA and vLLM are CUDA and Triton),
so it is written here, in plain torch that runs on any device:

- per ``lora.Linear``, every stacked adapter's weights are copied once into ``A`` of shape
  ``(slots, in_features, rank)`` and ``B`` of shape ``(slots, rank, out_features)``, and its
  scaling into ``scaling``, one per slot. Slot 0 is all zeros: the rows without an
  adapter (and an adapter without weights on that layer) add nothing. Smaller ranks are padded
  with zeros to the largest, which adds exact zeros;
- for one ``generate`` call, whose rows keep their adapters throughout, each row's slot is
  gathered once: ``A[slots]``, ``B[slots]``, ``scaling[slots]``;
- each forward then adds ``(x @ A[slots] @ B[slots]) * scaling[slots]`` (two ``torch.bmm``) to
  the base layer's output, for every row at once. The scaling is applied last, as PEFT does:
  folded into ``B`` it would round differently.

The gathered copies hold, while the call runs, rows x the largest rank x (in + out features)
per layer (40 MiB for 16 rows of rank-8 adapters on every linear layer of a 768-wide, 6-layer
Llama): gathering at every step instead cost about 5% more time on a CPU.

It plugs into PEFT through public API only, not by replacing the private
``_mixed_batch_forward``: the model runs under ``PeftModel.disable_adapter()`` (each
``lora.Linear`` then computes its base layer alone) and a torch forward hook on each
``lora.Linear`` that holds a stacked adapter adds the delta; both last one ``generate`` call,
under the loaded model's lock. Only adapters that are plain LoRA on ``lora.Linear`` layers can
be stacked (:func:`gatherable`); a batch with any other keeps PEFT's ``adapter_names`` path.
The stacks copy the adapters' weights: the cache counts them in the model's bytes, and
rebuilds them when an adapter is loaded or evicted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from peft.tuners.lora import Linear as LoraLinear
from peft.tuners.lora import LoraLayer

from tuneforge.inference.model_cache import BASE_ROW


def gatherable(model: Any, name: str) -> bool:
    """Whether adapter ``name`` of this ``PeftModel`` is plain LoRA on ``lora.Linear`` layers
    only: no DoRA or other variant, no LoRA bias, no embedding or convolution layers, and no
    ``modules_to_save`` or trainable tokens (which ``disable_adapter`` would switch off)."""
    config = model.peft_config[name]
    if config.modules_to_save or getattr(config, "trainable_token_indices", None):
        return False
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        if name not in module.lora_A and name not in module.lora_embedding_A:
            continue
        plain = (
            type(module) is LoraLinear
            and name not in module.lora_variant
            and not module.lora_bias.get(name, False)
        )
        if not plain:
            return False
    return True


@dataclass(frozen=True)
class _Stack:
    a: torch.Tensor  # (slots, in_features, rank)
    b: torch.Tensor  # (slots, rank, out_features)
    scaling: torch.Tensor  # (slots, 1, 1)


def _stack(layer: LoraLinear, names: Sequence[str]) -> _Stack:
    held = [name for name in names if name in layer.lora_A]
    rank = max(layer.lora_A[name].weight.shape[0] for name in held)
    weight = layer.lora_A[held[0]].weight
    slots = len(names) + 1
    a = weight.new_zeros(slots, layer.in_features, rank)
    b = weight.new_zeros(slots, rank, layer.out_features)
    scaling = weight.new_zeros(slots, 1, 1)
    for slot, name in enumerate(names, start=1):
        if name in held:
            a_weight, b_weight = layer.lora_A[name].weight, layer.lora_B[name].weight
            a[slot, :, : a_weight.shape[0]] = a_weight.T
            b[slot, : b_weight.shape[1], :] = b_weight.T
            scaling[slot] = layer.scaling[name]
    return _Stack(a, b, scaling)


def _gather(stack: _Stack, slots: torch.Tensor) -> _Stack:
    """Each row's own slot (index_select: about twice as fast as indexing on a CPU)."""
    slots = slots.to(stack.a.device)
    return _Stack(*(t.index_select(0, slots) for t in (stack.a, stack.b, stack.scaling)))


def _add_delta(rows: _Stack, layer: Any, args: tuple, output: Any) -> Any:
    """Forward hook: the base layer's ``output`` plus each row's own adapter delta."""
    x = args[0]
    count = rows.a.shape[0]
    if x.shape[0] != count:
        raise ValueError(f"a mixed batch of {count} rows got an input of {x.shape[0]} rows")
    flat = x.reshape(count, -1, x.shape[-1]).to(rows.a.dtype)
    delta = torch.bmm(torch.bmm(flat, rows.a), rows.b) * rows.scaling
    return output + delta.view(output.shape).to(output.dtype)


class GatheredLora:
    """The stacked weights of some adapters of one ``PeftModel``, per ``lora.Linear``."""

    def __init__(self, model: Any, names: Sequence[str]) -> None:
        self.slots = {BASE_ROW: 0} | {name: slot for slot, name in enumerate(names, start=1)}
        with torch.no_grad():
            self._stacks = {
                layer: _stack(layer, names)
                for layer in model.modules()
                if type(layer) is LoraLinear and any(name in layer.lora_A for name in names)
            }

    @property
    def nbytes(self) -> int:
        tensors = [t for stack in self._stacks.values() for t in (stack.a, stack.b, stack.scaling)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def holds(self, names: Sequence[str]) -> bool:
        return all(name in self.slots for name in names)

    @contextmanager
    def applied(self, model: Any, row_adapters: Sequence[str]) -> Iterator[None]:
        """``model`` (the ``PeftModel`` these stacks came from) running each row with its own
        adapter (a name, or ``__base__``), as ``generate(adapter_names=row_adapters)`` would."""
        slots = torch.tensor([self.slots[name] for name in row_adapters])
        handles = []
        try:
            with torch.no_grad():
                for layer, stack in self._stacks.items():
                    hook = partial(_add_delta, _gather(stack, slots))
                    handles.append(layer.register_forward_hook(hook))
            with model.disable_adapter():
                yield
        finally:
            for handle in handles:
                handle.remove()
