"""Scores of one prediction against one reference: exact match, token F1, ROUGE-L.

Hand-written rather than imported: the usual ``rouge-score`` package pulls in nltk (and its
data downloads) and more for what is an LCS in a dozen lines, and SQuAD's F1 is shorter still.
Token F1 and ROUGE-L read the same tokens: the lowercased, whitespace-separated words.
"""

from __future__ import annotations

from collections import Counter


def words(text: str) -> list[str]:
    return text.lower().split()


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the texts are equal once surrounding whitespace is stripped, else 0.0."""
    return float(prediction.strip() == reference.strip())


def f_measure(overlap: int, predicted: int, expected: int) -> float:
    """The harmonic mean of precision (overlap / predicted) and recall (overlap / expected)."""
    if overlap == 0:
        return 0.0
    precision, recall = overlap / predicted, overlap / expected
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's F1: the overlap of the two bags of words (each word counted as often as it is in
    both). Two empty texts agree (1.0); an empty and a non-empty one do not (0.0)."""
    predicted, expected = words(prediction), words(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    return f_measure(overlap, len(predicted), len(expected))


def longest_common_subsequence(first: list[str], second: list[str]) -> int:
    """Length of the longest sequence of words found in both, in order but not necessarily
    adjacent. Dynamic programming over one row: O(len(first) * len(second)) time."""
    previous = [0] * (len(second) + 1)
    for word in first:
        current = [0]
        for index, other in enumerate(second):
            current.append(
                previous[index] + 1 if word == other else max(previous[index + 1], current[index])
            )
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1): precision and recall of the longest common subsequence of
    words. Empty texts score as in :func:`token_f1`."""
    predicted, expected = words(prediction), words(reference)
    if not predicted or not expected:
        return float(predicted == expected)
    return f_measure(longest_common_subsequence(predicted, expected), len(predicted), len(expected))
