"""The read routes under a bounded loopback load: `tuneforge serve` against a bare FastAPI app
that answers the same paths with a fixed small JSON, side by side.

    .venv/bin/python benchmarks/api_load.py                    # about two minutes
    .venv/bin/python benchmarks/api_load.py --full-metadata    # every job's metadata at its limits
    .venv/bin/python benchmarks/api_load.py --database-url postgresql+psycopg://...

Both servers are started the same way (uvicorn, one process, on a free loopback port). The
tuneforge one is `tuneforge serve --no-scheduler` on a fresh data dir (SQLite unless
``--database-url``), holding files uploaded and jobs created through its API, so they stay
queued. Each route then takes ``--requests`` calls over ``--concurrency`` keep-alive
connections from one asyncio client; "mixed" takes turns over list jobs, get job and list files.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h11
import httpx
import psutil  # accelerate's dependency, so installed

TINY = "tuneforge/tiny-chat"
PARENT = "/v1/projects/bench/locations/us-central1"
# OpenAI's and Vertex's limits for metadata and labels, as tuneforge enforces them.
METADATA_PAIRS, METADATA_KEY, METADATA_VALUE = 64, 64, 512


def routes(job_id: str) -> dict[str, list[str]]:
    """Each measured route: the paths its requests take turns over."""
    openai_list, openai_get = "/v1/fine_tuning/jobs", f"/v1/fine_tuning/jobs/{job_id}"
    return {
        "OpenAI list jobs": [openai_list],
        "OpenAI get job": [openai_get],
        "list files": ["/v1/files"],
        "Vertex list tuningJobs": [f"{PARENT}/tuningJobs"],
        "Vertex get tuningJob": [f"{PARENT}/tuningJobs/{job_id}"],
        "mixed (list jobs, get job, list files)": [openai_list, openai_get, "/v1/files"],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: psutil.Process

    def cpu_seconds(self) -> float:
        """The CPU time the server has used: on a shared machine, steadier than wall time."""
        times = self.process.cpu_times()
        return times.user + times.system


@contextmanager
def server(argv: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[Server]:
    """A server process on ``port``, ready once /healthz answers; stopped on exit."""
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield Server(url, psutil.Process(process.pid))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def bare_app():
    """The floor: the same paths, each answering a fixed small JSON without any work."""
    from fastapi import FastAPI

    app = FastAPI()
    fixed = {"object": "list", "data": [], "has_more": False}

    async def answer() -> dict:
        return fixed

    for path in ("/healthz", *{p for paths in routes("{job_id}").values() for p in paths}):
        app.add_api_route(path, answer, methods=["GET"])
    return app


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="warning")  # as serve does


def populate(url: str, key: str, root: Path, files: int, jobs: int, full_metadata: bool) -> str:
    """Upload ``files`` datasets and create ``jobs`` jobs through the API; the last job's id."""
    from tuneforge.data.samples import write_task

    train = write_task(root / "task", "sentiment")["train"]
    content = train.read_bytes()
    pairs = METADATA_PAIRS if full_metadata else 4
    value_chars = METADATA_VALUE if full_metadata else 16
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        file_ids = []
        for _ in range(files):
            uploaded = c.post("/v1/files", files={"file": (train.name, content)},
                              data={"purpose": "fine-tune"})  # fmt: skip
            uploaded.raise_for_status()
            file_ids.append(uploaded.json()["id"])
        job_id = ""
        for number in range(jobs):
            metadata = {
                f"k{pair:02d}".ljust(METADATA_KEY if full_metadata else 3, "k"): f"{number}-".ljust(
                    value_chars, "v"
                )
                for pair in range(pairs)
            }
            created = c.post("/v1/fine_tuning/jobs", json={
                "model": TINY, "training_file": file_ids[number % files], "metadata": metadata,
            })  # fmt: skip
            created.raise_for_status()
            job_id = created.json()["id"]
    return job_id


@dataclass
class Result:
    requests: int
    seconds: float
    latencies: list[float]
    failures: int
    response_bytes: int  # the median response body
    server_cpu_seconds: float = 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu_seconds / self.requests * 1000

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def load(url: str, key: str, paths: list[str], requests: int, concurrency: int) -> Result:
    """``requests`` GETs over ``concurrency`` keep-alive connections, taking turns over
    ``paths``. HTTP/1.1 through h11 on asyncio streams: httpx's async client spends about 2.7 ms
    of CPU on a request here, which would make the client the bottleneck; this spends 0.2 ms."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    sizes: list[int] = []
    failures = 0
    next_request = 0
    headers = [("Host", f"{host}:{port}"), ("Authorization", f"Bearer {key}")]

    async def connection() -> None:
        nonlocal next_request, failures
        reader, writer = await asyncio.open_connection(host, int(port))
        http = h11.Connection(h11.CLIENT)
        while next_request < requests:
            path = paths[next_request % len(paths)]
            next_request += 1
            started = time.perf_counter()
            request = h11.Request(method="GET", target=path, headers=headers)
            writer.write(http.send(request) + http.send(h11.EndOfMessage()))
            status, size = 0, 0
            while not isinstance(event := http.next_event(), h11.EndOfMessage):
                if event is h11.NEED_DATA:
                    http.receive_data(await reader.read(1 << 16))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    size += len(event.data)
            latencies.append(time.perf_counter() - started)
            sizes.append(size)
            failures += status != 200
            http.start_next_cycle()
        writer.close()
        await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return Result(requests, seconds, latencies, failures, int(statistics.median(sizes)))


def measure(target: Server, key: str, job_id: str, args: argparse.Namespace) -> dict[str, Result]:
    results = {}
    for name, paths in routes(job_id).items():
        if args.only.lower() in name.lower():
            cpu = target.cpu_seconds()
            result = asyncio.run(load(target.url, key, paths, args.requests, args.concurrency))
            result.server_cpu_seconds = target.cpu_seconds() - cpu
            results[name] = result
    return results


def report(tuneforge: dict[str, Result], bare: dict[str, Result]) -> None:
    """One row per route: tuneforge's figures, the bare app's, and tuneforge / bare."""
    print(f"{'':<40} {'tuneforge':^38} | {'bare FastAPI':^28} | {'tuneforge / bare':^17}")
    columns = f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>6}"
    print(f"{'route':<40} {columns} {'bytes':>8} | {columns} | {'req/s':>8} {'cpu':>8}")
    for name, ours in tuneforge.items():
        floor = bare[name]
        cells = [
            f"{r.per_second:>7.0f} {r.percentile(50) * 1000:>7.1f} "
            f"{r.percentile(99) * 1000:>7.1f} {r.cpu_ms_per_request:>6.2f}"
            for r in (ours, floor)
        ]
        print(
            f"{name:<40} {cells[0]} {ours.response_bytes:>8} | {cells[1]} | "
            f"{ours.per_second / floor.per_second:>8.2f} "
            f"{ours.cpu_ms_per_request / floor.cpu_ms_per_request:>8.1f}"
        )
        if ours.failures or floor.failures:
            print(f"  {ours.failures} tuneforge and {floor.failures} bare requests failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per route")
    parser.add_argument("--concurrency", type=int, default=75)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--full-metadata", action="store_true",
                        help="each job's metadata at the limits: 64 pairs, 64-char keys, "
                        "512-char values")  # fmt: skip
    parser.add_argument("--only", default="", help="only the routes whose name holds this")
    parser.add_argument("--database-url", help="default: SQLite in the fresh data dir")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        env = {**os.environ, "TUNEFORGE_DATA_DIR": str(root / "data"), "HF_HUB_OFFLINE": "1"}
        env.pop("TUNEFORGE_SERVER", None)
        if args.database_url:
            env["TUNEFORGE_DATABASE_URL"] = args.database_url
        serve = [sys.executable, "-m", "tuneforge.cli.main", "serve", "--no-scheduler"]
        port = free_port()
        with server([*serve, "--port", str(port)], env, port, root / "serve.log") as tuneforge:
            key = (root / "data" / "api_key").read_text().strip()
            started = time.perf_counter()
            job_id = populate(tuneforge.url, key, root, args.files, args.jobs, args.full_metadata)
            print(f"{args.files} files and {args.jobs} jobs created through the API in "
                  f"{time.perf_counter() - started:.0f} s; {args.requests} requests per route, "
                  f"{args.concurrency} concurrent")  # fmt: skip
            ours = measure(tuneforge, key, job_id, args)
        port = free_port()
        bare_argv = [sys.executable, __file__, "--serve-bare", str(port)]
        with server(bare_argv, env, port, root / "bare.log") as floor:
            bare = measure(floor, "unused", job_id, args)
    report(ours, bare)


if __name__ == "__main__":
    main()
