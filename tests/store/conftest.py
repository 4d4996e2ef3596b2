"""Store fixtures: ``db`` runs each test on SQLite and on PostgreSQL.

PostgreSQL tests need ``TUNEFORGE_TEST_POSTGRES_URL``; without it they are skipped, unless
``TUNEFORGE_REQUIRE_POSTGRES=1``, which makes them fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from tuneforge.store import repo
from tuneforge.store.db import Database
from tuneforge.store.testing import (
    OTHER_TEST_PROJECT,
    TEST_PROJECT,
    PostgresUnavailable,
    clear_tables,
    empty_database_url,
    migrated_database,
)

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def skip_or_fail(err: PostgresUnavailable) -> None:
    if err.required:
        pytest.fail(str(err), pytrace=False)
    pytest.skip(str(err))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def migrated_db(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """One migrated database per backend for the whole session."""
    try:
        with migrated_database(backend, tmp_path_factory.mktemp(f"store-{backend}")) as database:
            yield database
    except PostgresUnavailable as err:
        skip_or_fail(err)


@pytest.fixture
def db(migrated_db: Database) -> Iterator[Database]:
    """The backend's database, emptied after each test."""
    yield migrated_db
    clear_tables(migrated_db)


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    """A session in which TEST_PROJECT and OTHER_TEST_PROJECT exist; commits at the end."""
    with db.session() as session:
        repo.ensure_project(session, TEST_PROJECT)
        repo.ensure_project(session, OTHER_TEST_PROJECT)
        yield session


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new database with no schema at all."""
    try:
        with empty_database_url(request.param, tmp_path) as url:
            yield url
    except PostgresUnavailable as err:
        skip_or_fail(err)
