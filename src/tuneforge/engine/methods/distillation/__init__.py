"""Distillation: a student learns a teacher's token distributions, on the given responses and
on the ones the teacher writes for prompts alone.

A distilled student runs twice SFT's auto epochs. Its teacher is usually sharp (0.003 nats of
entropy at the tuned tiny teacher's label token), so the teacher's distribution says little more
than its answer, and the student has the same plateau to leave as SFT: on the built-in task its
loss sits at a coin flip over the label for about 100 steps. At 3 epochs 2 of 5 seeds were still
there (0.80 and 0.90 of the teacher's exact match); at 6 all five reached 0.97-1.0 of it.
Validation loss against the teacher (early stopping) ends a run that has converged.
"""

from tuneforge.engine.methods.distillation.config import DistillationHyperparameters
from tuneforge.engine.methods.registry import TuningMethod, register_method

METHOD = register_method(
    TuningMethod(
        name="distillation",
        task="distillation",
        hyperparameters=DistillationHyperparameters,
        trainer="tuneforge.engine.methods.distillation.trainer:prepare_distillation",
        description="learn a teacher model's token distributions (it answers prompts alone)",
        epoch_scale=2,
        needs_teacher=True,
        vertex_spec="distillationSpec",
        vertex_stats="distillationDataStats",
    )
)
