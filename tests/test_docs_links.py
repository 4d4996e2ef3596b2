"""The README and docs/*.md link nothing outside the repository but the local server their
examples talk to, and every relative link points to a file of the repository. Links are read
with markdown-it (inline links, images, autolinks, reference definitions); an http(s) URL
anywhere in the text, code blocks included, counts too."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Outside links allowed: the examples' own tuneforge server on this machine, nothing else.
ALLOWED_HOSTS = {"127.0.0.1", "localhost"}
URL = re.compile(r"\bhttps?://[^\s<>()`'\"]+", re.I)  # not file://, postgresql://: no links


def link_targets(text: str) -> list[str]:
    """Every link target markdown-it finds: ``[a](x)``, ``![a](x)``, ``<x>``, ``[a]: x``."""
    parser = MarkdownIt("commonmark")
    env: dict = {}
    tokens = parser.parse(text, env)
    targets = [ref["href"] for ref in env.get("references", {}).values()]
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open":
                targets.append(str(child.attrGet("href")))
            elif child.type == "image":
                targets.append(str(child.attrGet("src")))
    return list(dict.fromkeys(targets))


def outside_links(text: str) -> list[str]:
    urls = URL.findall(text) + [t for t in link_targets(text) if urlsplit(t).scheme]
    return [url for url in urls if urlsplit(url).hostname not in ALLOWED_HOSTS]


def broken_relative_links(doc: Path, text: str, root: Path = REPO) -> list[str]:
    broken = []
    for target in link_targets(text):
        parts = urlsplit(target)
        if parts.scheme or not parts.path:  # outside, or an anchor in this page
            continue
        path = (doc.parent / unquote(parts.path)).resolve()
        if not path.is_relative_to(root) or not path.exists():
            broken.append(target)
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: str(doc.relative_to(REPO)))
def test_links_stay_in_the_repository_and_resolve(doc):
    text = doc.read_text()
    assert outside_links(text) == []
    assert broken_relative_links(doc, text) == []


def test_the_checks_see_links_of_every_kind(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "there.md").write_text("")
    doc = tmp_path / "README.md"
    text = (
        "[a](docs/there.md#part) [b](docs/missing.md) ![c](img/none.png) [d][ref] <https://x.org>\n"
        "`curl http://127.0.0.1:8000/v1` [e](#anchor)\n\n"
        "[ref]: ../outside.md\n\n```\npip download https://example.com/pkg\n```\n"
    )
    assert outside_links(text) == ["https://x.org", "https://example.com/pkg", "https://x.org"]
    assert broken_relative_links(doc, text, root=tmp_path) == [
        "../outside.md", "docs/missing.md", "img/none.png"
    ]  # fmt: skip
