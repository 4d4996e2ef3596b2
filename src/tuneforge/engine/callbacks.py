"""Trainer callbacks that turn transformers' training loop into tuneforge's observer calls.

One callback does it all, because the pieces share state: per-step metrics feed the epoch's
train loss, the epoch's evaluation feeds early stopping and the checkpoint's metrics, and a
stop request decides whether a checkpoint is written before stopping.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback, TrainerControl, TrainerState

from tuneforge.engine.checkpoints import ResumePoints, Retention, describe, folder_bytes, prune
from tuneforge.engine.distributed import barrier, is_main_rank
from tuneforge.engine.errors import TuningError
from tuneforge.engine.eta import RecentPace
from tuneforge.engine.observer import (
    CheckpointInfo,
    EpochMetrics,
    StepMetrics,
    StopRequest,
    TuningObserver,
)
from tuneforge.models.threads import fit_cpu_threads

# Keys of a Trainer log that are not step metrics of their own.
_STANDARD_LOG_KEYS = {"loss", "learning_rate", "grad_norm", "mean_token_accuracy", "epoch"}


def sequence_tokens(feature: dict) -> int:
    return len(feature["input_ids"])


class TokenCounter:
    """Wraps a collator to count the real and the padded tokens it hands to the model.

    ``tokens_of`` says how many real tokens one dataset row puts into the batch. The trainer
    collates evaluation batches with it too: only batches collated while ``counting`` is on
    are counted (TuningCallback turns it on for the training part of each epoch).
    """

    def __init__(self, collator, tokens_of: Callable[[dict], int] = sequence_tokens) -> None:
        self.collator = collator
        self.tokens_of = tokens_of
        self.real_tokens = 0
        self.slots = 0
        self.counting = True

    def __call__(self, features):
        batch = self.collator(features)
        if self.counting:
            self.real_tokens += sum(self.tokens_of(f) for f in features)
            self.slots += batch["input_ids"].numel()
        return batch

    def tokens_per_epoch(self, dataset) -> int:
        """Real tokens one pass over ``dataset`` (rows as the collator receives them) trains."""
        return sum(self.tokens_of(row) for row in dataset)

    def reset(self) -> None:
        self.real_tokens = self.slots = 0

    @property
    def non_padding_share(self) -> float:
        return self.real_tokens / self.slots if self.slots else 1.0


class TuningCallback(TrainerCallback):
    def __init__(
        self,
        observer: TuningObserver,
        counter: TokenCounter,
        checkpoints_dir: Path,
        patience: int,
        validation_key: str | None = "eval_loss",  # None: no early stopping
    ) -> None:
        self.observer = observer
        self.counter = counter
        self.checkpoints_dir = checkpoints_dir
        self.patience = patience
        self.validation_key = validation_key
        self.epochs: list[EpochMetrics] = []
        self.step_losses: list[tuple[int, float]] = []
        self.stop: StopRequest | None = None
        self.stopped_early = False
        self._epoch_losses: list[float] = []
        self._epoch_extra: dict[str, list[float]] = {}
        self._pending_eval: dict[str, float] = {}
        self._best_valid = math.inf
        self._evals_without_improvement = 0
        self._started = time.perf_counter()
        self._pace = RecentPace()
        # A pause asked for on an epoch's last step: stop once that epoch is saved.
        self._pause_after_epoch = False
        self.resume_points = ResumePoints()
        self.retention = Retention()
        self._last_save = (0, time.perf_counter())  # (step, when)

    def plan_saves(self, resume_points: ResumePoints, retention: Retention) -> None:
        """When to save mid-epoch resume points, and what to keep of older saves."""
        self.resume_points, self.retention = resume_points, retention

    def restore(self, epochs: list[EpochMetrics]) -> None:
        """Carry what earlier attempts of this run achieved (a resumed run)."""
        self.epochs = list(epochs)
        for metrics in epochs:
            if metrics.valid_loss is None:
                continue
            if metrics.valid_loss < self._best_valid - 1e-6:
                self._best_valid, self._evals_without_improvement = metrics.valid_loss, 0
            else:
                self._evals_without_improvement += 1

    # --- training progress -------------------------------------------------------------
    def on_train_begin(self, args, state: TrainerState, control, **kwargs):
        self._started = time.perf_counter()
        self._last_save = (state.global_step, self._started)
        self._pace.start(state.global_step)
        # Whatever was collated before (DPO's reference pass) trained nothing.
        self.counter.reset()
        self.counter.counting = False

    def on_step_begin(self, args, state: TrainerState, control, **kwargs):
        fit_cpu_threads()  # the scheduler may have changed this runner's share of the cores

    def on_epoch_begin(self, args, state: TrainerState, control, **kwargs):
        # Not on_step_begin: the trainer collates a step's batches before calling it.
        self.counter.counting = True

    def on_log(self, args, state: TrainerState, control, logs=None, **kwargs):
        logs = logs or {}
        if self.validation_key in logs or "eval_loss" in logs:
            self._pending_eval = {k: v for k, v in logs.items() if k.startswith("eval_")}
            return
        if "loss" not in logs:
            return
        elapsed = time.perf_counter() - self._started
        self._pace.record(state.global_step, elapsed)
        remaining = state.max_steps - state.global_step
        extra = {
            k: float(v)
            for k, v in logs.items()
            if k not in _STANDARD_LOG_KEYS and isinstance(v, int | float)
        }
        loss = float(logs["loss"])
        grad_norm = _float_or_none(logs.get("grad_norm"))
        if not math.isfinite(loss) or (grad_norm is not None and not math.isfinite(grad_norm)):
            learning_rate = float(logs.get("learning_rate", args.learning_rate))
            raise TuningError(
                f"training diverged at step {state.global_step}: the loss is {loss} and the "
                f"gradient norm {grad_norm}; lower the learning rate (peak {args.learning_rate:g}, "
                f"{learning_rate:g} at this step)",
                code="diverged",
            )
        self._epoch_losses.append(loss)
        for key, value in extra.items():
            self._epoch_extra.setdefault(key, []).append(value)
        self.step_losses.append((state.global_step, loss))
        self.observer.on_step(
            StepMetrics(
                step=state.global_step,
                total_steps=state.max_steps,
                epoch=float(state.epoch or 0.0),
                loss=loss,
                learning_rate=float(logs.get("learning_rate", 0.0)),
                grad_norm=grad_norm,
                token_accuracy=_float_or_none(logs.get("mean_token_accuracy")),
                tokens_per_second=self.counter.real_tokens / elapsed if elapsed else 0.0,
                non_padding_share=self.counter.non_padding_share,
                elapsed_s=elapsed,
                eta_s=self._pace.eta_s(remaining),
                extra=extra,
            )
        )

    def on_step_end(self, args, state, control: TrainerControl, **kwargs):
        request = self.observer.stop_requested()
        if request is None:
            last_step, last_time = self._last_save
            if not _at_epoch_end(state) and self.resume_points.due(
                state.global_step - last_step, time.perf_counter() - last_time
            ):
                control.should_save = True
            return
        if self._pause_after_epoch:
            return
        if request == "pause" and _at_epoch_end(state):
            # Let the epoch end as usual (evaluation, epoch-N checkpoint); on_save stops then.
            self._pause_after_epoch = True
            self.observer.on_event(
                f"pause requested: stopping after epoch {round(state.epoch or 0)} "
                f"(step {state.global_step})"
            )
            return
        self.stop = request
        control.should_training_stop = True
        # A pause saves its exact position; a cancel saves nothing more: its last resume point
        # is kept as a partial checkpoint when the run ends (checkpoints.finish).
        if request == "pause":
            control.should_save = True
        self.observer.on_event(f"{request} requested: stopping at step {state.global_step}")

    # --- epochs, evaluation, early stopping ----------------------------------------------
    def on_epoch_end(self, args, state: TrainerState, control: TrainerControl, **kwargs):
        self.counter.counting = False
        if self.stop is not None:
            # Stopped mid-epoch: no evaluation, and no epoch checkpoint of a partial epoch (a
            # pause has already saved its resume point at its step).
            control.should_evaluate = False
            control.should_save = False
            return
        train_loss = (
            sum(self._epoch_losses) / len(self._epoch_losses) if self._epoch_losses else 0.0
        )
        extra = {k: sum(v) / len(v) for k, v in self._epoch_extra.items() if v}
        self._epoch_losses, self._epoch_extra = [], {}
        self._current_epoch_train = (round(state.epoch or 0), train_loss, extra)

    def on_evaluate(self, args, state, control: TrainerControl, metrics=None, **kwargs):
        metrics = metrics or {}
        self._pending_eval = {k: v for k, v in metrics.items() if k.startswith("eval_")}
        valid_loss = metrics.get(self.validation_key)
        if valid_loss is None:
            return
        if valid_loss < self._best_valid - 1e-6:
            self._best_valid = valid_loss
            self._evals_without_improvement = 0
        else:
            self._evals_without_improvement += 1
            if self._evals_without_improvement >= self.patience:
                control.should_training_stop = True
                self.stopped_early = True
                self.observer.on_event(
                    f"early stop: validation loss has not improved for "
                    f"{self._evals_without_improvement} epochs (best {self._best_valid:.4f})",
                    data={"best_valid_loss": self._best_valid},
                )

    # --- checkpoints ---------------------------------------------------------------------
    def on_save(self, args, state: TrainerState, control, **kwargs):
        saved = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        epoch_float = float(state.epoch or 0.0)
        at_epoch_end = _at_epoch_end(state) and self.stop is None
        epoch_metrics = None
        if at_epoch_end:
            epoch = round(epoch_float)
            epoch_metrics = self._close_epoch(epoch, state.global_step)
            metrics = {
                "train_loss": epoch_metrics.train_loss,
                "valid_loss": epoch_metrics.valid_loss,
                "valid_mean_token_accuracy": epoch_metrics.valid_token_accuracy,
            }
            target, kind = self.checkpoints_dir / f"epoch-{epoch}", "epoch"
        else:
            epoch, metrics = int(epoch_float), {}
            target, kind = self.checkpoints_dir / f"step-{state.global_step}", "resume"
        checkpoint = CheckpointInfo(
            epoch=epoch, step=state.global_step, path=target, metrics=metrics, kind=kind
        )
        # Ranks of a multi-device run each write their part (their random state) into the
        # save: once all have, rank 0 alone files it.
        barrier()
        if is_main_rank():
            if target.exists():  # a resumed run saving the same epoch again
                shutil.rmtree(target)
            saved.rename(target)
            describe(checkpoint, epoch_metrics)  # last: a described folder is a complete one
            prune(self.checkpoints_dir, self.retention)
        self._last_save = (state.global_step, time.perf_counter())
        if kind == "epoch" and self.retention.last_epoch_only:
            self.observer.on_event(
                f"epoch {epoch} saved (step {state.global_step}); only the last epoch's "
                "checkpoint is kept"
            )
        else:
            self.observer.on_checkpoint(checkpoint)
        if is_main_rank():
            self.observer.on_disk_use(folder_bytes(self.checkpoints_dir.parent))
        if self._pause_after_epoch and at_epoch_end:
            self._pause_after_epoch = False
            # A run that ends here anyway (its last epoch, an early stop) simply completes.
            if not control.should_training_stop:
                self.stop = "pause"
                control.should_training_stop = True

    def _close_epoch(self, epoch: int, step: int) -> EpochMetrics:
        _, train_loss, extra = getattr(self, "_current_epoch_train", (epoch, 0.0, {}))
        valid_loss = _float_or_none(self._pending_eval.get(self.validation_key))
        valid_accuracy = _float_or_none(self._pending_eval.get("eval_mean_token_accuracy"))
        extra = {**extra, **{k: float(v) for k, v in self._pending_eval.items()}}
        self._pending_eval = {}
        metrics = EpochMetrics(
            epoch=epoch,
            step=step,
            train_loss=train_loss,
            valid_loss=valid_loss,
            valid_token_accuracy=valid_accuracy,
            extra=extra,
        )
        self.epochs.append(metrics)
        self.observer.on_epoch(metrics)
        return metrics


def _at_epoch_end(state: TrainerState) -> bool:
    epoch = float(state.epoch or 0.0)
    return epoch > 0 and abs(epoch - round(epoch)) < 1e-6


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


class DropReferenceAdapter(TrainerCallback):
    """Going on from a tuned adapter, TRL's DPO and GRPO keep a frozen copy of it (named
    "ref") as the reference, and PEFT saves it beside the trained one. A checkpoint needs only
    the trained adapter: a resumed run makes the copy again from ``init_adapter``. Runs before
    TuningCallback, which moves the checkpoint folder."""

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        shutil.rmtree(checkpoint / "ref", ignore_errors=True)
