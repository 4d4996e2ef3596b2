"""What the repository modules share: project-scoped lookups and newest-first pagination."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import ColumnElement, Connection, Integer, Select, and_, bindparam, or_, select
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
    session: Session | Connection,
    query: Select[Any],
    model: Any,
    *,
    limit: int,
    after: str | None,
    params: Mapping[str, Any] | None = None,
    narrowed_by: Iterable[ColumnElement[bool]] = (),
    most: int = MAX_PAGE_SIZE,
    load: Callable[[Any, Select[Any], dict[str, Any]], list[T]] | None = None,
) -> Page[T]:
    """Newest first by (created_at, id). ``after`` is the id of the last item already seen;
    it must be an item of this same (scoped, filtered) query. ``narrowed_by`` filters the
    items but not the cursor: ``after`` may be any item of ``query``, shown or not. A page
    holds at most ``most`` items, however many are asked for (``has_more`` tells the rest).

    ``model``: what has the ``id`` and ``created_at`` columns, an ORM model or a table's
    ``.c``; ``load``: how the page's rows are read (by default, ``query``'s ORM entities).

    With ``params``, ``query`` is a statement built once (a module's constant) whose bound
    parameters ``params`` fills: the page's statements are then built once too, and
    SQLAlchemy finds them compiled without walking them again (``PAGE_STATEMENTS``)."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page size must be 1 to {MAX_PAGE_SIZE}", param="limit")
    limit = min(limit, most)
    narrowed_by = tuple(narrowed_by)
    values = dict(params or {})
    if after is not None:
        anchor_query = _page_statement(query, model, "anchor", params is not None)
        anchor = session.execute(anchor_query, {**values, "page_after": after}).first()
        if anchor is None:
            raise InvalidArgument(f"{after!r} is not an item of this list", param="after")
        values |= {"page_anchor_created_at": anchor.created_at, "page_anchor_id": anchor.id}
    kind = "after" if after is not None else "first"
    if narrowed_by:
        page = _page_query(query.where(*narrowed_by), model, kind)
    else:
        page = _page_statement(query, model, kind, params is not None)
    rows = (load or _entities)(session, page, {**values, "page_rows": limit + 1})
    return Page(items=rows[:limit], has_more=len(rows) > limit)


# (id of a base query, kind) -> (that query, the page statement built on it). Building a
# statement and computing its cache key took 0.1 ms for a page of jobs (50 columns), as much as
# running it; a constant statement's key is computed once. Only constant queries come here.
PAGE_STATEMENTS: dict[tuple[int, str], tuple[Select[Any], Select[Any]]] = {}
MOST_PAGE_STATEMENTS = 256


def _page_statement(query: Select[Any], model: Any, kind: str, constant: bool) -> Select[Any]:
    if not constant:
        return _page_query(query, model, kind)
    found = PAGE_STATEMENTS.get((id(query), kind))
    if found is None or found[0] is not query:
        if len(PAGE_STATEMENTS) >= MOST_PAGE_STATEMENTS:
            PAGE_STATEMENTS.clear()
        found = PAGE_STATEMENTS[id(query), kind] = (query, _page_query(query, model, kind))
    return found[1]


def _page_query(query: Select[Any], model: Any, kind: str) -> Select[Any]:
    """``kind``: "anchor" (the cursor's own row), "first" or "after" (a page)."""
    if kind == "anchor":
        return query.with_only_columns(model.created_at, model.id).where(
            model.id == bindparam("page_after")
        )
    if kind == "after":
        created_at, row_id = bindparam("page_anchor_created_at"), bindparam("page_anchor_id")
        query = query.where(
            or_(
                model.created_at < created_at,
                and_(model.created_at == created_at, model.id < row_id),
            )
        )
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(
        bindparam("page_rows", type_=Integer)
    )


def _entities(session: Session, query: Select[Any], params: dict[str, Any]) -> list[Any]:
    return list(session.scalars(query, params))


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
