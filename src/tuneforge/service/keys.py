"""API keys, each scoped to one project; the local CLI keeps project default's where the
storage says (LocalStorage: in the data dir)."""

from __future__ import annotations

from typing import Any

from tuneforge.config import Settings
from tuneforge.storage import storage_for
from tuneforge.store import repo
from tuneforge.store.db import Database

DEFAULT_PROJECT = "default"


class KeyService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def authenticate(self, key: str | None) -> str | None:
        """The project of a valid, unrevoked key, else None."""
        if not key:
            return None
        with self.db.session() as s:
            return repo.authenticate(s, key)

    def create(self, project_id: str, name: str | None = None) -> tuple[Any, str]:
        with self.db.session() as s:
            repo.ensure_project(s, project_id)
            return repo.create_api_key(s, project_id, name)

    def list(self, project_id: str) -> list[Any]:
        with self.db.session() as s:
            return list(repo.list_api_keys(s, project_id))

    def revoke(self, project_id: str, key_id: str) -> Any:
        with self.db.session() as s:
            return repo.revoke_api_key(s, project_id, key_id)

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
