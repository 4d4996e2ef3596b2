"""The read routes with many jobs: a page costs the same queries for 2 jobs as for 20, a page is
bounded in size whatever the metadata, a key is trusted for a moment without asking the
database, and a read builds no ORM objects and no new SQL statements, in one trip to a read
thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio.to_thread
import pytest
from sqlalchemy import event
from sqlalchemy.sql.cache_key import HasCacheKey

from tests.api.conftest import Api
from tuneforge.service import keys as key_service
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.models import File, TunedModel, TuningJob
from tuneforge.store.states import JobState

pytestmark = pytest.mark.both_databases

TINY = "tuneforge/tiny-chat"
OPENAI_JOBS = "/v1/fine_tuning/jobs"
VERTEX_JOBS = "/v1/projects/p/locations/us-central1/tuningJobs"


def new_job(api: Api, project: str, **fields) -> str:
    with api.service.db.session() as s:
        return repo.create_job(s, project, base_model=TINY, training_file="file-x", **fields).id


def succeeded_job(api: Api, project: str) -> str:
    """A job as its runner leaves it: a checkpoint, a tuned model, metrics.csv, SUCCEEDED.
    Call it while no other job is queued (it claims the oldest)."""
    job_id = new_job(api, project)
    with api.service.db.session() as s:
        assert repo.claim_next_job(s, "test-worker", capacity=100).id == job_id
        repo.add_checkpoint(s, job_id, epoch=1, step=10, path="/c", is_default=True)
        repo.create_tuned_model(s, job_id)
        repo.finish_job(s, job_id, JobState.SUCCEEDED)
    metrics = storage_for(api.service.settings).job_dir(job_id) / "metrics.csv"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text("step,loss\n10,0.5\n")
    return job_id


@contextmanager
def statements(api: Api) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(api.service.db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(api.service.db.engine, "before_cursor_execute", record)


def test_a_page_of_jobs_costs_the_same_queries_for_2_jobs_as_for_20(api: Api):
    few = {succeeded_job(api, "default")}
    many = {succeeded_job(api, "other") for _ in range(5)}
    few |= {new_job(api, "default")}
    many |= {new_job(api, "other") for _ in range(15)}
    for url in (OPENAI_JOBS, VERTEX_JOBS):
        counts = []
        for key, shown in ((api.key, few), (api.other_key, many)):
            first = api.client.get(url, headers=api.headers(key))  # registers result files
            assert first.status_code == 200, first.text
            with statements(api) as sent:
                body = api.client.get(url, headers=api.headers(key)).json()
            counts.append(len(sent))
            jobs = body.get("data") or body.get("tuningJobs")
            assert {job.get("id") or job["name"].rsplit("/", 1)[1] for job in jobs} == shown
            if url == OPENAI_JOBS:
                finished = [job for job in jobs if job["status"] == "succeeded"]
                assert all(job["fine_tuned_model"] and len(job["result_files"]) == 1
                           for job in finished)  # fmt: skip
                assert len(finished) == (1 if key == api.key else 5)
            else:
                tuned = [job["tunedModel"] for job in jobs if "tunedModel" in job]
                assert [len(model["checkpoints"]) for model in tuned] == [1] * len(tuned)
        assert counts[0] == counts[1], (url, counts)


def test_a_list_of_jobs_at_their_metadata_limits_stays_bounded(api: Api):
    """However large a limit is asked for, a page holds at most 100 jobs: with every job's
    metadata at its limits (64 pairs of 64 + 512 characters), under 4 MiB."""
    metadata = {f"k{pair:02d}".ljust(64, "k"): "v" * 512 for pair in range(64)}
    for _ in range(repo.MAX_JOBS_PER_PAGE + 5):
        new_job(api, "default", metadata=metadata)
    response = api.client.get(OPENAI_JOBS, params={"limit": 1000}, headers=api.headers())
    page = response.json()
    assert len(page["data"]) == repo.MAX_JOBS_PER_PAGE and page["has_more"] is True
    assert page["data"][0]["metadata"] == metadata
    assert len(response.content) < 4 << 20
    rest = api.client.get(
        OPENAI_JOBS, params={"limit": 1000, "after": page["data"][-1]["id"]}, headers=api.headers()
    ).json()
    assert len(rest["data"]) == 5 and rest["has_more"] is False

    vertex = api.client.get(VERTEX_JOBS, params={"pageSize": 1000}, headers=api.headers())
    assert len(vertex.json()["tuningJobs"]) == repo.MAX_JOBS_PER_PAGE
    assert vertex.json()["nextPageToken"] and len(vertex.content) < 4 << 20


def test_a_key_revoked_elsewhere_stops_working_within_the_trusted_window(api: Api, monkeypatch):
    """Revoking through this server takes effect at once (tests/api/test_auth.py); a revocation
    written by another process, within VALID_KEY_SECONDS."""
    monkeypatch.setattr(key_service, "VALID_KEY_SECONDS", 0.5)
    row, key = api.service.keys.create("default", "revoked elsewhere")
    assert api.client.get(OPENAI_JOBS, headers=api.headers(key)).status_code == 200
    with api.service.db.session() as s:  # as another process would, past this KeyService
        repo.revoke_api_key(s, "default", row.id)
    time.sleep(0.6)
    assert api.client.get(OPENAI_JOBS, headers=api.headers(key)).status_code == 401
    assert api.client.get(OPENAI_JOBS, headers=api.headers()).status_code == 200


def read_routes(api: Api, key: str, job_id: str) -> list[str]:
    """The read routes' paths for ``key``'s project, whose job ``job_id`` is not its newest."""
    uploaded = api.client.post(
        "/v1/files",
        files={"file": ("train.jsonl", b'{"prompt": "a", "completion": "b"}\n')},
        data={"purpose": "fine-tune"},
        headers=api.headers(key),
    ).json()
    assert uploaded["status"] in ("processed", "error")  # validated: no ORM work after this
    return [
        OPENAI_JOBS,
        f"{OPENAI_JOBS}?limit=5&after={job_id}",
        f"{OPENAI_JOBS}/{job_id}",
        "/v1/files",
        f"/v1/files?purpose=fine-tune&after={uploaded['id']}",
        VERTEX_JOBS,
        f"{VERTEX_JOBS}?filter=state%3DJOB_STATE_QUEUED",
        f"{VERTEX_JOBS}/{job_id}",
    ]


def test_the_read_routes_load_rows_without_the_orm(api: Api, monkeypatch):
    """Pages of jobs and files and a read of a job are records read through SQLAlchemy Core,
    on a connection without an ORM session: loading them as ORM objects cost twice the CPU,
    and a session's begin, commit and close more than a read of one job (benchmarks/README.md,
    api_load.py)."""
    finished = succeeded_job(api, "default")
    queued = [new_job(api, "default") for _ in range(3)]
    paths = [*read_routes(api, api.key, queued[1]), f"{OPENAI_JOBS}/{finished}"]
    for path in paths:  # the first showing of the finished job registers its result file
        assert api.client.get(path, headers=api.headers()).status_code == 200, path
    loaded: list[object] = []

    def count(target, _context) -> None:
        loaded.append(target)

    sessions: list[object] = []
    open_session = api.service.db.session

    def counted_session():
        sessions.append(object())
        return open_session()

    monkeypatch.setattr(api.service.db, "session", counted_session)
    for model in (TuningJob, TunedModel, File):
        event.listen(model, "load", count)
    try:
        for path in paths:
            response = api.client.get(path, headers=api.headers())
            assert response.status_code == 200, (path, response.text)
            assert loaded == [] and sessions == [], path
    finally:
        for model in (TuningJob, TunedModel, File):
            event.remove(model, "load", count)
    job = api.client.get(f"{OPENAI_JOBS}/{finished}", headers=api.headers()).json()
    assert job["fine_tuned_model"] and len(job["result_files"]) == 1


def test_a_read_builds_no_new_sql_statement(api: Api, monkeypatch):
    """The read routes' statements are built once, with bound parameters, and serve every
    project: building one and computing its cache key cost as much CPU as running it."""
    monkeypatch.setattr(key_service, "VALID_KEY_SECONDS", 600.0)  # no key lookups meanwhile
    paths = {}
    for key, project in ((api.key, "default"), (api.other_key, "other")):
        queued = [new_job(api, project) for _ in range(3)]
        paths[key] = read_routes(api, key, queued[1])
    for path in paths[api.key]:  # builds each statement, once
        assert api.client.get(path, headers=api.headers()).status_code == 200, path
    assert api.client.get(OPENAI_JOBS, headers=api.headers(api.other_key)).status_code == 200
    keyed: list[object] = []
    compute = HasCacheKey._generate_cache_key

    def counted(statement):
        keyed.append(statement)
        return compute(statement)

    monkeypatch.setattr(HasCacheKey, "_generate_cache_key", counted)
    for path in paths[api.other_key]:
        response = api.client.get(path, headers=api.headers(api.other_key))
        assert response.status_code == 200, (path, response.text)
        assert keyed == [], path


def test_a_read_takes_one_trip_to_a_read_thread_and_none_through_anyio(api: Api, monkeypatch):
    """anyio's trip to a worker thread cost more than twice the CPU of the standard library
    executor's under load (benchmarks/README.md, api_load.py)."""
    monkeypatch.setattr(key_service, "VALID_KEY_SECONDS", 600.0)  # no key lookups meanwhile
    queued = [new_job(api, "default") for _ in range(3)]
    paths = read_routes(api, api.key, queued[1])
    anyio_trips: list[object] = []
    real_trip = anyio.to_thread.run_sync

    async def counted_trip(function, *args, **kwargs):
        anyio_trips.append(function)
        return await real_trip(function, *args, **kwargs)

    reads: list[str] = []
    for service, name in ((api.service.jobs, "list"), (api.service.jobs, "get"),
                          (api.service.files, "list")):  # fmt: skip
        read = getattr(service, name)

        def recorded(*args, read=read, **kwargs):
            reads.append(threading.current_thread().name)
            return read(*args, **kwargs)

        monkeypatch.setattr(service, name, recorded)
    monkeypatch.setattr(anyio.to_thread, "run_sync", counted_trip)
    for path in paths:
        assert api.client.get(path, headers=api.headers()).status_code == 200, path
    assert anyio_trips == []
    assert len(reads) == len(paths)
    assert all(name.startswith("tuneforge-read") for name in reads), reads
