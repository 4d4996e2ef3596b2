"""The built-in tiny chat models: built on this machine, so tests and the demo need no download.

Two sizes share one tokenizer, so the larger can teach the smaller (distillation).
``initializer_range=0.2`` matters: with the usual 0.02 the logits are so flat that a LoRA
adapter cannot move them and the model never learns (DESIGN.md).
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneforge.data.samples import corpus_lines
from tuneforge.models.loading import quiet_transformers

if TYPE_CHECKING:  # torch and transformers load only when a model is built: see models/resolve
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

# ChatML-style template. Each turn ends with <|im_end|>, which is also the EOS token, so a model
# trained on its turns learns to stop. With tools, a system turn lists them as signatures,
# ``get_weather(city, unit?: celsius|fahrenheit): description`` (a tiny model reads a short
# prompt far better than JSON schemas, whose characters its tokenizer spends a token on each),
# and a model turn writes each call as <tool_call>{"name": ..., "arguments": {...}}</tool_call>
# (Qwen 2.5's and Hermes' way); the results come back in "tool" turns. Without tools it renders
# as before. No block tag is followed by a newline: transformers renders with trim_blocks.
TOOL_SIGNATURE = (
    "{% set f = tool['function'] %}{% set schema = f['parameters'] or {} %}{{ f['name'] }}("
    "{% for name, spec in (schema['properties'] or {}).items() %}"
    "{% if not loop.first %}, {% endif %}{{ name }}"
    "{% if name not in (schema['required'] or []) %}?{% endif %}"
    "{% if spec['enum'] %}: {{ spec['enum'] | join('|') }}{% endif %}"
    "{% endfor %}): {{ f['description'] }}\n"
)
CHAT_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n{% endif %}"
    "Tools:\n{% for tool in tools %}" + TOOL_SIGNATURE + "{% endfor %}<|im_end|>\n"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and tools %}"
    "{% elif message['role'] == 'assistant' and message.tool_calls %}"
    "<|im_start|>assistant\n{{ message['content'] or '' }}"
    "{% for call in message.tool_calls %}<tool_call>"
    "{{ {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson }}"
    "</tool_call>{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 768


@dataclass(frozen=True)
class TinySpec:
    hidden_size: int
    layers: int
    heads: int
    seed: int


TINY_MODELS = {
    "tuneforge/tiny-chat": TinySpec(hidden_size=64, layers=2, heads=4, seed=0),
    "tuneforge/tiny-chat-large": TinySpec(hidden_size=128, layers=4, heads=4, seed=1),
}


def build_tokenizer(
    vocab_size: int = VOCAB_SIZE, corpus: Iterable[str] | None = None, max_length: int = 512
) -> PreTrainedTokenizerFast:
    """A byte-level BPE with the ChatML-style template, trained on ``corpus`` (the tiny
    models' own review text unless given: benchmarks train bigger ones on other text)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus_lines()) if corpus is None else corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token=None,
        model_max_length=max_length,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def text_config_arguments(spec, tokenizer: PreTrainedTokenizerFast) -> dict:
    """A tiny language model's config (``spec``: its hidden size, layers and heads), for the
    chat models' Llama and the media models' language models alike."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.hidden_size * 2,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.heads,
        "max_position_embeddings": 512,
        "initializer_range": 0.2,
        "tie_word_embeddings": False,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
    }


def build_model(spec: TinySpec, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**text_config_arguments(spec, tokenizer))
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def ensure_tiny_model(name: str, models_dir: Path) -> Path:
    """Build the named tiny model into ``models_dir`` unless it is there; return its folder."""
    spec = TINY_MODELS[name]

    def save(staging: Path) -> None:
        tokenizer = build_tokenizer()
        build_model(spec, tokenizer).save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    return built_once(models_dir / name.split("/", 1)[1], save, CHAT_TEMPLATE)


def built_once(target: Path, save: Callable[[Path], None], template: str) -> Path:
    """``target``, built by ``save`` unless it is there (then given today's ``template``).
    Built into a temporary sibling and renamed, so a crash never leaves half a model behind
    and two processes building at once both end with a complete one."""
    if (target / "config.json").exists():
        _refresh_template(target, template)
        return target
    quiet_transformers()  # saving would print its progress bar into a command's output
    staging = target.with_name(f".{target.name}.{secrets.token_hex(8)}")
    save(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished first
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _refresh_template(folder: Path, template_text: str) -> None:
    """A tiny model built by an older release keeps its weights and takes today's template
    (which added tools, then media parts), written atomically beside them."""
    template = folder / "chat_template.jinja"
    if template.is_file() and template.read_text() != template_text:
        staging = template.with_name(f".{template.name}.{secrets.token_hex(8)}")
        staging.write_text(template_text)
        staging.replace(template)
