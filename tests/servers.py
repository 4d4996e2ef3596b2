"""A real ``tuneforge serve`` in a subprocess, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tuneforge.config import Settings, settings_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``tuneforge serve`` on a free loopback port, in its own process group."""

    def __init__(self, settings: Settings, log_path: Path, *, scheduler: bool = True) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def key(self) -> str:
        return (self.settings.data_dir / "api_key").read_text().strip()

    def start(self, timeout_s: float = 60.0) -> LiveServer:
        env = {**os.environ, **settings_env(self.settings), "HF_HUB_OFFLINE": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tuneforge.cli.main",
                    "serve",
                    "--port",
                    str(self.port),
                    *([] if self.scheduler else ["--no-scheduler"]),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def upload(self, path: Path, purpose: str = "fine-tune") -> dict:
        """``POST /v1/files`` as a user would (genai has no files API in Vertex mode)."""
        response = httpx.post(
            f"{self.url}/v1/files",
            headers={"Authorization": f"Bearer {self.key}"},
            files={"file": (path.name, path.read_bytes())},
            data={"purpose": purpose},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()

    def vertex_client(self, project: str, location: str):
        """The unmodified google-genai SDK in Vertex mode, pointed at this server."""
        import google.oauth2.credentials
        from google import genai
        from google.genai import types

        return genai.Client(
            vertexai=True,
            project=project,
            location=location,
            credentials=google.oauth2.credentials.Credentials(token=self.key),
            http_options=types.HttpOptions(base_url=self.url, api_version="v1"),
        )

    def kill(self) -> None:
        """kill -9 the server's whole process group (as a crash would)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout_s: float = 60.0) -> int:
        """SIGTERM the server (as a service manager stops it) and wait for it to exit; returns
        its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
