"""What every tuning method shares: loading the model, the training arguments, and running a
TRL trainer to a :class:`TuningResult` with cancel, pause, resume and failures handled."""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from tuneforge.config import Settings
from tuneforge.data.packing import pack_examples
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import TokenizedExample, tokenize_conversation
from tuneforge.engine.callbacks import TokenCounter, TuningCallback
from tuneforge.engine.checkpoints import (
    ResumePoints,
    Retention,
    finish,
    folder_bytes,
    read_checkpoints,
    remove_incomplete,
)
from tuneforge.engine.disk_plan import check_disk, plan_disk
from tuneforge.engine.distributed import (
    barrier,
    batch_for_ranks,
    is_main_rank,
    per_rank_batch,
    shard_on_cpu,
    sharding_arguments,
)
from tuneforge.engine.errors import TuningError, out_of_memory_message
from tuneforge.engine.hardware import Hardware, available_memory_bytes, detect_hardware
from tuneforge.engine.memory_plan import (
    MemoryPlan,
    Workload,
    model_shape,
    plan_memory,
    refuse_unless_fits,
)
from tuneforge.engine.observer import TrainingPlan, TuningObserver
from tuneforge.engine.quantization import (
    prepare_quantized,
    quantized_loading,
    trainable_weights_in_run_dtype,
)
from tuneforge.engine.result import TuningResult, choose_default_checkpoint
from tuneforge.engine.spec import Hyperparameters, TuningSpec, resolve_hyperparameters
from tuneforge.models.loading import (
    declared_dtype,
    load_causal_lm,
    load_media_model,
    load_processor,
    load_tokenizer,
    media_kinds,
    quiet_transformers,
)
from tuneforge.models.resolve import resolve_base_model
from tuneforge.models.threads import fit_cpu_threads


@dataclass
class LoadedBase:
    model: Any
    tokenizer: Any
    hardware: Hardware
    source: str
    # What training may plan to use (TUNEFORGE_TRAINING_MEMORY_BYTES); None: what the device
    # has available when the run starts.
    memory_limit_bytes: int | None = None
    # A model that reads media: its processor (image processor or feature extractor beside the
    # tokenizer); None for a text-only model.
    processor: Any = None


def tuned_kind(tuned_dir: str) -> str:
    """What a tuned model's checkpoint folder holds: "adapter" (LoRA) or "weights" (full)."""
    folder = Path(tuned_dir)
    if (folder / "adapter_config.json").is_file():
        return "adapter"
    if (folder / "config.json").is_file():
        return "weights"
    raise TuningError(
        f"{tuned_dir} holds neither a LoRA adapter (adapter_config.json) nor a model's "
        "weights (config.json)",
        code="invalid_model",
    )


def load_model(
    name: str,
    settings: Settings,
    hardware: Hardware,
    *,
    tuned: str | None = None,
    train_adapter: bool = False,
    quantization: str | None = None,
    dtype=None,
) -> LoadedBase:
    """A base model by name, with its tokenizer; with ``tuned``, a tuned model of that base:
    its full-weights checkpoint folder, or its LoRA adapter folder (kept apart to go on
    training with ``train_adapter``, else merged into the weights). With ``quantization``, its
    linear layers in 4 bits, ready for an adapter (engine/quantization.py). ``dtype``: its
    weights' (default: the hardware's)."""
    quiet_transformers()
    resolved = resolve_base_model(name, settings)
    kind = tuned_kind(tuned) if tuned else None
    source = tuned if kind == "weights" else resolved.source
    tokenizer = load_tokenizer(resolved.source)
    processor = load_processor(resolved.source) if media_kinds(resolved.source) else None
    # A media model trains on padded batches (engine/media_training.py), so plain SDPA.
    model = (load_media_model if processor is not None else load_causal_lm)(
        source,
        dtype=dtype or hardware.dtype,
        attn_implementation="sdpa" if processor is not None else hardware.packed_attention,
        **quantized_loading(quantization, hardware.dtype),
    )
    if quantization:
        model = prepare_quantized(model)
    # No KV cache while training: with it, transformers ignores the per-example position ids
    # of a padding-free batch and lets examples attend to each other.
    model.config.use_cache = False
    if kind == "adapter":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, tuned, is_trainable=train_adapter)
        if not train_adapter:
            # PEFT froze the base weights to load the adapter; merged, the model is as
            # trainable as any freshly loaded one.
            model = model.merge_and_unload().requires_grad_(True)
    fit_cpu_threads(model)
    return LoadedBase(
        model,
        tokenizer,
        hardware,
        str(source),
        memory_limit_bytes=settings.training_memory_bytes,
        processor=processor,
    )


def load_base_for_training(spec: TuningSpec, settings: Settings) -> LoadedBase:
    """The model to train: the base, or the tuned model a run goes on from (``init_adapter``)."""
    hardware = detect_hardware()
    return load_model(
        spec.base_model,
        settings,
        hardware,
        tuned=spec.init_adapter,
        train_adapter=spec.mode == "peft",
        quantization=spec.hyperparameters.quantization,
        dtype=hardware.weights_dtype(spec.mode),
    )


def resolve_for_model(spec: TuningSpec, model, example_count: int) -> Hyperparameters:
    # A media model's width and context are its language model's (LLaVA's config nests them).
    config = model.config.get_text_config()
    hp = resolve_hyperparameters(
        spec.hyperparameters,
        spec.mode,
        example_count,
        hidden_size=getattr(config, "hidden_size", None),
        model_max_length=getattr(config, "max_position_embeddings", None),
        method=spec.method,
    )
    if spec.hyperparameters.batch_size == "auto":
        hp = hp.model_copy(update={"batch_size": batch_for_ranks(hp.batch_size)})
    return hp


def seed_everything(seed: int) -> None:
    """Same seed, same run: the adapter's initial weights, dropout and data order."""
    from transformers import set_seed

    set_seed(seed)


def lora_config(rank: int, task_type: str = "CAUSAL_LM"):
    """LoRA on every linear layer. ``task_type="SEQ_CLS"`` (a reward model): PEFT also trains
    the new score head in full beside the adapter (``modules_to_save``)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        # No dropout: a run resumed from a mid-epoch checkpoint then ends exactly where an
        # uninterrupted one does (dropout's random stream is not replayed identically).
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type=task_type,
    )


def new_adapter_rank(spec: TuningSpec, hp: Hyperparameters, model) -> int | None:
    """The rank of the LoRA adapter the trainer will add, or None: full weights, or an adapter
    already there to go on with."""
    from peft import PeftModel

    if spec.mode != "peft" or isinstance(model, PeftModel):
        return None
    return hp.adapter_size


def peft_config_for(spec: TuningSpec, hp: Hyperparameters, model):
    """A new adapter's config, or None: full weights, or an adapter already there to go on with."""
    rank = new_adapter_rank(spec, hp, model)
    return None if rank is None else lora_config(rank)


def tokenize_for_training(
    examples: list[Conversation], tokenizer, max_length: int, observer: TuningObserver, name: str
) -> list[TokenizedExample]:
    tokenized = [tokenize_conversation(e, tokenizer, max_length) for e in examples]
    kept = [t for t in tokenized if t.trained_tokens]
    truncated = sum(t.truncated for t in tokenized)
    if truncated:
        observer.on_event(
            f"{truncated} {name} examples are longer than {max_length} tokens and were cut",
            level="warning",
        )
    if len(kept) < len(tokenized):
        observer.on_event(
            f"{len(tokenized) - len(kept)} {name} examples have no model tokens left after "
            f"cutting to {max_length} tokens and are skipped",
            level="warning",
        )
    if not kept:
        raise TuningError(
            f"no {name} example has a model turn within {max_length} tokens; raise "
            "max_seq_length or shorten the examples",
            code="invalid_training_file",
        )
    return kept


def sequence_dataset(examples: list[TokenizedExample], packing: bool, row_length: int):
    """Rows for a padding-free collator: one example each, or several packed in one row."""
    from datasets import Dataset

    if packing:
        rows = pack_examples(examples, row_length)
        return Dataset.from_dict(
            {
                "input_ids": [r.input_ids for r in rows],
                "labels": [r.labels for r in rows],
                "seq_lengths": [r.seq_lengths for r in rows],
            }
        )
    return Dataset.from_dict(
        {"input_ids": [e.input_ids for e in examples], "labels": [e.labels for e in examples]}
    )


@dataclass
class SequenceData:
    """Loss-masked training and validation rows, ready for a padding-free collator."""

    train_set: Any
    valid_set: Any | None
    plan: TrainingPlan
    longest_rows: list[int]  # tokens of the longest training rows, longest first


def prepare_sequences(
    train: list[Conversation],
    validation: list[Conversation],
    base: LoadedBase,
    hp: Hyperparameters,
    observer: TuningObserver,
) -> SequenceData:
    """Tokenize with the loss masks, check the tokens fit the model, build the datasets and
    the plan: what SFT and distillation both train on."""
    max_length = hp.max_seq_length
    train_tokens = tokenize_for_training(train, base.tokenizer, max_length, observer, "training")
    valid_tokens = (
        tokenize_for_training(validation, base.tokenizer, max_length, observer, "validation")
        if validation
        else []
    )
    check_vocabulary([t.input_ids for t in train_tokens], base.model, base.tokenizer)
    train_set = sequence_dataset(train_tokens, hp.packing, max_length)
    valid_set = sequence_dataset(valid_tokens, hp.packing, max_length) if valid_tokens else None
    row_lengths = sorted((len(ids) for ids in train_set["input_ids"]), reverse=True)
    return SequenceData(
        train_set=train_set,
        valid_set=valid_set,
        plan=make_plan(hp, len(train_set), len(train_tokens), len(valid_tokens)),
        longest_rows=row_lengths[: hp.batch_size],
    )


def padding_free_collator(tokenizer) -> TokenCounter:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return TokenCounter(
        DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=True)
    )


def check_vocabulary(token_ids: list[list[int]], model, tokenizer) -> None:
    vocabulary = model.get_input_embeddings().num_embeddings
    largest = max((max(ids) for ids in token_ids if ids), default=0)
    if largest >= vocabulary:
        raise TuningError(
            f"the tokenizer produces token id {largest} but the model has only {vocabulary} "
            "embeddings: the tokenizer does not belong to this model",
            code="invalid_model",
        )


def plan_training_memory(
    spec: TuningSpec,
    hp: Hyperparameters,
    base: LoadedBase,
    workload: Workload,
    observer: TuningObserver,
) -> MemoryPlan:
    """Plan the run's memory (``engine/memory_plan.py``), say so in the job's events, and
    refuse a run that cannot fit before it starts."""
    device = base.hardware.device
    # Each rank of a multi-device run holds its share of every batch.
    workload = replace(workload, batch_size=per_rank_batch(workload.batch_size))
    shape = model_shape(
        base.model,
        new_adapter_rank=new_adapter_rank(spec, hp, base.model),
        activation_value_bytes=base.hardware.dtype.itemsize,
    )
    available = base.memory_limit_bytes or available_memory_bytes(device)
    plan = plan_memory(shape, workload, device, available)
    observer.on_event(plan.describe(), data={"memory_plan": plan.as_dict()})
    refuse_unless_fits(plan, hp.max_seq_length, spec.mode)
    observer.on_memory_plan(plan)
    return plan


def training_arguments(
    spec: TuningSpec,
    hp: Hyperparameters,
    base: LoadedBase,
    output_dir: Path,
    *,
    total_steps: int,
    has_validation: bool,
    memory: MemoryPlan,
) -> dict[str, Any]:
    """Keyword arguments shared by the TRL configs (SFTConfig, DPOConfig, ...). The memory
    plan sets the micro-batch and recomputation; a micro-batch divides the batch, so an
    optimizer step still sees ``hp.batch_size`` examples and the trainer counts the steps
    :func:`make_plan` does (ceil(rows / micro-batch) / accumulation, rounded up)."""
    arguments = {
        "output_dir": str(output_dir),
        "num_train_epochs": hp.epochs,
        "per_device_train_batch_size": memory.micro_batch_size,
        "gradient_accumulation_steps": memory.gradient_accumulation_steps,
        "per_device_eval_batch_size": memory.micro_batch_size,
        "learning_rate": hp.learning_rate,
        "lr_scheduler_type": "linear",
        "warmup_steps": math.ceil(hp.warmup_ratio * total_steps),
        "weight_decay": hp.weight_decay,
        "logging_steps": 1,
        # A non-finite loss is logged as it is (the default logs it as the mean so far, and a
        # run at a huge learning rate "succeeded" with every loss 0.0): the callback fails it.
        "logging_nan_inf_filter": False,
        "save_strategy": "epoch",
        "eval_strategy": "epoch" if has_validation else "no",
        "seed": spec.seed,
        "data_seed": spec.seed,
        "bf16": base.hardware.bf16,
        "fp16": False,
        "use_cpu": base.hardware.device == "cpu",
        "use_liger_kernel": base.hardware.liger_kernel,
        "gradient_checkpointing": memory.gradient_checkpointing,
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "remove_unused_columns": False,
        **sharding_arguments(spec.mode),
    }
    if memory.gradient_checkpointing:
        # Non-reentrant recomputation works even when a checkpointed layer's input needs no
        # gradient (every layer's, under a LoRA adapter on a frozen base).
        arguments["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    return arguments


def make_plan(
    hp: Hyperparameters, rows: int, train_examples: int, validation_examples: int
) -> TrainingPlan:
    steps_per_epoch = math.ceil(rows / hp.batch_size)
    return TrainingPlan(
        total_steps=steps_per_epoch * hp.epochs,
        epochs=hp.epochs,
        steps_per_epoch=steps_per_epoch,
        train_examples=train_examples,
        validation_examples=validation_examples,
        hyperparameters=hp.model_dump(),
    )


@dataclass
class PreparedRun:
    """A method's trainer, set up and ready to train: :func:`run_trainer` takes it from here."""

    trainer: Any
    callback: TuningCallback
    counter: TokenCounter
    plan: TrainingPlan
    hp: Hyperparameters
    checkpoints_dir: Path


def padding_free_run(
    spec: TuningSpec,
    base: LoadedBase,
    hp: Hyperparameters,
    data: SequenceData,
    output_dir: Path,
    observer: TuningObserver,
    *,
    config_class,
    trainer_class,
    config: dict[str, Any] | None = None,
    trainer: dict[str, Any] | None = None,
    full_logits: bool = False,
    frozen_bytes: int = 0,
    collator: TokenCounter | None = None,
) -> PreparedRun:
    """A TRL trainer that trains on ``data``'s loss-masked rows in padding-free batches, as SFT
    and distillation both do: ``config_class``/``trainer_class`` are the method's TRL pair,
    ``config`` and ``trainer`` its own keyword arguments to them. For the memory plan:
    ``full_logits`` when the method's loss takes the whole logits (not TRL's fused head), and
    ``frozen_bytes`` of weights held beside the model (a teacher). ``collator``: one of the
    method's own instead of the padding-free one (a media model's padded batches)."""
    checkpoints_dir = output_dir / "checkpoints"
    workload = Workload(
        batch_size=hp.batch_size,
        longest_rows=data.longest_rows,
        loss="full" if full_logits else "fused",
        frozen_bytes=frozen_bytes,
    )
    memory = plan_training_memory(spec, hp, base, workload, observer)
    args = config_class(
        **training_arguments(
            spec,
            hp,
            base,
            checkpoints_dir,
            total_steps=data.plan.total_steps,
            has_validation=data.valid_set is not None,
            memory=memory,
        ),
        # The padding-free collator is passed below, wrapped to count tokens; TRL refuses a
        # collator of ours when this flag is set, and the flag does nothing else.
        padding_free=False,
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
        **(config or {}),
    )
    counter = collator or padding_free_collator(base.tokenizer)
    callback = TuningCallback(observer, counter, checkpoints_dir, hp.early_stopping_patience)
    seed_everything(spec.seed)  # the adapter's initial weights are drawn in the trainer
    built = trainer_class(
        model=base.model,
        args=args,
        data_collator=counter,
        train_dataset=data.train_set,
        eval_dataset=data.valid_set,
        processing_class=base.tokenizer,
        peft_config=peft_config_for(spec, hp, base.model),
        callbacks=[callback],
        **(trainer or {}),
    )
    return PreparedRun(built, callback, counter, data.plan, hp, checkpoints_dir)


def resume_points(settings: Settings) -> ResumePoints:
    return ResumePoints(
        every_s=settings.resume_point_minutes * 60, every_steps=settings.resume_point_steps
    )


def retention_for(spec: TuningSpec, hp: Hyperparameters, model) -> Retention:
    return Retention(
        last_epoch_only=hp.export_last_checkpoint_only,
        keep_optimizer_state=hp.keep_optimizer_state,
        weights_dtype=declared_dtype(model.config.name_or_path) if spec.mode == "full" else None,
    )


def run_trainer(
    run: PreparedRun,
    spec: TuningSpec,
    observer: TuningObserver,
    settings: Settings,
    *,
    resume: bool,
) -> TuningResult:
    """Train (or go on training from the latest checkpoint) and describe the outcome."""
    trainer, callback, counter, plan = run.trainer, run.callback, run.counter, run.plan
    shard_on_cpu(trainer)
    checkpoints_dir, hp = run.checkpoints_dir, run.hp
    trainable_weights_in_run_dtype(trainer.model, trainer.args.bf16)
    retention = retention_for(spec, hp, trainer.model)
    callback.plan_saves(resume_points(settings), retention)
    disk = plan_disk(
        trainer.model,
        full_weights=spec.mode == "full",
        epochs=hp.epochs,
        last_epoch_only=retention.last_epoch_only,
        weights_dtype=retention.weights_dtype,
        free_bytes=shutil.disk_usage(checkpoints_dir.parent).free,
    )
    observer.on_event(f"disk plan: {disk.describe()}", data=disk.as_dict())
    check_disk(disk)
    resume_from = None
    if resume:
        if is_main_rank():
            remove_incomplete(checkpoints_dir)
        barrier()  # every rank reads what rank 0 left
        earlier, epochs = read_checkpoints(checkpoints_dir)
        if earlier:
            resume_from = earlier[-1]
            callback.restore(epochs)
            plan = TrainingPlan(**{**plan.__dict__, "resumed_from_step": resume_from.step})
            observer.on_event(
                f"resuming from {resume_from.path.name} (step {resume_from.step})",
                data={"step": resume_from.step, "checkpoint": resume_from.path.name},
            )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the observer reports; no raw log dicts on stdout
    observer.on_start(plan)
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from.path) if resume_from else None)
    except torch.OutOfMemoryError as err:
        raise TuningError(
            out_of_memory_message(hp.batch_size, hp.max_seq_length, spec.mode),
            code="out_of_memory",
        ) from err
    elapsed = time.perf_counter() - started

    outcome = {"cancel": "cancelled", "pause": "paused", None: "succeeded"}[callback.stop]
    if not is_main_rank():
        # The checkpoints are rank 0's to file, and its result is the run's.
        return TuningResult(
            outcome=outcome,
            checkpoints=[],
            epochs=[],
            default_checkpoint=None,
            default_reason="",
            steps=trainer.state.global_step,
            elapsed_s=elapsed,
            trained_tokens=0,
            tokens_per_second=0.0,
            stopped_early=callback.stopped_early,
            step_losses=callback.step_losses,
        )
    checkpoints = finish(checkpoints_dir, outcome, retention)
    for checkpoint in checkpoints:
        # Checkpoints not reported as they were saved: a cancelled run's last resume point, and
        # the one epoch checkpoint a run that keeps only the last has.
        if checkpoint.kind == "partial" or (retention.last_epoch_only and outcome != "paused"):
            observer.on_checkpoint(checkpoint)
    observer.on_disk_use(folder_bytes(checkpoints_dir.parent))
    _, epochs = read_checkpoints(checkpoints_dir)
    default, reason = choose_default_checkpoint(checkpoints, epochs)
    if outcome == "succeeded" and default is not None:
        observer.on_event(f"default checkpoint: {reason}", data={"epoch": default.epoch})
    return TuningResult(
        outcome=outcome,
        checkpoints=[c for c in checkpoints if c.kind != "resume"],
        epochs=epochs,
        default_checkpoint=default,
        default_reason=reason,
        steps=trainer.state.global_step,
        elapsed_s=elapsed,
        trained_tokens=trained_tokens(trainer, counter),
        tokens_per_second=counter.real_tokens / elapsed if elapsed else 0.0,
        stopped_early=callback.stopped_early,
        step_losses=callback.step_losses,
    )


def trained_tokens(trainer, counter: TokenCounter) -> int:
    """The run's trained tokens, every attempt included (what OpenAI bills): the training
    rows' tokens times the epochs done so far."""
    return round(counter.tokens_per_epoch(trainer.train_dataset) * (trainer.state.epoch or 0.0))
