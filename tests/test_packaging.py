"""pyproject.toml declares what the code imports and ships only files that exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared() -> set[str]:
    dependencies = PYPROJECT["project"]["dependencies"]
    names = (re.split(r"[<>=!~\[ ;]", d, maxsplit=1)[0] for d in dependencies)
    return {name.lower() for name in names}


def test_imported_third_party_packages_are_declared():
    assert {"datasets", "torch", "transformers", "peft", "trl"} <= declared()


def test_every_package_data_pattern_matches_a_file():
    package = ROOT / "src" / "tuneforge"
    for pattern in PYPROJECT["tool"]["setuptools"]["package-data"]["tuneforge"]:
        assert any(package.glob(pattern)), f"package-data {pattern!r} matches no file"


def test_the_console_script_names_a_function_that_exists():
    import importlib

    module, _, function = PYPROJECT["project"]["scripts"]["tuneforge"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
