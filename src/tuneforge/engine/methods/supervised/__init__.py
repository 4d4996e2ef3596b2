"""Supervised fine-tuning (SFT): the model learns the given responses."""

from tuneforge.engine.methods.registry import TuningMethod, register_method
from tuneforge.engine.spec import Hyperparameters

METHOD = register_method(
    TuningMethod(
        name="supervised",
        task="supervised",
        hyperparameters=Hyperparameters,
        trainer="tuneforge.engine.methods.supervised.trainer:prepare_sft",
        description="learn the responses of the examples (LoRA adapter or all weights)",
        openai_type="supervised",
        vertex_spec="supervisedTuningSpec",
        media=frozenset({"image", "document", "audio"}),
        vertex_stats="supervisedTuningDataStats",
        multi_device=True,
    )
)
