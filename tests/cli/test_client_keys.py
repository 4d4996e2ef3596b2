"""Which API key the CLI sends to a ``--server``: the local key never leaves the machine."""

from __future__ import annotations

import pytest

from tuneforge.cli import client
from tuneforge.config import Settings
from tuneforge.errors import TuneforgeError


@pytest.fixture
def local(tmp_path) -> Settings:
    """Settings whose data dir holds a local key, and no TUNEFORGE_API_KEY."""
    (tmp_path / "api_key").write_text("tf-local\n")
    return Settings(data_dir=tmp_path, api_key=None)


@pytest.mark.parametrize(
    "server",
    [
        "http://127.0.0.1:8000",
        "http://127.5.0.1",
        "http://localhost:9",
        "http://[::1]:8000",
        "localhost:8000",
    ],
)
def test_loopback_servers_get_the_local_key(local, server):
    assert client.server_key(local, server) == "tf-local"


@pytest.mark.parametrize(
    "server",
    [
        "https://tuneforge.example.com",
        "http://10.0.0.5:8000",
        "http://[2001:db8::1]",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example:80",
    ],
)
def test_remote_servers_need_tuneforge_api_key(local, server):
    with pytest.raises(TuneforgeError, match="TUNEFORGE_API_KEY"):
        client.server_key(local, server)


def test_tuneforge_api_key_is_sent_anywhere(local):
    settings = local.model_copy(update={"api_key": "tf-env"})
    assert client.server_key(settings, "https://tuneforge.example.com") == "tf-env"
    assert client.server_key(settings, "http://127.0.0.1:1") == "tf-env"


def test_connect_refuses_before_sending_anything(local, monkeypatch):
    monkeypatch.setattr(client, "get_settings", lambda: local)
    with (
        pytest.raises(TuneforgeError, match="TUNEFORGE_API_KEY"),
        client.connect("https://tuneforge.example.com"),
    ):
        pass
