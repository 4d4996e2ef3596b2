"""Model names never carry a filesystem path of the server."""

from __future__ import annotations

import pytest

from tuneforge.models.names import TunedRef, openai_model_name, parse_model_name


@pytest.mark.parametrize(
    ("base", "shown"),
    [
        ("/srv/models/Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B-Instruct"),
        ("/srv/models/Qwen2.5-0.5B-Instruct/", "Qwen2.5-0.5B-Instruct"),
        ("./models/my-model", "my-model"),
        ("~/models/my-model", "my-model"),
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct"),  # a hub id, as given
        ("tuneforge/tiny-chat", "tuneforge/tiny-chat"),
    ],
)
def test_fine_tuned_name_shows_a_local_base_by_its_folder_name(base, shown):
    name = openai_model_name(base, "default", "mine", "tj-0123456789ab")
    assert name == f"ft:{shown}:default:mine:tj-0123456789ab"
    assert parse_model_name(name) == TunedRef(job_id="tj-0123456789ab")


def test_a_colon_in_a_folder_name_does_not_break_the_name():
    name = openai_model_name("/srv/models/a:b", "default", None, "tj-0123456789ab")
    assert name == "ft:a-b:default::tj-0123456789ab"
    assert parse_model_name(name) == TunedRef(job_id="tj-0123456789ab")
