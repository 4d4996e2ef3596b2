"""Charts drawn on the server as inline SVG: a job's loss curve, the metrics charted beside it
(validation loss, token accuracy, learning rate) and a dataset histogram.

Only numbers formatted here and fixed labels go into the markup, so the result is safe to embed
as it is. Colours and strokes come from the page's stylesheet (the ``chart-*`` classes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

NO_DATA = "no data yet"
SCIENTIFIC_BELOW = 1e-3  # tick values all smaller than this read as 2.5e-5


@dataclass(frozen=True)
class Box:
    """The drawing's size and the margins around its plot area (for axes and labels)."""

    width: float
    height: float
    left: float = 56
    right: float = 16
    top: float = 28
    bottom: float = 40

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    @property
    def plot_right(self) -> float:
        return self.width - self.right

    @property
    def plot_bottom(self) -> float:
        return self.height - self.bottom


@dataclass(frozen=True)
class Scale:
    """A linear map from data values in [low, high] to pixels in [start, end]."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low
        share = (value - self.low) / span if span else 0.5
        return self.start + share * (self.end - self.start)


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) covering [low, high]."""
    low, high = min(low, high), max(low, high)
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    if integer:
        step = max(1.0, math.ceil(step))
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(round((last - first) / step) + 1)]


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick's label with the fewest decimals that tell every tick's value exactly: 2.5 and
    7.5 keep their one decimal even when the ticks are 2.5 apart."""
    biggest = max((abs(t) for t in ticks), default=0.0)
    if 0 < biggest < SCIENTIFIC_BELOW:
        return _scientific_label(value, ticks)
    for decimals in range(0, 10):
        if all(abs(round(t, decimals) - t) <= 1e-9 * max(1.0, abs(t)) for t in ticks):
            return f"{value:.{decimals}f}"
    return f"{value:g}"


def _scientific_label(value: float, ticks: Sequence[float]) -> str:
    """Ticks like a learning rate's in scientific notation, the mantissa with the fewest
    decimals every tick needs: 0, 5.0e-6, 1.0e-5, 1.5e-5."""
    if value == 0:
        return "0"
    digits = next(
        (d for d in range(0, 6)
         if all(abs(float(f"{t:.{d}e}") - t) <= 1e-9 * abs(t) for t in ticks if t)),
        6,
    )  # fmt: skip
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks for a log axis covering [low, high] (both > 0): 1 to 9 times the power of ten
    within one decade, 1, 2 and 5 times each power over up to three, powers alone past
    that; from the last tick at or under ``low`` to the first at or over ``high``."""
    low, high = min(low, high), max(low, high)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    if first == last:
        last += 1
    decades = last - first
    multiples = tuple(range(1, 10)) if decades == 1 else (1, 2, 5) if decades <= 3 else (1,)
    candidates = [
        float(f"{m}e{power}") for power in range(first, last + 1) for m in multiples
    ]  # written as text, so 0.3 is 0.3 and not 3 * 0.1
    start = max(t for t in candidates if t <= low * (1 + 1e-9))
    end = min(t for t in candidates if t >= high * (1 - 1e-9))
    return [t for t in candidates if start <= t <= end]


@dataclass(frozen=True)
class LogScale:
    """A log-10 map from data values in [low, high] (both > 0) to pixels in [start, end]."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = math.log10(self.high) - math.log10(self.low)
        share = (math.log10(value) - math.log10(self.low)) / span if span else 0.5
        return self.start + share * (self.end - self.start)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _svg(box: Box, label: str, body: Iterable[str], css_class: str) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
            f'viewBox="0 0 {_n(box.width)} {_n(box.height)}" '
            f'width="{_n(box.width)}" height="{_n(box.height)}" aria-label="{label}">',
            f"<title>{label}</title>",
            *body,
            "</svg>",
        ]
    )


def no_data_svg(box: Box, label: str, css_class: str = "chart", *, message: str = NO_DATA) -> str:
    """An empty chart saying why; ``message`` is escaped (it may be a job's error)."""
    middle = f'x="{_n(box.width / 2)}" y="{_n(box.height / 2)}"'
    return _svg(
        box,
        label,
        [f'<text class="chart-empty" {middle} text-anchor="middle">{escape(message)}</text>'],
        css_class,
    )


@dataclass(frozen=True)
class Series:
    """One metric of a chart as (step, value) points. A per-step series is a line; a
    per-epoch one (``per_epoch``) is a point at each epoch's end, joined by a dashed line."""

    label: str
    points: list[tuple[float, float]]
    css_class: str  # "chart-train" (a line) or "chart-valid" (points); the stylesheet colours
    per_epoch: bool = False


def series_of(rows: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    """The finite ``(step, rows[key])`` pairs of a metrics series."""
    return [(r["step"], r[key]) for r in rows if _finite(r.get("step")) and _finite(r.get(key))]


def loss_curve_svg(
    steps: Sequence[Mapping[str, Any]],
    epochs: Sequence[Mapping[str, Any]] = (),
    *,
    box: Box | None = None,
    log_scale: bool = False,
    empty_message: str = NO_DATA,
) -> str:
    """The loss curve of a job: the training loss of every step as a line, the validation loss
    of every epoch as points joined by a line, a dashed gridline where each epoch ends, and
    axes with ticks.

    ``steps`` and ``epochs`` are the series of ``JobService.metrics``. The x axis runs to the
    job's total step count when the metrics know it, so the line grows across as it trains.
    With ``log_scale`` the loss axis is logarithmic (a loss near 0 stays readable); a loss of
    0 or less cannot be placed on it, so such a curve is drawn linear.
    """
    series = [
        Series("training loss", series_of(steps, "loss"), "chart-train"),
        Series("validation loss", series_of(epochs, "valid_loss"), "chart-valid", per_epoch=True),
    ]
    return series_chart_svg(
        series,
        steps,
        epochs,
        label="Loss curve",
        y_title="loss",
        box=box or Box(width=1080, height=320),
        log_scale=log_scale,
        empty_message=empty_message,
    )


# The charts beside the loss: (title, y-axis title, the series drawn, what an empty one says).
METRIC_CHARTS: tuple[tuple[str, str, tuple[tuple[str, str, bool], ...], str], ...] = (
    ("Validation loss", "validation loss", (("valid_loss", "validation loss", True),),
     "after each epoch, with a validation file"),
    ("Token accuracy", "token accuracy",
     (("token_accuracy", "training", False), ("valid_token_accuracy", "validation", True)),
     NO_DATA),
    ("Learning rate", "learning rate", (("learning_rate", "learning rate", False),), NO_DATA),
)  # fmt: skip
# A method's own metrics (a row's "extra"), each chart drawn when a job reports its metrics:
# reinforcement's reward, KL and answer length; a reward model's pairwise accuracy.
METHOD_CHARTS: tuple[tuple[str, str, tuple[tuple[str, str, bool], ...], str], ...] = (
    ("Reward", "mean reward",
     (("reward", "training", False), ("eval_reward", "held-out", True)), NO_DATA),
    ("KL to the start", "KL", (("kl", "KL", False),), NO_DATA),
    ("Answer length", "tokens", (("completions/mean_length", "mean length", False),), NO_DATA),
    ("Pairwise accuracy", "accuracy",
     (("accuracy", "training", False), ("eval_accuracy", "held-out", True)), NO_DATA),
)  # fmt: skip
SMALL_CHART = Box(width=360, height=230, left=60, right=14, top=30, bottom=38)


def with_extra(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its method's own metrics beside the shared ones."""
    return [{**(row.get("extra") or {}), **row} for row in rows]


def metric_charts_svg(
    steps: Sequence[Mapping[str, Any]], epochs: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """The smaller charts drawn beside the loss curve, on the same step axis, with their
    titles: validation loss, token accuracy (training per step, validation per epoch) and
    learning rate, then the method's own that the job reports (``METHOD_CHARTS``)."""
    charts = []
    steps, epochs = with_extra(steps), with_extra(epochs)
    reported = {key for row in [*steps, *epochs] for key in row}
    own = [c for c in METHOD_CHARTS if any(key in reported for key, _, _ in c[2])]
    for title, y_title, metrics, empty in (*METRIC_CHARTS, *own):
        series = [
            Series(
                label,
                series_of(epochs if per_epoch else steps, key),
                "chart-valid" if per_epoch else "chart-train",
                per_epoch=per_epoch,
            )
            for key, label, per_epoch in metrics
        ]
        svg = series_chart_svg(
            series, steps, epochs, label=title, y_title=y_title, box=SMALL_CHART,
            empty_message=empty,
        )  # fmt: skip
        charts.append((title, svg))
    return charts


def series_chart_svg(
    series: Sequence[Series],
    steps: Sequence[Mapping[str, Any]],
    epochs: Sequence[Mapping[str, Any]],
    *,
    label: str,
    y_title: str,
    box: Box,
    log_scale: bool = False,
    empty_message: str = NO_DATA,
) -> str:
    """A chart of ``series`` over the training steps, with a dashed line where each epoch of
    ``epochs`` ends; the x axis runs to the total step count the ``steps`` know."""
    drawn = [s for s in series if s.points]
    if not drawn:
        return no_data_svg(box, label, message=empty_message)
    points = [p for s in drawn for p in s.points]
    totals = [m["total_steps"] for m in steps if _finite(m.get("total_steps"))]
    boundaries = [(e["step"], e.get("epoch")) for e in epochs if _finite(e.get("step"))]
    x_high = max([px for px, _ in points] + totals[-1:] + [1])
    x_ticks = [t for t in nice_ticks(0, x_high, 6, integer=True) if t <= x_high]
    values = [py for _, py in points]
    x = Scale(0, x_high, box.left, box.plot_right)
    y: Scale | LogScale
    if log_scale and min(values) > 0:
        y_ticks = log_ticks(min(values), max(values))
        y = LogScale(y_ticks[0], y_ticks[-1], box.plot_bottom, box.top)
        y_title = f"{y_title} (log scale)"
        label_of = compact_number
    else:
        y_ticks = nice_ticks(min(values), max(values), 5)
        y = Scale(y_ticks[0], y_ticks[-1], box.plot_bottom, box.top)

        def label_of(tick: float) -> str:
            return tick_label(tick, y_ticks)

    body: list[str] = []
    for tick in y_ticks:
        py = _n(y(tick))
        body.append(
            f'<line class="chart-grid" x1="{_n(box.left)}" x2="{_n(box.plot_right)}" '
            f'y1="{py}" y2="{py}"/>'
        )
        body.append(
            f'<text class="chart-tick" x="{_n(box.left - 6)}" y="{py}" text-anchor="end" '
            f'dominant-baseline="middle">{label_of(tick)}</text>'
        )
    for tick in x_ticks:
        px = _n(x(tick))
        body.append(
            f'<line class="chart-axis" x1="{px}" x2="{px}" y1="{_n(box.plot_bottom)}" '
            f'y2="{_n(box.plot_bottom + 4)}"/>'
        )
        body.append(
            f'<text class="chart-tick" x="{px}" y="{_n(box.plot_bottom + 16)}" '
            f'text-anchor="middle">{tick:.0f}</text>'
        )
    for step, epoch in boundaries:
        px = _n(x(step))
        body.append(
            f'<line class="chart-epoch" x1="{px}" x2="{px}" y1="{_n(box.top)}" '
            f'y2="{_n(box.plot_bottom)}"/>'
        )
        if _finite(epoch):
            body.append(
                f'<text class="chart-epoch-label" x="{_n(x(step) - 4)}" y="{_n(box.top + 12)}" '
                f'text-anchor="end">epoch {epoch:.0f}</text>'
            )
    body.append(
        f'<path class="chart-axis" d="M{_n(box.left)},{_n(box.top)} V{_n(box.plot_bottom)} '
        f'H{_n(box.plot_right)}"/>'
    )
    body.append(
        f'<text class="chart-label" x="{_n(box.left + box.plot_width / 2)}" '
        f'y="{_n(box.height - 6)}" text-anchor="middle">step</text>'
    )
    body.append(
        f'<text class="chart-label" x="14" y="{_n(box.top + box.plot_height / 2)}" '
        f'text-anchor="middle" transform="rotate(-90 14 {_n(box.top + box.plot_height / 2)})">'
        f"{escape(y_title)}</text>"
    )
    for line in drawn:
        coordinates = " ".join(f"{_n(x(sx))},{_n(y(sy))}" for sx, sy in line.points)
        if not line.per_epoch:
            body.append(f'<polyline class="{line.css_class}" points="{coordinates}"/>')
            continue
        if len(line.points) > 1:
            body.append(f'<polyline class="{line.css_class}-line" points="{coordinates}"/>')
        for sx, sy in line.points:
            body.append(
                f'<circle class="{line.css_class}" cx="{_n(x(sx))}" cy="{_n(y(sy))}" r="4">'
                f"<title>step {sx:.0f}: {escape(line.label)} {sy:.4g}</title></circle>"
            )
    body.extend(_legend(box, drawn))
    return _svg(box, label, body, "chart")


def compact_number(value: float) -> str:
    """A number in the fewest characters: 0.5, 2e-5 (not 2e-05), 1000."""
    text = f"{value:g}"
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else text


def _legend(box: Box, series: Sequence[Series]) -> list[str]:
    parts: list[str] = []
    left = box.left + 4
    top = _n(box.top - 14)
    for line in series:
        if line.per_epoch:
            parts.append(f'<circle class="{line.css_class}" cx="{_n(left + 9)}" cy="{top}" r="4"/>')
        else:
            parts.append(
                f'<line class="{line.css_class}" x1="{_n(left)}" x2="{_n(left + 18)}" '
                f'y1="{top}" y2="{top}"/>'
            )
        parts.append(
            f'<text class="chart-tick" x="{_n(left + 24)}" y="{top}" '
            f'dominant-baseline="middle">{escape(line.label)}</text>'
        )
        left += 24 + 7 * len(line.label) + 20
    return parts


def histogram_svg(buckets: Sequence[Mapping[str, Any]], *, box: Box | None = None) -> str:
    """Bars of a distribution's buckets (``count``, ``left``, ``right``), with the lowest and
    highest values under them; each bar's title tells its range and count."""
    box = box or Box(width=240, height=64, left=4, right=4, top=4, bottom=16)
    label = "Distribution"
    bars = [b for b in buckets if _finite(b.get("count"))]
    if not bars or max(b["count"] for b in bars) <= 0:
        return no_data_svg(box, label, "histogram")
    tallest = max(b["count"] for b in bars)
    width = box.plot_width / len(bars)
    body = []
    for index, bar in enumerate(bars):
        height = box.plot_height * bar["count"] / tallest
        body.append(
            f'<rect class="chart-bar" x="{_n(box.left + index * width + 1)}" '
            f'y="{_n(box.plot_bottom - height)}" width="{_n(max(width - 2, 1))}" '
            f'height="{_n(height)}"><title>{_range(bar)}: {bar["count"]}</title></rect>'
        )
    low, high = bars[0].get("left"), bars[-1].get("right")
    baseline = _n(box.height - 3)
    if _finite(low):
        body.append(f'<text class="chart-tick" x="{_n(box.left)}" y="{baseline}">{low:g}</text>')
    if _finite(high):
        body.append(
            f'<text class="chart-tick" x="{_n(box.plot_right)}" y="{baseline}" '
            f'text-anchor="end">{high:g}</text>'
        )
    return _svg(box, label, body, "histogram")


def _range(bucket: Mapping[str, Any]) -> str:
    left, right = bucket.get("left"), bucket.get("right")
    if _finite(left) and _finite(right):
        return f"{left:g} to {right:g}"
    return "bucket"
