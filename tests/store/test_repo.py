"""Every repository function, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from tuneforge.errors import Conflict, InvalidArgument, NotFound
from tuneforge.store import repo
from tuneforge.store.models import TuningJob
from tuneforge.store.states import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATES,
    EventLevel,
    EventType,
    JobState,
    Mode,
    RequestedAction,
    SubState,
    check_transition,
    transition,
)
from tuneforge.store.testing import OTHER_TEST_PROJECT as OTHER
from tuneforge.store.testing import TEST_PROJECT as PROJECT

WORKER = "worker-1"


def new_job(session: Session, project_id: str = PROJECT, **fields) -> TuningJob:
    fields.setdefault("base_model", "tiny")
    fields.setdefault("training_file", "file-train")
    return repo.create_job(session, project_id, **fields)


def running_job(session: Session, **fields) -> TuningJob:
    job = new_job(session, **fields)
    claimed = repo.claim_next_job(session, WORKER, capacity=100)
    assert claimed is not None and claimed.id == job.id
    return claimed


def event_messages(session: Session, job_id: str) -> list[str]:
    return [event.message for event in repo.list_events(session, job_id)]


# --- state machine ---------------------------------------------------------------------------


def test_terminal_states_lead_nowhere_and_every_state_has_rules() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(JobState)
    for state in TERMINAL_STATES:
        assert ALLOWED_TRANSITIONS[state] == frozenset()


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        (JobState.QUEUED, JobState.RUNNING, True),
        (JobState.RUNNING, JobState.SUCCEEDED, True),
        (JobState.RUNNING, JobState.QUEUED, True),
        (JobState.CANCELLING, JobState.CANCELLED, True),
        (JobState.PAUSED, JobState.QUEUED, True),
        (JobState.QUEUED, JobState.SUCCEEDED, False),
        (JobState.CANCELLING, JobState.SUCCEEDED, False),
        (JobState.SUCCEEDED, JobState.QUEUED, False),
        (JobState.CANCELLED, JobState.RUNNING, False),
    ],
)
def test_check_transition(current: JobState, new: JobState, allowed: bool) -> None:
    if allowed:
        check_transition(current, new)
    else:
        with pytest.raises(Conflict, match="cannot become"):
            check_transition(current, new)


def test_transition_moves_a_job_in_memory_or_raises() -> None:
    job = TuningJob(id="tj-x", state=JobState.QUEUED)
    transition(job, JobState.RUNNING)
    assert job.state == JobState.RUNNING
    with pytest.raises(Conflict, match="tj-x"):
        transition(job, JobState.CANCELLED)


# --- projects --------------------------------------------------------------------------------


def test_ensure_project_is_idempotent(session: Session) -> None:
    first = repo.ensure_project(session, "p-new")
    again = repo.ensure_project(session, "p-new")
    assert first.id == again.id == "p-new"
    assert repo.get_project(session, "p-new").created_at.tzinfo is not None
    with pytest.raises(NotFound):
        repo.get_project(session, "p-missing")


# --- files -----------------------------------------------------------------------------------


def new_file(session: Session, project_id: str = PROJECT, **fields):
    defaults = dict(
        filename="train.jsonl", bytes=10, sha256="ab" * 32, purpose="fine-tune", path="/x"
    )
    return repo.create_file(session, project_id, **{**defaults, **fields})


def test_files_are_created_read_updated_and_deleted(session: Session) -> None:
    file_id = repo.new_file_id()
    assert file_id.startswith("file-") and len(file_id) == len("file-") + 24
    row = new_file(session, file_id=file_id, path=f"/data/files/{file_id}.jsonl")
    assert (row.id, row.status, row.validation) == (file_id, "uploaded", None)
    assert repo.get_file(session, PROJECT, file_id).path.endswith(".jsonl")

    updated = repo.update_file_validation(
        session,
        PROJECT,
        file_id,
        status="processed",
        format="openai_chat",
        example_count=3,
        validation={"errors": [], "tokens": 42},
    )
    assert (updated.status, updated.format, updated.example_count) == (
        "processed",
        "openai_chat",
        3,
    )
    assert repo.get_file(session, PROJECT, file_id).validation == {"errors": [], "tokens": 42}

    deleted = repo.delete_file(session, PROJECT, file_id)
    assert deleted.path == f"/data/files/{file_id}.jsonl"
    with pytest.raises(NotFound):
        repo.get_file(session, PROJECT, file_id)


def test_files_are_listed_newest_first_by_page_and_purpose(session: Session) -> None:
    ids = [new_file(session, purpose="fine-tune").id for _ in range(5)]
    new_file(session, purpose="batch")
    new_file(session, OTHER)
    first = repo.list_files(session, PROJECT, purpose="fine-tune", limit=3)
    assert [f.id for f in first.items] == ids[::-1][:3] and first.has_more
    rest = repo.list_files(session, PROJECT, purpose="fine-tune", limit=3, after=first.next_after)
    assert [f.id for f in rest.items] == ids[::-1][3:] and not rest.has_more
    assert rest.next_page_token is None
    assert len(repo.list_files(session, PROJECT).items) == 6


def test_another_projects_file_is_not_found_like_a_missing_one(session: Session) -> None:
    theirs = new_file(session, OTHER)
    for call in (repo.get_file, repo.delete_file):
        with pytest.raises(NotFound) as other:
            call(session, PROJECT, theirs.id)
        with pytest.raises(NotFound) as missing:
            call(session, PROJECT, "file-missing")
        assert str(other.value).replace(theirs.id, "X") == str(missing.value).replace(
            "file-missing", "X"
        )
    with pytest.raises(NotFound):
        repo.update_file_validation(
            session,
            PROJECT,
            theirs.id,
            status="error",
            format=None,
            example_count=None,
            validation=None,
        )
    with pytest.raises(NotFound):
        new_file(session, "p-missing")


# --- jobs ------------------------------------------------------------------------------------


def test_create_job_records_everything_given(session: Session) -> None:
    job = repo.create_job(
        session,
        PROJECT,
        base_model="tiny",
        training_file="file-1",
        validation_file="file-2",
        method="distillation",
        mode="full",
        hyperparameters={"epoch_count": 2},
        teacher_model="teacher",
        display_name="my job",
        description="d",
        suffix="sfx",
        seed=7,
        metadata={"k": "v"},
        total_epochs=2,
    )
    got = repo.get_job(session, PROJECT, job.id)
    assert got.id.startswith("tj-") and len(got.id) == 15
    assert (got.method, got.mode) == ("distillation", Mode.FULL)
    assert (got.state, got.sub_state, got.requested_action) == (JobState.QUEUED, None, None)
    assert got.hyperparameters == {"epoch_count": 2} and got.user_metadata == {"k": "v"}
    assert (got.seed, got.suffix, got.teacher_model, got.total_epochs) == (7, "sfx", "teacher", 2)
    assert (got.completed_steps, got.attempt_count, got.error, got.tuned_model) == (
        0,
        0,
        None,
        None,
    )
    assert got.created_at.tzinfo is not None
    assert event_messages(session, job.id) == ["created tuning job"]


def test_create_job_refuses_an_unknown_mode_and_project(session: Session) -> None:
    """Methods are the registry's to check (the service does, tests/engine/test_methods.py):
    the store keeps any registered method's name without a migration."""
    with pytest.raises(InvalidArgument) as err:
        new_job(session, mode="qlora")
    assert err.value.param == "mode"
    with pytest.raises(NotFound):
        new_job(session, "p-missing")


def test_another_projects_job_is_not_found(session: Session) -> None:
    theirs = new_job(session, OTHER)
    for call in (repo.get_job, repo.request_cancel, repo.request_pause, repo.resume_job):
        with pytest.raises(NotFound):
            call(session, PROJECT, theirs.id)
    assert repo.get_job(session, OTHER, theirs.id).state == JobState.QUEUED
    assert repo.load_job(session, theirs.id).id == theirs.id
    with pytest.raises(NotFound):
        repo.load_job(session, "tj-missing")


def test_jobs_are_listed_newest_first_by_page_and_state(session: Session) -> None:
    ids = [new_job(session).id for _ in range(5)]
    new_job(session, OTHER)
    repo.request_cancel(session, PROJECT, ids[1])

    first = repo.list_jobs(session, PROJECT, limit=2)
    assert [j.id for j in first.items] == [ids[4], ids[3]] and first.has_more
    after = repo.decode_page_token(first.next_page_token)
    second = repo.list_jobs(session, PROJECT, limit=2, after=after)
    assert [j.id for j in second.items] == [ids[2], ids[1]]
    third = repo.list_jobs(session, PROJECT, limit=2, after=second.next_after)
    assert [j.id for j in third.items] == [ids[0]] and not third.has_more

    cancelled = repo.list_jobs(session, PROJECT, states=[JobState.CANCELLED])
    assert [j.id for j in cancelled.items] == [ids[1]]
    assert len(repo.list_jobs(session, PROJECT, states=["JOB_STATE_QUEUED"]).items) == 4


def test_jobs_are_searched_by_id_name_suffix_and_base_model(session: Session) -> None:
    spam = new_job(session, display_name="Spam Filter", suffix="spam-v1")
    support = new_job(session, display_name="support bot", base_model="org/Qwen-0.5B")
    percent = new_job(session, display_name="100% recall")
    new_job(session, OTHER, display_name="spam filter")

    def found(search: str, **kwargs) -> list[str]:
        return [j.id for j in repo.list_jobs(session, PROJECT, search=search, **kwargs).items]

    assert found("spam") == [spam.id]  # the display name and the suffix, not another project's
    assert found("FILTER") == [spam.id]  # case does not matter
    assert found("qwen") == [support.id]
    assert found(support.id[-6:]) == [support.id]
    assert found("0%") == [percent.id]  # % is a character, not a wildcard
    assert found("_") == []
    assert found("spam", states=[JobState.CANCELLED]) == []
    assert found("  ") == [percent.id, support.id, spam.id]  # blank: no search


def test_jobs_are_filtered_by_metadata_in_the_database(session: Session) -> None:
    """Every pair must match as a string; pages stay exact; ``after`` may be any job."""
    odd_key = 'we"ird.$[key]'
    ids = [
        new_job(session, metadata={"n": str(i % 2), "team": "a", odd_key: "x"}).id for i in range(5)
    ]
    other_team = new_job(session, metadata={"n": "0", "team": "b"}).id
    not_a_string = new_job(session, metadata={"n": 0, "team": "a"}).id
    new_job(session, OTHER, metadata={"n": "0", "team": "a"})

    def listed(**kwargs) -> repo.Page:
        return repo.list_jobs(session, PROJECT, **kwargs)

    assert [j.id for j in listed(metadata={"n": "0"}).items] == [other_team, ids[4], ids[2], ids[0]]
    both = {"n": "0", "team": "a"}
    first = listed(metadata=both, limit=2)
    assert [j.id for j in first.items] == [ids[4], ids[2]] and first.has_more
    rest = listed(metadata=both, limit=2, after=first.next_after)
    assert [j.id for j in rest.items] == [ids[0]] and not rest.has_more
    exact = listed(metadata=both, limit=3)
    assert len(exact.items) == 3 and not exact.has_more
    # A cursor on a job the filter leaves out still marks a place in the list.
    assert [j.id for j in listed(metadata=both, after=not_a_string).items] == [
        ids[4],
        ids[2],
        ids[0],
    ]
    assert [j.id for j in listed(metadata={odd_key: "x", "n": "1"}).items] == [ids[3], ids[1]]
    assert listed(metadata={"n": "2"}).items == []
    assert listed(metadata={"missing": "0"}).items == []
    assert [j.id for j in listed(metadata={"n": "1"}, states=["JOB_STATE_QUEUED"]).items] == [
        ids[3],
        ids[1],
    ]
    repo.request_cancel(session, PROJECT, ids[3])
    assert [j.id for j in listed(metadata={"n": "1"}, states=[JobState.QUEUED]).items] == [ids[1]]


def test_a_page_of_jobs_holds_at_most_100_and_the_cursor_reaches_the_rest(
    session: Session,
) -> None:
    ids = [new_job(session).id for _ in range(repo.MAX_JOBS_PER_PAGE + 30)][::-1]
    first = repo.list_jobs(session, PROJECT, limit=1000)
    assert [j.id for j in first.items] == ids[: repo.MAX_JOBS_PER_PAGE] and first.has_more
    rest = repo.list_jobs(session, PROJECT, limit=1000, after=first.next_after)
    assert [j.id for j in rest.items] == ids[repo.MAX_JOBS_PER_PAGE :] and not rest.has_more
    exact = repo.list_jobs(session, PROJECT, limit=30, after=first.next_after)
    assert len(exact.items) == 30 and not exact.has_more


def test_a_page_of_files_holds_at_most_100_and_the_cursor_reaches_the_rest(
    session: Session,
) -> None:
    ids = [new_file(session).id for _ in range(repo.MAX_FILES_PER_PAGE + 3)][::-1]
    first = repo.list_files(session, PROJECT, limit=1000)
    assert [f.id for f in first.items] == ids[: repo.MAX_FILES_PER_PAGE] and first.has_more
    rest = repo.list_files(session, PROJECT, limit=1000, after=first.next_after)
    assert [f.id for f in rest.items] == ids[repo.MAX_FILES_PER_PAGE :] and not rest.has_more


def test_checkpoints_and_files_are_found_for_many_ids_at_once(session: Session) -> None:
    first, second, bare = running_job(session), running_job(session), new_job(session)
    late = repo.add_checkpoint(session, first.id, epoch=2, step=20, path="/b")
    early = repo.add_checkpoint(session, first.id, epoch=1, step=10, path="/a")
    only = repo.add_checkpoint(session, second.id, epoch=1, step=5, path="/c")
    found = repo.checkpoints_by_job(session, [first.id, second.id, bare.id])
    assert {job: [c.id for c in cs] for job, cs in found.items()} == {
        first.id: [early.id, late.id],
        second.id: [only.id],
    }
    assert repo.checkpoints_by_job(session, []) == {}

    mine, theirs = new_file(session), new_file(session, OTHER)
    asked = [mine.id, theirs.id, "file-missing"]
    assert repo.existing_file_ids(session, PROJECT, asked) == {mine.id}
    assert repo.existing_file_ids(session, OTHER, asked) == {theirs.id}
    assert repo.existing_file_ids(session, PROJECT, []) == set()


def test_listing_refuses_bad_pages(session: Session) -> None:
    theirs = new_job(session, OTHER)
    with pytest.raises(InvalidArgument):
        repo.list_jobs(session, PROJECT, after=theirs.id)
    with pytest.raises(InvalidArgument):
        repo.list_jobs(session, PROJECT, limit=0)
    with pytest.raises(InvalidArgument):
        repo.decode_page_token("%%%")
    assert repo.decode_page_token(repo.encode_page_token("tj-abc")) == "tj-abc"


def test_cancel_of_a_queued_job_is_immediate_and_final(session: Session) -> None:
    job = new_job(session)
    cancelled = repo.request_cancel(session, PROJECT, job.id)
    assert cancelled.state == JobState.CANCELLED and cancelled.ended_at is not None
    with pytest.raises(Conflict):
        repo.request_cancel(session, PROJECT, job.id)
    with pytest.raises(Conflict):
        repo.request_pause(session, PROJECT, job.id)
    assert event_messages(session, job.id)[-1] == "tuning job cancelled"


def test_cancel_of_a_running_job_asks_its_runner(session: Session) -> None:
    job = running_job(session)
    cancelling = repo.request_cancel(session, PROJECT, job.id)
    assert cancelling.state == JobState.CANCELLING
    assert cancelling.requested_action == RequestedAction.CANCEL
    assert repo.request_cancel(session, PROJECT, job.id).state == JobState.CANCELLING
    assert repo.heartbeat(session, job.id).requested_action == RequestedAction.CANCEL
    with pytest.raises(Conflict):
        repo.finish_job(session, job.id, JobState.SUCCEEDED)
    done = repo.finish_job(session, job.id, JobState.CANCELLED, worker_id=WORKER)
    assert (done.state, done.requested_action, done.ended_at is not None) == (
        JobState.CANCELLED,
        None,
        True,
    )


def test_pause_and_resume(session: Session) -> None:
    queued = new_job(session)
    assert repo.request_pause(session, PROJECT, queued.id).state == JobState.PAUSED
    assert repo.request_pause(session, PROJECT, queued.id).state == JobState.PAUSED
    assert repo.resume_job(session, PROJECT, queued.id).state == JobState.QUEUED
    with pytest.raises(Conflict):
        repo.resume_job(session, PROJECT, queued.id)
    repo.request_cancel(session, PROJECT, queued.id)

    running = running_job(session)
    pausing = repo.request_pause(session, PROJECT, running.id)
    assert (pausing.state, pausing.requested_action) == (JobState.RUNNING, RequestedAction.PAUSE)
    withdrawn = repo.resume_job(session, PROJECT, running.id)
    assert withdrawn.requested_action is None
    repo.request_pause(session, PROJECT, running.id)
    paused = repo.finish_job(session, running.id, JobState.PAUSED, worker_id=WORKER)
    assert (paused.state, paused.worker_id, paused.ended_at) == (JobState.PAUSED, None, None)
    resumed = repo.resume_job(session, PROJECT, running.id)
    assert (resumed.state, resumed.requested_action) == (JobState.QUEUED, None)
    messages = event_messages(session, running.id)
    assert messages[-4:] == [
        "pause request withdrawn",
        "pause requested",
        "tuning job paused",
        "tuning job resumed",
    ]


def test_heartbeat_and_progress_belong_to_the_running_runner(session: Session) -> None:
    job = running_job(session)
    before = job.heartbeat_at
    beat = repo.heartbeat(session, job.id, worker_id=WORKER, runner_handle="test://4242")
    assert beat.runner_handle == "test://4242" and beat.heartbeat_at >= before
    assert beat.requested_action is None
    with pytest.raises(Conflict, match="worker"):
        repo.heartbeat(session, job.id, worker_id="someone-else")

    finish = datetime(2030, 1, 1, tzinfo=UTC)
    progressed = repo.update_progress(
        session,
        job.id,
        worker_id=WORKER,
        sub_state=SubState.TUNING,
        completed_steps=5,
        total_steps=20,
        completed_epochs=1,
        total_epochs=4,
        trained_tokens=1000,
        estimated_finish=finish,
        data_stats={"examples": 10},
    )
    assert progressed.sub_state == SubState.TUNING
    assert (progressed.completed_steps, progressed.total_steps) == (5, 20)
    assert (progressed.completed_epochs, progressed.total_epochs) == (1, 4)
    assert (progressed.trained_tokens, progressed.estimated_finish) == (1000, finish)
    assert progressed.data_stats == {"examples": 10}
    again = repo.update_progress(session, job.id, completed_steps=6)
    assert (again.completed_steps, again.total_steps, again.sub_state) == (6, 20, SubState.TUNING)

    repo.finish_job(session, job.id, JobState.SUCCEEDED)
    with pytest.raises(Conflict, match="must stop"):
        repo.heartbeat(session, job.id)
    with pytest.raises(Conflict):
        repo.update_progress(session, job.id, completed_steps=7)
    with pytest.raises(NotFound):
        repo.heartbeat(session, "tj-missing")


def test_finish_job_success_and_failure(session: Session) -> None:
    ok = running_job(session)
    updated_before = ok.updated_at
    done = repo.finish_job(session, ok.id, "JOB_STATE_SUCCEEDED", worker_id=WORKER)
    assert (done.state, done.sub_state, done.error) == (JobState.SUCCEEDED, None, None)
    assert done.ended_at is not None and done.updated_at > updated_before
    assert event_messages(session, ok.id)[-1] == "tuning job succeeded"

    bad = running_job(session)
    error = repo.job_error("invalid_training_file", "line 3: no messages", "training_file")
    failed = repo.finish_job(session, bad.id, JobState.FAILED, error)
    assert failed.error == error
    last = repo.list_events(session, bad.id)[-1]
    assert (last.level, last.message) == (
        EventLevel.ERROR,
        "tuning job failed: line 3: no messages",
    )

    unexplained = running_job(session)
    failed = repo.finish_job(session, unexplained.id, JobState.FAILED)
    assert failed.error["code"] == "unknown_error" and failed.error["param"] is None


def test_finish_job_refuses_what_a_runner_cannot_say(session: Session) -> None:
    job = running_job(session)
    with pytest.raises(InvalidArgument):
        repo.finish_job(session, job.id, JobState.RUNNING)
    with pytest.raises(InvalidArgument):
        repo.finish_job(session, job.id, JobState.SUCCEEDED, {"code": "x", "message": "y"})
    with pytest.raises(Conflict):
        repo.finish_job(session, job.id, JobState.SUCCEEDED, worker_id="someone-else")
    queued = new_job(session)
    with pytest.raises(Conflict):
        repo.finish_job(session, queued.id, JobState.SUCCEEDED)


def test_compare_and_set_notices_a_concurrent_change(db, session: Session) -> None:
    job = new_job(session)
    session.commit()
    with db.session() as other:
        repo.request_cancel(other, PROJECT, job.id)
    # `session` still holds the job as QUEUED; pausing must see the cancel, not undo it.
    assert session.get(TuningJob, job.id).state == JobState.QUEUED
    with pytest.raises(Conflict, match="CANCELLED"):
        repo.request_pause(session, PROJECT, job.id)
    assert repo.get_job(session, PROJECT, job.id).state == JobState.CANCELLED


# --- events ----------------------------------------------------------------------------------


def test_events_are_recorded_and_paged_both_ways(session: Session) -> None:
    job = new_job(session)
    metrics = repo.record_event(
        session,
        job.id,
        "step 1: loss 1.5",
        type=EventType.METRICS,
        data={"step": 1, "train_loss": 1.5},
    )
    warning = repo.record_event(session, job.id, "slow", level="warning")
    assert metrics.type == EventType.METRICS and metrics.data == {"step": 1, "train_loss": 1.5}
    assert warning.level == EventLevel.WARNING and warning.data is None

    oldest_first = repo.list_events(session, job.id)
    assert [e.message for e in oldest_first] == ["created tuning job", "step 1: loss 1.5", "slow"]
    after_first = repo.list_events(session, job.id, after_id=oldest_first[0].id, limit=1)
    assert [e.id for e in after_first] == [metrics.id]
    newest = repo.list_events(session, job.id, newest_first=True, limit=2)
    assert [e.id for e in newest] == [warning.id, metrics.id]
    older = repo.list_events(session, job.id, newest_first=True, after_id=metrics.id)
    assert [e.id for e in older] == [oldest_first[0].id]
    with pytest.raises(InvalidArgument):
        repo.list_events(session, job.id, limit=0)


# --- checkpoints and tuned models ------------------------------------------------------------


def test_checkpoints(session: Session) -> None:
    job = running_job(session)
    second = repo.add_checkpoint(session, job.id, epoch=2, step=20, path="/c2", metrics={"l": 1})
    first = repo.add_checkpoint(session, job.id, epoch=1, step=10, path="/c1", is_default=True)
    with pytest.raises(Conflict):
        repo.add_checkpoint(session, job.id, epoch=1, step=10, path="/again")
    assert [c.id for c in repo.list_checkpoints(session, job.id)] == [first.id, second.id]
    assert repo.default_checkpoint(session, job.id).id == first.id

    repo.set_default_checkpoint(session, job.id, second.id)
    assert [c.is_default for c in repo.list_checkpoints(session, job.id)] == [False, True]
    assert repo.get_checkpoint(session, job.id, second.id).metrics == {"l": 1}

    other_job = running_job(session)
    with pytest.raises(NotFound):
        repo.get_checkpoint(session, other_job.id, first.id)
    with pytest.raises(NotFound):
        repo.set_default_checkpoint(session, other_job.id, first.id)
    with pytest.raises(NotFound):
        repo.add_checkpoint(session, "tj-missing", epoch=1, step=1, path="/x")
    assert repo.default_checkpoint(session, other_job.id) is None


def test_tuned_models(session: Session) -> None:
    job = running_job(session, display_name="nice name")
    first = repo.add_checkpoint(session, job.id, epoch=1, step=10, path="/c1", is_default=True)
    second = repo.add_checkpoint(session, job.id, epoch=2, step=20, path="/c2")
    model = repo.create_tuned_model(session, job.id)
    assert model.id.startswith("tm-") and model.project_id == PROJECT
    assert (model.base_model, model.display_name) == ("tiny", "nice name")
    assert model.default_checkpoint_id == first.id
    assert repo.load_job(session, job.id).tuned_model.id == model.id
    with pytest.raises(Conflict):
        repo.create_tuned_model(session, job.id)

    repo.set_default_checkpoint(session, job.id, second.id)
    assert repo.get_tuned_model(session, PROJECT, model.id).default_checkpoint_id == second.id

    other = running_job(session)
    picked = repo.add_checkpoint(session, other.id, epoch=1, step=5, path="/o")
    named = repo.create_tuned_model(
        session, other.id, display_name="chosen", default_checkpoint_id=picked.id
    )
    assert named.default_checkpoint_id == picked.id
    assert repo.default_checkpoint(session, other.id).id == picked.id

    listed = repo.list_tuned_models(session, PROJECT)
    assert [m.id for m in listed.items] == [named.id, model.id]
    with pytest.raises(NotFound):
        repo.get_tuned_model(session, OTHER, model.id)
    assert repo.list_tuned_models(session, OTHER).items == []


def test_timestamps_are_aware_utc_on_every_backend(session: Session) -> None:
    job = running_job(session)
    session.commit()
    session.expire_all()
    job = repo.load_job(session, job.id)
    now = datetime.now(UTC)
    for value in (job.created_at, job.started_at, job.heartbeat_at, job.updated_at):
        assert value.tzinfo is not None
        assert timedelta(0) <= now - value < timedelta(minutes=1)
