"""Fixtures of the CLI's tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tuneforge.cli.common import console
from tuneforge.cli.main import app
from tuneforge.config import get_settings


@pytest.fixture
def cli(settings, monkeypatch):
    """Run ``tuneforge ...`` in-process on the test's data dir."""
    monkeypatch.setenv("TUNEFORGE_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("TUNEFORGE_SERVER", raising=False)
    monkeypatch.setattr(console, "_width", 200)  # tables as wide as a wide terminal's
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, stdout_only: bool = False):
        """The command's output (``stdout_only``: what it wrote to stdout, without stderr)."""
        result = runner.invoke(app, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.stdout if stdout_only else result.output

    yield invoke
    get_settings.cache_clear()
