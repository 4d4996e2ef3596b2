"""Graders in OpenAI's shapes: a model's answer (and the dataset item it answered) in, a score
out. Each type is a module: ``string_check``, ``text_similarity``, ``python_sandbox`` (a
``grade(sample, item)`` function in a limited child process), ``score_model`` (a model on this
server as the judge), tuneforge's ``reward_model`` (a reward model tuned here scores the prompt
and the answer) and ``multi`` (graders combined by a formula, ``formula``).

``spec.parse_grader`` checks a grader's JSON once (the validate route, a job's creation) and
names the first thing wrong; ``run.run_grader`` scores one sample and never raises for what the
sample or the grader's own code does at run time: the score is then 0 and the error is recorded.
"""

from tuneforge.graders.run import GraderResult, Judge, RewardScore, run_grader
from tuneforge.graders.spec import Grader, GraderError, parse_grader

__all__ = [
    "Grader", "GraderError", "GraderResult", "Judge", "RewardScore", "parse_grader", "run_grader"
]  # fmt: skip
