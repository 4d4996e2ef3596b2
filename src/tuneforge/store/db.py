"""Engines, sessions and schema migrations for SQLite (the default) and PostgreSQL."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.errors import InvalidArgument
from tuneforge.store.types import json_from_text

if TYPE_CHECKING:  # alembic (with mako and pygments) loads only when a schema must change
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration. A database already there opens without loading alembic, which costs a
# command that only lists jobs a sixth of a second; tests/store/test_migrations.py checks that
# this is alembic's head.
SCHEMA_REVISION = "0005"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections a process may hold at once: one per thread that may run a session. The API runs
# sync routes in anyio's worker threads (40 by default), and the scheduler and its heartbeats
# add a few; fewer connections than threads would leave requests waiting on the pool.
POOL_MOST = 48
# PostgreSQL connections cost the server a process each: keep this many open between bursts.
POSTGRESQL_POOL_KEPT = 8


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL; plain ``postgresql://`` (and ``postgres://``) mean psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise InvalidArgument(
            f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://",
            param="database_url",
        )
    return parsed


def make_engine(url: str | URL, **engine_options: Any) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        pool = {"pool_size": POSTGRESQL_POOL_KEPT, "max_overflow": POOL_MOST - POSTGRESQL_POOL_KEPT}
        return create_engine(parsed, pool_pre_ping=True, **{**pool, **engine_options})

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A SQLite connection is a file handle: keep one per thread that may hold one, rather
        # than reopening (and configuring) a connection per request past the fifth.
        engine_options = {"pool_size": POOL_MOST, "max_overflow": 0, **engine_options}
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False},
        json_deserializer=json_from_text,
        **engine_options,
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers run beside the one writer; NORMAL sync is safe with WAL (a crash
        # may lose the last commits, never corrupt the file).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Rows stay readable after commit: callers hand them to other layers once the session ends.
    return sessionmaker(bind=engine, expire_on_commit=False)


class Database:
    """An engine and its sessions. ``with db.session() as s:`` commits on success, rolls back
    on an exception."""

    def __init__(self, url: str | URL, **engine_options: Any) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, **engine_options)
        self.sessionmaker = session_factory(self.engine)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads that need no ORM session (records, store/records.py): for a
        read of one job, a Session's begin, commit and close cost more than the query (0.17 ms
        of CPU in all against 0.07). Nothing is committed; the pool rolls back on return."""
        with self.engine.connect() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic's configuration, built in code: no alembic.ini is needed on disk."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


# Any constant shared by every tuneforge process: the key of PostgreSQL's advisory lock.
MIGRATION_LOCK_KEY = 0x74756E65  # "tune"


@contextmanager
def _sqlite_migration_lock(url: URL) -> Iterator[None]:
    """Processes starting together on a new SQLite file take turns: both would otherwise
    find no schema and both try to create it."""
    database = url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_alembic(url: str | URL, action: Any, revision: str) -> None:
    url = normalize_url(url)
    engine = make_engine(url)
    serialized = (
        _sqlite_migration_lock(url) if url.get_backend_name() == "sqlite" else nullcontext()
    )
    try:
        with serialized, engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held to the end of this transaction: concurrent first starts take turns, and
                # the later ones find the schema already at head.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            is_sqlite = connection.dialect.name == "sqlite"
            if is_sqlite:
                # SQLite batch migrations rebuild a table by dropping it; with foreign keys
                # on, that drop would cascade-delete the rows that refer to it.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            config = alembic_config()
            config.attributes["connection"] = connection
            action(config, revision)
            if is_sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError(f"migration to {revision} broke foreign keys; rolled back")
    finally:
        engine.dispose()


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Create or upgrade the schema of the database at ``url`` (``alembic upgrade head``)."""
    from alembic import command

    _run_alembic(url, command.upgrade, revision)


def downgrade(url: str | URL, revision: str) -> None:
    from alembic import command

    _run_alembic(url, command.downgrade, revision)


def schema_revision(database: Database) -> str | None:
    """The database's schema revision, or None for a database without one (a new one)."""
    with database.engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def open_database(url: str | URL, *, migrate: bool = True) -> Database:
    """The usual way in: upgrade the schema (unless told not to, or it is current), then
    connect."""
    database = Database(url)
    if migrate and schema_revision(database) != SCHEMA_REVISION:
        upgrade(url)
    return database
