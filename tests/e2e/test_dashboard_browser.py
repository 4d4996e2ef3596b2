"""The whole job from the dashboard alone, in a real browser: sign in, upload a file and see its
validation, start a job from the New job page, watch it run to the end, try a checkpoint
in the playground beside its base, download its adapter, evaluate it on the test split, see
every page whole at 400 px wide, and delete the file (a confirm dialog). Headless Chromium
(Debian's ``chromium`` package, which ``.ci/run`` installs) driven by Playwright; a missing
browser fails the test, it never skips.

Each step's screenshot is saved under the test's tmp dir and, when ``TUNEFORGE_TEST_ARTIFACTS``
names a folder, copied there.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.servers import LiveServer

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("TUNEFORGE_TEST_CHROMIUM", "/usr/bin/chromium")
JOB_TIMEOUT_MS = 300_000


class Screenshots:
    def __init__(self, page: Page, folder: Path) -> None:
        self.page, self.folder, self.count = page, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=self.folder / f"{self.count:02d}-{name}.png", full_page=True)

    def keep(self) -> None:
        target = os.environ.get("TUNEFORGE_TEST_ARTIFACTS")
        if target:
            shutil.copytree(self.folder, Path(target) / "dashboard", dirs_exist_ok=True)


@pytest.fixture
def page(tmp_path) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield page
        browser.close()
        # A Content-Security-Policy violation (an inline script or style) is a console error.
        assert not errors, errors


def test_a_job_from_upload_to_playground_in_the_browser(
    live_server: LiveServer, sentiment_files, page: Page, tmp_path
):
    shots = Screenshots(page, tmp_path / "screenshots")
    try:
        _sign_in(page, live_server)
        shots.take("signed-in")
        _upload_and_preview(page, sentiment_files["train"])
        shots.take("new-job-preview")
        _start(page)
        shots.take("job-started")
        _watch_to_the_end(page)
        shots.take("job-succeeded")
        job_url = page.url
        _try_a_checkpoint(page)
        shots.take("checkpoint-playground")
        _download_the_adapter(page, tmp_path)
        shots.take("adapter-downloaded")
        page.goto(job_url)
        _evaluate(page, sentiment_files["test"])
        shots.take("evaluated")
        _narrow_screen(page, live_server, job_url, shots)
        _delete_the_file_after_confirming(page, live_server)
        shots.take("file-deleted")
    finally:
        shots.take("last")
        shots.keep()


def _sign_in(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.fill("#key", server.key)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Tuning jobs")
    page.click("text=New job")
    expect(page.locator("h1")).to_have_text("New tuning job")


def _upload_and_preview(page: Page, train: Path) -> None:
    page.set_input_files("#upload-form input[type=file]", train)
    page.click("#upload-form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/jobs/new\?file=file-"))
    expect(page.locator("#training_file option:checked")).to_contain_text(train.name)
    validation = page.locator("#file-preview .validation")
    expect(validation).to_contain_text(re.compile(r"^\s*Valid"))
    expect(validation).to_contain_text("examples")
    first_line = train.read_text().splitlines()[0]
    prompt = re.search(r'"(?:content|text)": "([^"]{8,40})', first_line)
    assert prompt, first_line
    expect(page.locator(".preview-lines")).to_contain_text(prompt.group(1))
    expect(page.locator("#file-preview")).to_contain_text("input tokens per example")
    expect(page.locator("#estimate")).to_contain_text("tokens to train")
    expect(page.locator('.resolved[data-name="batch_size"]')).to_have_text(re.compile(r"^\d+$"))


def _start(page: Page) -> None:
    page.fill("#hp-epochs", "1")
    page.fill("#display_name", "from the browser")
    page.fill("#suffix", "browser")
    page.click("#start")
    expect(page).to_have_url(re.compile(r"/ui/jobs/tj-[0-9a-f]+$"))
    expect(page.locator("h1")).to_have_text("from the browser")
    expect(page.locator(".page-head .badge")).to_have_text(re.compile("queued|running"))


def _watch_to_the_end(page: Page) -> None:
    # The page refreshes itself (static/app.js) while the job is active: no reload here.
    expect(page.locator(".page-head .badge")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)
    chart = page.locator('svg[aria-label="Loss curve"]')
    expect(chart).to_contain_text("loss (log scale)")
    expect(chart.locator("polyline.chart-train")).to_have_count(1)
    resolved = page.locator(".resolved-hyperparameters")
    expect(resolved).to_contain_text(re.compile(r"batch size\s*\d+"))
    expect(resolved).to_contain_text(re.compile(r"epochs\s*1 set"))
    page.click("text=linear")
    expect(page.locator('svg[aria-label="Loss curve"]')).not_to_contain_text("log scale")


def _try_a_checkpoint(page: Page) -> None:
    page.locator("a.try-checkpoint").first.click()
    expect(page.locator(".badge.kind")).to_have_text("checkpoint model")
    page.fill("#prompt", "An absolute delight from start to finish.")
    page.fill("#max_tokens", "4")
    page.click("form.stacked button[type=submit]")
    for side in ("tuned", "base"):  # side by side, the checkpoint and its base model
        answer = page.locator(f'.answer[data-side="{side}"]')
        expect(answer).to_contain_text(re.compile(r"\d+ prompt tokens"))
    expect(page.locator(".alert-error")).to_have_count(0)


def _download_the_adapter(page: Page, tmp_path: Path) -> None:
    """From the checkpoint's page: the adapter as a zip named after the checkpoint."""
    name = page.locator(".crumbs .mono").inner_text()
    with page.expect_download() as download:
        page.click("text=Download adapter")
    saved = tmp_path / "download.zip"
    download.value.save_as(saved)
    stem = re.sub(r"[^\w.-]+", "_", name)  # the id, made a safe file name
    assert download.value.suggested_filename == f"{stem}.zip"
    with zipfile.ZipFile(saved) as archive:
        assert {"adapter_config.json", "README.md"} <= set(archive.namelist())


def _evaluate(page: Page, test: Path) -> None:
    """Upload the test split from the job page and compare on a few of its examples."""
    page.set_input_files("#evaluate-upload input[type=file]", test)
    page.click("#evaluate-upload button[type=submit]")
    expect(page.locator("#test_file option:checked")).to_contain_text(test.name)
    page.fill("#examples", "12")  # the first 12: enough to show the table, quick on a CPU
    page.click("#evaluate-form button[type=submit]")
    rows = page.locator("table.evaluation tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator("th")).to_have_text(["tuned", "base", "base 3-shot"])
    expect(page.locator(".evaluation-error")).to_have_count(0)


NARROW = {"width": 400, "height": 800}


def _narrow_screen(page: Page, server: LiveServer, job_url: str, shots: Screenshots) -> None:
    """At 400 px every page keeps its header's links on screen and never scrolls sideways
    (wide tables scroll inside their card), and ids are never broken across lines."""
    page.set_viewport_size(NARROW)
    for path in ("/ui", job_url.removeprefix(server.url), "/ui/files", "/ui/models",
                 "/ui/jobs/new"):  # fmt: skip
        page.goto(f"{server.url}{path}")
        links = page.locator("header.topbar a, header.topbar button")
        expect(links).to_have_count(5)  # the brand, three pages, sign out
        for index in range(links.count()):
            box = links.nth(index).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, (
                path,
                links.nth(index).inner_text(),
                box,
            )
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)
        broken_ids = page.evaluate(
            """[...document.querySelectorAll('.mono, .copyable code')]
                .filter(e => /(tj|tm|file)-[0-9a-f]{6,}/.test(e.textContent))
                .filter(e => {  // the lines its text is laid out on
                  const range = document.createRange();
                  range.selectNodeContents(e);
                  const tops = [...range.getClientRects()].map(r => Math.round(r.top));
                  return new Set(tops).size > 1;
                })
                .map(e => e.textContent)"""
        )
        assert not broken_ids, (path, broken_ids)
        if path != "/ui/jobs/new" and path.startswith("/ui/jobs/"):
            shots.take("narrow-job")
    page.set_viewport_size({"width": 1280, "height": 900})


def _delete_the_file_after_confirming(page: Page, server: LiveServer) -> None:
    page.goto(f"{server.url}/ui/files")
    page.locator("table.list a.strong").first.click()
    expect(page).to_have_url(re.compile(r"/ui/files/file-"))
    file_url = page.url
    expect(page.locator(".file-status")).to_have_text(re.compile(r"^Valid"))
    dialogs: list[str] = []

    def answer(dialog, accept: bool) -> None:
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, accept=False))
    page.click("form[data-confirm] button.danger")
    expect(page).to_have_url(file_url)  # dismissed: nothing sent
    page.reload()
    expect(page.locator("h1")).to_be_visible()
    page.once("dialog", lambda d: answer(d, accept=True))
    page.click("form[data-confirm] button.danger")
    expect(page).to_have_url(re.compile(r"/ui/files$"))
    assert len(dialogs) == 2 and dialogs[0].startswith("Delete "), dialogs
    expect(page.locator(f'a[href="{file_url.removeprefix(server.url)}"]')).to_have_count(0)
