"""Every fenced code block of the README runs as pasted, or is marked as not meant to run
(info string ``text``: the ``make`` targets, commands with placeholders). The blocks that talk
to a server run here, against one live ``tuneforge serve`` for the module, in the folder
``tuneforge samples data`` wrote; the quick start (in-process, no server) runs in
test_readme_quick_start.py. What a block prints must be what its ``print(...)  # ...``
comments show (``...`` standing for any text)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
import pytest

from tests.helpers import NOT_RUN, readme_block, readme_blocks
from tests.servers import LiveServer
from tuneforge.config import Settings

RUN_HERE = {
    "openai-sdk",
    "genai-vertex-sdk",
    "gemini-legacy-sdk",
    "gemini-curl",
    "gemini-genai",
}
RUN_ELSEWHERE = {"quick-start": Path(__file__).parent / "test_readme_quick_start.py"}
INTERPRETERS = {"python": [sys.executable, "-c"], "bash": ["bash", "-e", "-c"]}
TIMEOUT_S = 300


def test_every_block_is_run_or_marked_not_run():
    blocks = readme_blocks()
    for block in blocks:
        where = f"README.md line {block.line}"
        if block.marker is None:
            assert block.info == NOT_RUN, (
                f"{where}: a ```{block.info} block no test runs: put <!-- test: NAME --> above "
                f"it and run it in {Path(__file__).name}, or mark it ```{NOT_RUN}"
            )
        else:
            assert block.marker in RUN_HERE | RUN_ELSEWHERE.keys(), f"{where}: {block.marker}?"
            assert block.info in INTERPRETERS, f"{where}: no interpreter for ```{block.info}"
    markers = [block.marker for block in blocks if block.marker]
    assert sorted(markers) == sorted(RUN_HERE | RUN_ELSEWHERE.keys())  # each once, none gone
    for marker, module in RUN_ELSEWHERE.items():
        assert f'readme_block("{marker}")' in module.read_text()


def test_print_comments_are_read_as_patterns():
    body = "print(a)  # succeeded ft:x:...\nprint(b)\nprint(c)  # positive\n"
    assert printed_patterns(body) == [r"succeeded\ ft:x:.+", "positive"]
    check_printed(body, "succeeded ft:x:tj-1\nanything\npositive\n")
    with pytest.raises(AssertionError, match="positive"):
        check_printed(body, "succeeded ft:x:tj-1\nnegative\n")


def printed_patterns(body: str) -> list[str]:
    comments = re.findall(r"^print\(.*\)  # (.+)$", body, re.M)
    return [".+".join(re.escape(part) for part in comment.split("...")) for comment in comments]


def check_printed(body: str, output: str) -> None:
    """The lines the block's comments show appear in its output, in order."""
    lines = iter(output.splitlines())
    for pattern in printed_patterns(body):
        assert any(re.fullmatch(pattern, line) for line in lines), (
            f"no line {pattern!r} in:\n{output}"
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir):
    """One live server for every block; its job runners on one torch thread each (on two
    shared cores, two intra-op threads train the tiny model several times slower)."""
    folder = tmp_path_factory.mktemp("readme-server")
    data_dir = folder / "data"
    data_dir.mkdir()
    (data_dir / "models").symlink_to(models_dir, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        live = LiveServer(Settings(data_dir=data_dir), folder / "server.log").start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder holding what ``tuneforge samples data`` writes, as the README assumes."""
    folder = tmp_path_factory.mktemp("readme-samples")
    subprocess.run(
        [sys.executable, "-m", "tuneforge.cli.main", "samples", "data"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    return folder


def run_block(marker: str, server: LiveServer, cwd: Path) -> str:
    """The block run as pasted, with the key and server its text asks for; what it printed,
    checked against its comments."""
    (block,) = [block for block in readme_blocks() if block.marker == marker]
    env = {
        **os.environ,
        "TUNEFORGE_SERVER": server.url,
        "TUNEFORGE_API_KEY": server.key,
        "GOOGLE_API_KEY": server.key,
    }
    done = subprocess.run(
        [*INTERPRETERS[block.info], block.body], env=env, cwd=cwd, capture_output=True,
        text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    check_printed(block.body, done.stdout)
    return done.stdout


@pytest.mark.slow
def test_the_openai_sdk_block(server, workdir):
    printed = run_block("openai-sdk", server, workdir)
    model = printed.splitlines()[0].split()[1]
    listed = httpx.get(
        f"{server.url}/v1/models", headers={"Authorization": f"Bearer {server.key}"}
    ).json()
    assert model in {m["id"] for m in listed["data"]}


@pytest.mark.slow
def test_the_genai_vertex_block(server, workdir):
    printed = run_block("genai-vertex-sdk", server, workdir)
    endpoint = printed.splitlines()[0].split()[1]
    client = server.vertex_client("default", "local")
    assert endpoint in {
        job.tuned_model.endpoint for job in client.tunings.list() if job.tuned_model
    }


@pytest.mark.slow
def test_the_gemini_api_blocks_legacy_sdk_google_genai_and_curl(server, workdir):
    import google.generativeai as legacy

    warnings.filterwarnings("ignore", category=FutureWarning)
    # The legacy SDK's block tunes number-generator, waits, and answers, also streamed.
    printed = run_block("gemini-legacy-sdk", server, workdir)
    assert printed.split("\n", 1)[1].strip()  # the model's answers
    legacy.configure(
        api_key=server.key, transport="rest", client_options={"api_endpoint": server.url}
    )
    greedy = legacy.GenerativeModel("tunedModels/number-generator")
    config = {"temperature": 0, "max_output_tokens": 4}
    whole = greedy.generate_content("5", generation_config=config)
    streamed = greedy.generate_content("5", generation_config=config, stream=True)
    assert "".join(chunk.text for chunk in streamed) == whole.text
    assert whole.candidates[0].finish_reason.name in ("STOP", "MAX_TOKENS")

    # google-genai in Gemini API mode reads it and asks it.
    run_block("gemini-genai", server, workdir)

    # curl: create with the quickstart's body, poll on /v1, read the state, ask, delete.
    printed = run_block("gemini-curl", server, workdir)
    assert "Tuning...100%" in printed  # jq writes the float 100.0 as 100
    assert '"ACTIVE"' in printed
    assert '"candidates"' in printed and '"finishReason":' in printed
    created = (workdir / "tunemodel.json").read_text()
    name = re.search(r'"tunedModel":\s*"([^"]+)"', created)[1]
    gone = httpx.get(f"{server.url}/v1beta/{name}?key={server.key}")
    assert gone.status_code == 404 and gone.json()["error"]["status"] == "NOT_FOUND"


def test_readme_block_finds_a_marked_block():
    assert readme_block("quick-start").startswith("tuneforge samples data\n")
