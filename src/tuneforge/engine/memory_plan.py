"""The memory a training run will hold, planned before it starts, and what it changes to fit.

What costs memory in this stack (transformers 5, PEFT, TRL 1.16, torch's fused AdamW):

- **weights**: every parameter in the dtype it was loaded in (fp32 on a CPU; on a GPU bf16 for
  a frozen base, fp32 for full fine-tuning's, see ``Hardware.weights_dtype``; half a byte for a
  4-bit base), plus anything frozen beside it (a distillation teacher).
- **gradients**: one per trainable parameter, in its dtype. LoRA trains only the adapter,
  which PEFT keeps in fp32 even on a bf16 base; full fine-tuning trains every weight.
- **optimizer**: AdamW keeps two moments per trainable parameter, in the parameter's dtype.
- **activations**: what autograd saves for the backward pass, per token and layer (the norms'
  inputs and outputs, q/k/v and their rotated copies, the attention output, the MLP's
  intermediate tensors). Gradient checkpointing keeps each layer's input and recomputes one
  layer at a time in the backward pass.
- **logits**: TRL's SFT and DPO trainers score tokens through a fused head that never holds
  the whole ``tokens x vocabulary`` logits: it projects tiles of at most 4096 tokens x 32768
  vocabulary entries, and its backward pass (in plain torch on a CPU) holds about eight
  tile-sized fp32 tensors at once (the tile, z, log p, p, the gradient, the target mask and
  its products). Distillation's loss takes both models' full logits and holds many fp32 copies
  of them (log-softmaxes, the mixture, the divergences, their gradients).
- **runtime**: on a CPU, the process itself (Python, torch, transformers, TRL, the trainer and
  its data: about 0.7 GiB resident). On a GPU the CUDA context is already out of the free
  memory.

The constants were tuned on a CPU against measured peaks of the resident set
(``benchmarks/memory_plan.py``, its README section has the table; a 100M Qwen2-shaped model,
with the vocabulary, the layers and the MLP width varied one at a time to tell the terms
apart). There, glibc's allocator keeps freed blocks under its mmap threshold (which grows to
32 MiB as large blocks are freed) in its heap, so the activations, each a few MiB, cost about
1.4 times what autograd holds at once; with recomputation each layer's kept input costs about
ten times its size. On a GPU, whose caching allocator reuses its blocks, the same constants
err on the safe side. Full fine-tuning's gradients and its activations do not peak together,
so its plan runs about 20% over the measured peak.

When the run does not fit, the plan takes, of the ways that do, the one that costs the least
time (``slowdown``): recomputation (gradient checkpointing) or smaller micro-batches with
gradient accumulation, or both. On a GPU recomputation comes first: a GPU needs large batches
to be busy. On a CPU, measured, splitting a step cost about 1.4 times its time however far it
went (2 to 8 micro-batches), recomputation 1.8 times; so the batch is split, down to one
example at a time, before anything is recomputed. The micro-batch always divides the batch,
so an optimizer step still sees ``batch_size`` examples and the steps per epoch stay what
they were (``ceil(rows / micro-batch)`` micro-batches make ``ceil(rows / batch)`` steps). What
fits nowhere is refused with the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from tuneforge.engine.errors import TuningError
from tuneforge.sizes import byte_size

GIB = 1 << 30

# TRL's fused head (trl/kernels/chunked_logprob.py): TOKEN_CHUNK_SIZE tokens by
# _CHUNKED_LOGPROB_CHUNK_SIZE vocabulary entries per tile.
FUSED_TILE_TOKENS = 4096
FUSED_TILE_VOCABULARY = 32768
# fp32 tile-sized tensors the fused head's backward holds at once (measured: 8.3).
FUSED_TILE_COPIES = 8.5
# fp32 copies of the full logits distillation holds (student and teacher logits, their
# temperature-scaled copies and log-softmaxes, the divergence, gradients; measured: 8.2).
DISTILLATION_LOGITS_COPIES = 10
# Activation values a token costs per decoder layer, in units of the hidden size, of the key/
# value width and of the MLP's width. Autograd saves about 11 h + 3 kv + 4 i in a Llama/Qwen2
# layer; measured (module doc) it costs 14 h + 4 kv + 6.5 i.
SAVED_PER_HIDDEN = 14
SAVED_PER_KV = 4
SAVED_PER_INTERMEDIATE = 6.5
# With recomputation, what a token costs per layer beside the one layer being recomputed, in
# units of the hidden size: its input, one value per hidden unit; measured, ten.
CHECKPOINTED_PER_HIDDEN = 10
# The process without the model: the interpreter, the libraries, the trainer, its data.
CPU_RUNTIME_BYTES = 704 << 20
# What a step costs against one whole pass without recomputation. CPU, measured on the 100M
# model, LoRA, batch 8 (benchmarks/README.md): a step split into 2, 4 or 8 micro-batches took
# 1.33, 1.47 and 1.46 times as long, one with recomputation 1.83 times. GPU: recomputation
# runs the forward pass once more, a third of a step; each extra micro-batch is taken to cost
# half a step (a GPU needs large batches to be busy: unmeasured), so recomputation comes first.
CPU_SPLIT_COST = 1.5
CPU_RECOMPUTE_COST = 1.8
GPU_EXTRA_MICRO_BATCH_COST = 0.5
GPU_RECOMPUTE_COST = 1.33
# The plan keeps this share of what is available free: the allocator's fragmentation and
# whatever else starts meanwhile.
HEADROOM = 0.9

Loss = Literal["fused", "full"]


@dataclass(frozen=True)
class ModelShape:
    """What of a model sets its training memory."""

    parameters: int  # every parameter, trained or not
    weight_bytes: int  # all weights as loaded
    trainable: int  # parameters the optimizer updates
    trainable_value_bytes: int  # bytes per trainable value (and per gradient and moment)
    activation_value_bytes: int  # bytes per activation value: the compute dtype's
    layers: int
    hidden_size: int
    intermediate_size: int
    kv_size: int  # key/value heads x head dim
    vocabulary: int

    def saved_per_token_layer(self) -> int:
        """Activation bytes one token keeps in one layer without recomputation."""
        values = (
            SAVED_PER_HIDDEN * self.hidden_size
            + SAVED_PER_KV * self.kv_size
            + SAVED_PER_INTERMEDIATE * self.intermediate_size
        )
        return round(values * self.activation_value_bytes)


def lora_parameters(model, rank: int) -> int:
    """The parameters of a rank-``rank`` LoRA adapter on every linear layer but the output
    head, as PEFT's ``target_modules="all-linear"`` places it."""
    import torch

    head = model.get_output_embeddings()
    return sum(
        rank * (module.in_features + module.out_features)
        for module in model.modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    )


def model_shape(model, *, new_adapter_rank: int | None, activation_value_bytes: int) -> ModelShape:
    """``model``'s shape for training: with ``new_adapter_rank``, a LoRA adapter of that rank
    is about to be added and trained; else what requires a gradient now is trained (all the
    weights, or an adapter already loaded)."""
    config = model.config.get_text_config()  # a media model's language model's
    tensors = [*model.parameters(), *model.buffers()]
    hidden = config.hidden_size
    heads = getattr(config, "num_attention_heads", None) or 1
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if new_adapter_rank is not None:
        trainable, value_bytes = lora_parameters(model, new_adapter_rank), 4  # PEFT: fp32
    else:
        trained = [p for p in model.parameters() if p.requires_grad]
        trainable = sum(p.numel() for p in trained)
        value_bytes = max((p.element_size() for p in trained), default=4)
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        weight_bytes=sum(t.numel() * t.element_size() for t in tensors),
        trainable=trainable,
        trainable_value_bytes=value_bytes,
        activation_value_bytes=activation_value_bytes,
        layers=config.num_hidden_layers,
        hidden_size=hidden,
        intermediate_size=getattr(config, "intermediate_size", None) or 4 * hidden,
        kv_size=kv_heads * head_dim,
        vocabulary=_outputs(model),
    )


def _outputs(model) -> int:
    """What the head scores per token: the vocabulary, or a reward model's one score."""
    head = model.get_output_embeddings()
    if head is not None:
        return head.weight.shape[0]
    return getattr(model.config, "num_labels", 1)


@dataclass(frozen=True)
class Workload:
    """What one optimizer step asks of the model."""

    batch_size: int  # examples per optimizer step, as the user asked
    longest_rows: Sequence[int]  # tokens of the longest training rows, longest first
    padded: bool = False  # rows padded to the batch's longest (DPO) or laid end to end
    loss: Loss = "fused"
    frozen_bytes: int = 0  # weights held beside the model's own (a teacher)

    def tokens(self, micro_batch: int) -> int:
        """The most tokens a micro-batch of this many rows can hold."""
        rows = list(self.longest_rows[:micro_batch]) or [0]
        if self.padded:
            return rows[0] * micro_batch
        return sum(rows) + rows[-1] * (micro_batch - len(rows))


@dataclass(frozen=True)
class MemoryPlan:
    device: str
    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    runtime: int
    total: int
    available: int | None  # None: the device does not say
    gradient_checkpointing: bool
    batch_size: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    batch_tokens: int  # the most tokens one micro-batch holds

    @property
    def fits(self) -> bool:
        return self.available is None or self.total <= HEADROOM * self.available

    def as_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits}

    def parts(self) -> str:
        """What the total is made of, e.g. "weights 382 MiB, activations 1.25 GiB"."""
        named = (
            ("weights", self.weights),
            ("gradients", self.gradients),
            ("optimizer", self.optimizer),
            ("activations", self.activations),
            ("logits", self.logits),
            ("runtime", self.runtime),
        )
        return ", ".join(f"{name} {byte_size(value)}" for name, value in named if value)

    def how(self) -> str:
        """How the batch runs, e.g. "batch 8 as 2 micro-batches of 4 (gradient accumulation),
        up to 812 tokens each, gradient checkpointing on"."""
        if self.gradient_accumulation_steps > 1:
            batch = (
                f"batch {self.batch_size} as {self.gradient_accumulation_steps} micro-batches "
                f"of {self.micro_batch_size} (gradient accumulation)"
            )
        else:
            batch = f"batch {self.batch_size} in one pass"
        checkpointing = "on" if self.gradient_checkpointing else "off"
        tokens = f"up to {self.batch_tokens} tokens each"
        return f"{batch}, {tokens}, gradient checkpointing {checkpointing}"

    def describe(self) -> str:
        available = "" if self.available is None else f" of {byte_size(self.available)} available"
        return (
            f"memory plan on {self.device}: {byte_size(self.total)}{available} "
            f"({self.parts()}); {self.how()}"
        )


def divisors_descending(number: int) -> list[int]:
    return [d for d in range(number, 0, -1) if number % d == 0]


def estimate(
    shape: ModelShape,
    workload: Workload,
    device: str,
    available: int | None,
    *,
    micro_batch: int,
    checkpointing: bool,
) -> MemoryPlan:
    """The memory of one way to run the workload."""
    tokens = workload.tokens(micro_batch)
    per_layer = shape.saved_per_token_layer()
    if checkpointing:  # each layer's input kept, one layer's activations recomputed at a time
        kept = CHECKPOINTED_PER_HIDDEN * shape.hidden_size * shape.activation_value_bytes
        activations = tokens * (shape.layers * kept + per_layer)
    else:
        activations = tokens * shape.layers * per_layer
    if workload.loss == "full":
        logits = tokens * shape.vocabulary * 4 * DISTILLATION_LOGITS_COPIES
    else:
        tile = min(tokens, FUSED_TILE_TOKENS) * min(shape.vocabulary, FUSED_TILE_VOCABULARY)
        logits = round(tile * 4 * FUSED_TILE_COPIES)
    weights = shape.weight_bytes + workload.frozen_bytes
    gradients = shape.trainable * shape.trainable_value_bytes
    optimizer = 2 * shape.trainable * shape.trainable_value_bytes
    runtime = CPU_RUNTIME_BYTES if device == "cpu" else 0
    return MemoryPlan(
        device=device,
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        activations=activations,
        logits=logits,
        runtime=runtime,
        total=weights + gradients + optimizer + activations + logits + runtime,
        available=available,
        gradient_checkpointing=checkpointing,
        batch_size=workload.batch_size,
        micro_batch_size=micro_batch,
        gradient_accumulation_steps=workload.batch_size // micro_batch,
        batch_tokens=tokens,
    )


def slowdown(device: str, micro_batches: int, checkpointing: bool) -> float:
    """How much longer a step takes split into ``micro_batches`` and with recomputation than
    whole and without (see the constants)."""
    if device.startswith("cuda"):
        split = 1 + GPU_EXTRA_MICRO_BATCH_COST * (micro_batches - 1)
        recompute = GPU_RECOMPUTE_COST
    else:
        split = CPU_SPLIT_COST if micro_batches > 1 else 1.0
        recompute = CPU_RECOMPUTE_COST
    return split * (recompute if checkpointing else 1.0)


def plan_memory(
    shape: ModelShape, workload: Workload, device: str, available: int | None
) -> MemoryPlan:
    """The way to run the workload that fits and costs the least time (see the module doc);
    if none fits, the one that needs the least memory (``fits`` False)."""
    batch = workload.batch_size
    choices = sorted(
        ((m, c) for m in divisors_descending(batch) for c in (False, True)),
        key=lambda choice: slowdown(device, batch // choice[0], choice[1]),
    )
    plans = [
        estimate(shape, workload, device, available, micro_batch=m, checkpointing=c)
        for m, c in choices
    ]
    return next((plan for plan in plans if plan.fits), min(plans, key=lambda p: p.total))


def refuse_unless_fits(plan: MemoryPlan, max_seq_length: int, mode: str) -> None:
    """A run that cannot fit fails before it starts, with the numbers and what to change."""
    if plan.fits:
        return
    changes = [
        f"a smaller batch_size (now {plan.batch_size})",
        f"a shorter max_seq_length (now {max_seq_length})",
    ]
    if mode == "full":
        changes.append("a LoRA adapter (mode peft) instead of all weights")
    changes.append("a smaller base model")
    usable = int(HEADROOM * (plan.available or 0))
    raise TuningError(
        f"not enough memory to train: the smallest plan needs {byte_size(plan.total)} on "
        f"{plan.device} ({plan.parts()}; {plan.how()}), and {byte_size(usable)} is available to "
        f"it ({byte_size(plan.available or 0)} free, {round(100 * (1 - HEADROOM))}% kept in "
        f"reserve). Try {', '.join(changes[:-1])} or {changes[-1]}",
        code="insufficient_memory",
    )
