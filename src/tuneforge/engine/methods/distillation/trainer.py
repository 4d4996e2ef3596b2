"""Distillation: a smaller student learns a larger teacher's token distributions.

The teacher (a base model, or a tuned one: its adapter merged in) must share the student's
tokenizer, since the two distributions are compared token by token. Prompts without a response
are answered by the teacher first (greedy); the student then learns, at every token of every
model turn, the teacher's whole next-token distribution, not just the token written. The
divergence is TRL's generalized JSD: forward KL, reverse KL, or JSD between them.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from tuneforge.config import Settings
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import prompt_ids, with_response
from tuneforge.engine.attention import PACKED_SDPA
from tuneforge.engine.errors import TuningError
from tuneforge.engine.methods.distillation.config import Divergence
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import (
    LoadedBase,
    PreparedRun,
    load_base_for_training,
    load_model,
    padding_free_run,
    prepare_sequences,
    resolve_for_model,
)
from tuneforge.models.loading import load_tokenizer
from tuneforge.models.resolve import resolve_base_model

with warnings.catch_warnings():
    # "trl.experimental is unstable": known; tested with TRL 1.16, the floor in pyproject.
    warnings.simplefilter("ignore")
    from trl.experimental.gkd import GKDConfig, GKDTrainer

# TRL's generalized JSD interpolates with beta: 0 is KL(teacher || student), 1 is
# KL(student || teacher), 0.5 the symmetric JSD.
GKD_BETA: dict[Divergence, float] = {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": 0.5}
MAX_TEACHER_RESPONSE_TOKENS = 1024


def load_teacher(spec: TuningSpec, settings: Settings, student: LoadedBase):
    """The teacher model, ready to score; refused before its weights are loaded when its
    tokenizer differs from the student's."""
    if not spec.teacher_model:
        raise TuningError("distillation needs a teacher model", code="invalid_teacher")
    resolved = resolve_base_model(spec.teacher_model, settings)
    teacher_vocabulary = load_tokenizer(resolved.source).get_vocab()
    student_vocabulary = student.tokenizer.get_vocab()
    if teacher_vocabulary != student_vocabulary:
        shared = len(teacher_vocabulary.items() & student_vocabulary.items())
        raise TuningError(
            f"the teacher {spec.teacher_model!r} has a vocabulary of {len(teacher_vocabulary)} "
            f"tokens and the student {spec.base_model!r} one of {len(student_vocabulary)}, "
            f"{shared} of them the same: distillation compares their distributions token by "
            "token, so the teacher must use the student's tokenizer",
            code="invalid_teacher",
        )
    teacher = load_model(
        spec.teacher_model, settings, student.hardware, tuned=spec.teacher_adapter
    ).model
    teacher_rows = teacher.get_output_embeddings().weight.shape[0]
    student_rows = student.model.get_output_embeddings().weight.shape[0]
    if teacher_rows != student_rows:
        raise TuningError(
            f"the teacher {spec.teacher_model!r} predicts over {teacher_rows} tokens and the "
            f"student {spec.base_model!r} over {student_rows}: the teacher must have the "
            "student's vocabulary",
            code="invalid_teacher",
        )
    teacher.to(student.hardware.device)
    return teacher.eval().requires_grad_(False)


@contextmanager
def padding_aware_attention(model):
    """Plain SDPA for a while: left-padded prompts need their padding mask, and transformers
    builds none for the packed kernel of padding-free training (engine/attention.py)."""
    original = model.config._attn_implementation
    if original != PACKED_SDPA:
        yield
        return
    model.set_attn_implementation("sdpa")
    try:
        yield
    finally:
        model.set_attn_implementation(original)


@torch.no_grad()
def teacher_responses(
    teacher, tokenizer, prompts: list[Conversation], *, max_length: int, batch_size: int
) -> list[str]:
    """Greedy answers of the teacher, in batches of prompts of similar length."""
    encoded = [prompt_ids(prompt, tokenizer) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    device = next(teacher.parameters()).device
    responses = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        longest = max(len(encoded[i]) for i in batch)
        room = min(MAX_TEACHER_RESPONSE_TOKENS, max_length - longest)
        if room < 1:  # the prompts fill max_seq_length; tokenize_for_training skips them
            continue
        input_ids = torch.full((len(batch), longest), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, index in enumerate(batch):  # padded on the left, so answers start together
            input_ids[row, longest - len(encoded[index]) :] = torch.tensor(encoded[index])
            attention_mask[row, longest - len(encoded[index]) :] = 1
        with padding_aware_attention(teacher):
            output = teacher.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                max_new_tokens=room,
                do_sample=False,
                use_cache=True,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        for row, index in enumerate(batch):
            answer = output[row, longest:].tolist()
            if tokenizer.eos_token_id in answer:
                answer = answer[: answer.index(tokenizer.eos_token_id)]
            responses[index] = tokenizer.decode(answer, skip_special_tokens=True)
    return responses


def complete_with_teacher(
    examples: list[Conversation],
    teacher,
    tokenizer,
    observer: TuningObserver,
    *,
    max_length: int,
    batch_size: int,
    name: str,
) -> list[Conversation]:
    """The examples, each prompt-only one followed by the teacher's response."""
    prompts = [e for e in examples if e.is_prompt_only]
    if not prompts:
        return examples
    observer.on_event(f"the teacher is answering {len(prompts)} {name} prompts")
    started = time.perf_counter()
    answers = teacher_responses(
        teacher, tokenizer, prompts, max_length=max_length, batch_size=batch_size
    )
    observer.on_event(
        f"the teacher answered {len(prompts)} {name} prompts in "
        f"{time.perf_counter() - started:.1f}s",
        data={"examples": answers[:3]},
    )
    written = iter(answers)
    return [with_response(e, next(written)) if e.is_prompt_only else e for e in examples]


class TeacherForcedDistillation(GKDTrainer):
    """GKD on fixed responses (``lmbda=0``), fed as padding-free batches.

    TRL's GKD forwards only ``input_ids`` and ``attention_mask``; a padding-free batch has no
    attention mask and needs its position ids (and sequence boundaries) to keep examples apart,
    so every input but the labels goes to both models.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        model_inputs["use_cache"] = False
        student = model(**model_inputs)
        self.teacher_model.eval()
        with torch.no_grad():
            teacher = self.teacher_model(**model_inputs)
        student_logits = student.logits[:, :-1, :]
        labels = inputs["labels"][:, 1:]
        loss = self.generalized_jsd_loss(
            student_logits=student_logits,
            teacher_logits=teacher.logits[:, :-1, :],
            labels=labels,
            beta=self.beta,
            num_items_in_batch=num_items_in_batch,
        )
        scored = labels != -100
        correct = (student_logits.argmax(-1) == labels) & scored
        mode = "train" if model.training else "eval"
        self._metrics[mode]["mean_token_accuracy"].append(
            (correct.sum() / scored.sum().clamp(min=1)).item()
        )
        return (loss, student) if return_outputs else loss


def prepare_distillation(
    spec: TuningSpec,
    train: list[Conversation],
    validation: list[Conversation],
    output_dir: Path,
    observer: TuningObserver,
    settings: Settings,
) -> PreparedRun:
    student = load_base_for_training(spec, settings)
    teacher = load_teacher(spec, settings, student)
    hp = resolve_for_model(spec, student.model, len(train))
    tokenizer, max_length = student.tokenizer, hp.max_seq_length
    write = {"max_length": max_length, "batch_size": hp.batch_size}
    train = complete_with_teacher(train, teacher, tokenizer, observer, name="training", **write)
    validation = complete_with_teacher(
        validation, teacher, tokenizer, observer, name="validation", **write
    )
    data = prepare_sequences(train, validation, student, hp, observer)
    return padding_free_run(
        spec,
        student,
        hp,
        data,
        output_dir,
        observer,
        config_class=GKDConfig,
        trainer_class=TeacherForcedDistillation,
        config={
            "beta": GKD_BETA[hp.divergence],
            # never on-policy: the student learns on the given and the teacher's answers
            "lmbda": 0.0,
            "seq_kd": False,
        },
        trainer={"teacher_model": teacher},
        full_logits=True,  # the divergence takes both models' whole logits
        frozen_bytes=sum(p.numel() * p.element_size() for p in teacher.parameters()),
    )
