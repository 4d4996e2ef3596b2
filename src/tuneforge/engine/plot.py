"""The loss curve as a PNG: per-step training loss and per-epoch validation loss."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_loss_curve(
    step_losses: Sequence[tuple[int, float]],
    epoch_points: Sequence[tuple[int, float | None]],  # (step at the end of the epoch, valid loss)
    path: Path,
    title: str = "",
) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    if step_losses:
        steps, losses = zip(*step_losses, strict=True)
        axes.plot(steps, losses, label="training loss (per step)", linewidth=1, alpha=0.8)
    validation = [(s, v) for s, v in epoch_points if v is not None]
    if validation:
        steps, losses = zip(*validation, strict=True)
        axes.plot(steps, losses, "o-", label="validation loss (per epoch)", linewidth=2)
    for step, _ in epoch_points:
        axes.axvline(step, color="grey", linewidth=0.5, linestyle=":")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title or "loss curve")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
