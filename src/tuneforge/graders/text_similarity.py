"""Similarity scores between 0 and 1: rapidfuzz's weighted ratio (fuzzy_match), sacrebleu's
sentence BLEU, NLTK's sentence GLEU, and Google's rouge-score F-measures."""

from __future__ import annotations

from functools import cache


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
    if metric.startswith("rouge_"):
        key = "rougeL" if metric == "rouge_l" else f"rouge{metric.removeprefix('rouge_')}"
        return _rouge(key).score(reference, text)[key].fmeasure
    raise ValueError(f"no similarity metric {metric!r}")  # parse_grader refuses it first


@cache
def _rouge(key: str):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([key])
