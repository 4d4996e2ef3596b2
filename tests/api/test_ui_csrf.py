"""The dashboard against other sites: every POST form needs its CSRF token and this server's
own origin, signing out is a POST, and every response carries the security headers."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.api.conftest import Api
from tests.api.test_models_api import TINY
from tests.api.test_ui import (
    ORIGIN,
    VALID_DATASET,
    create_job,
    form_token,
    page,
    post_form,
    sign_in,
)
from tuneforge.api.ui import COOKIE
from tuneforge.store.states import JobState

FOREIGN = "https://evil.example"


@dataclass
class Form:
    page: str  # the page that shows the form
    action: str
    took_effect: Callable[[httpx.Response], bool]  # judged after the POST's response
    data: dict = field(default_factory=dict)
    files: dict | None = None


def signed_in(api: Api) -> bool:
    return api.client.get("/ui", follow_redirects=False).status_code == 200


def job_form(api: Api, action: str, then: JobState) -> Form:
    job = create_job(api)
    if action == "resume":
        api.service.jobs.pause("default", job.id)
    sign_in(api)
    return Form(
        page=f"/ui/jobs/{job.id}",
        action=f"/ui/jobs/{job.id}/{action}",
        took_effect=lambda _: api.service.jobs.get("default", job.id).job.state == then,
    )


def upload_form(api: Api) -> Form:
    sign_in(api)
    return Form(
        page="/ui/files",
        action="/ui/files",
        data={"purpose": "fine-tune"},
        files={"file": ("posted.jsonl", VALID_DATASET)},
        took_effect=lambda _: any(
            f.filename == "posted.jsonl" for f in api.service.files.list("default").items
        ),
    )


def evaluate_upload_form(api: Api) -> Form:
    job = create_job(api)
    sign_in(api)
    return Form(
        page=f"/ui/jobs/{job.id}",
        action=f"/ui/jobs/{job.id}/evaluate/upload",
        files={"file": ("held-out.jsonl", VALID_DATASET)},
        took_effect=lambda _: any(
            f.filename == "held-out.jsonl" for f in api.service.files.list("default").items
        ),
    )


def try_model_form(api: Api) -> Form:
    sign_in(api)
    return Form(
        page=f"/ui/models/{TINY}",
        action=f"/ui/models/{TINY}",
        data={"prompt": "hello", "system": "", "max_tokens": "2"},
        took_effect=lambda response: "prompt tokens" in response.text,
    )


def login_form(api: Api) -> Form:
    return Form(
        page="/ui/login",
        action="/ui/login",
        data={"key": api.key},
        took_effect=lambda _: signed_in(api),
    )


def logout_form(api: Api) -> Form:
    sign_in(api)
    return Form(page="/ui", action="/ui/logout", took_effect=lambda _: not signed_in(api))


FORMS: dict[str, Callable[[Api], Form]] = {
    "sign in": login_form,
    "sign out": logout_form,
    "upload": upload_form,
    "cancel": lambda api: job_form(api, "cancel", JobState.CANCELLED),
    "pause": lambda api: job_form(api, "pause", JobState.PAUSED),
    "resume": lambda api: job_form(api, "resume", JobState.QUEUED),
    "try a model": try_model_form,
    "upload test data": evaluate_upload_form,
}


def submit(api: Api, form: Form, *, token: str | None, headers: dict[str, str]) -> httpx.Response:
    data = dict(form.data) if token is None else {**form.data, "csrf_token": token}
    return api.client.post(
        form.action, data=data, files=form.files, headers=headers, follow_redirects=False
    )


def assert_refused(response, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert "Refused" in response.text and reason in response.text
    assert COOKIE not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("name", FORMS)
def test_a_form_without_its_token_is_refused(api: Api, name: str):
    form = FORMS[name](api)

    response = submit(api, form, token=None, headers={"Origin": ORIGIN})

    assert_refused(response, "the form has no CSRF token")
    assert not form.took_effect(response)


@pytest.mark.parametrize("name", FORMS)
def test_a_form_with_a_wrong_token_is_refused(api: Api, name: str):
    form = FORMS[name](api)
    wrong = "0" * len(form_token(api, form.page))

    response = submit(api, form, token=wrong, headers={"Origin": ORIGIN})

    assert_refused(response, "CSRF token is not valid")
    assert not form.took_effect(response)


@pytest.mark.parametrize("name", FORMS)
def test_a_form_from_another_origin_is_refused_even_with_the_token(api: Api, name: str):
    form = FORMS[name](api)

    response = submit(api, form, token=form_token(api, form.page), headers={"Origin": FOREIGN})

    assert_refused(response, f"sent from another site ({FOREIGN})")
    assert not form.took_effect(response)


@pytest.mark.parametrize("name", FORMS)
def test_a_form_with_its_token_from_its_own_origin_is_accepted(api: Api, name: str):
    form = FORMS[name](api)

    response = submit(api, form, token=form_token(api, form.page), headers={"Origin": ORIGIN})

    assert response.status_code in (200, 303), response.text
    assert form.took_effect(response)


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ({"Referer": f"{FOREIGN}/page"}, False),  # no Origin: the Referer decides
        ({"Origin": "null"}, False),  # a sandboxed frame or a data: URL
        ({"Origin": "http://testserver:8080"}, False),  # another port is another origin
        ({"Origin": "https://testserver"}, False),  # and so is another scheme
        ({"Referer": f"{ORIGIN}/ui/jobs"}, True),
        ({"Origin": "HTTP://TESTSERVER:80"}, True),  # the same origin, spelled otherwise
        ({}, True),  # neither header (a privacy setting): the token alone decides
    ],
)
def test_the_origin_is_checked_by_referer_when_there_is_no_origin(api: Api, headers, accepted):
    form = job_form(api, "cancel", JobState.CANCELLED)

    response = submit(api, form, token=form_token(api, form.page), headers=headers)

    assert form.took_effect(response) is accepted
    if not accepted:
        assert_refused(response, "sent from another site")


def test_a_token_of_another_session_is_refused(api: Api):
    sign_in(api, api.other_key)
    theirs = form_token(api, "/ui")
    form = job_form(api, "cancel", JobState.CANCELLED)  # signs in as project default

    response = submit(api, form, token=theirs, headers={"Origin": ORIGIN})

    assert_refused(response, "CSRF token is not valid")
    assert not form.took_effect(response)


def test_sign_in_needs_the_cookie_set_with_its_form(api: Api):
    """Login CSRF: a page of another site cannot know or set the pre-session token."""
    token = form_token(api, "/ui/login")
    api.client.cookies.clear()

    response = submit(api, login_form(api), token=token, headers={"Origin": ORIGIN})

    assert_refused(response, "CSRF token is not valid")
    assert not signed_in(api)


def test_signing_out_by_get_only_offers_the_button(api: Api):
    sign_in(api)

    body = page(api, "/ui/logout")

    assert 'action="/ui/logout"' in body and 'method="post"' in body
    assert signed_in(api)
    post_form(api, "/ui/logout", token_from="/ui/logout")
    assert not signed_in(api)


SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def dashboard_responses(api: Api) -> dict[str, httpx.Response]:
    job = create_job(api)
    responses = {"sign-in page": api.client.get("/ui/login")}
    responses["redirect to sign in"] = api.client.get("/ui", follow_redirects=False)
    responses["refused form"] = api.client.post("/ui/login", data={"key": api.key})
    sign_in(api)
    for path in ("/ui", f"/ui/jobs/{job.id}", "/ui/files", "/ui/models", f"/ui/models/{TINY}"):
        responses[path] = api.client.get(path)
    responses["not found"] = api.client.get("/ui/jobs/tj-missing")
    return responses


def test_every_dashboard_response_carries_the_security_headers(api: Api):
    for name, response in dashboard_responses(api).items():
        for header, value in SECURITY_HEADERS.items():
            assert response.headers.get(header) == value, (name, header)
        policy = {
            d.split()[0]: d.split()[1:]
            for d in response.headers["content-security-policy"].split("; ")
        }
        assert policy["frame-ancestors"] == ["'none'"], name
        assert policy["default-src"] == ["'none'"], name
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"], name
    assert api.client.get("/ui/static/app.js").headers["x-content-type-options"] == "nosniff"


def test_no_page_needs_what_the_policy_forbids(api: Api):
    """No inline script, event handler, javascript: link or style attribute, which the
    Content-Security-Policy would block (an active job's progress bar once had one)."""
    for name, response in dashboard_responses(api).items():
        body = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), name
        assert not re.search(r"\son[a-z]+=", body), name
        assert "javascript:" not in body and "style=" not in body and "<style" not in body, name
