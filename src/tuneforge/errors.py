"""The project's own exceptions. Every surface maps these to its error shape."""

from __future__ import annotations


class TuneforgeError(Exception):
    """Base class: a problem the user can act on, described in ``str(err)``."""


class InvalidArgument(TuneforgeError):
    """A request or setting has a wrong value. ``param`` names it when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class NotFound(TuneforgeError):
    """The named resource does not exist (or belongs to another project)."""


class Conflict(TuneforgeError):
    """The resource is in a state that does not allow the operation."""


class ModelNotFound(NotFound):
    """A base model name that is neither the built-in model, a local path nor a hub id."""
