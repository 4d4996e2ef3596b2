"""Project ids are checked where projects are created: they become part of model names."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from tuneforge.errors import InvalidArgument
from tuneforge.store import repo


@pytest.mark.parametrize("project_id", ["default", "other", "proj-a", "p1", "a" * 63])
def test_valid_project_ids_are_created(session: Session, project_id: str) -> None:
    assert repo.ensure_project(session, project_id).id == project_id


@pytest.mark.parametrize(
    "project_id", ["a:b", "a/b", "", "-lead", "Upper", "under_score", "a" * 64, "a\n"]
)
def test_invalid_project_ids_are_refused(session: Session, project_id: str) -> None:
    with pytest.raises(InvalidArgument, match="project id"):
        repo.ensure_project(session, project_id)
