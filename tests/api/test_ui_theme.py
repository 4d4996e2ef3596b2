"""The dashboard's dark mode: every colour comes from CSS variables that a
``prefers-color-scheme: dark`` block redefines, and the server's SVG charts carry no colour of
their own, so they follow the theme."""

from __future__ import annotations

import re

from tuneforge.ui import STATIC_DIR
from tuneforge.ui.svg import histogram_svg, loss_curve_svg, metric_charts_svg

COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|\b(?:rgba?|hsla?)\(|:\s*(?:white|black)\b")
DARK = "@media (prefers-color-scheme: dark)"


def stylesheet() -> str:
    return (STATIC_DIR / "style.css").read_text()


def variables(block: str) -> dict[str, str]:
    return dict(re.findall(r"(--[\w-]+):\s*([^;]+);", block))


def root_blocks(css: str) -> tuple[str, str]:
    light = css[css.index(":root {") : css.index("}", css.index(":root {"))]
    dark_start = css.index(":root {", css.index(DARK))
    return light, css[dark_start : css.index("}", dark_start)]


def test_colours_are_named_only_in_the_theme_variables():
    css = re.sub(r"/\*.*?\*/", "", stylesheet(), flags=re.S)
    outside = [
        line
        for line in css.splitlines()
        if COLOUR.search(line) and not re.match(r"\s*--[\w-]+:", line)
    ]
    assert not outside, outside


def test_dark_mode_redefines_the_page_and_chart_colours():
    light, dark = map(variables, root_blocks(stylesheet()))
    for name in ("--bg", "--card", "--ink", "--muted", "--line", "--accent", "--code-bg",
                 "--control", "--chart-grid", "--chart-axis", "--chart-ink", "--bar"):  # fmt: skip
        assert name in dark and dark[name] != light[name], name
    assert set(dark) <= set(light)  # no variable only one theme defines


def test_charts_take_their_colours_from_the_stylesheet():
    steps = [{"step": s, "loss": 1 / s, "learning_rate": 1e-5, "token_accuracy": 0.5}
             for s in range(1, 4)]  # fmt: skip
    epochs = [{"epoch": 1, "step": 3, "valid_loss": 0.4, "valid_token_accuracy": 0.6}]
    charts = [loss_curve_svg(steps, epochs), histogram_svg([{"count": 2, "left": 0, "right": 1}])]
    charts += [svg for _, svg in metric_charts_svg(steps, epochs)]
    for svg in charts:
        assert not COLOUR.search(svg), svg
        assert not re.search(r'\s(?:fill|stroke|style)="', svg), svg
        assert 'class="chart' in svg or 'class="histogram' in svg
