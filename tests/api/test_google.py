"""What the Google-style surfaces share (tuneforge.api.google) and the one renaming of the
service's parameter names that every surface uses (tuneforge.api.errors.renamed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tuneforge.api.errors import renamed
from tuneforge.api.google import (
    ResourceName,
    child_name,
    error_body,
    job_error_status,
    timestamp,
    without_nones,
)
from tuneforge.errors import InvalidArgument


def test_resource_names_are_built_and_parsed():
    location = ResourceName("projects/{project}/locations/{location}")
    assert location.format(project="p", location="us") == "projects/p/locations/us"
    assert location.parse("projects/p/locations/us") == {"project": "p", "location": "us"}
    assert location.parse("projects/p/locations/us/tuningJobs/1") is None
    assert location.parse("projects//locations/us") is None
    assert child_name("projects/p/locations/us", "tuningJobs", "tj-1") == (
        "projects/p/locations/us/tuningJobs/tj-1"
    )

    operation = ResourceName("tunedModels/{tuned_model}/operations/{operation}")
    assert operation.parse("tunedModels/m-1/operations/op") == {
        "tuned_model": "m-1",
        "operation": "op",
    }
    assert operation.parse("tunedModels/m-1") is None

    model = ResourceName("publishers/{publisher}/models/{model=**}")
    assert model.parse("publishers/google/models/org/name") == {
        "publisher": "google",
        "model": "org/name",
    }
    assert model.parse("publishers/google/models/") is None
    assert ResourceName("a.b/{x}").parse("axb/1") is None  # the pattern's text is literal


def test_times_are_rfc_3339_in_utc():
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp(moment) == "2026-01-02T01:04:05.000006Z"
    assert timestamp(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    assert timestamp(None) is None
    assert without_nones({"a": None, "b": 0, "c": {}, "d": {"e": None}}) == {
        "b": 0,
        "c": {},
        "d": {"e": None},
    }


def test_http_errors_are_google_rpc_status_bodies():
    assert error_body(404, "no such job") == {
        "error": {"code": 404, "message": "no such job", "status": "NOT_FOUND"}
    }
    assert error_body(400, "wrong state", "FAILED_PRECONDITION")["error"]["status"] == (
        "FAILED_PRECONDITION"
    )
    assert error_body(418, "teapot")["error"]["status"] == "UNKNOWN"


@pytest.mark.parametrize(
    ("code", "rpc_code"),
    [
        ("invalid_file", 3),
        ("too_many_attempts", 10),
        ("insufficient_memory", 8),
        ("out_of_memory", 8),
        ("runner_crashed", 13),
        (None, 13),
    ],
)
def test_a_failed_jobs_error_is_a_status_with_its_reason(code, rpc_code):
    status = job_error_status({"code": code, "message": "it broke", "param": None})
    reason = (code or "unknown_error").upper()
    assert status == {
        "code": rpc_code,
        "message": "it broke",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
             "domain": "tuneforge"},
        ],
    }  # fmt: skip
    with_param = job_error_status({"code": "invalid_file", "message": "", "param": "training"})
    assert with_param is not None
    assert with_param["message"] == "invalid_file"
    assert with_param["details"][0]["metadata"] == {"param": "training"}
    assert job_error_status(None) is None and job_error_status({}) is None


def test_renamed_uses_the_surfaces_names_in_the_message_and_param():
    names = {
        "epochs": "spec.hyperParameters.epochCount",
        "learning_rate": "spec.hyperParameters.learningRate",
        "learning_rate_multiplier": "spec.hyperParameters.learningRateMultiplier",
        "base_model": "model",
    }
    err = InvalidArgument(
        "hyperparameters.epochs: too many; learning_rate_multiplier and learning_rate clash "
        "for base_model (see x.epochs, epochsX)",
        "epochs",
    )
    out = renamed(err, names)
    assert isinstance(out, InvalidArgument)
    assert str(out) == (
        "spec.hyperParameters.epochCount: too many; spec.hyperParameters.learningRateMultiplier "
        "and spec.hyperParameters.learningRate clash for model (see x.epochs, epochsX)"
    )
    assert out.param == "spec.hyperParameters.epochCount"
    assert renamed(InvalidArgument("suffix: too long", "suffix"), names).param == "suffix"
    assert renamed(InvalidArgument("no param"), names).param is None
    assert str(renamed(InvalidArgument("epochs: bad", "epochs"), {})) == "epochs: bad"
