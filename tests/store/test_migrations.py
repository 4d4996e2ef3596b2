"""Migrations create exactly the models' schema, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from tuneforge.errors import InvalidArgument
from tuneforge.store.db import (
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
    assert script.get_heads() == ["0003"]


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
