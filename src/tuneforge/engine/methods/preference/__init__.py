"""Preference tuning (DPO): the model learns to prefer the chosen response to the rejected one.

Published DPO recipes run at 1/40 (Zephyr) to 1/10 (Tulu 3) of their SFT learning rate; a
policy pushed far from its reference forgets how to end its answers. On the tiny model the SFT
rate keeps the preferred label but loses the end-of-turn token after it, 1/10 barely moves it in
two epochs, and 0.3 lifts it cleanly.
"""

from tuneforge.engine.methods.preference.config import PreferenceHyperparameters
from tuneforge.engine.methods.registry import TuningMethod, register_method

METHOD = register_method(
    TuningMethod(
        name="preference",
        task="preference",
        hyperparameters=PreferenceHyperparameters,
        trainer="tuneforge.engine.methods.preference.trainer:prepare_dpo",
        description="prefer the chosen response to the rejected one (DPO with an NLL term)",
        learning_rate_scale=0.3,
        openai_type="dpo",
        vertex_spec="preferenceOptimizationSpec",
        media=frozenset({"image", "document"}),
        # TRL computes the reference of image pairs with the adapter disabled
        media_lora_only=True,
        vertex_stats="preferenceOptimizationDataStats",
    )
)
