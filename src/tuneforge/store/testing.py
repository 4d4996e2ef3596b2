"""Test support: migrated databases on SQLite and on PostgreSQL, for any test suite.

pytest-free on purpose; a conftest turns ``PostgresUnavailable`` into a skip or a failure::

    try:
        url = postgres_server_url()
    except PostgresUnavailable as err:
        (pytest.fail if err.required else pytest.skip)(str(err))
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from tuneforge.store.db import Database, normalize_url, upgrade
from tuneforge.store.models import Base

POSTGRES_URL_ENV = "TUNEFORGE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "TUNEFORGE_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgres")
# Two projects for tests of project scoping.
TEST_PROJECT = "proj-a"
OTHER_TEST_PROJECT = "proj-b"


class PostgresUnavailable(Exception):
    """No PostgreSQL server for the tests. ``required``: the run asked for one, so fail."""

    def __init__(self, message: str, required: bool) -> None:
        super().__init__(message)
        self.required = required


def postgres_server_url() -> str:
    """The URL of the test PostgreSQL server (env ``TUNEFORGE_TEST_POSTGRES_URL``), checked
    to accept connections."""
    required = os.environ.get(REQUIRE_POSTGRES_ENV) == "1"
    url = os.environ.get(POSTGRES_URL_ENV)
    problem = None
    if not url:
        problem = f"{POSTGRES_URL_ENV} is not set"
    else:
        engine = create_engine(normalize_url(url), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as err:
            shown = engine.url.render_as_string(hide_password=True)
            cause = str(getattr(err, "orig", None) or err).splitlines()[0]
            problem = f"cannot connect to {shown}: {cause}"
        finally:
            engine.dispose()
    if problem is None:
        return url
    if required:
        problem = f"PostgreSQL is required ({REQUIRE_POSTGRES_ENV}=1) but unreachable: {problem}"
    raise PostgresUnavailable(problem, required)


@contextmanager
def temporary_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database ``tf_test_<random>`` on the server; dropped afterwards (even with
    connections still open). Yields its URL."""
    server = normalize_url(server_url)
    name = f"tf_test_{secrets.token_hex(6)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def empty_database_url(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a new, empty database: a file in ``workdir`` for ``"sqlite"``, a temporary
    database for ``"postgres"`` (may raise PostgresUnavailable)."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'tf-test-{secrets.token_hex(4)}.db'}"
    elif backend == "postgres":
        with temporary_postgres_database(postgres_server_url()) as url:
            yield url
    else:
        raise ValueError(f"unknown test backend {backend!r}; use one of {BACKENDS}")


@contextmanager
def migrated_database(backend: str, workdir: Path) -> Iterator[Database]:
    """A new database of ``backend`` with the schema at head, open; disposed afterwards."""
    with empty_database_url(backend, workdir) as url:
        upgrade(url)
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()


def clear_tables(database: Database) -> None:
    """Delete every row, so tests sharing one migrated database start empty."""
    tables = list(reversed(Base.metadata.sorted_tables))
    with database.engine.begin() as connection:
        if database.backend == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())
