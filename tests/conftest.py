"""Fixtures shared by the whole suite: offline mode, the built tiny models, sample tasks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tuneforge.config import Settings
from tuneforge.data.samples import write_preference_task, write_task
from tuneforge.data.validate import load_examples
from tuneforge.models.tiny import TINY_MODELS, ensure_tiny_model

TINY = "tuneforge/tiny-chat"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Both tiny models, built once per test session."""
    folder = tmp_path_factory.mktemp("models")
    for name in TINY_MODELS:
        ensure_tiny_model(name, folder)
    return folder


@pytest.fixture
def settings(tmp_path, models_dir) -> Settings:
    """Settings with a fresh data dir whose models/ already holds the tiny models."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    return Settings(data_dir=data_dir)


@pytest.fixture(scope="session")
def sentiment_files(tmp_path_factory) -> dict[str, Path]:
    return write_task(tmp_path_factory.mktemp("sentiment"), "sentiment")


@pytest.fixture(scope="session")
def preference_files(tmp_path_factory) -> dict[str, Path]:
    """The sentiment task's splits as OpenAI DPO preference pairs."""
    return write_preference_task(tmp_path_factory.mktemp("preference"))


@pytest.fixture(scope="session")
def sentiment(sentiment_files) -> dict[str, list]:
    return {split: load_examples(path) for split, path in sentiment_files.items()}


@pytest.fixture
def one_torch_thread():
    """The test runs torch on one intra-op thread (tests/torch_threads.py says why)."""
    from tests.torch_threads import one_thread

    with one_thread():
        yield


@pytest.fixture
def live_server(settings, tmp_path):
    """A real ``tuneforge serve`` (SQLite, this test's data dir), stopped after the test.
    ``live_server.key`` is the key of project ``default``."""
    from tests.servers import LiveServer

    datasets = tmp_path / "datasets"
    datasets.mkdir(exist_ok=True)
    server = LiveServer(
        settings.model_copy(update={"dataset_roots": [datasets]}), tmp_path / "server.log"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's standalone S3 server in a subprocess, for the session (about a second to start)."""
    from tests.s3_server import S3Server

    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_settings(settings, s3_server) -> Settings:
    """This test's settings with objects in a fresh bucket of the S3 server."""
    return s3_server.settings(settings, s3_server.new_bucket())


def pytest_sessionfinish(session, exitstatus):
    """ "No tests collected" is not a failure of the code (pytest's exit status 5)."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
