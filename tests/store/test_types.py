"""The column types' fast paths read back exactly what was written: a job's enums and JSON
columns, through the ORM and as records, on both databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tuneforge.store import repo
from tuneforge.store.db import Database, make_engine
from tuneforge.store.models import TuningJob
from tuneforge.store.states import JobState, Mode
from tuneforge.store.testing import TEST_PROJECT
from tuneforge.store.types import EnumText, json_from_text

METADATA = {"team": 'a "quoted" ü', "empty": "", "nested": '[1, {"x": null}]'}
HYPERPARAMETERS = {"epochs": 3, "learning_rate": 2.5e-05, "batch_size": "auto", "beta": None}


def test_a_job_reads_back_its_enums_and_json_as_written(db: Database, session: Session) -> None:
    job = repo.create_job(
        session, TEST_PROJECT, base_model="m", training_file="file-x",
        hyperparameters=HYPERPARAMETERS, metadata=METADATA,
    )  # fmt: skip
    session.commit()
    with db.reading() as connection:
        record = repo.read_job(connection, TEST_PROJECT, job.id)
    with db.session() as s:
        row = s.scalars(select(TuningJob).where(TuningJob.id == job.id)).one()
    for read in (record, row):
        assert read.state is JobState.QUEUED and read.mode is Mode.PEFT
        assert read.sub_state is None and read.error is None
        assert read.user_metadata == METADATA and read.hyperparameters == HYPERPARAMETERS


def test_an_unknown_enum_value_is_refused_as_the_enum_refuses_it() -> None:
    with pytest.raises(ValueError, match="JOB_STATE_NEW"):
        EnumText(JobState).process_result_value("JOB_STATE_NEW", None)


@pytest.mark.parametrize(
    "text_value", ['{"a": [1, 2.5, "ü", null, true]}', "[]", '"text"', "3", "null"]
)
def test_json_text_decodes_as_json_loads_does(text_value: str) -> None:
    assert json_from_text(text_value) == json.loads(text_value)


@pytest.mark.parametrize("bad", ['{"a": 1} trailing', '{"a": 1', ""])
def test_text_that_is_not_one_json_document_fails_as_json_loads_does(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json_from_text(bad)


def test_bytes_and_numbers_go_to_json_loads() -> None:
    """SQLAlchemy's SQLite JSON type passes a number stored bare on, by its TypeError."""
    assert json_from_text(b'{"a": 1}') == {"a": 1}
    with pytest.raises(TypeError):
        json_from_text(5)


def test_sqlite_engines_decode_json_columns_with_it() -> None:
    engine = make_engine("sqlite://")  # PostgreSQL's driver decodes JSON itself
    try:
        assert engine.dialect._json_deserializer is json_from_text
    finally:
        engine.dispose()
