"""A job's events: messages and metrics, in the order they happened."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.errors import InvalidArgument
from tuneforge.store.models import Event
from tuneforge.store.repo_common import MAX_PAGE_SIZE
from tuneforge.store.states import EventLevel, EventType


def record_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: EventLevel | str = EventLevel.INFO,
    type: EventType | str = EventType.MESSAGE,
    data: dict[str, Any] | None = None,
) -> Event:
    event = Event(
        job_id=job_id,
        message=message,
        level=EventLevel(level),
        type=EventType(type),
        data=data,
    )
    session.add(event)
    session.flush()
    return event


def list_events(
    session: Session,
    job_id: str,
    *,
    after_id: int | None = None,
    limit: int = 100,
    newest_first: bool = False,
) -> list[Event]:
    """Events of a job in id order. ``after_id`` is the last event already seen: with
    ``newest_first`` the page continues with older events, otherwise with newer ones."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"limit must be 1 to {MAX_PAGE_SIZE}", param="limit")
    query = select(Event).where(Event.job_id == job_id)
    if newest_first:
        if after_id is not None:
            query = query.where(Event.id < after_id)
        query = query.order_by(Event.id.desc())
    else:
        if after_id is not None:
            query = query.where(Event.id > after_id)
        query = query.order_by(Event.id)
    return list(session.scalars(query.limit(limit)))


def metric_series(session: Session, job_id: str) -> dict[str, list[dict[str, Any]]]:
    """A job's loss curve as series: per-step training metrics and per-epoch metrics. A resumed
    attempt repeats the steps after its checkpoint: the latest report of each step is kept."""
    steps: dict[int, dict[str, Any]] = {}
    epochs: dict[int, dict[str, Any]] = {}
    after = None
    while batch := list_events(session, job_id, after_id=after, limit=1000):
        for event in batch:
            kind = (event.data or {}).get("kind")
            if event.type == "metrics" and kind == "step":
                steps[event.data["metrics"]["step"]] = event.data["metrics"]
            elif event.type == "metrics" and kind == "epoch":
                epochs[event.data["metrics"]["epoch"]] = event.data["metrics"]
        after = batch[-1].id
    return {
        "steps": [steps[k] for k in sorted(steps)],
        "epochs": [epochs[k] for k in sorted(epochs)],
    }
