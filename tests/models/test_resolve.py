"""Base-model names resolve only to folders under the model roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY
from tuneforge.config import Settings
from tuneforge.errors import ModelNotFound
from tuneforge.models.resolve import resolve_base_model


def _fake_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def rooted(settings, tmp_path) -> Settings:
    """Settings with one more model root, ``tmp_path/root``, holding a model ``mine``."""
    _fake_model(tmp_path / "root" / "mine")
    return settings.model_copy(update={"model_roots": [tmp_path / "root"]})


def test_name_under_a_root_resolves(rooted, tmp_path):
    resolved = resolve_base_model("mine", rooted)
    assert resolved.source == str((tmp_path / "root" / "mine").resolve())


def test_dotdot_in_a_name_is_refused(rooted, tmp_path):
    _fake_model(tmp_path / "jobs" / "tj-other" / "checkpoints" / "epoch-3")
    with pytest.raises(ModelNotFound, match=r"'\.\.'"):
        resolve_base_model("mine/../../jobs/tj-other/checkpoints/epoch-3", rooted)


def test_symlink_out_of_a_root_is_not_followed(rooted, tmp_path):
    outside = _fake_model(tmp_path / "elsewhere" / "secret")
    (tmp_path / "root" / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelNotFound):
        resolve_base_model("escape", rooted)


def test_builtin_tiny_model_still_resolves(settings):
    assert resolve_base_model(TINY, settings).source


def test_a_folder_under_the_working_directory_is_no_hub_id(rooted, tmp_path, monkeypatch):
    """transformers would load ``var/jobs/x`` from the server's working directory as if it were a
    hub id: a name that is an existing folder outside the roots is refused instead, in the
    words an unknown name gets (the answer must not tell which folders exist)."""
    _fake_model(tmp_path / "cwd" / "var" / "jobs" / "theirs")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ModelNotFound, match="unknown base model") as existing:
        resolve_base_model("var/jobs/theirs", rooted)
    with pytest.raises(ModelNotFound) as missing:
        resolve_base_model("var/jobs/nobody", rooted)
    assert str(existing.value).replace("theirs", "nobody") == str(missing.value)
