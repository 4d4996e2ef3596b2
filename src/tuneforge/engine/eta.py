"""The time a run has left, from the pace of its recent steps.

The first steps of a run are slow (kernels warm up, caches fill, the data loader starts), so
an average over the whole run overstates what is left for a long while. ``RecentPace`` keeps
the last ``window`` step times and estimates from those alone; the run's start counts only
until a second step has been timed.
"""

from __future__ import annotations

from collections import deque

DEFAULT_WINDOW = 20


class RecentPace:
    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        # (global step, seconds since the run started); the oldest point is the window's start.
        self._points: deque[tuple[int, float]] = deque(maxlen=window + 1)
        self._started_at_step: int | None = None

    def start(self, step: int, at_s: float = 0.0) -> None:
        """The run (or a resumed attempt) starts at ``step``, ``at_s`` seconds in."""
        self._points.clear()
        self._points.append((step, at_s))
        self._started_at_step = step

    def record(self, step: int, at_s: float) -> None:
        if self._points and step <= self._points[-1][0]:
            return
        if len(self._points) == 2 and self._points[0][0] == self._started_at_step:
            # Two steps timed: the start, and the slow first step with it, leave the window.
            self._points.popleft()
        self._points.append((step, at_s))

    def seconds_per_step(self) -> float | None:
        if len(self._points) < 2:
            return None
        (first_step, first_s), (last_step, last_s) = self._points[0], self._points[-1]
        return (last_s - first_s) / (last_step - first_step)

    def eta_s(self, remaining_steps: int) -> float | None:
        pace = self.seconds_per_step()
        return None if pace is None else pace * max(remaining_steps, 0)
