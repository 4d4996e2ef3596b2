"""What ``tuneforge serve`` tells its operator: where the API key is, and a line per request."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.slow


def test_serve_logs_each_request_and_says_where_the_key_is(live_server):
    httpx.get(f"{live_server.url}/v1/models", timeout=30)  # no key: 401, logged all the same
    live_server.stop()
    live_server.start()  # the key exists now: its place is named, the key is not shown

    log = live_server.log_path.read_text()
    assert '"GET /v1/models HTTP/1.1" 401' in log
    assert '"GET /healthz HTTP/1.1" 200' in log
    assert log.count("(shown once)") == 1
    key_file = str(live_server.settings.data_dir / "api_key")
    assert f"in {key_file}" in log.replace("\n", "")
