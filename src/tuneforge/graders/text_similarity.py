"""Similarity scores between 0 and 1: rapidfuzz's weighted ratio (fuzzy_match), sacrebleu's
sentence BLEU, NLTK's sentence GLEU, and ROUGE-N / ROUGE-L F-measures.

ROUGE is written here (Lin 2004, tokenized as Google's rouge-score tokenizes without stemming:
lower case, runs of letters and digits) because rouge-score imports ``absl.logging``, which
broke the standard streams of any process that imported it and later swapped them (a CLI run
in-process under pytest lost ``sys.stderr``).
"""

from __future__ import annotations

import re
from collections import Counter

_TOKEN = re.compile(r"[a-z0-9]+")


def similarity(metric: str, text: str, reference: str) -> float:
    if metric == "fuzzy_match":
        from rapidfuzz import fuzz

        return fuzz.WRatio(text, reference) / 100
    if metric == "bleu":
        import sacrebleu

        return sacrebleu.sentence_bleu(text, [reference]).score / 100
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return sentence_gleu([reference.split()], text.split())
    if metric == "rouge_l":
        return rouge_l(tokens(text), tokens(reference))
    if metric.startswith("rouge_"):
        return rouge_n(tokens(text), tokens(reference), int(metric.removeprefix("rouge_")))
    raise ValueError(f"no similarity metric {metric!r}")  # parse_grader refuses it first


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def f_measure(matches: int, candidate: int, reference: int) -> float:
    if not matches:
        return 0.0
    precision, recall = matches / candidate, matches / reference
    return 2 * precision * recall / (precision + recall)


def rouge_n(candidate: list[str], reference: list[str], n: int) -> float:
    """The F-measure of the n-grams the two share (each counted as often as both have it)."""

    def grams(words: list[str]) -> Counter:
        return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    mine, theirs = grams(candidate), grams(reference)
    shared = sum((mine & theirs).values())
    return f_measure(shared, sum(mine.values()), sum(theirs.values()))


def rouge_l(candidate: list[str], reference: list[str]) -> float:
    """The F-measure of their longest common subsequence."""
    previous = [0] * (len(reference) + 1)
    for word in candidate:
        current = [0]
        for j, other in enumerate(reference, 1):
            current.append(previous[j - 1] + 1 if word == other else max(previous[j], current[-1]))
        previous = current
    return f_measure(previous[-1], len(candidate), len(reference))
