"""Settings, read from the environment (prefix ``TUNEFORGE_``) with documented defaults."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", env_file=None, extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".tuneforge",
        description="Where the database lives, and (tuneforge.storage.LocalStorage) uploaded "
        "files, job folders with their checkpoints, built models and the local API key.",
    )
    storage_url: str | None = Field(
        default=None,
        description="s3://bucket/prefix: uploads and every job's checkpoints, metrics and loss "
        "curve go to this S3-compatible bucket (tuneforge.storage.ObjectStorage), and only "
        "caches stay under data_dir; unset, they live under data_dir.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 API's URL for a store other than AWS (MinIO, Ceph, R2, ...): the "
        "store's, and the one s3:// datasets and media are read from.",
    )
    s3_region: str | None = Field(
        default=None, description="The bucket's region; AWS_REGION when unset."
    )
    s3_access_key_id: str | None = Field(
        default=None, description="S3 credentials; the standard AWS variables when unset."
    )
    s3_secret_access_key: str | None = Field(default=None, description="See s3_access_key_id.")
    object_cache_bytes: int = Field(
        default=20 << 30,
        gt=0,
        description="Size past which the cache of fetched objects (checkpoints served, uploads "
        "read) drops its least recently used entries.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite (WAL) under data_dir when unset.",
    )
    model_roots: list[Path] = Field(
        default_factory=list,
        description="Directories local base models may be loaded from (besides data_dir/models).",
    )
    dataset_roots: list[Path] = Field(
        default_factory=list,
        description="Directories a job's dataset may be read from by path.",
    )
    max_upload_bytes: int = Field(default=1 << 30, description="Largest accepted upload.")
    max_inline_dataset_bytes: int = Field(
        default=4 << 20,
        description="Largest request carrying its training examples inline (the Gemini API's "
        "tunedModels create); 4 MB, as the Gemini API had.",
    )
    max_prompt_bytes: int = Field(
        default=1 << 20,
        gt=0,
        description="Largest prompt a model is asked to read, in bytes of UTF-8 text (system "
        "instruction and every turn); a larger one is refused before it is tokenized.",
    )
    max_media_parts: int = Field(
        default=64,
        gt=0,
        description="Media parts (images, PDF documents, audio) one example or request may hold.",
    )
    max_media_bytes: int = Field(
        default=20 << 20,
        gt=0,
        description="Largest media part, in bytes (inline, an uploaded file, or a fetched one); "
        "20 MiB, as Vertex's inline data.",
    )
    max_media_pixels: int = Field(
        default=40_000_000,
        gt=0,
        description="Largest image, in pixels (width x height), checked before it is decoded.",
    )
    max_pdf_pages: int = Field(default=32, gt=0, description="Most pages a PDF part may have.")
    max_audio_seconds: float = Field(
        default=600.0, gt=0, description="Longest audio part, in seconds."
    )
    allow_media_urls: bool = Field(
        default=False,
        description="Fetch media parts given as http(s) URLs (an image_url's url, a fileData's "
        "fileUri); off, they are refused and the bytes must be sent inline or uploaded.",
    )
    slots: int | None = Field(
        default=None, description="Jobs run at once; one per GPU, or one on a CPU machine."
    )
    executor: Literal["subprocess", "ray"] = Field(
        default="subprocess",
        description="What runs a job: a subprocess of the scheduler, or a Ray actor on a Ray "
        "cluster (tuneforge.jobs.ray_executor; needs the `ray` extra).",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster the ray executor places jobs on (ray.init's address: "
        "`HOST:PORT` or `ray://HOST:10001`); unset or `local`: a Ray started for this process.",
    )
    server: str | None = Field(default=None, description="URL of a tuneforge server for the CLI.")
    api_key: str | None = Field(default=None, description="API key the CLI sends to a server.")
    inference_backend: Literal["transformers", "vllm"] = Field(
        default="transformers", description="What serves tuned models: transformers or vLLM."
    )
    inference_memory_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Memory budget of the cache of loaded base models; by default half the "
        "memory they are served from (the GPU's on CUDA, else the RAM this process may use).",
    )
    resume_point_minutes: float = Field(
        default=10.0,
        gt=0,
        description="A running job saves a resume point (weights and optimizer state) after this "
        "many minutes of training since its last save, so a crash, restart or cancel loses at "
        "most that much; only the newest is kept.",
    )
    resume_point_steps: int | None = Field(
        default=None,
        ge=1,
        description="Also save a resume point every this many steps (none by default).",
    )
    python_graders: bool = Field(
        default=False,
        description="Run python graders (a caller's grade(sample, item) code, in a child "
        "process with the limits below and no network); off, they are refused.",
    )
    python_grader_timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Wall and CPU seconds a python grader may take."
    )
    python_grader_memory_bytes: int = Field(
        default=512 << 20, ge=64 << 20, description="Address space a python grader may use."
    )
    training_memory_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Memory a training run may plan to use; by default what its device has "
        "available when it starts (the GPU's free memory on CUDA, else the RAM the machine and "
        "its container can still give). A run that cannot fit is refused before it starts.",
    )
    shutdown_grace_s: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long running jobs get to save a resume point before their "
        "runners are killed (the jobs are requeued either way).",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'tuneforge.db'}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process these same settings."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"TUNEFORGE_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    env["TUNEFORGE_DATABASE_URL"] = settings.resolved_database_url
    return env


@lru_cache
def get_settings() -> Settings:
    return Settings()
