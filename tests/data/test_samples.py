"""The generated sample tasks: held-out splits are really held out."""

import pytest

from tuneforge.data.samples import TASKS, split_pairs, write_task
from tuneforge.data.validate import load_examples


@pytest.mark.parametrize("task", sorted(TASKS))
def test_no_input_appears_in_two_splits(task):
    splits = split_pairs(task, (400, 50, 100), seed=0)
    inputs = {name: {pair["input"] for pair in pairs} for name, pairs in splits.items()}
    assert [len(inputs[name]) for name in ("train", "validation", "test")] == [400, 50, 100]
    assert not inputs["train"] & inputs["validation"]
    assert not inputs["train"] & inputs["test"]
    assert not inputs["validation"] & inputs["test"]


@pytest.mark.parametrize("style", ["openai", "vertex"])
def test_written_files_validate_in_both_styles(tmp_path, style):
    paths = write_task(tmp_path, "format", sizes=(20, 10, 10), style=style)
    assert [len(load_examples(paths[s], min_examples=1)) for s in paths] == [20, 10, 10]
