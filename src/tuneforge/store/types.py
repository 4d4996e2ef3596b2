"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str, hex_chars: int = 12) -> str:
    """A random id such as ``tj-3f9a0c1b2d4e``."""
    return f"{prefix}-{secrets.token_hex(hex_chars // 2)}"


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zones: it gets naive UTC text, which still sorts in time order; values
    read back are made aware again so callers never compare naive with aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class EnumText(TypeDecorator[StrEnum]):
    """A StrEnum stored as its value in a VARCHAR (no database enum types to migrate)."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum_class: type[StrEnum]) -> None:
        super().__init__()
        self.enum_class = enum_class
        # A member by its value: a dict lookup is a tenth of calling the enum class, which a
        # page of 20 jobs did 60 times.
        self._members: dict[str, StrEnum] = {member.value: member for member in enum_class}

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        if value is None:
            return None
        member = self._members.get(value)
        return member if member is not None else self.enum_class(value)


# JSON columns: None stays SQL NULL rather than the JSON text "null".
NullableJSON = JSON(none_as_null=True)

_json_decoder = json.JSONDecoder()


def json_from_text(text: Any) -> Any:
    """``json.loads`` for the JSON text SQLite's columns hold (written by ``json.dumps``):
    ``raw_decode`` skips ``loads``' checks for bytes and whitespace, about half its cost for
    the small objects of a job (a page of 20 jobs decodes about 40). Anything else (bytes, a
    number, text that is not one JSON document alone) goes to ``json.loads``, and its error."""
    if not isinstance(text, str):
        return json.loads(text)
    value, end = _json_decoder.raw_decode(text)
    return value if end == len(text) else json.loads(text)


# A 64-bit autoincrement key; SQLite only autoincrements a column declared INTEGER.
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")


class json_string(FunctionElement[str]):
    """``json_string(column, key)``: the string a JSON object holds under ``key``; NULL when
    the key is missing or holds anything but a string.

    Compiled per backend because neither offers a shared spelling: PostgreSQL's ``->>`` would
    also turn a number into text, and SQLite's ``json_extract`` path cannot quote every key
    (a ``"`` in it), so SQLite reads the object's members with ``json_each`` instead. The key
    stays a bound parameter on both.
    """

    type = String()
    inherit_cache = True
    name = "json_string"


@compiles(json_string, "sqlite")
def _json_string_sqlite(element: json_string, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(SELECT value FROM json_each({column}) WHERE key = {key} AND type = 'text')"


@compiles(json_string, "postgresql")
def _json_string_postgresql(element: json_string, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"(CASE WHEN json_typeof(({column}) -> ({key})) = 'string' THEN ({column}) ->> ({key}) END)"
    )
