"""A model name is never a path into the server: on every surface that takes one, a name that
points at a folder outside the model roots (relative to the working directory, absolute,
``~``, ``..``, URL-encoded, through a symlink under a root) is refused with the surface's 4xx,
loads nothing, and is answered in the same words whether that folder exists or not."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.api.conftest import Api
from tests.api.test_models_api import register_tuned_model
from tests.api.test_vertex import RecordingBackend
from tests.conftest import TINY
from tuneforge.models.tiny import ensure_tiny_model

PARENT = "/v1/projects/p/locations/l"


@pytest.fixture(scope="session")
def outside_model(models_dir, tmp_path_factory) -> Path:
    """A loadable model (the tiny one, copied) in a folder that is no model root."""
    folder = tmp_path_factory.mktemp("outside") / "model"
    shutil.copytree(ensure_tiny_model(TINY, models_dir), folder)
    return folder


@dataclass
class World:
    api: Api
    train_file: str
    cwd: Path  # the server's working directory
    root: Path  # a model root
    theirs: str  # project other's checkpoint folder, relative to ``cwd``
    recording: RecordingBackend


@pytest.fixture
def world(api: Api, tmp_path, monkeypatch, outside_model, sentiment_files) -> World:
    """The server's working directory is ``tmp_path``, which holds its data dir (``data``,
    as with a relative ``TUNEFORGE_DATA_DIR``); every path named below leads to
    ``outside_model``, through a symlink unless the case is about a real folder."""
    monkeypatch.chdir(tmp_path)
    theirs = register_tuned_model(api.service, "other", outside_model)
    checkpoints = tmp_path / "data" / "jobs" / theirs.id / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "epoch-1").symlink_to(outside_model, target_is_directory=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "model").symlink_to(outside_model, target_is_directory=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "model").symlink_to(outside_model, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside_model, target_is_directory=True)
    monkeypatch.setattr(api.service.settings, "model_roots", [root])
    recording = RecordingBackend([])
    monkeypatch.setattr(api.service.generation, "_backend", recording)
    with sentiment_files["train"].open("rb") as stream:
        train_file = api.service.files.upload("default", "t.jsonl", stream, "fine-tune").id
    theirs_checkpoint = f"data/jobs/{theirs.id}/checkpoints/epoch-1"
    return World(api, train_file, tmp_path, root, theirs_checkpoint, recording)


# Each case: a name that leads to the outside model, and its twin that leads nowhere.
CASES: dict[str, Callable[[World], tuple[str, str]]] = {
    "relative, into the data dir": lambda w: (w.theirs, w.theirs.replace("epoch-1", "epoch-9")),
    "relative, shaped as a hub id": lambda w: ("outside/model", "outside/nobody"),
    "absolute": lambda w: (f"{w.cwd}/outside/model", f"{w.cwd}/outside/nobody"),
    "~": lambda w: ("~/model", "~/nobody"),
    "~ of no such user": lambda w: ("~no-such-user-tf/model", "~no-such-user-tf/nobody"),
    "..": lambda w: ("../outside/model", "../outside/nobody"),
    "absolute with ..": lambda w: (f"{w.root}/../outside/model", f"{w.root}/../outside/nobody"),
    "URL-encoded ..": lambda w: ("%2e%2e%2foutside%2fmodel", "%2e%2e%2foutside%2fnobody"),
    "URL-encoded /": lambda w: ("outside%2Fmodel", "outside%2Fnobody"),
    "symlink under a root": lambda w: ("linked", "unlinked"),
    "absolute symlink under a root": lambda w: (str(w.root / "linked"), str(w.root / "unlinked")),
    "10,000 characters": lambda w: ("m" * 10_000, "n" * 10_000),
    "a part of 300 characters": lambda w: ("a" * 300, "b" * 300),
}


def in_url(name: str) -> str:
    """The name in a URL path: its ``%`` escapes as the client wrote them (the server
    decodes them, so ``%2e%2e%2f`` arrives as ``../``), anything else escaped."""
    return quote(name, safe="%")


def openai_fine_tuning(w: World, name: str) -> httpx.Response:
    body = {"model": name, "training_file": w.train_file}
    return w.api.client.post("/v1/fine_tuning/jobs", json=body, headers=w.api.headers())


def openai_chat(w: World, name: str) -> httpx.Response:
    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
    return w.api.client.post("/v1/chat/completions", json=body, headers=w.api.headers())


def openai_get_model(w: World, name: str) -> httpx.Response:
    return w.api.client.get(f"/v1/models/{in_url(name)}", headers=w.api.headers())


def vertex_tuning(w: World, name: str) -> httpx.Response:
    body = {"baseModel": name, "supervisedTuningSpec": {"trainingDatasetUri": w.train_file}}
    return w.api.client.post(f"{PARENT}/tuningJobs", json=body, headers=w.api.headers())


def vertex_generate(resource: str) -> Callable[[World, str], httpx.Response]:
    def generate(w: World, name: str) -> httpx.Response:
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        path = f"{PARENT}/{resource}{in_url(name)}:generateContent"
        return w.api.client.post(path, json=body, headers=w.api.headers())

    return generate


SURFACES: dict[str, Callable[[World, str], httpx.Response]] = {
    "OpenAI fine_tuning.jobs model": openai_fine_tuning,
    "OpenAI chat.completions model": openai_chat,
    "OpenAI GET /v1/models/{model}": openai_get_model,
    "Vertex tuningJobs baseModel": vertex_tuning,
    "Vertex generateContent models/": vertex_generate("models/"),
    "Vertex generateContent publishers/": vertex_generate("publishers/tuneforge/models/"),
    "Vertex generateContent endpoints/": vertex_generate("endpoints/"),
}


def anonymised(response: httpx.Response, name: str) -> tuple[int, str]:
    message = response.text
    for form in sorted({name, unquote(name), in_url(name)}, key=len, reverse=True):
        message = message.replace(form, "<name>")
    return response.status_code, message


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("surface", SURFACES)
def test_a_model_name_is_no_path_into_the_server(world: World, surface: str, case: str):
    leads_somewhere, leads_nowhere = CASES[case](world)

    response = SURFACES[surface](world, leads_somewhere)

    assert response.status_code in (400, 404), response.text
    assert anonymised(response, leads_somewhere) == anonymised(
        SURFACES[surface](world, leads_nowhere), leads_nowhere
    )  # the answer does not tell whether the folder exists
    assert world.recording.calls == []  # nothing was asked to load or generate
    for project in ("default", "other"):
        assert len(world.api.service.jobs.list(project, limit=10).items) == (project == "other")


def test_the_same_model_loads_once_its_folder_is_a_model_root(world: World, outside_model):
    """The refusals above are about the names: the model they lead to is a loadable one."""
    world.api.service.settings.model_roots.append(outside_model.parent)

    response = openai_chat(world, str(outside_model))

    assert response.status_code == 200, response.text
    [(target, _, _)] = world.recording.calls
    assert target.base_source == str(outside_model)
