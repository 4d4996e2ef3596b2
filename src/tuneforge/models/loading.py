"""Loading tokenizers and models the same way for training and for inference."""

from __future__ import annotations

from pathlib import Path

from tuneforge.errors import InvalidArgument

# For base models published without a chat template: plain text turns that use only tokens the
# model already has, ending each model turn with its EOS token so the tuned model learns to stop.
# The generation prompt ends with "Assistant:" and no space: the space belongs to the first token
# of the answer (" negative"), as it did in training. Tools are listed first, calls written in
# <tool_call> tags (data/tool_calls.py reads the way back out of this template).
FALLBACK_CHAT_TEMPLATE = (
    "{% if tools %}Tools: {% for tool in tools %}{{ tool | tojson }}\n{% endfor %}\n{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% elif message['role'] == 'tool' %}Tool: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] or '' }}"
    "{% for call in message.tool_calls or [] %}<tool_call>"
    "{{ {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson }}"
    "</tool_call>{% endfor %}{{ eos_token }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def load_tokenizer(source: str | Path):
    from transformers import AutoTokenizer

    return _prepared(AutoTokenizer.from_pretrained(str(source)), source)


def _prepared(tokenizer, source: str | Path):
    """An EOS token (or a clear refusal), a pad token and a chat template, whatever the base."""
    if tokenizer.eos_token is None:
        raise InvalidArgument(f"the tokenizer of {source} has no EOS token; it cannot be tuned")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def media_kinds(source: str | Path) -> frozenset[str]:
    """The media a base model reads, from its config.json alone (no weights, and no need for
    transformers to know the architecture): images and PDF documents (as page images) with a
    vision tower, audio with an audio encoder; empty for a text-only model or one whose config
    cannot be read here."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(str(source))
    except (OSError, ValueError):
        return frozenset()
    kinds: set[str] = set()
    if config.get("vision_config"):
        kinds |= {"image", "document"}
    if config.get("audio_config"):
        kinds.add("audio")
    return frozenset(kinds)


def load_processor(source: str | Path):
    """The base's processor (tokenizer plus image processor or audio feature extractor), its
    tokenizer prepared as ``load_tokenizer`` prepares one. A text-only model has no processor:
    AutoProcessor then gives its tokenizer, returned prepared the same way."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(source))
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or processor is tokenizer:
        return _prepared(processor, source)
    _prepared(tokenizer, source)
    if not getattr(processor, "chat_template", None):
        processor.chat_template = tokenizer.chat_template
    return processor


def load_media_model(
    source: str | Path, *, dtype=None, attn_implementation: str = "sdpa", **loading
):
    """A model that reads media and writes text: ``AutoModelForMultimodalLM`` maps image-text
    models (LLaVA, Qwen2-VL, Idefics3, Gemma 3, ...) and audio-text ones (Qwen2-Audio)."""
    from transformers import AutoModelForMultimodalLM

    if not media_kinds(source):
        raise InvalidArgument(f"{source} is a text-only model: it has no vision or audio tower")
    kwargs = {"attn_implementation": attn_implementation, **loading}
    if dtype is not None:
        kwargs["dtype"] = dtype
    return AutoModelForMultimodalLM.from_pretrained(str(source), **kwargs)


def load_causal_lm(source: str | Path, *, dtype=None, attn_implementation: str = "sdpa", **loading):
    """``loading``: more of ``from_pretrained``'s arguments (a quantized base's config and
    device map)."""
    from transformers import AutoModelForCausalLM

    kwargs = {"attn_implementation": attn_implementation, **loading}
    if dtype is not None:
        kwargs["dtype"] = dtype
    return AutoModelForCausalLM.from_pretrained(str(source), **kwargs)


def quiet_transformers() -> None:
    """Progress bars of weight loading and saving would drown our own progress reports."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # peft still calls an attribute transformers 5 renamed; nothing for a user to act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")


def declared_dtype(source: str | Path):
    """The floating dtype a model's config says its weights are stored in, or None."""
    import torch
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(source))
    except (OSError, ValueError):
        return None
    dtype = getattr(config, "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else None


def load_reward_model(
    source: str | Path, tokenizer, *, dtype=None, adapter: str | Path | None = None, **loading
):
    """A base (or a full-weights reward model) with a one-output score head: the head is new
    (randomly initialised) on a causal LM, and read back on a tuned reward model. A padded batch
    is scored at each row's last real token, which the pad token id tells apart. A LoRA reward
    model is its ``adapter`` folder (the adapter and its trained head) on the base ``source``.
    ``loading``: more of ``from_pretrained``'s arguments (a quantized base's)."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {"num_labels": 1, "attn_implementation": "sdpa", **loading}
    if dtype is not None:
        kwargs["dtype"] = dtype
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score.weight newly initialized": that is the point
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(source), **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model
