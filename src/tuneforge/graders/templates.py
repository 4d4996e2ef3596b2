"""``{{ sample.output_text }}`` and ``{{ item.answer }}``: a grader's text fields are templates
over the sampled answer and the dataset item, rendered by Jinja's sandbox (no attribute of
Python objects reachable beyond the data; a missing field is an error, not an empty string)."""

from __future__ import annotations

import json
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateVariableError(ValueError):
    pass


def sample_namespace(output_text: str) -> dict[str, Any]:
    """What ``sample`` holds: the answer's text, and its JSON when it is JSON."""
    try:
        output_json = json.loads(output_text)
    except ValueError:
        output_json = None
    return {"output_text": output_text, "output_json": output_json}


def render(template: str, sample: dict[str, Any], item: dict[str, Any]) -> str:
    try:
        return _ENV.from_string(template).render(sample=sample, item=item)
    except TemplateError as err:
        raise TemplateVariableError(f"{template!r}: {err}") from None
