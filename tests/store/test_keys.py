"""API keys: hashed at rest, compared in constant time, scoped to one project."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from tuneforge.errors import NotFound
from tuneforge.store import repo
from tuneforge.store.models import ApiKey
from tuneforge.store.testing import OTHER_TEST_PROJECT as OTHER
from tuneforge.store.testing import TEST_PROJECT as PROJECT
from tuneforge.store.types import utcnow


def test_a_new_key_authenticates_for_its_project(session: Session) -> None:
    row, plaintext = repo.create_api_key(session, PROJECT, "cli")
    assert plaintext.startswith("tf-") and len(plaintext) > 40
    assert (row.prefix, row.name, row.project_id) == (plaintext[:8], "cli", PROJECT)
    assert row.last_used_at is None
    assert repo.authenticate(session, plaintext) == PROJECT


def test_the_plaintext_is_never_stored(session: Session) -> None:
    row, plaintext = repo.create_api_key(session, PROJECT, "cli")
    session.flush()
    stored = session.execute(text("SELECT * FROM api_keys")).all()
    assert len(stored) == 1
    values = [str(value) for value in stored[0]]
    assert not any(plaintext in value or plaintext[8:] in value for value in values)
    assert row.secret_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert row.secret_hash in values


def test_hashes_are_compared_in_constant_time(session: Session, monkeypatch) -> None:
    _, plaintext = repo.create_api_key(session, PROJECT)
    calls = []
    compare_digest = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare_digest(a, b)

    monkeypatch.setattr("tuneforge.store.repo_keys.hmac.compare_digest", spy)
    assert repo.authenticate(session, plaintext) == PROJECT
    assert calls == [(repo.hash_api_key(plaintext), repo.hash_api_key(plaintext))]


@pytest.mark.parametrize("mangle", [lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"), str.upper])
def test_a_wrong_key_fails(session: Session, mangle) -> None:
    _, plaintext = repo.create_api_key(session, PROJECT)
    assert repo.authenticate(session, mangle(plaintext)) is None


def test_empty_unknown_and_absurd_keys_fail(session: Session) -> None:
    repo.create_api_key(session, PROJECT)
    for key in ("", "tf-", "tf-nothing-like-it", "x" * 10_000):
        assert repo.authenticate(session, key) is None


def test_a_revoked_key_fails(session: Session) -> None:
    row, plaintext = repo.create_api_key(session, PROJECT)
    revoked = repo.revoke_api_key(session, PROJECT, row.id)
    assert revoked.revoked_at is not None
    assert repo.revoke_api_key(session, PROJECT, row.id).revoked_at == revoked.revoked_at
    assert repo.authenticate(session, plaintext) is None


def test_keys_are_listed_and_revoked_within_their_project(session: Session) -> None:
    kept, _ = repo.create_api_key(session, PROJECT, "kept")
    gone, _ = repo.create_api_key(session, PROJECT, "gone")
    theirs, their_plaintext = repo.create_api_key(session, OTHER, "theirs")
    repo.revoke_api_key(session, PROJECT, gone.id)
    assert [k.id for k in repo.list_api_keys(session, PROJECT)] == [gone.id, kept.id]
    assert [k.id for k in repo.list_api_keys(session, PROJECT, include_revoked=False)] == [kept.id]
    with pytest.raises(NotFound):
        repo.revoke_api_key(session, PROJECT, theirs.id)
    assert repo.authenticate(session, their_plaintext) == OTHER
    with pytest.raises(NotFound):
        repo.create_api_key(session, "p-missing")


def test_last_used_is_refreshed_at_most_once_a_minute(session: Session) -> None:
    row, plaintext = repo.create_api_key(session, PROJECT)
    repo.authenticate(session, plaintext)
    first_use = row.last_used_at
    assert first_use is not None
    repo.authenticate(session, plaintext)
    assert row.last_used_at == first_use

    an_hour_ago = utcnow() - timedelta(hours=1)
    session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=an_hour_ago))
    session.refresh(row)
    repo.authenticate(session, plaintext)
    assert row.last_used_at > first_use
