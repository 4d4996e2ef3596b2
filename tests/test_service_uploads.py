"""An upload that cannot be recorded leaves nothing behind."""

import io

import pytest

from tuneforge.service import Service
from tuneforge.storage import LocalStorage
from tuneforge.store.db import open_database


def test_a_failed_upload_keeps_no_file_on_disk(settings, monkeypatch):
    service = Service(open_database(settings.resolved_database_url), settings)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("tuneforge.store.repo.create_file", broken)
    line = b'{"prompt": "a", "completion": "b"}\n'
    with pytest.raises(RuntimeError, match="went away"):
        service.files.upload("default", "train.jsonl", io.BytesIO(line * 12), "fine-tune")
    assert list(LocalStorage(settings.data_dir).files_dir.iterdir()) == []
