"""Projects and their API keys."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tuneforge.errors import InvalidArgument
from tuneforge.store.models import ApiKey, Project
from tuneforge.store.repo_common import get_scoped, require_project
from tuneforge.store.types import utcnow

API_KEY_PREFIX = "tf-"
DISPLAY_PREFIX_CHARS = 8
MAX_API_KEY_CHARS = 256
# last_used_at is refreshed at most this often, so authenticating is not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A project id becomes part of model names (``ft:...:{project}:...``) and resource paths, so it
# may hold no ':' or '/'.
PROJECT_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def ensure_project(session: Session, project_id: str) -> Project:
    """The project with this id, created if missing (safe against a concurrent creator)."""
    if not PROJECT_ID.fullmatch(project_id):
        raise InvalidArgument(
            f"project id {project_id!r}: use 1 to 63 lowercase letters, digits and '-', "
            "starting with a letter or digit",
            "project",
        )
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(Project)
        .values(id=project_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return require_project(session, project_id)


def get_project(session: Session, project_id: str) -> Project:
    return require_project(session, project_id)


def hash_api_key(key: str) -> str:
    """SHA-256 hex of a key. Keys are 256-bit random tokens, so a fast hash is enough: there is
    no dictionary to try, and a slow password hash would only slow every request."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session, project_id: str, name: str | None = None
) -> tuple[ApiKey, str]:
    """A new key for the project: the stored row and the plaintext, which is shown once and
    never stored."""
    require_project(session, project_id)
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        project_id=project_id,
        prefix=plaintext[:DISPLAY_PREFIX_CHARS],
        secret_hash=hash_api_key(plaintext),
        name=name,
    )
    session.add(key)
    session.flush()
    return key, plaintext


def authenticate(session: Session, key: str) -> str | None:
    """The project id of a valid, unrevoked key, or None."""
    if not key or len(key) > MAX_API_KEY_CHARS:
        return None
    digest = hash_api_key(key)
    # Look up by the non-secret prefix, then compare hashes in constant time.
    candidates = session.scalars(
        select(ApiKey).where(ApiKey.prefix == key[:DISPLAY_PREFIX_CHARS])
    ).all()
    match: ApiKey | None = None
    for candidate in candidates:
        if hmac.compare_digest(candidate.secret_hash, digest):
            match = candidate
    if match is None or match.revoked_at is not None:
        return None
    now = utcnow()
    if match.last_used_at is None or now - match.last_used_at >= LAST_USED_RESOLUTION:
        match.last_used_at = now
        session.flush()
    return match.project_id


def list_api_keys(
    session: Session, project_id: str, *, include_revoked: bool = True
) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.project_id == project_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id.desc())))


def revoke_api_key(session: Session, project_id: str, key_id: str) -> ApiKey:
    """Revoke a key of this project; revoking it again changes nothing."""
    key: ApiKey = get_scoped(session, ApiKey, project_id, key_id, "API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key
