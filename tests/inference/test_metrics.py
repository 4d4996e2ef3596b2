"""The evaluation metrics against values worked out by hand (in the comments)."""

from __future__ import annotations

import pytest

from tuneforge.inference.metrics import (
    exact_match,
    longest_common_subsequence,
    rouge_l,
    token_f1,
)


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        (" positive\n", "positive", 1.0),  # surrounding whitespace does not count
        ("Positive", "positive", 0.0),  # case does
        ("positive.", "positive", 0.0),
        ("", "", 1.0),
    ],
)
def test_exact_match(prediction, reference, expected):
    assert exact_match(prediction, reference) == expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # overlap 3 (the, cat, sat): precision 3/3, recall 3/6 -> 2 * 1 * 0.5 / 1.5
        ("the cat sat", "the cat sat on the mat", 2 / 3),
        # "the" is in the reference once, so it overlaps once: precision 1/3, recall 1/2
        # -> 2 * (1/6) / (5/6) = 0.4
        ("the the the", "the cat", 0.4),
        ("Paris  Rome", "paris rome", 1.0),  # lowercased, any whitespace splits
        ("mat the on sat cat the", "the cat sat on the mat", 1.0),  # a bag: order is free
        ("dog", "cat", 0.0),
        ("", "", 1.0),
        ("", "cat", 0.0),
        ("cat", "", 0.0),
    ],
)
def test_token_f1(prediction, reference, expected):
    assert token_f1(prediction, reference) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("the cat sat on the mat", "the cat was on the mat", 5),  # the cat _ on the mat
        ("a b c d", "a c", 2),
        ("a b c", "c b a", 1),
        ("a b", "", 0),
    ],
)
def test_longest_common_subsequence(first, second, expected):
    assert longest_common_subsequence(first.split(), second.split()) == expected
    assert longest_common_subsequence(second.split(), first.split()) == expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # LCS 5 of 6 words each way: precision = recall = 5/6
        ("the cat sat on the mat", "the cat was on the mat", 5 / 6),
        # LCS 2 ("a c"): precision 2/4, recall 2/2 -> 2 * 0.5 * 1 / 1.5
        ("a b c d", "a c", 2 / 3),
        # the same bag of words as the reference, so token F1 is 1.0, but in an order whose
        # longest common subsequence is 3 words ("the on the"): precision = recall = 3/6
        ("mat the on sat cat the", "the cat sat on the mat", 0.5),
        ("The Cat", "the cat", 1.0),
        ("dog", "cat", 0.0),
        ("", "", 1.0),
        ("", "cat", 0.0),
    ],
)
def test_rouge_l(prediction, reference, expected):
    assert rouge_l(prediction, reference) == pytest.approx(expected)
