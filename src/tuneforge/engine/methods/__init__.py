"""Tuning methods, one folder each; importing this package registers them all.

A new method is a new folder beside these (see registry.py) and its name here: the order is the
one every surface lists the methods in.
"""

import importlib

from tuneforge.engine.methods.registry import (
    TuningMethod,
    all_methods,
    get_method,
    register_method,
)

METHOD_PACKAGES = ("supervised", "preference", "distillation", "reward", "reinforcement")
for _package in METHOD_PACKAGES:
    importlib.import_module(f"{__name__}.{_package}")

__all__ = ["TuningMethod", "all_methods", "get_method", "register_method"]
