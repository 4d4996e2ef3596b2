"""The store's repository: plain functions taking a Session, one import for every caller.

Functions that take a ``project_id`` are scoped to it: a row of another project raises the
same NotFound as a missing one. Functions without one (``load_job``, heartbeats, events,
checkpoints) are for the scheduler and runner, or for callers that already checked the job.
"""

from tuneforge.store.repo_common import Page, decode_page_token, encode_page_token
from tuneforge.store.repo_events import list_events, metric_series, record_event
from tuneforge.store.repo_files import (
    create_file,
    delete_file,
    existing_file_ids,
    get_file,
    list_files,
    new_file_id,
    update_file_validation,
)
from tuneforge.store.repo_jobs import (
    MAX_JOBS_PER_PAGE,
    create_job,
    finish_job,
    get_job,
    heartbeat,
    job_error,
    list_jobs,
    load_job,
    new_job_id,
    request_cancel,
    request_pause,
    resume_job,
    update_progress,
)
from tuneforge.store.repo_keys import (
    authenticate,
    create_api_key,
    ensure_project,
    get_project,
    hash_api_key,
    list_api_keys,
    revoke_api_key,
)
from tuneforge.store.repo_results import (
    add_checkpoint,
    checkpoints_by_job,
    create_tuned_model,
    default_checkpoint,
    get_checkpoint,
    get_tuned_model,
    list_checkpoints,
    list_tuned_models,
    set_default_checkpoint,
)
from tuneforge.store.repo_scheduling import (
    claim_next_job,
    count_active_jobs,
    mark_waiting_for_capacity,
    requeue_orphans,
)

__all__ = [
    "MAX_JOBS_PER_PAGE",
    "Page",
    "add_checkpoint",
    "authenticate",
    "checkpoints_by_job",
    "claim_next_job",
    "count_active_jobs",
    "create_api_key",
    "create_file",
    "create_job",
    "create_tuned_model",
    "decode_page_token",
    "default_checkpoint",
    "delete_file",
    "encode_page_token",
    "ensure_project",
    "existing_file_ids",
    "finish_job",
    "get_checkpoint",
    "get_file",
    "get_job",
    "get_project",
    "get_tuned_model",
    "hash_api_key",
    "heartbeat",
    "job_error",
    "list_api_keys",
    "list_checkpoints",
    "list_events",
    "list_files",
    "list_jobs",
    "list_tuned_models",
    "load_job",
    "mark_waiting_for_capacity",
    "metric_series",
    "new_file_id",
    "new_job_id",
    "record_event",
    "request_cancel",
    "request_pause",
    "requeue_orphans",
    "resume_job",
    "revoke_api_key",
    "set_default_checkpoint",
    "update_file_validation",
    "update_progress",
]
