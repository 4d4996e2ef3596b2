"""GRPO against a grader: TRL's GRPOTrainer samples ``num_generations`` answers per prompt, the
grader scores each (with the prompt's item), and the policy learns from each answer's score
relative to its group's, with ``beta`` times the KL to the starting model.

Each step logs the mean reward, its spread within groups, the KL and the answers' mean length;
each epoch the held-out prompts' mean reward (``eval_reward``) when a validation file is given.
What the grader's own code gets wrong scores 0 and is counted in the run's events, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from tuneforge.config import Settings
from tuneforge.data.records import Conversation
from tuneforge.data.tokenize import chat_messages, prompt_ids
from tuneforge.engine.callbacks import DropReferenceAdapter, TokenCounter, TuningCallback
from tuneforge.engine.errors import TuningError
from tuneforge.engine.memory_plan import Workload
from tuneforge.engine.methods.reinforcement.config import ReinforcementHyperparameters
from tuneforge.engine.methods.reinforcement.grader_models import GraderModels
from tuneforge.engine.observer import TuningObserver
from tuneforge.engine.spec import TuningSpec
from tuneforge.engine.training import (
    PreparedRun,
    load_base_for_training,
    make_plan,
    peft_config_for,
    plan_training_memory,
    resolve_for_model,
    seed_everything,
    training_arguments,
)
from tuneforge.graders import Grader, parse_grader, run_grader
from tuneforge.graders.python_sandbox import PythonLimits


def prompt_rows(examples: list[Conversation], name: str) -> list[dict]:
    prompts = [e for e in examples if e.is_prompt_only]
    if not prompts:
        raise TuningError(
            f"the {name} file has no prompts: reinforcement tuning samples its own answers to "
            "prompts (each line's messages ending with a user message)",
            code="invalid_training_file",
        )
    return [{"prompt": chat_messages(e), "item_json": e.item_json or "{}"} for e in prompts]


class GraderReward:
    """GRPO's reward function: the grader's score of each answer, with its prompt's item (and
    the prompt itself, which a reward model scores with the answer)."""

    __name__ = "grader"  # TRL names a reward function's metrics after it

    def __init__(
        self, grader: Grader, models: GraderModels, settings: Settings, observer: TuningObserver
    ) -> None:
        self.grader = grader
        self.models = models
        self.limits = PythonLimits.of(settings)
        self.observer = observer
        self.failures = 0

    def __call__(self, prompts, completions, item_json, **kwargs) -> list[float]:
        rewards = []
        for prompt, completion, item in zip(prompts, completions, item_json, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            result = run_grader(
                self.grader,
                text,
                json.loads(item),
                python=self.limits,
                judge=self.models.judge,
                reward_score=self.models.reward_score,
                prompt=[{"role": m["role"], "content": m["content"]} for m in prompt],
            )
            if result.errors:
                self.failures += 1
                if self.failures in (1, 10, 100, 1000):  # say so, without one event per sample
                    flag, detail = next(iter(result.errors.items()))
                    self.observer.on_event(
                        f"grader error ({self.failures} so far, each scored 0): {flag}: {detail}",
                        level="warning",
                    )
            rewards.append(result.reward)
        return rewards


class SampledTokens(TrainerCallback):
    """GRPO's collator hands the model prompts alone: the tokens a step trains on (its prompts
    and the answers it sampled) are what TRL adds up in ``num_input_tokens_seen``. Put before
    TuningCallback, so that each step's tokens/s counts them."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter
        self.seen_before = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.seen_before = state.num_input_tokens_seen  # a resumed run's earlier attempts

    def on_step_end(self, args, state, control, **kwargs):
        self.counter.real_tokens = state.num_input_tokens_seen - self.seen_before


def prepare_grpo(
    spec: TuningSpec,
    train: list[Conversation],
    validation: list[Conversation],
    output_dir: Path,
    observer: TuningObserver,
    settings: Settings,
) -> PreparedRun:
    datasets.disable_progress_bars()
    hp = spec.hyperparameters
    assert isinstance(hp, ReinforcementHyperparameters)
    if hp.grader is None:
        raise TuningError(
            "reinforcement tuning needs a grader (hyperparameters.grader)", code="invalid_grader"
        )
    grader = parse_grader(hp.grader)
    base = load_base_for_training(spec, settings)
    models = GraderModels(grader, spec.grader_models, settings, base.hardware)
    hp = resolve_for_model(spec, base.model, len(train))
    train_rows = prompt_rows(train, "training")
    valid_rows = prompt_rows(validation, "validation") if validation else []
    # A step takes batch_size prompts, each answered num_generations times.
    plan = make_plan(hp, len(train_rows), len(train_rows), len(valid_rows))
    checkpoints_dir = output_dir / "checkpoints"
    group = hp.num_generations
    # A step trains on batch_size prompts' group of answers, each row padded to the longest
    # prompt plus the longest answer; the policy's log-probabilities are computed in full.
    longest = max(len(prompt_ids(e, base.tokenizer)) for e in train if e.is_prompt_only)
    rows = hp.batch_size * group
    workload = Workload(
        batch_size=rows,
        longest_rows=[longest + hp.max_completion_length] * rows,
        padded=True,
        loss="full",
        frozen_bytes=models.weight_bytes,
    )
    memory = plan_training_memory(spec, hp, base, workload, observer)
    if memory.gradient_accumulation_steps > 1:
        raise TuningError(
            f"{memory.describe()}: reinforcement tuning does not split a step's groups of "
            "answers yet; lower batch_size, num_generations or max_completion_length",
            code="insufficient_memory",
        )
    args = GRPOConfig(
        **{
            **training_arguments(
                spec,
                hp,
                base,
                checkpoints_dir,
                total_steps=plan.total_steps,
                has_validation=bool(valid_rows),
                memory=memory,
            ),
            "per_device_train_batch_size": rows,
            "per_device_eval_batch_size": max(1, len(valid_rows[:8])) * group,
        },
        num_generations=group,
        max_completion_length=hp.max_completion_length,
        temperature=hp.temperature,
        beta=hp.beta,
        log_completions=False,
    )
    counter = TokenCounter(lambda features: features, lambda feature: 0)
    # No validation loss: the held-out reward (eval_reward) is recorded with each epoch, and
    # the last epoch is the default checkpoint (a sampled reward is too noisy to pick by).
    callback = TuningCallback(
        observer, counter, checkpoints_dir, hp.early_stopping_patience, validation_key=None
    )
    reward = GraderReward(grader, models, settings, observer)
    seed_everything(spec.seed)
    trainer = GRPOTrainer(
        model=base.model,
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(valid_rows) if valid_rows else None,
        processing_class=base.tokenizer,
        peft_config=peft_config_for(spec, hp, base.model),
        callbacks=[DropReferenceAdapter(), SampledTokens(counter), callback],
    )
    observer.on_event(
        f"reinforcement: {group} answers sampled per prompt, scored by the "
        f"{reward.grader.type} grader {reward.grader.name!r}, KL penalty {hp.beta:g}"
    )
    return PreparedRun(trainer, callback, counter, plan, hp, checkpoints_dir)
