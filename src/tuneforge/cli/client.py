"""The CLI's way to a tuneforge server: over HTTP, to ``--server`` or to one it starts itself.

Without ``--server`` (or ``TUNEFORGE_SERVER``), the CLI runs the same app in this process, on
the local data dir, and sends it the same HTTP requests (through an in-process ASGI client for
the commands that end at once, over a loopback port for ``tune``), so every command takes the
one code path a remote server takes: API → service → store → scheduler → runner.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from tuneforge.config import Settings, get_settings
from tuneforge.errors import TuneforgeError
from tuneforge.storage import storage_for

VERTEX_PREFIX = "/v1/projects/{project}/locations/{location}"
# How long a server has to answer its health check before the CLI says it is not there.
REACHABLE_TIMEOUT_S = 2.0


class ServerError(TuneforgeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


class Client:
    def __init__(
        self,
        base_url: str,
        key: str,
        project: str = "default",
        location: str = "local",
        http: httpx.Client | None = None,
    ):
        """``http``: the HTTP client to send through (the embedded app's); by default one to
        ``base_url``."""
        self.base_url = base_url.rstrip("/")
        self.http = http or httpx.Client(base_url=self.base_url, timeout=120)
        self.http.headers["Authorization"] = f"Bearer {key}"
        self.prefix = VERTEX_PREFIX.format(project=project, location=location)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            raise TuneforgeError(f"lost the connection to {self.base_url}: {err}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise ServerError(response.status_code, message)
        return response.json() if response.content else {}

    def job_path(self, job_id: str) -> str:
        return f"{self.prefix}/tuningJobs/{job_id.rsplit('/', 1)[-1]}"

    # --- files and jobs -------------------------------------------------------------------
    def upload(self, path: Path, purpose: str = "fine-tune") -> dict:
        with path.open("rb") as handle:
            return self._call(
                "POST", "/v1/files", files={"file": (path.name, handle)}, data={"purpose": purpose}
            )

    def create_job(self, body: dict) -> dict:
        return self._call("POST", f"{self.prefix}/tuningJobs", json=body)

    def get_job(self, job_id: str) -> dict:
        return self._call("GET", self.job_path(job_id))

    def list_jobs(self, page_size: int = 50, state: str | None = None) -> list[dict]:
        params: dict[str, Any] = {"pageSize": page_size}
        if state:
            params["filter"] = f"state={state}"
        return self._call("GET", f"{self.prefix}/tuningJobs", params=params).get("tuningJobs", [])

    def action(self, job_id: str, verb: str) -> dict:
        return self._call("POST", f"{self.job_path(job_id)}:{verb}")

    def events(self, job_id: str) -> list[dict]:
        """Every event of the job, oldest first (following the pages)."""
        events, params = [], {"pageSize": 1000}
        while True:
            page = self._call("GET", f"{self.job_path(job_id)}/events", params=params)
            events += page.get("events", [])
            if not page.get("nextPageToken"):
                return events
            params["pageToken"] = page["nextPageToken"]

    def metrics(self, job_id: str) -> dict:
        return self._call("GET", f"{self.job_path(job_id)}/metrics")

    def close(self) -> None:
        self.http.close()


def local_key(settings: Settings) -> str | None:
    path = storage_for(settings).local_key_path
    return path.read_text().strip() if path.exists() else None


def is_loopback(server: str) -> bool:
    """Whether the server's URL names this machine (localhost, 127.0.0.0/8 or ::1)."""
    host = urlsplit(server if "://" in server else f"http://{server}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_key(settings: Settings, server: str) -> str:
    """TUNEFORGE_API_KEY, else, for a server on this machine only, the local data dir's key:
    it must never be sent to another machine."""
    if settings.api_key:
        return settings.api_key
    key = local_key(settings) if is_loopback(server) else None
    if not key:
        raise TuneforgeError(
            f"no API key for {server}: set TUNEFORGE_API_KEY to a key of that server "
            "(the local data dir's key is used only for a server on this machine)"
        )
    return key


def check_reachable(server: str, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Fail at once, in one line, when no tuneforge server answers at ``server``: before any
    local work (validating a dataset) is spent on a command that cannot reach it."""
    try:
        response = httpx.get(server.rstrip("/") + "/healthz", timeout=timeout_s)
    except httpx.TransportError as err:
        raise TuneforgeError(
            f"no tuneforge server answers at {server} ({type(err).__name__}: {err}); "
            "start one with `tuneforge serve`, or leave out --server to work locally"
        ) from None
    if response.status_code != 200:
        raise TuneforgeError(
            f"{server} answered HTTP {response.status_code} to /healthz: not a tuneforge server?"
        )


@contextmanager
def connect(server: str | None = None, *, run_jobs: bool = False) -> Iterator[Client]:
    """A client of ``server``, or of an app started in this process (running queued jobs when
    ``run_jobs``)."""
    settings = get_settings()
    server = server or settings.server
    if server:
        key = server_key(settings, server)  # refused before anything is sent anywhere
        check_reachable(server)
        client = Client(server, key)
        try:
            yield client
        finally:
            client.close()
        return
    if run_jobs:  # uploads stream and requests time out as over any network
        with embedded_server(settings) as (url, key):
            client = Client(url, key)
            try:
                yield client
            finally:
                client.close()
        return
    with embedded_app(settings) as (http, key):
        client = Client(str(http.base_url), key, http=http)
        try:
            yield client
        finally:
            client.close()


@contextmanager
def embedded_app(settings: Settings) -> Iterator[tuple[httpx.Client, str]]:
    """The app on the local data dir, in this process, with an HTTP client that speaks to it
    without a socket, for the commands that read or change a job and end: the requests and
    responses are the ones a server would see, and listing jobs does not pay for starting and
    stopping a server. Starlette's TestClient is the maintained synchronous ASGI client; it
    holds a request body in memory and has no timeout, so ``tune`` uses
    :func:`embedded_server`."""
    from starlette.testclient import TestClient

    from tuneforge.api.app import create_app

    app = create_app(settings, run_scheduler=False)
    key, _ = app.state.service.keys.ensure_local()
    with TestClient(app, base_url="http://tuneforge.local", raise_server_exceptions=False) as http:
        yield http, key


@contextmanager
def embedded_server(settings: Settings) -> Iterator[tuple[str, str]]:
    """The app on the local data dir, with its scheduler, served on a loopback port by a
    thread of this process for as long as the block lasts."""
    import uvicorn

    from tuneforge.api.app import create_app

    app = create_app(settings, run_scheduler=True)
    key, _ = app.state.service.keys.ensure_local()
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # the main thread keeps Ctrl-C
    thread = threading.Thread(target=server.run, name="tuneforge-embedded", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise TuneforgeError("the embedded server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(timeout=30)
