"""API keys, each scoped to one project; the local CLI keeps project default's where the
storage says (LocalStorage: in the data dir)."""

from __future__ import annotations

import time
from typing import Any

from tuneforge.config import Settings
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database

DEFAULT_PROJECT = "default"


# How long a key found valid is trusted without asking the database again. Revoking through
# this process takes effect at once; a revocation by another process (another server on the
# same database, or the CLI's in-process app) within this many seconds.
VALID_KEY_SECONDS = 2.0


class KeyService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        # hash of a key found valid -> (its project, until when that is trusted)
        self._valid: dict[str, tuple[str, float]] = {}

    def authenticate(self, key: str | None) -> str | None:
        """The project of a valid, unrevoked key, else None."""
        if not key:
            return None
        if (project_id := self.recently_valid(key)) is not None:
            return project_id
        with self.db.session() as s:
            project_id = repo.authenticate(s, key)
        if project_id is not None:
            now = time.monotonic()
            self._valid = {k: v for k, v in self._valid.items() if v[1] > now}
            self._valid[repo.hash_api_key(key)] = (project_id, now + VALID_KEY_SECONDS)
        return project_id

    def recently_valid(self, key: str) -> str | None:
        """The project of a key found valid in the last VALID_KEY_SECONDS, without asking the
        database (a request's authentication then needs no thread and no query); else None."""
        found = self._valid.get(repo.hash_api_key(key))
        return found[0] if found and found[1] > time.monotonic() else None

    def create(self, project_id: str, name: str | None = None) -> tuple[Any, str]:
        with self.db.session() as s:
            repo.ensure_project(s, project_id)
            return repo.create_api_key(s, project_id, name)

    def list(self, project_id: str) -> list[Any]:
        with self.db.session() as s:
            return list(repo.list_api_keys(s, project_id))

    def revoke(self, project_id: str, key_id: str) -> Any:
        with self.db.session() as s:
            revoked = repo.revoke_api_key(s, project_id, key_id)
        self._valid = {k: v for k, v in self._valid.items() if k != revoked.secret_hash}
        return revoked

    def ensure_local(self) -> tuple[str, bool]:
        """The key of project ``default`` kept at the storage's local key path (mode 0600) for
        the local CLI; made on first use. Returns the key and whether it was just created."""
        path = storage_for(self.settings).local_key_path
        if path.exists():
            key = path.read_text().strip()
            if self.authenticate(key):
                return key, False
        _, key = self.create(DEFAULT_PROJECT, "local")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(key + "\n")
        return key, True
