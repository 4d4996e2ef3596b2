"""Reward-model tuning: a scalar head on the base learns to score each chosen response above its
rejected one (the Bradley-Terry loss of InstructGPT's reward model), from the same preference
files DPO takes. The tuned model scores conversations (``POST /v1/score``, ``tuneforge score``);
it does not generate. It trains at SFT's learning rate: on the built-in preference data, LoRA
for 3 epochs reached 0.97-1.00 held-out pairwise accuracy over four data seeds at that rate,
and 0.87-0.97 at DPO's 0.3x.
"""

from tuneforge.engine.methods.registry import TuningMethod, register_method
from tuneforge.engine.spec import Hyperparameters

METHOD = register_method(
    TuningMethod(
        name="reward",
        task="preference",
        hyperparameters=Hyperparameters,
        trainer="tuneforge.engine.methods.reward.trainer:prepare_reward",
        description="a reward model: score the chosen response above the rejected one",
        vertex_spec="rewardModelTuningSpec",
        vertex_stats="preferenceOptimizationDataStats",
        scores_only=True,
    )
)
