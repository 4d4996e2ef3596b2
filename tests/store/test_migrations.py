"""Migrations create exactly the models' schema, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tuneforge.errors import InvalidArgument
from tuneforge.store.db import (
    SCHEMA_REVISION,
    Database,
    alembic_config,
    downgrade,
    make_engine,
    normalize_url,
    open_database,
    upgrade,
)
from tuneforge.store.models import Base


def schema_differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_exactly_the_models_schema(empty_url: str) -> None:
    upgrade(empty_url)
    assert schema_differences(empty_url) == []
    assert table_names(empty_url) == set(Base.metadata.tables) | {"alembic_version"}


def test_session_database_matches_the_models(db: Database) -> None:
    assert schema_differences(db.url.render_as_string(hide_password=False)) == []


def test_upgrade_is_idempotent_and_downgrade_undoes_it(empty_url: str) -> None:
    upgrade(empty_url)
    upgrade(empty_url)
    downgrade(empty_url, "base")
    assert table_names(empty_url) == {"alembic_version"}
    upgrade(empty_url)
    assert schema_differences(empty_url) == []


def test_there_is_one_head_the_latest_revision() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == ["0005"] == [SCHEMA_REVISION]
    assert [r.revision for r in script.walk_revisions()] == ["0005", "0004", "0003", "0002", "0001"]


def insert_jobs(url: str, *rows: dict) -> None:
    """Job rows written with plain SQL, as a database at an older revision holds them."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO projects (id, created_at) VALUES ('p', :now)"),
                {"now": NOW},
            )
            for row in rows:
                connection.execute(sa.insert(job_table(connection)).values({**JOB, **row}))
                connection.execute(
                    sa.text(
                        "INSERT INTO events (job_id, created_at, level, type, message)"
                        " VALUES (:job, :now, 'info', 'message', 'created')"
                    ),
                    {"job": row["id"], "now": NOW},
                )
    finally:
        engine.dispose()


def job_table(connection: sa.Connection) -> sa.Table:
    return sa.Table("tuning_jobs", sa.MetaData(), autoload_with=connection)


def event_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.text("SELECT count(*) FROM events"))
    finally:
        engine.dispose()


def job_columns(url: str, *names: str) -> dict[str, tuple]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            table = job_table(connection)
            rows = connection.execute(sa.select(table.c.id, *(table.c[n] for n in names)))
            return {row[0]: tuple(row[1:]) for row in rows}
    finally:
        engine.dispose()


NOW = datetime(2026, 12, 1, tzinfo=UTC)
JOB = {
    "project_id": "p",
    "base_model": "tiny",
    "method": "sft",
    "mode": "lora",
    "hyperparameters": {},
    "training_file": "f",
    "metadata": {},
    "completed_steps": 0,
    "completed_epochs": 0,
    "attempt_count": 1,
    "created_at": NOW,
    "updated_at": NOW,
}


def test_runner_pids_of_active_jobs_become_subprocess_handles_and_back(empty_url: str) -> None:
    """An upgrade in place keeps what recovery needs: the new scheduler can tell at once that
    the stopped server's runners are gone."""
    upgrade(empty_url, "0001")
    running, cancelling = "JOB_STATE_RUNNING", "JOB_STATE_CANCELLING"
    insert_jobs(
        empty_url,
        {"id": "started", "state": running, "worker_id": "host-a:41", "runner_pid": 4242},
        {"id": "claimed", "state": running, "worker_id": "host-a:41"},
        {"id": "stopping", "state": cancelling, "worker_id": "host-b:7", "runner_pid": 8},
        {"id": "custom", "state": running, "worker_id": "worker-0", "runner_pid": 9},
        {"id": "queued", "state": "JOB_STATE_QUEUED"},
        {"id": "done", "state": "JOB_STATE_SUCCEEDED", "worker_id": "host-a:41"},
    )
    upgrade(empty_url)
    assert schema_differences(empty_url) == []
    assert event_count(empty_url) == 6  # SQLite rebuilds the table: nothing cascades
    assert job_columns(empty_url, "runner_handle") == {
        "started": ("subprocess://host-a/41/4242",),
        "claimed": ("subprocess://host-a/41",),
        "stopping": ("subprocess://host-b/7/8",),
        "custom": (None,),
        "queued": (None,),
        "done": (None,),
    }

    downgrade(empty_url, "0001")
    assert event_count(empty_url) == 6
    assert job_columns(empty_url, "worker_id", "runner_pid") == {
        "started": ("host-a:41", 4242),
        "claimed": ("host-a:41", None),
        "stopping": ("host-b:7", 8),
        "custom": ("worker-0", None),  # the one pid no handle could carry
        "queued": (None, None),
        "done": ("host-a:41", None),
    }
    upgrade(empty_url)
    assert job_columns(empty_url, "runner_handle")["started"] == ("subprocess://host-a/41/4242",)


def test_sqlite_is_wal_with_foreign_keys_under_a_created_directory(tmp_path: Path) -> None:
    path = tmp_path / "data" / "dir" / "tuneforge.db"
    database = open_database(f"sqlite:///{path}")
    try:
        assert path.exists()
        with database.engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        database.dispose()


def test_plain_postgresql_urls_mean_psycopg_3() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_other_databases_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        make_engine("mysql://u@h/db")


@pytest.mark.timeout(60)  # without the migration lock, the starts deadlock
def test_processes_starting_together_on_a_new_database_migrate_it_once(empty_url: str):
    """``serve``, ``worker`` and the CLI may all start at once on an empty database."""
    import threading

    from tuneforge.store.db import upgrade

    errors: list[BaseException] = []

    def start() -> None:
        try:
            upgrade(empty_url)
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
