"""QLoRA: the base model's linear layers loaded in 4 bits (NF4, bitsandbytes), a LoRA adapter
trained on them in full precision.

The ``quantization`` hyperparameter asks for it ("nf4"; absent: the base in its training dtype).
bitsandbytes has a CPU backend that runs NF4 forward and backward (seen with bitsandbytes 0.50
and torch 2.13), so a quantized job is not tied to CUDA: the suite trains one on the tiny model
on a CPU. What a quantized base cannot do is learn its own weights, so quantization goes with a
LoRA adapter (mode ``peft``) only.

Checking a request imports neither torch nor bitsandbytes (the service refuses at job-create
time); loading does.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from tuneforge.errors import InvalidArgument

Quantization = Literal["nf4"]


def refuse_unsupported_quantization(quantization: str | None, mode: str) -> None:
    """A 400 naming ``quantization`` when a job cannot train with it here."""
    if quantization is None:
        return
    if mode != "peft":
        raise InvalidArgument(
            f"quantization {quantization!r} loads the base model in 4 bits, whose weights cannot "
            "be trained: it goes with a LoRA adapter only; leave quantization out to fine-tune "
            "all the weights",
            "quantization",
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InvalidArgument(
            f"quantization {quantization!r} loads the base model through bitsandbytes, which is "
            "not installed on this server; install it, or leave quantization out",
            "quantization",
        )


def quantized_loading(quantization: str | None, compute_dtype) -> dict:
    """``from_pretrained``'s keyword arguments for a base loaded as ``quantization``: 4-bit NF4
    weights with double quantization (QLoRA's recipe), computing in the run's dtype, on the
    device this process trains on (bitsandbytes quantizes as the weights land there)."""
    if quantization is None:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quantization,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    if torch.cuda.is_available():
        from accelerate import PartialState

        device = PartialState().local_process_index  # one GPU per process under torchrun
    else:
        device = "cpu"
    return {"quantization_config": config, "device_map": {"": device}}


def prepare_quantized(model):
    """PEFT's preparation of a k-bit base for training: its other weights (embeddings, norms,
    the head) in fp32, the base frozen. Recomputation stays the memory plan's choice, which the
    trainer applies."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def trainable_weights_in_run_dtype(model, bf16: bool) -> None:
    """TRL casts a quantized model's trainable weights to bf16 (QLoRA's recipe), whatever the
    run computes in. A run without bf16 autocast (fp32 on a CPU) would then multiply fp32
    activations by bf16 weights, which a reward model's new score head refuses; there they go
    back to fp32, before the optimizer takes them."""
    import torch

    if bf16 or not getattr(model, "is_loaded_in_4bit", False):
        return
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype == torch.bfloat16:
            parameter.data = parameter.data.float()
