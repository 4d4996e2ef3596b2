"""The store's fixtures (``db``, ``session``: each test on SQLite and on PostgreSQL)."""

from tests.store.conftest import backend, db, migrated_db, session

__all__ = ["backend", "db", "migrated_db", "session"]
