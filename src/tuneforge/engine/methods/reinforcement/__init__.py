"""Reinforcement tuning: the model samples answers to prompts, a grader scores them, and GRPO
(TRL's GRPOTrainer) raises the likelihood of the answers that score above their group's mean,
with a KL penalty to the starting model. Prompts may carry reference fields that graders read
(``{{ item.answer }}``), as in OpenAI's reinforcement fine-tuning format."""

from tuneforge.engine.methods.registry import TuningMethod, register_method
from tuneforge.engine.methods.reinforcement.config import ReinforcementHyperparameters

METHOD = register_method(
    TuningMethod(
        name="reinforcement",
        task="distillation",  # prompts alone: the model writes the answers it is graded on
        hyperparameters=ReinforcementHyperparameters,
        trainer="tuneforge.engine.methods.reinforcement.trainer:prepare_grpo",
        description="sample answers, score them with a grader, and reinforce the better ones",
        openai_type="reinforcement",
        vertex_spec="reinforcementTuningSpec",
        vertex_stats="distillationDataStats",
        required=("grader",),
    )
)
