"""What the repository modules share: project-scoped lookups and newest-first pagination."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ExecutableOption

from tuneforge.errors import InvalidArgument, NotFound
from tuneforge.store.models import Project

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 1000


class _Listed(Protocol):
    id: Any
    created_at: Any


T = TypeVar("T", bound=_Listed)


@dataclass
class Page(Generic[T]):
    """One page of a newest-first list. Pass ``next_after`` (or ``next_page_token``) back to
    get the next page."""

    items: list[T]
    has_more: bool

    @property
    def next_after(self) -> str | None:
        return self.items[-1].id if self.has_more and self.items else None

    @property
    def next_page_token(self) -> str | None:
        after = self.next_after
        return encode_page_token(after) if after else None


def encode_page_token(after_id: str) -> str:
    return base64.urlsafe_b64encode(after_id.encode()).decode().rstrip("=")


def decode_page_token(token: str) -> str:
    """The ``after`` id inside an opaque page token."""
    try:
        padded = token + "=" * (-len(token) % 4)
        after_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        after_id = ""
    if not after_id:
        raise InvalidArgument("invalid page token", param="page_token")
    return after_id


def paginate(
    session: Session,
    query: Select[tuple[T]],
    model: Any,
    *,
    limit: int,
    after: str | None,
    narrowed_by: Iterable[ColumnElement[bool]] = (),
    most: int = MAX_PAGE_SIZE,
) -> Page[T]:
    """Newest first by (created_at, id). ``after`` is the id of the last item already seen;
    it must be an item of this same (scoped, filtered) query. ``narrowed_by`` filters the
    items but not the cursor: ``after`` may be any item of ``query``, shown or not. A page
    holds at most ``most`` items, however many are asked for (``has_more`` tells the rest)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page size must be 1 to {MAX_PAGE_SIZE}", param="limit")
    limit = min(limit, most)
    if after is not None:
        anchor = session.scalars(query.where(model.id == after)).first()
        if anchor is None:
            raise InvalidArgument(f"{after!r} is not an item of this list", param="after")
        query = query.where(
            or_(
                model.created_at < anchor.created_at,
                and_(model.created_at == anchor.created_at, model.id < anchor.id),
            )
        )
    query = query.where(*narrowed_by)
    rows = list(
        session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1))
    )
    return Page(items=rows[:limit], has_more=len(rows) > limit)


def get_scoped(
    session: Session,
    model: Any,
    project_id: str,
    row_id: str,
    what: str,
    *,
    options: Iterable[ExecutableOption] = (),
) -> Any:
    """The row of ``model`` with this id in this project (``options``: loader options, such as
    what to load with it). Another project's row raises the same NotFound as a missing one, so
    ids of other projects cannot be probed."""
    row = session.scalars(
        select(model).where(model.id == row_id, model.project_id == project_id).options(*options)
    ).first()
    if row is None:
        raise NotFound(f"{what} {row_id!r} not found")
    return row


def require_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id!r} not found")
    return project
